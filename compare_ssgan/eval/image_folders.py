"""A directory of images (PNG or JPEG, found recursively) as a source of real or fake images
for `real_cache.real_activations`, which caches their activations like a dataset split's.

Sizes: by default every image must have the same size, and images go to the feature network
as stored; the network resizes them itself (Inception: TF-GAN's bilinear resize to 299x299;
the CIFAR-10 classifier: antialiased bilinear to 32x32; see feature_networks.py), as
pytorch-fid does with folders. Folders of mixed sizes are refused unless `image_size` is
given: then each image is centrally cropped to that aspect ratio and resized (bilinear,
antialiased) to it, exactly as the training datasets are (datasets.central_crop_and_resize).
Grey-scale and RGBA images are converted to RGB (alpha dropped). What was done is in
`preprocessing`, which the evaluate command records.
"""
import hashlib
import os

import numpy as np
import tensorflow as tf

from compare_ssgan import datasets
from compare_ssgan.errors import UserError

EXTENSIONS = (".png", ".jpg", ".jpeg")
SPLIT = "all"  # what real_activations calls the folder's one split


def parse_image_size(text):
    """'32' or '64x48' (height x width) -> (h, w); None stays None."""
    if text is None:
        return None
    try:
        parts = [int(p) for p in str(text).lower().split("x")]
        if len(parts) == 1:
            parts *= 2
        h, w = parts
        if h < 1 or w < 1:
            raise ValueError
    except ValueError:
        raise UserError(f"--image_size={text} must be a size like 32 or 64x48 (height x width)") from None
    return h, w


class ImageFolder:
    """Every PNG/JPEG under `path`, in sorted path order."""

    name = "folder"

    def __init__(self, path, image_size=None):
        from PIL import Image

        if not os.path.isdir(path):
            raise UserError(f"{path} is not a directory of images")
        self.path, self.image_size = os.path.abspath(path), image_size
        self.files = sorted(os.path.join(root, f) for root, _, files in os.walk(self.path)
                            for f in files if f.lower().endswith(EXTENSIONS))
        if not self.files:
            raise UserError(f"{path} holds no PNG or JPEG images (searched recursively)")
        sizes, digest = {}, hashlib.sha1()
        for f in self.files:
            try:
                with Image.open(f) as image:
                    width, height = image.size
            except Exception as e:  # noqa: BLE001 - PIL raises many types for a bad file
                raise UserError(f"cannot read image {f}: {type(e).__name__}: {e}. Remove or replace it.") from e
            sizes.setdefault((height, width), f)
            stat = os.stat(f)
            digest.update(f"{os.path.relpath(f, self.path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        if image_size is None and len(sizes) > 1:
            examples = ", ".join(f"{h}x{w} ({os.path.relpath(f, self.path)})" for (h, w), f in list(sizes.items())[:3])
            raise UserError(f"{path} mixes image sizes: {examples}{', ...' if len(sizes) > 3 else ''}. Pass "
                            f"--image_size=HxW to crop and resize every image to one size, or use a folder "
                            f"of one size.")
        if image_size is None:
            (h, w), = sizes
            self.preprocessing = (f"none: {h}x{w} images as stored; the feature network resizes them")
        else:
            h, w = image_size
            self.preprocessing = (f"central crop to the {h}:{w} aspect ratio, then bilinear antialiased "
                                  f"resize to {h}x{w} (datasets.central_crop_and_resize)")
        self.shape = (h, w, 3)
        # real_activations caches by this: the files (names, sizes, times) and the preprocessing.
        self.source_description = f"folder:{self.path} files-sha1:{digest.hexdigest()[:12]} {self.preprocessing}"

    def __len__(self):
        return len(self.files)

    def content_fingerprint(self, split=None):
        """A digest of the folder's file list, sizes and modification times, so the evaluator's
        real-activation cache is not reused for replaced images (as datasets.Dataset's)."""
        del split
        from compare_ssgan import datasets

        return datasets.files_fingerprint(self.files, self.path)

    def _load(self, path):
        from PIL import Image

        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), np.uint8)
        if self.image_size is None:
            return pixels.astype(np.float32)
        return datasets.central_crop_and_resize(tf.constant(pixels, tf.float32), *self.image_size).numpy()

    def eval_input(self, batch_size, split=SPLIT):
        """Batches of (images float32 [N, H, W, 3] in [-1, 1], zero labels), as Dataset.eval_input."""
        for start in range(0, len(self.files), batch_size):
            batch = np.stack([self._load(f) for f in self.files[start:start + batch_size]])
            yield tf.constant(batch / 127.5 - 1.0, tf.float32), tf.zeros([len(batch)], tf.int32)
