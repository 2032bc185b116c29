"""Building blocks shared by the architectures: resampling ops and residual blocks.

Two reference families differ in small ways that change parameter counts and functions:
- google/compare_gan (`architectures/resnet_ops.py`): every block has a 3x3 conv shortcut
  (`_get_conv` with its default kernel_size, resnet_ops.py:112-134,156-158), G upsamples with
  `unpool` (zero insertion, resnet_ops.py:35-56) before the conv, D downsamples by 2x2 average
  pooling after the conv (resnet_ops.py:131-133), D blocks apply ReLU to their input,
  including the first block (resnet_ops.py:160-165; D has no batch norm).
- Miyato et al.'s SNGAN (pfnet-research/sngan_projection `gen_models/resblocks.py`,
  `dis_models/resblocks.py`): 1x1 conv shortcuts only where the shape changes, identity
  otherwise (dis_models/resblocks.py:20), nearest-neighbour upsampling
  (`F.unpooling_2d`, gen_models/resblocks.py:8-10), an "optimized" first D block without the
  leading ReLU that pools before its shortcut conv (dis_models/resblocks.py:52-75).
Each block takes its options explicitly, so each architecture file states its reference's.
"""
import keras
import tensorflow as tf

from compare_ssgan.architectures import ops

# compare_gan initialises every kernel N(0, 0.02) and every bias 0 (arch_ops.py:47-63,538-573).
COMPARE_GAN_INIT = keras.initializers.RandomNormal(stddev=0.02)
# SNGAN: GlorotUniform(sqrt(2)) for residual-path convs, GlorotUniform() for shortcuts and
# linears (dis_models/resblocks.py:16-17). Chainer scales Glorot's limit by `scale`, which is
# Keras' VarianceScaling(scale**2, 'fan_avg', 'uniform').
SNGAN_RESIDUAL_INIT = keras.initializers.VarianceScaling(2.0, "fan_avg", "uniform")
SNGAN_INIT = keras.initializers.GlorotUniform()


def upsample_nearest(x):
    """2x nearest-neighbour upsampling (Chainer's `unpooling_2d` with ksize 2)."""
    return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)


def unpool(x):
    """compare_gan's `unpool` (resnet_ops.py:35-56): 2x upsampling by zero insertion; x[i, j]
    lands at (2i, 2j) and the other three positions of its 2x2 cell are 0."""
    n, h, w, c = tf.shape(x)[0], x.shape[1], x.shape[2], x.shape[3]
    x = tf.reshape(tf.stack([x, tf.zeros_like(x)], axis=3), [n, h, 2 * w, c])
    return tf.reshape(tf.stack([x, tf.zeros_like(x)], axis=2), [n, 2 * h, 2 * w, c])


def downsample_avg(x):
    """2x2 average pooling, stride 2 (both references; SAME = VALID for even sides)."""
    return tf.nn.avg_pool2d(x, 2, 2, "VALID")


UPSAMPLERS = {"nearest": upsample_nearest, "unpool": unpool}


