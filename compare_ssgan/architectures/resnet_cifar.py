"""compare_gan's `resnet_cifar` (Miyato et al. 2018, Table 4 of SNGAN's appendix).

G: z -> linear 4x4x256 -> three up-blocks of 256 -> norm, ReLU, 3x3 conv -> tanh.
D: four blocks of 128 (the first two downsample) -> ReLU -> global sum pooling -> linear 1
   (+ the projection term <embed(y), features> when architecture.projection).
G's norms follow architecture.g_norm (batch norm, conditional BN, self-modulated BN, none).
"""
import keras
import tensorflow as tf

from compare_ssgan import architectures
from compare_ssgan.architectures import ops, register


def _upsample(x):
    return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)


def _downsample(x):
    return tf.nn.avg_pool2d(x, 2, 2, "VALID")


class GeneratorBlock(keras.layers.Layer):
    """norm-ReLU-up-conv3-norm-ReLU-conv3, plus an up-conv1 shortcut."""

    def __init__(self, channels, make_norm, **kwargs):
        super().__init__(**kwargs)
        self.norm1 = make_norm()
        self.conv1 = ops.Conv2D(channels, 3)
        self.norm2 = make_norm()
        self.conv2 = ops.Conv2D(channels, 3)
        self.shortcut = ops.Conv2D(channels, 1)

    def call(self, x, z, labels, training=False):
        h = tf.nn.relu(self.norm1(x, z, labels, training=training))
        h = self.conv1(_upsample(h))
        h = tf.nn.relu(self.norm2(h, z, labels, training=training))
        h = self.conv2(h)
        return h + self.shortcut(_upsample(x))


class DiscriminatorBlock(keras.layers.Layer):
    """(ReLU)-conv3-ReLU-conv3-(pool), plus a conv1 shortcut when the shape changes.

    The first block has no leading ReLU and pools before its shortcut conv (SNGAN's
    "optimized block").
    """

    def __init__(self, channels, downsample, first, spectral_norm, learnable_shortcut=True, **kwargs):
        super().__init__(**kwargs)
        self.downsample, self.first, self.channels = downsample, first, channels
        self.conv1 = ops.Conv2D(channels, 3, spectral_norm=spectral_norm)
        self.conv2 = ops.Conv2D(channels, 3, spectral_norm=spectral_norm)
        self.shortcut_conv = (ops.Conv2D(channels, 1, spectral_norm=spectral_norm)
                              if learnable_shortcut else None)

    def call(self, x, training=False):
        if self.shortcut_conv is None:  # identity shortcut: same shape in and out
            h = self.conv1(tf.nn.relu(x), training=training)
            h = self.conv2(tf.nn.relu(h), training=training)
            return (_downsample(h) + _downsample(x)) if self.downsample else h + x
        h = x if self.first else tf.nn.relu(x)
        h = self.conv1(h, training=training)
        h = self.conv2(tf.nn.relu(h), training=training)
        if self.downsample:
            h = _downsample(h)
        if self.first:
            shortcut = self.shortcut_conv(_downsample(x), training=training)
        else:
            shortcut = self.shortcut_conv(x, training=training)
            if self.downsample:
                shortcut = _downsample(shortcut)
        return h + shortcut


class Generator(keras.Model):
    """z -> linear to (side / 2^blocks)^2 x channels[0] -> an up-block per further entry of
    `channels` -> norm, ReLU, 3x3 conv -> tanh (resnet128 reuses it with five blocks)."""

    def __init__(self, image_shape, make_norm, channels, **kwargs):
        super().__init__(**kwargs)
        height, width, colors = image_shape
        scale = 2 ** (len(channels) - 1)
        self.start = (height // scale, width // scale, channels[0])
        self.linear = ops.Dense(self.start[0] * self.start[1] * channels[0])
        self.blocks = [GeneratorBlock(c, make_norm, name=f"block{i}") for i, c in enumerate(channels[1:])]
        self.final_norm = make_norm()
        self.to_rgb = ops.Conv2D(colors, 3)

    def call(self, z, labels=None, training=False):
        h = tf.reshape(self.linear(z), (-1,) + self.start)
        for block in self.blocks:
            h = block(h, z, labels, training=training)
        h = tf.nn.relu(self.final_norm(h, z, labels, training=training))
        return tf.tanh(self.to_rgb(h))


class Discriminator(keras.Model):
    def __init__(self, spectral_norm, channels=128, projection=None, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [
            DiscriminatorBlock(channels, downsample=i < 2, first=i == 0,
                               spectral_norm=spectral_norm, name=f"block{i}")
            for i in range(4)
        ]
        self.linear = ops.Dense(1, spectral_norm=spectral_norm)
        self.projection = projection
        self.feature_dim = channels

    def block_outputs(self, x, training=False):
        outputs, h = [], x
        for block in self.blocks:
            h = block(h, training=training)
            outputs.append(h)
        return outputs

    def call(self, x, labels=None, training=False):
        h = self.block_outputs(x, training=training)[-1]
        return ops.sum_pooled_logits(h, self.linear, self.projection, labels, training)


@register("resnet_cifar")
def build(config, image_shape, num_classes):
    make_norm = lambda: architectures.generator_norm(config, num_classes)  # noqa: E731
    projection = architectures.projection(config, num_classes, config.channels(128))
    return (Generator(image_shape, make_norm, [config.channels(256)] * 4, name="generator"),
            Discriminator(config.d_spectral_norm, config.channels(128), projection, name="discriminator"))
