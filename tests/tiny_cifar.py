"""A tiny CIFAR-10 image folder (a few real images per class) for end-to-end tests that must not
read all 60,000 images."""
import os
import shutil

from compare_ssgan import datasets
from run_helpers import CIFAR10_TAR


def tiny_cifar10_folder(root, train_per_class, test_per_class):
    """Copies the first images of every class of the shared CIFAR-10 archive into
    root/{train,test}/<class>/; returns root."""
    source = datasets._split_root(datasets._extract_once(CIFAR10_TAR), "train")
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for name in datasets.KNOWN["cifar10"].class_names:
            src, dst = os.path.join(source, split, name), os.path.join(root, split, name)
            os.makedirs(dst, exist_ok=True)
            for f in sorted(os.listdir(src))[:count]:
                shutil.copy(os.path.join(src, f), dst)
    return str(root)
