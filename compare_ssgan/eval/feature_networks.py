"""Feature networks: images -> (features for FID/KID, logits for IS), chosen by gin name.

Every network takes float32 NHWC images in [-1, 1] (the generator's range) at the dataset's
resolution and applies its own preprocessing. Its `info()` says which network produced a
number and where its weights came from; the scores file records it beside every score,
because an FID from one network is not comparable to an FID from another.

Networks (set `evaluation.feature_network`):
  inception           TF-GAN's Inception (pool_3 features, logits for IS) -- the papers' FID.
                      From a TF Hub handle or a local SavedModel directory (`inception.path`).
  cifar10_classifier  A small CIFAR-10 CNN trained by benchmarks/train_cifar10_classifier.py and
                      shipped in compare_ssgan/eval/weights/. For machines that cannot download
                      Inception. Its FID is *not* comparable to papers' FID.

Registry as in big_vision: a builder per name, built lazily, unknown names listed in the error.
"""
import dataclasses
import hashlib
import os

import gin
import numpy as np
import tensorflow as tf

from compare_ssgan import graphs
from compare_ssgan.errors import UserError

_BUILDERS = {}


def register(name):
    def wrap(fn):
        if name in _BUILDERS:
            raise ValueError(f"feature network {name!r} registered twice")
        _BUILDERS[name] = fn
        return fn

    return wrap


def names():
    return sorted(_BUILDERS)


def build(name):
    """The feature network registered as `name` (its gin configurable supplies the options)."""
    if name not in _BUILDERS:
        raise UserError(f"unknown feature network {name!r}; valid names: {', '.join(names())} "
                        f"(set evaluation.feature_network in gin)")
    return _BUILDERS[name]()


@dataclasses.dataclass(frozen=True)
class NetworkInfo:
    name: str          # registry name, e.g. "inception"
    label: str         # what every metric is called in logs and results, e.g. "FID (Inception)"
    source: str        # where the weights came from (path/handle and a content hash)
    note: str          # comparability warning ("" for Inception)

    def as_dict(self):
        return {"name": self.name, "label": self.label, "source": self.source, "note": self.note}


class FeatureNetwork:
    """Base: subclasses set `info`, `feature_dim` and implement `_run(images) -> (features, logits)`."""

    info: NetworkInfo
    batch_size = 100

    def __call__(self, images):
        """[N, H, W, 3] float in [-1, 1] -> (features [N, d], logits [N, k]) float32 numpy."""
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [N, H, W, 3], got shape {images.shape}")
        features, logits = self.embed(tf.constant(images))
        return features.numpy(), logits.numpy()

    def embed(self, images):
        """Traceable (inside tf.function or XLA): [N, H, W, 3] float tensor with a static N ->
        (features [N, d], logits [N, k]) float32 tensors, run in the network's own batch size."""
        features, logits = [], []
        for start in range(0, images.shape[0], self.batch_size):
            f, l = self._run(images[start:start + self.batch_size])
            features.append(tf.reshape(tf.cast(f, tf.float32), [tf.shape(f)[0], -1]))
            logits.append(tf.reshape(tf.cast(l, tf.float32), [tf.shape(l)[0], -1]))
        return tf.concat(features, 0), tf.concat(logits, 0)

    def _run(self, images):
        raise NotImplementedError


def _hash_file(digest, path):
    with tf.io.gfile.GFile(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)


def _file_sha256(path, length=12):
    digest = hashlib.sha256()
    _hash_file(digest, path)
    return digest.hexdigest()[:length]


def _saved_model_sha256(path, length=12):
    """The relative names and bytes of the files a SavedModel is loaded from (saved_model.pb,
    variables/, assets/): the same model at two paths, or copied to another machine, is one
    feature network in the results (results.network_identity); a stray file beside it is not
    part of the model."""
    digest = hashlib.sha256()
    for root, _, files in sorted(tf.io.gfile.walk(path)):
        for name in sorted(files):
            relative = os.path.relpath(os.path.join(root, name), path)
            if relative == "saved_model.pb" or relative.split(os.sep)[0] in ("variables", "assets"):
                digest.update(relative.encode() + b"\0")
                _hash_file(digest, os.path.join(root, name))
    return digest.hexdigest()[:length]


