"""Layers shared by the architectures: spectrally normalised convs/linears and G's normaliser.

Keras ships `keras.layers.SpectralNormalization`, but it overwrites the wrapped kernel with
W / sigma on every training call, so no gradient flows through sigma (Miyato et al. 2018 and
compare_gan differentiate through it) and the optimizer then updates the normalised copy.
These layers keep W as the trained variable and use W / sigma(W) in the forward pass.

Also here: G's normalisers (plain, label-conditional and self-modulated batch norm), the
projection term of a conditional discriminator and SAGAN's non-local block.
"""
import keras
import tensorflow as tf
from keras import ops


def fresh(initializer):
    """A new instance of an initializer object. A Keras 3 initializer instance fixes its seed
    when it is built, so one instance shared by several layers gives them identical weights;
    every layer gets its own copy (seeded from the global seed keras.utils.set_random_seed sets)."""
    if isinstance(initializer, keras.initializers.Initializer):
        config = initializer.get_config()
        if "seed" in config:  # random initializers; constant ones (Ones, Zeros) take no seed
            config["seed"] = None
        return type(initializer).from_config(config)
    return initializer


def _l2_normalize(x, eps=1e-12):
    return x * tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(x)), eps))


def spectral_normalize(kernel, u_var, update):
    """Returns kernel / sigma(kernel) from one power iteration (Miyato et al. 2018).

    `u_var` ([1, out]) carries the power-iteration vector across steps; it is advanced only
    when `update` is True (the discriminator's own training step), so a G step that reads D
    sees the same sigma as the D step before it.
    """
    # float32 whatever the layer's compute dtype (mixed precision autocasts kernel and u).
    w = tf.reshape(tf.cast(kernel, tf.float32), [-1, kernel.shape[-1]])
    u = tf.cast(tf.convert_to_tensor(u_var), tf.float32)
    v = tf.stop_gradient(_l2_normalize(tf.matmul(u, w, transpose_b=True)))
    u_new = tf.stop_gradient(_l2_normalize(tf.matmul(v, w)))
    sigma = tf.reduce_sum(tf.matmul(v, w) * u_new)
    if update:
        u_var.assign(u_new)
    return kernel / tf.cast(sigma, kernel.dtype)


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
        kwargs["kernel_initializer"] = fresh(kwargs.get("kernel_initializer", "glorot_uniform"))
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
        kwargs["kernel_initializer"] = fresh(kwargs.get("kernel_initializer", "glorot_uniform"))
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
        kwargs["kernel_initializer"] = fresh(kwargs.get("kernel_initializer", "glorot_uniform"))
        super().__init__(filters, kernel_size, strides=strides, **kwargs)


class Embedding(_SpectralNormMixin, keras.layers.Layer):
    """A [num_classes, dim] table read by integer labels; spectrally normalised like a linear
    layer from one-hot labels (compare_gan's projection embedding) when `spectral_norm`."""

    def __init__(self, num_classes, dim, spectral_norm=False, initializer="glorot_normal", **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.dim, self.spectral_norm = int(num_classes), int(dim), spectral_norm
        self.initializer = fresh(keras.initializers.get(initializer))

    def build(self, input_shape=None):
        self.kernel = self.add_weight(shape=(self.num_classes, self.dim), initializer=self.initializer,
                                      name="embeddings")
        self._build_sn(self.dim)

    def call(self, labels, training=False):
        return tf.gather(self._normalized_kernel(training), tf.cast(labels, tf.int32))


def _batch_norm_without_affine():
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False, scale=False)


