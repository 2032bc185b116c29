"""Training and evaluation images from tfds or from an image folder, in one convention.

Images leave this module as float32 NHWC in [-1, 1] (the generator's tanh range); labels
as int32. Both sources yield the same splits and the same label numbering.

Resuming must see the same data order as an uninterrupted run, so every pipeline is a fixed
source order -> seeded shuffle -> repeat -> skip(examples already consumed) -> decode ->
batch. The skip runs before decoding (on file paths or encoded bytes), so it is cheap.
"""
import dataclasses
import hashlib
import os
import tarfile
import tempfile

import gin
import numpy as np
import tensorflow as tf

from compare_ssgan.errors import UserError


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    tfds_name: str
    image_shape: tuple
    class_names: tuple
    train_split: str = "train"
    eval_split: str = "test"


KNOWN = {
    "cifar10": DatasetInfo(
        "cifar10", (32, 32, 3),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    ),
}

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def cache_dir():
    """Where extracted archives live; COMPARE_SSGAN_CACHE overrides ~/.cache/compare_ssgan."""
    return os.environ.get("COMPARE_SSGAN_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "compare_ssgan"))


def _extract_once(archive):
    """Extracts a .tar.gz into the cache, atomically (a crash never leaves a half copy)."""
    stat = os.stat(archive)
    key = hashlib.sha1(f"{os.path.abspath(archive)}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = os.path.join(cache_dir(), "image_folders", f"{os.path.basename(archive)}-{key}")
    if os.path.isdir(target):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    staging = tempfile.mkdtemp(dir=os.path.dirname(target), prefix=".extracting-")
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(staging, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise UserError(f"cannot extract image folder archive {archive}: {e}. Check the file "
                        f"is a readable .tar.gz in split/class/image layout.") from e
    try:
        os.rename(staging, target)
    except OSError:  # another process finished first
        if not os.path.isdir(target):
            raise
    return target


def _split_root(root, split):
    """The directory holding `split`/: the root itself or a single top-level folder in it."""
    if os.path.isdir(os.path.join(root, split)):
        return root
    children = [c for c in os.listdir(root) if os.path.isdir(os.path.join(root, c))]
    if len(children) == 1 and os.path.isdir(os.path.join(root, children[0], split)):
        return os.path.join(root, children[0])
    raise UserError(f"image folder {root} has no '{split}' split (found: {', '.join(sorted(children)) or 'nothing'}); "
                    f"expected the layout {split}/<class>/<image>")


@gin.configurable("dataset")
class Dataset:
    """A dataset by name; `image_folder` (a directory or .tar.gz in split/class/image layout)
    replaces tfds with local files, e.g. for machines without internet."""

    def __init__(self, name="cifar10", image_folder=None, data_dir=None, shuffle_buffer=50_000):
        if name not in KNOWN:
            raise UserError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(KNOWN))} "
                            f"(set dataset.name in gin)")
        self.name, self.info = name, KNOWN[name]
        self.data_dir, self.shuffle_buffer = data_dir, int(shuffle_buffer)
        self.image_folder = None
        if image_folder:
            path = os.path.expanduser(image_folder)
            if not os.path.exists(path):
                raise UserError(f"image folder {image_folder} does not exist. Pass a directory or .tar.gz in "
                                f"split/class/image layout: --gin_param=\"dataset.image_folder='<path>'\"")
            self.image_folder = _extract_once(path) if os.path.isfile(path) else path

    @property
    def image_shape(self):
        return self.info.image_shape

    @property
    def num_classes(self):
        return len(self.info.class_names)

    @property
    def source_description(self):
        return f"image_folder:{self.image_folder}" if self.image_folder else f"tfds:{self.info.tfds_name}"

    # Sources: (element, label) in a fixed order, plus how to turn an element into pixels.

    def _folder_source(self, split):
        root = os.path.join(_split_root(self.image_folder, split), split)
        classes = sorted(c for c in os.listdir(root) if os.path.isdir(os.path.join(root, c)))
        if tuple(classes) != tuple(sorted(self.info.class_names)):
            raise UserError(f"image folder {root} has classes {classes}, expected the {self.name} classes "
                            f"{sorted(self.info.class_names)}")
        index = {c: i for i, c in enumerate(self.info.class_names)}
        paths, labels = [], []
        for c in classes:
            files = sorted(f for f in os.listdir(os.path.join(root, c)) if f.lower().endswith(_IMAGE_EXTENSIONS))
            paths += [os.path.join(root, c, f) for f in files]
            labels += [index[c]] * len(files)
        if not paths:
            raise UserError(f"image folder {root} holds no images")
        return tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, np.int32))), tf.io.read_file, len(paths)

    def _tfds_source(self, split):
        import tensorflow_datasets as tfds

        try:
            builder = tfds.builder(self.info.tfds_name, data_dir=self.data_dir)
            builder.download_and_prepare()
            ds = builder.as_dataset(split=split, shuffle_files=False,
                                    decoders={"image": tfds.decode.SkipDecoding()})
        except Exception as e:  # tfds raises many types for a missing/undownloadable dataset
            raise UserError(
                f"cannot load tfds dataset {self.info.tfds_name!r} split {split!r}: {type(e).__name__}: {e}\n"
                f"Without internet, use local files: --gin_param=\"dataset.image_folder='<dir or .tar.gz>'\""
            ) from e
        ds = ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)))
        return ds, (lambda encoded: encoded), None

    def _source(self, split):
        return self._folder_source(split) if self.image_folder else self._tfds_source(split)

    def _decoder(self, to_bytes):
        height, width, channels = self.image_shape

        def decode(element, label):
            image = tf.io.decode_image(to_bytes(element), channels=channels, expand_animations=False)
            image.set_shape([None, None, channels])
            image = tf.image.resize(image, [height, width])  # exact identity at the same size
            return tf.cast(image, tf.float32) / 127.5 - 1.0, label

        return decode

    def train_input(self, global_batch, seed, skip_examples=0):
        """Infinite, shuffled (seeded, reshuffled per epoch) batches of (images, labels)."""
        source, to_bytes, size = self._source(self.info.train_split)
        if size:  # pre-permute: folders are class-major on disk
            source = source.shuffle(size, seed=seed, reshuffle_each_iteration=False)
        ds = source.shuffle(min(self.shuffle_buffer, size or self.shuffle_buffer), seed=seed,
                            reshuffle_each_iteration=True).repeat()
        ds = ds.skip(int(skip_examples))
        ds = ds.map(self._decoder(to_bytes), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(global_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    def eval_input(self, batch_size, split=None, num_examples=None):
        """One pass over `split` (default: the evaluation split) in a fixed order."""
        source, to_bytes, _ = self._source(split or self.info.eval_split)
        if num_examples is not None:
            source = source.take(num_examples)
        ds = source.map(self._decoder(to_bytes), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