# -- TF-GAN Inception ---------------------------------------------------------------------------

INCEPTION_TFHUB = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"  # TF-GAN's handle
INCEPTION_FINAL_POOL = "pool_3"   # [N, 2048] (or [N, 1, 1, 2048]) features for FID/KID
INCEPTION_OUTPUT = "logits"       # [N, 1008] logits for IS
INCEPTION_IMAGE_SIZE = 299


def inception_preprocess(images, size=INCEPTION_IMAGE_SIZE):
    """TF-GAN's `preprocess_image` for images in [-1, 1].

    TF-GAN takes pixels in [0, 255], resizes bilinearly to 299x299 with TF1 semantics
    (`tf.compat.v1.image.resize`: no half-pixel centres) and maps v -> (v - 128) / 128. We first
    map [-1, 1] to [0, 255] as compare_gan did (`images * 255` for [0, 1]), so the output equals
    TF-GAN's exactly: -1 -> -1.0 and +1 -> 127/128 = 0.9921875 (within [-1, 1]).
    """
    images = (tf.cast(images, tf.float32) + 1.0) * 127.5
    resized = tf.compat.v1.image.resize(images, [size, size], method=tf.image.ResizeMethod.BILINEAR)
    return (resized - 128.0) / 128.0


def _load_inception(path):
    """A callable SavedModel from a local directory or (with tensorflow_hub) a TF Hub handle."""
    local = os.path.expanduser(path)
    if tf.io.gfile.isdir(local):  # a local (or gs://) SavedModel directory
        if not tf.io.gfile.exists(os.path.join(local, "saved_model.pb")):
            raise UserError(f"inception.path={path} is a directory without saved_model.pb; point it "
                            f"at the SavedModel directory of TF-GAN's Inception ({INCEPTION_TFHUB})")
        try:
            where = local if "://" in local else os.path.abspath(local)
            return tf.saved_model.load(local), f"saved_model:{where} sha256:{_saved_model_sha256(local)}"
        except Exception as e:  # noqa: BLE001 - many loader error types; all mean "bad model dir"
            raise UserError(f"cannot load the Inception SavedModel at {path}: {type(e).__name__}: {e}") from e
    if "://" not in path:
        raise UserError(f"inception.path={path} is neither a local SavedModel directory nor a TF Hub "
                        f"handle (e.g. {INCEPTION_TFHUB})")
    try:
        import tensorflow_hub as hub
    except ImportError as e:
        raise UserError(
            f"inception.path={path} is a TF Hub handle, but tensorflow_hub is not installed. "
            f"Install it (pip install tensorflow-hub), or download the model on a machine with "
            f"internet and set inception.path to the local SavedModel directory. Offline, use "
            f"evaluation.feature_network='cifar10_classifier' (not comparable to papers' FID).") from e
    try:
        return hub.load(path), f"tfhub:{path}"
    except Exception as e:  # noqa: BLE001 - network / format errors of any kind
        raise UserError(f"cannot load Inception from TF Hub handle {path}: {type(e).__name__}: "
                        f"{str(e)[:300]}. Without internet, set inception.path to a local SavedModel "
                        f"directory or use evaluation.feature_network='cifar10_classifier'.") from e


def _signature_caller(obj):
    """How to call the loaded model: directly (TF2 SavedModel, as TF-GAN does) or its signature."""
    if callable(obj):
        return obj
    signatures = getattr(obj, "signatures", {})
    if "default" in signatures or "serving_default" in signatures:
        fn = signatures["default"] if "default" in signatures else signatures["serving_default"]
        (input_name,) = fn.structured_input_signature[1].keys()
        return lambda images: fn(**{input_name: images})
    raise UserError("the Inception SavedModel is neither callable nor has a 'default' signature")


