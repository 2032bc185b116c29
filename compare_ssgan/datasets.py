"""Training and evaluation images from tfds or from an image folder, in one convention.

Images leave this module as float32 NHWC in [-1, 1] (the generator's tanh range); labels
as int32. Both sources yield the same splits and the same label numbering.

Every image is centrally cropped to the target aspect ratio (square for all datasets here)
and then resized (bilinear, antialiased) to `image_shape`: nothing is squashed, and an image
already at the target size passes through unchanged. Unlabelled datasets (`class_names=None`:
CelebA-HQ, LSUN, STL-10's unlabelled split) have one class: labels are zeros and
`num_classes` is 1, so the sample grid, conditional code paths and `labels % num_classes`
all stay valid (a conditional model on them degenerates to an unconditional one).

Splits are tfds split strings. Where tfds has no held-out split we slice one off `train`:
  cifar10         train / test                                          32x32
  imagenet2012    train / validation (the paper's test split)           128x128
  celeb_a_hq      tfds 'celeb_a_hq/128': train[:-3000] / train[-3000:]  128x128 (3,000
                  held-out images: the SS-GAN paper's FID sample count for CelebA-HQ)
  lsun_bedroom    tfds 'lsun/bedroom': train[10000:] / train[:10000]    128x128 (the first
                  10,000 training images held out; tfds' own validation split has only 300)
  stl10           unlabelled / test                                     48x48 (as SNGAN and
                  LT-GAN: the 100k unlabelled images, resized from 96x96)
imagenet2012 and celeb_a_hq need a manual download (see `DatasetInfo.manual_download`).

Resuming must see the same data order as an uninterrupted run, so every pipeline is a fixed
source order -> seeded shuffle -> repeat -> skip(examples already consumed) -> decode ->
batch. The skip runs before decoding (on file paths or encoded bytes), so it is cheap.
"""
import dataclasses
import hashlib
import os
import shutil
import tarfile
import tempfile
import zlib

import gin
import numpy as np
import tensorflow as tf

from compare_ssgan import disk
from compare_ssgan.errors import UserError


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """`class_names=None`: unlabelled (one class, labels 0). `manual_download`: what tfds
    cannot fetch itself, for the error message."""
    tfds_name: str
    image_shape: tuple
    class_names: tuple | None
    train_split: str = "train"
    eval_split: str = "test"
    manual_download: str | None = None


def _imagenet_class_names():
    """tfds' imagenet2012 label order (WordNet ids, label i = line i), read from the tfds
    package without importing it; image folders use these ids as class folder names."""
    import importlib.util

    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is not None and spec.origin:
        path = os.path.join(os.path.dirname(spec.origin), "datasets", "imagenet2012", "labels.txt")
        if os.path.isfile(path):
            with open(path) as f:
                names = tuple(line.strip() for line in f if line.strip())
            if len(names) == 1000:
                return names
    return tuple(f"class_{i:03d}" for i in range(1000))


