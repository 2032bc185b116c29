"""Layers shared by the architectures: spectrally normalised convs/linears and G's normaliser.

Keras ships `keras.layers.SpectralNormalization`, but it overwrites the wrapped kernel with
W / sigma on every training call, so no gradient flows through sigma (Miyato et al. 2018 and
compare_gan differentiate through it) and the optimizer then updates the normalised copy.
These layers keep W as the trained variable and use W / sigma(W) in the forward pass.
"""
import keras
import tensorflow as tf
from keras import ops


def _l2_normalize(x, eps=1e-12):
    return x * tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(x)), eps))


def spectral_normalize(kernel, u_var, update):
    """Returns kernel / sigma(kernel) from one power iteration (Miyato et al. 2018).

    `u_var` ([1, out]) carries the power-iteration vector across steps; it is advanced only
    when `update` is True (the discriminator's own training step), so a G step that reads D
    sees the same sigma as the D step before it.
    """
    w = tf.reshape(kernel, [-1, kernel.shape[-1]])
    u = tf.convert_to_tensor(u_var)
    v = tf.stop_gradient(_l2_normalize(tf.matmul(u, w, transpose_b=True)))
    u_new = tf.stop_gradient(_l2_normalize(tf.matmul(v, w)))
    sigma = tf.reduce_sum(tf.matmul(v, w) * u_new)
    if update:
        u_var.assign(u_new)
    return kernel / sigma


class _SpectralNormMixin:
    """Adds the power-iteration vector and returns the kernel to use in `call`."""

    def _build_sn(self, units):
        if self.spectral_norm:
            self.sn_u = self.add_weight(
                shape=(1, units),
                initializer=keras.initializers.RandomNormal(),
                trainable=False,
                aggregation="mean",
                name="sn_u",
            )

    def _normalized_kernel(self, training):
        if not self.spectral_norm:
            return self.kernel
        return spectral_normalize(self.kernel, self.sn_u, update=bool(training))


class Dense(_SpectralNormMixin, keras.layers.Dense):
    """keras Dense with optional spectral normalisation of its kernel."""

    def __init__(self, units, spectral_norm=False, **kwargs):
        kwargs.setdefault("kernel_initializer", "glorot_uniform")
        super().__init__(units, **kwargs)
        self.spectral_norm = spectral_norm

    def build(self, input_shape):
        super().build(input_shape)
        self._build_sn(self.units)

    def call(self, inputs, training=False):
        outputs = ops.matmul(inputs, self._normalized_kernel(training))
        if self.use_bias:
            outputs = outputs + self.bias
        return outputs


class Conv2D(_SpectralNormMixin, keras.layers.Conv2D):
    """keras Conv2D ('same' padding, NHWC) with optional spectral normalisation."""

    def __init__(self, filters, kernel_size, strides=1, spectral_norm=False, **kwargs):
        kwargs.setdefault("padding", "same")
        super().__init__(filters, kernel_size, strides=strides, **kwargs)
        self.spectral_norm = spectral_norm

    def build(self, input_shape):
        super().build(input_shape)
        self._build_sn(self.filters)

    def call(self, inputs, training=False):
        outputs = self.convolution_op(inputs, self._normalized_kernel(training))
        if self.use_bias:
            outputs = outputs + self.bias
        return outputs


class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """Up-sampling conv of the DCGAN generator ('same' padding); G is not spectrally normed."""

    def __init__(self, filters, kernel_size, strides=2, **kwargs):
        kwargs.setdefault("padding", "same")
        super().__init__(filters, kernel_size, strides=strides, **kwargs)


class GeneratorNorm(keras.layers.Layer):
    """G's normaliser: batch norm or nothing, chosen by the architecture's `g_norm` setting.

    `call(x, z, labels, training)` takes the latent and labels so that conditional and
    self-modulated variants can share the interface.
    """

    KINDS = ("batch_norm", "none")

    def __init__(self, kind="batch_norm", **kwargs):
        super().__init__(**kwargs)
        if kind not in self.KINDS:
            raise ValueError(f"unknown generator norm {kind!r}; valid: {', '.join(self.KINDS)}")
        self.kind = kind
        self.bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5) if kind == "batch_norm" else None

    def call(self, x, z=None, labels=None, training=False):
        del z, labels
        if self.bn is None:
            return x
        return self.bn(x, training=training)