class Inception(FeatureNetwork):
    def __init__(self, path, batch_size):
        self.batch_size = int(batch_size)
        model, where = _load_inception(path)
        self._model = model  # keeps the variables alive
        self._call = _signature_caller(model)
        self.info = NetworkInfo("inception", "FID (Inception)", where, "")

    @graphs.function(reduce_retracing=True)
    def _run(self, images):
        outputs = self._call(inception_preprocess(images))
        if not isinstance(outputs, dict) or INCEPTION_FINAL_POOL not in outputs or INCEPTION_OUTPUT not in outputs:
            keys = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
            raise UserError(f"the Inception model must return a dict with '{INCEPTION_FINAL_POOL}' and "
                            f"'{INCEPTION_OUTPUT}' (TF-GAN's outputs); it returned {keys}")
        flat = lambda t: tf.reshape(t, [tf.shape(t)[0], -1])  # noqa: E731 - TF-GAN flattens too
        return flat(outputs[INCEPTION_FINAL_POOL]), flat(outputs[INCEPTION_OUTPUT])


@gin.configurable("inception")
def inception_options(path=INCEPTION_TFHUB, batch_size=50):
    """`path`: a local SavedModel directory (offline) or a TF Hub handle (needs tensorflow_hub)."""
    return str(path), int(batch_size)


@register("inception")
def _build_inception():
    return Inception(*inception_options())


# -- CIFAR-10 classifier -----------------------------------------------------------------------

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
CIFAR10_WEIGHTS = os.path.join(WEIGHTS_DIR, "cifar10_classifier.weights.h5")
CIFAR10_FEATURE_DIM = 256
CIFAR10_NOTE = "not Inception: not comparable to papers' FID"


def build_cifar10_classifier():
    """The compact CNN of benchmarks/train_cifar10_classifier.py (this is its one definition).

    Input [N, 32, 32, 3] in [-1, 1]. conv-BN-ReLU blocks 32 | pool | 64 | pool | 128, 128 | pool,
    then dense 256 (BN, ReLU) = the features, then dense 10 = the logits. Returns a Keras model
    with outputs {"features": [N, 256], "logits": [N, 10]}.
    """
    import keras
    from keras import layers

    inputs = keras.Input((32, 32, 3), name="images")
    x = inputs
    for i, (channels, convs) in enumerate(((32, 1), (64, 1), (128, 2))):
        for j in range(convs):
            x = layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"conv{i}_{j}")(x)
            x = layers.BatchNormalization(name=f"bn{i}_{j}")(x)
            x = layers.ReLU(name=f"relu{i}_{j}")(x)
        x = layers.MaxPooling2D(name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(CIFAR10_FEATURE_DIM, use_bias=False, name="fc")(x)
    x = layers.BatchNormalization(name="fc_bn")(x)
    features = layers.ReLU(name="features")(x)
    logits = layers.Dense(10, name="logits")(features)
    return keras.Model(inputs, {"features": features, "logits": logits}, name="cifar10_classifier")


class Cifar10Classifier(FeatureNetwork):
    def __init__(self, weights, batch_size):
        self.batch_size = int(batch_size)
        path = os.path.expanduser(weights or CIFAR10_WEIGHTS)
        if not os.path.isfile(path):
            raise UserError(f"CIFAR-10 classifier weights not found at {path}. They ship with the "
                            f"package (compare_ssgan/eval/weights/); retrain them with "
                            f"benchmarks/train_cifar10_classifier.py or set cifar10_classifier.weights")
        self.model = build_cifar10_classifier()
        try:
            self.model.load_weights(path)
        except Exception as e:  # noqa: BLE001 - h5py/keras raise many types for a bad file
            raise UserError(f"cannot load CIFAR-10 classifier weights {path}: {type(e).__name__}: {e}") from e
        source = ("shipped:compare_ssgan/eval/weights/" + os.path.basename(path)
                  if os.path.abspath(path) == CIFAR10_WEIGHTS else os.path.abspath(path))
        self.info = NetworkInfo("cifar10_classifier", "FID (CIFAR-10 classifier)",
                                f"{source} sha256:{_file_sha256(path)}", CIFAR10_NOTE)

    @graphs.function(reduce_retracing=True)
    def _run(self, images):
        if images.shape[1:3] != (32, 32):
            images = tf.image.resize(images, [32, 32], antialias=True)
        out = self.model(images, training=False)
        return out["features"], out["logits"]


@gin.configurable("cifar10_classifier")
def cifar10_classifier_options(weights=None, batch_size=500):
    """`weights`: None = the shipped file; or a path to weights from the training script."""
    return weights, int(batch_size)


@register("cifar10_classifier")
def _build_cifar10_classifier():
    return Cifar10Classifier(*cifar10_classifier_options())