KNOWN = {
    "cifar10": DatasetInfo(
        "cifar10", (32, 32, 3),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    ),
    "imagenet2012": DatasetInfo(
        "imagenet2012", (128, 128, 3), _imagenet_class_names(),
        train_split="train", eval_split="validation",
        manual_download="ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from "
                        "https://image-net.org/download-images (registration required)",
    ),
    "celeb_a_hq": DatasetInfo(
        "celeb_a_hq/128", (128, 128, 3), None,
        train_split="train[:-3000]", eval_split="train[-3000:]",
        manual_download="the CelebA-HQ tar files (data128x128.tar, made with the progressive_growing_of_gans "
                        "dataset_tool from CelebA and the CelebA-HQ deltas; see the tfds celeb_a_hq page)",
    ),
    "lsun_bedroom": DatasetInfo(
        "lsun/bedroom", (128, 128, 3), None, train_split="train[10000:]", eval_split="train[:10000]",
    ),
    "stl10": DatasetInfo("stl10", (48, 48, 3), None, train_split="unlabelled", eval_split="test"),
}

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def cache_dir():
    """Where extracted archives live; COMPARE_SSGAN_CACHE overrides ~/.cache/compare_ssgan."""
    return os.environ.get("COMPARE_SSGAN_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "compare_ssgan"))


def files_fingerprint(paths, root):
    """A digest of files' names (relative to `root`), sizes and modification times."""
    digest = hashlib.sha1()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{os.path.relpath(path, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_subdir(name):
    """cache_dir()/name, created; a UserError naming the fix if it cannot be."""
    path = os.path.join(cache_dir(), name)
    return disk.ensure_writable(path, lambda why: (
        f"the cache directory {path} is not writable ({why}). Set COMPARE_SSGAN_CACHE to a directory "
        f"you can write to, or fix its permissions."))


def _extract_once(archive):
    """Extracts a .tar.gz into the cache, atomically (a crash never leaves a half copy, and a
    failed extraction leaves no staging directory behind)."""
    stat = os.stat(archive)
    key = hashlib.sha1(f"{os.path.abspath(archive)}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = os.path.join(cache_subdir("image_folders"), f"{os.path.basename(archive)}-{key}")
    if os.path.isdir(target):
        return target
    staging = tempfile.mkdtemp(dir=os.path.dirname(target), prefix=".extracting-")
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(staging, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:  # EOFError: a truncated .gz
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"cannot extract image folder archive {archive}: {type(e).__name__}: {e}. "
                        f"It is truncated or corrupted (or the disk is full): copy or download it "
                        f"again; it must be a .tar.gz in split/class/image layout.") from e
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
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


def central_crop_and_resize(image, height, width):
    """Largest central crop with the aspect ratio height:width, resized (bilinear,
    antialiased) to [height, width]; float32 in the input's value range. An image already
    [height, width] is returned unchanged."""
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    # crop (ch, cw) with ch / cw == height / width, as large as fits
    ch = tf.minimum(h, (w * height) // width)
    cw = tf.minimum(w, (h * width) // height)
    image = tf.image.crop_to_bounding_box(image, (h - ch) // 2, (w - cw) // 2, ch, cw)
    return tf.image.resize(image, [height, width], antialias=True)


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
        """1 for unlabelled datasets (all labels 0), else the number of classes."""
        return 1 if self.info.class_names is None else len(self.info.class_names)

    @property
    def source_description(self):
        return f"image_folder:{self.image_folder}" if self.image_folder else f"tfds:{self.info.tfds_name}"

    # Sources: (element, label) in a fixed order, plus how to turn an element into pixels.

    def _folder_files(self, split):
        """Labelled: split/<class>/<image>. Unlabelled: images in split/ and any subfolders
        one level down (their names are ignored), all labelled 0. Returns (paths, labels)."""
        root = os.path.join(_split_root(self.image_folder, split), split)
        classes = sorted(c for c in os.listdir(root) if os.path.isdir(os.path.join(root, c)))
        labelled = self.info.class_names is not None
        if labelled and tuple(classes) != tuple(sorted(self.info.class_names)):
            raise UserError(f"image folder {root} has classes {classes}, expected the {self.name} classes "
                            f"{sorted(self.info.class_names)}")
        index = {c: i for i, c in enumerate(self.info.class_names)} if labelled else {}
        paths, labels = [], []
        for c in ([] if labelled else [""]) + classes:
            files = sorted(f for f in os.listdir(os.path.join(root, c)) if f.lower().endswith(_IMAGE_EXTENSIONS))
            paths += [os.path.join(root, c, f) for f in files]
            labels += [index.get(c, 0)] * len(files)
        if not paths:
            raise UserError(f"image folder {root} holds no images")
        return paths, labels

    def _folder_source(self, split):
        paths, labels = self._folder_files(split)
        return tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, np.int32))), tf.io.read_file, len(paths)

    def check_decodable(self, split, error):
        """After `error` (a tf InvalidArgumentError) stopped reading `split`: if image-folder
        files cannot be decoded, a UserError naming them. Runs only on failure (it decodes the
        whole split), so a healthy folder costs nothing; bad files stop the run rather than
        being skipped, which would change what a run trains and is scored on."""
        if not self.image_folder:
            return
        channels = self.image_shape[2]
        paths = self._folder_files(split)[0]

        def decode(path):
            image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
            return path, tf.shape(image)[0]

        ds = tf.data.Dataset.from_tensor_slices(paths).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        readable = {p.decode() for p, _ in ds.ignore_errors().as_numpy_iterator()}
        bad = [p for p in paths if p not in readable]
        if bad:
            raise UserError(f"{len(bad)} file(s) in image folder {self.image_folder} ({split} split) cannot "
                            f"be decoded as images: {', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''} "
                            f"({str(error).strip().splitlines()[0][:200]}). Remove or replace them, then "
                            f"run the same command again (training resumes from its last checkpoint).") from error

    def content_fingerprint(self, split):
        """A digest of an image folder split's file list, sizes and modification times (None for
        tfds, whose data is versioned): a cache keyed by it is not reused for replaced images."""
        if not self.image_folder:
            return None
        return files_fingerprint(self._folder_files(split)[0], self.image_folder)

    def _tfds_source(self, split):
        import tensorflow_datasets as tfds

        try:
            builder = tfds.builder(self.info.tfds_name, data_dir=self.data_dir)
            builder.download_and_prepare()
            ds = builder.as_dataset(split=split, shuffle_files=False,
                                    decoders={"image": tfds.decode.SkipDecoding()})
        except Exception as e:  # tfds raises many types for a missing/undownloadable dataset
            manual = ""
            if self.info.manual_download:
                data_dir = self.data_dir or os.path.join("~", "tensorflow_datasets")
                manual = (f"\n{self.info.tfds_name} needs a manual download: put {self.info.manual_download} "
                          f"in {os.path.join(data_dir, 'downloads', 'manual')}/ (tfds' manual_dir; "
                          f"dataset.data_dir sets <data_dir>), then run again.")
            raise UserError(
                f"cannot load tfds dataset {self.info.tfds_name!r} split {split!r}: {type(e).__name__}: "
                f"{str(e)[:1000]}{manual}\n"
                f"Without internet, use local files: --gin_param=\"dataset.image_folder='<dir or .tar.gz>'\""
            ) from e
        if self.info.class_names is None:
            ds = ds.map(lambda ex: (ex["image"], tf.zeros([], tf.int32)))
        else:
            ds = ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)))
        return ds, (lambda encoded: encoded), None

    def _source(self, split):
        return self._folder_source(split) if self.image_folder else self._tfds_source(split)

    def _decoder(self, to_bytes):
        height, width, channels = self.image_shape

        def decode(element, label):
            image = tf.io.decode_image(to_bytes(element), channels=channels, expand_animations=False)
            image.set_shape([None, None, channels])
            image = central_crop_and_resize(image, height, width)
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
        ds = ds.batch(global_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        # Multi-worker: every worker reads the whole (skipped) stream and keeps its share of each
        # global batch, so the skip above counts global examples on every worker.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(options)

    def eval_input(self, batch_size, split=None, num_examples=None):
        """One pass over `split` (default: the evaluation split) in a fixed order."""
        source, to_bytes, _ = self._source(split or self.info.eval_split)
        if num_examples is not None:
            source = source.take(num_examples)
        ds = source.map(self._decoder(to_bytes), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