class GeneratorNorm(keras.layers.Layer):
    """G's normaliser, chosen by the architecture's `g_norm` setting.

    `call(x, z, labels, training)`; every kind standardises x with batch statistics in
    training (moving averages otherwise) and then applies its own affine transform:

    - 'batch_norm': learned per-channel gamma, beta (keras BatchNormalization).
    - 'none': identity.
    - 'conditional_batch_norm' (de Vries et al. 2017; Miyato & Koyama 2018): per-class
      gamma = E_gamma[y], beta = E_beta[y]. E_gamma starts at 1 and E_beta at 0, so at
      initialisation it is plain BN without affine for every class (compare_gan's version
      started gamma near 0). With `condition='vector'` (BigGAN) the condition is a vector c
      passed as `z` instead: gamma = 1 + linear(c), beta = linear(c), linears without bias.
    - 'self_modulated_batch_norm' (Chen et al. 2019, "On self modulation for GANs"):
      h = ReLU(linear(z, 32)), gamma = linear(h) with bias 1, beta = linear(h) with bias 0.
      The gamma/beta kernels start at zero, so sBN starts as BN without affine; when the
      linears are spectrally normalised (G uses SN) they start N(0, 0.02) instead, because a
      zero matrix has no spectral normalisation.
    """

    KINDS = ("batch_norm", "none", "conditional_batch_norm", "self_modulated_batch_norm")
    HIDDEN = 32

    def __init__(self, kind="batch_norm", num_classes=None, spectral_norm=False, condition="labels",
                 modulation_initializer=None, **kwargs):
        super().__init__(**kwargs)
        # None: the defaults described above; an initializer: every modulation kernel (cBN's
        # class tables, sBN's linears) starts from it, as compare_gan's `linear` starts from
        # N(0, 0.02) (arch_ops.py:371-445, 538-556; so its cBN's gamma starts near 0).
        self.modulation_initializer = modulation_initializer
        if kind not in self.KINDS:
            raise ValueError(f"unknown generator norm {kind!r}; valid: {', '.join(self.KINDS)}")
        if condition not in ("labels", "vector"):
            raise ValueError(f"unknown condition {condition!r}; valid: labels, vector")
        self.kind, self.num_classes, self.spectral_norm = kind, num_classes, spectral_norm
        self.condition = condition
        if kind == "conditional_batch_norm" and condition == "labels" and not num_classes:
            raise ValueError("conditional_batch_norm needs num_classes >= 1")
        self.bn = None
        if kind == "batch_norm":
            self.bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
        elif kind != "none":
            self.bn = _batch_norm_without_affine()

    def build(self, input_shape):
        channels = int(input_shape[-1])
        sn = self.spectral_norm
        init = self.modulation_initializer
        if self.kind == "conditional_batch_norm" and self.condition == "labels":
            self.gamma = Embedding(self.num_classes, channels, initializer=init or "ones", name="gamma")
            self.beta = Embedding(self.num_classes, channels, initializer=init or "zeros", name="beta")
        elif self.kind == "conditional_batch_norm":
            self.gamma = Dense(channels, spectral_norm=sn, use_bias=False, name="gamma")
            self.beta = Dense(channels, spectral_norm=sn, use_bias=False, name="beta")
        elif self.kind == "self_modulated_batch_norm":
            if init is None:
                init = keras.initializers.RandomNormal(stddev=0.02) if sn else "zeros"
                hidden_init = "glorot_uniform"
            else:
                hidden_init = init
            self.hidden = Dense(self.HIDDEN, spectral_norm=sn, kernel_initializer=hidden_init, name="hidden")
            self.gamma = Dense(channels, spectral_norm=sn, kernel_initializer=init,
                               bias_initializer="ones", name="gamma")
            self.beta = Dense(channels, spectral_norm=sn, kernel_initializer=init, name="beta")

    def _modulation(self, z, labels, training):
        """(gamma, beta) of shape [N, C], or None for kinds with a fixed affine."""
        if self.kind == "conditional_batch_norm" and self.condition == "labels":
            if labels is None:
                raise ValueError("conditional_batch_norm needs labels (set model.conditional = True)")
            return self.gamma(labels, training=training), self.beta(labels, training=training)
        if self.kind == "conditional_batch_norm":
            return 1.0 + self.gamma(z, training=training), self.beta(z, training=training)
        if self.kind == "self_modulated_batch_norm":
            if z is None:
                raise ValueError("self_modulated_batch_norm needs z")
            h = tf.nn.relu(self.hidden(z, training=training))
            return self.gamma(h, training=training), self.beta(h, training=training)
        return None

    def call(self, x, z=None, labels=None, training=False):
        if self.bn is None:
            return x
        out = self.bn(x, training=training)
        modulation = self._modulation(z, labels, training)
        if modulation is None:
            return out
        gamma, beta = modulation
        if len(x.shape) == 4:  # [N, C] -> [N, 1, 1, C]; rank-2 inputs (SNDCGAN's linear) as is
            gamma, beta = gamma[:, None, None, :], beta[:, None, None, :]
        return out * gamma + beta


class Projection(keras.layers.Layer):
    """The projection discriminator's class term (Miyato & Koyama 2018):
    sum(embed(y) * features, axis=-1), the embedding spectrally normalised when D is.
    Added to D's unconditional logit; with labels None it is 0 (features do not depend on y)."""

    def __init__(self, num_classes, dim, spectral_norm, initializer="glorot_normal", **kwargs):
        super().__init__(**kwargs)
        if not num_classes or num_classes < 2:
            raise ValueError(f"projection needs a dataset with >= 2 classes (got {num_classes})")
        self.embedding = Embedding(num_classes, dim, spectral_norm=spectral_norm, initializer=initializer,
                                   name="embedding")

    def call(self, features, labels, training=False):
        if labels is None:
            return tf.zeros(tf.shape(features)[:1], features.dtype)
        return tf.reduce_sum(self.embedding(labels, training=training) * features, axis=-1)


class NonLocalBlock(keras.layers.Layer):
    """SAGAN's self-attention (Zhang et al. 2019) as in BigGAN and compare_gan's
    `non_local_block`: theta, phi (C/8) and g (C/2) 1x1 convs without bias, phi and g
    max-pooled 2x2, attention softmax(theta phi^T), 1x1 conv back to C, x + sigma * o with a
    learned scalar sigma starting at 0."""

    def __init__(self, channels, spectral_norm, **kwargs):
        super().__init__(**kwargs)
        c8, c2 = max(1, channels // 8), max(1, channels // 2)
        kw = dict(spectral_norm=spectral_norm, use_bias=False)
        self.theta = Conv2D(c8, 1, **kw, name="theta")
        self.phi = Conv2D(c8, 1, **kw, name="phi")
        self.g = Conv2D(c2, 1, **kw, name="g")
        self.out = Conv2D(channels, 1, **kw, name="attn_out")

    def build(self, input_shape):
        self.sigma = self.add_weight(shape=(), initializer="zeros", name="sigma")

    def call(self, x, training=False):
        n, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
        theta = tf.reshape(self.theta(x, training=training), [n, h * w, -1])
        phi = tf.nn.max_pool2d(self.phi(x, training=training), 2, 2, "VALID")
        phi = tf.reshape(phi, [n, (h // 2) * (w // 2), -1])
        g = tf.nn.max_pool2d(self.g(x, training=training), 2, 2, "VALID")
        g = tf.reshape(g, [n, (h // 2) * (w // 2), -1])
        attention = tf.nn.softmax(tf.matmul(theta, phi, transpose_b=True), axis=-1)
        o = tf.reshape(tf.matmul(attention, g), [n, h, w, -1])
        return x + self.sigma * self.out(o, training=training)