class GeneratorBlock(keras.layers.Layer):
    """norm-ReLU-up-conv3-norm-ReLU-conv3, plus an up + conv shortcut (kernel
    `shortcut_kernel`: 1 in SNGAN and BigGAN, 3 in compare_gan). Every G block upsamples, so
    the shortcut is always a conv. `make_norm()` returns a `GeneratorNorm`-like layer called
    as norm(x, condition, labels, training)."""

    def __init__(self, channels, make_norm, upsample="nearest", shortcut_kernel=1, spectral_norm=False,
                 kernel_initializer="glorot_uniform", shortcut_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.upsample = UPSAMPLERS[upsample]
        conv = dict(spectral_norm=spectral_norm)
        self.norm1, self.norm2 = make_norm(), make_norm()
        self.conv1 = ops.Conv2D(channels, 3, kernel_initializer=kernel_initializer, **conv)
        self.conv2 = ops.Conv2D(channels, 3, kernel_initializer=kernel_initializer, **conv)
        self.shortcut = ops.Conv2D(channels, shortcut_kernel, kernel_initializer=shortcut_initializer, **conv)

    def call(self, x, condition, labels, training=False):
        h = tf.nn.relu(self.norm1(x, condition, labels, training=training))
        h = self.conv1(self.upsample(h), training=training)
        h = tf.nn.relu(self.norm2(h, condition, labels, training=training))
        h = self.conv2(h, training=training)
        return h + self.shortcut(self.upsample(x), training=training)


class DiscriminatorBlock(keras.layers.Layer):
    """ReLU-conv3-ReLU-conv3-(avg pool) plus a shortcut.

    `shortcut`: 'identity' (needs equal shapes and no downsampling: SNGAN's blocks whose shape
    does not change), or the kernel size of a conv shortcut (SNGAN 1, compare_gan 3), pooled
    after the conv. `optimized`: SNGAN's first block: no leading ReLU, and the shortcut pools
    *before* its conv.
    """

    def __init__(self, channels, downsample, spectral_norm, shortcut=1, optimized=False,
                 kernel_initializer="glorot_uniform", shortcut_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.downsample, self.optimized, self.channels = downsample, optimized, channels
        conv = dict(spectral_norm=spectral_norm)
        self.conv1 = ops.Conv2D(channels, 3, kernel_initializer=kernel_initializer, **conv)
        self.conv2 = ops.Conv2D(channels, 3, kernel_initializer=kernel_initializer, **conv)
        if shortcut == "identity":
            if downsample:
                raise ValueError("an identity shortcut cannot downsample")
            self.shortcut_conv = None
        else:
            self.shortcut_conv = ops.Conv2D(channels, int(shortcut), kernel_initializer=shortcut_initializer, **conv)

    def build(self, input_shape):
        if self.shortcut_conv is None and int(input_shape[-1]) != self.channels:
            raise ValueError(f"identity shortcut needs {self.channels} input channels, got {input_shape[-1]}")

    def call(self, x, training=False):
        h = x if self.optimized else tf.nn.relu(x)
        h = self.conv1(h, training=training)
        h = self.conv2(tf.nn.relu(h), training=training)
        if self.downsample:
            h = downsample_avg(h)
        if self.shortcut_conv is None:
            return h + x
        if self.optimized:
            return h + self.shortcut_conv(downsample_avg(x), training=training)
        shortcut = self.shortcut_conv(x, training=training)
        return h + (downsample_avg(shortcut) if self.downsample else shortcut)


class ConvActivation(keras.layers.Layer):
    """A conv followed by its activation: one "layer" of SNDCGAN's D (leaky ReLU 0.1)."""

    def __init__(self, filters, kernel_size, strides, spectral_norm, kernel_initializer, slope=0.1, **kwargs):
        super().__init__(**kwargs)
        self.slope = slope
        self.conv = ops.Conv2D(filters, kernel_size, strides=strides, spectral_norm=spectral_norm,
                               kernel_initializer=kernel_initializer)

    def call(self, x, training=False):
        return tf.nn.leaky_relu(self.conv(x, training=training), self.slope)


class WithAttention(keras.layers.Layer):
    """A block followed by a non-local block: one entry of `blocks`, so block indices keep
    their papers' numbering (Block0..Block5) for probes."""

    def __init__(self, block, attention, **kwargs):
        super().__init__(**kwargs)
        self.block, self.attention = block, attention

    def call(self, x, training=False):
        return self.attention(self.block(x, training=training), training=training)


class ResNetGenerator(keras.Model):
    """z -> linear to 4x4 x channels[0] -> an up-block per further entry of `channels` ->
    norm, ReLU, 3x3 conv -> output. `output='tanh'` (SNGAN) or 'sigmoid' (compare_gan's
    sigmoid to [0, 1], returned in this project's [-1, 1] range as 2 sigmoid(h) - 1 =
    tanh(h / 2), the same function up to that affine map). `end_spectral_norm`: spectral
    norm on the linear and the last conv too (compare_gan's resnet_cifar passes G's setting to
    them, its resnet5 does not)."""

    def __init__(self, image_shape, make_norm, channels, upsample, shortcut_kernel, kernel_initializer,
                 shortcut_initializer, end_initializer, output="tanh", spectral_norm=False,
                 end_spectral_norm=None, **kwargs):
        super().__init__(**kwargs)
        height, width, colors = image_shape
        scale = 2 ** (len(channels) - 1)
        if height % scale or width % scale:
            raise ValueError(f"image sides {height}x{width} must be multiples of {scale}")
        if output not in ("tanh", "sigmoid"):
            raise ValueError(f"unknown output {output!r}")
        end_sn = spectral_norm if end_spectral_norm is None else end_spectral_norm
        self.output_kind = output
        self.start = (height // scale, width // scale, channels[0])
        self.linear = ops.Dense(self.start[0] * self.start[1] * channels[0], spectral_norm=end_sn,
                                kernel_initializer=end_initializer)
        self.blocks = [GeneratorBlock(c, make_norm, upsample, shortcut_kernel, spectral_norm,
                                      kernel_initializer, shortcut_initializer, name=f"block{i}")
                       for i, c in enumerate(channels[1:])]
        self.final_norm = make_norm()
        self.to_rgb = ops.Conv2D(colors, 3, spectral_norm=end_sn, kernel_initializer=end_initializer)

    def call(self, z, labels=None, training=False):
        h = tf.reshape(self.linear(z, training=training), (-1,) + self.start)
        for block in self.blocks:
            h = block(h, z, labels, training=training)
        h = self.to_rgb(tf.nn.relu(self.final_norm(h, z, labels, training=training)), training=training)
        return tf.tanh(0.5 * h) if self.output_kind == "sigmoid" else tf.tanh(h)
