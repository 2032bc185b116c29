"""compare_gan's `sndcgan` (Miyato et al. 2018, the SN-DCGAN of Table 3 of SNGAN's appendix).

D: convs 64(3x3,s1) 128(4x4,s2) 128(3x3) 256(4x4,s2) 256(3x3) 512(4x4,s2) 512(3x3), leaky
ReLU 0.1, flatten, linear 1 (+ the projection term when architecture.projection).
G: linear (s/8)^2 x 512, deconvs 256, 128, 64, 3x3 conv, tanh; norms per architecture.g_norm.
"""
import keras
import tensorflow as tf

from compare_ssgan import architectures
from compare_ssgan.architectures import ops, register

_D_LAYERS = ((64, 3, 1), (128, 4, 2), (128, 3, 1), (256, 4, 2), (256, 3, 1), (512, 4, 2), (512, 3, 1))


class Generator(keras.Model):
    def __init__(self, image_shape, config, num_classes, **kwargs):
        super().__init__(**kwargs)
        height, width, colors = image_shape
        self.start = (height // 8, width // 8, config.channels(512))
        self.linear = ops.Dense(self.start[0] * self.start[1] * self.start[2])
        self.norms = [architectures.generator_norm(config, num_classes) for _ in range(4)]
        self.deconvs = [ops.Conv2DTranspose(config.channels(c), 4) for c in (256, 128, 64)]
        self.to_rgb = ops.Conv2D(colors, 3)

    def call(self, z, labels=None, training=False):
        h = tf.reshape(self.linear(z), (-1,) + self.start)
        h = tf.nn.relu(self.norms[0](h, z, labels, training=training))
        for deconv, norm in zip(self.deconvs, self.norms[1:]):
            h = tf.nn.relu(norm(deconv(h), z, labels, training=training))
        return tf.tanh(self.to_rgb(h))


class Discriminator(keras.Model):
    def __init__(self, config, feature_dim, num_classes, **kwargs):
        super().__init__(**kwargs)
        sn = config.d_spectral_norm
        self.convs = [ops.Conv2D(config.channels(c), k, strides=s, spectral_norm=sn)
                      for c, k, s in _D_LAYERS]
        self.linear = ops.Dense(1, spectral_norm=sn)
        self.feature_dim = feature_dim
        self.projection = architectures.projection(config, num_classes, feature_dim)

    def block_outputs(self, x, training=False):
        """The activation after each conv (7 'blocks')."""
        outputs, h = [], x
        for conv in self.convs:
            h = tf.nn.leaky_relu(conv(h, training=training), 0.1)
            outputs.append(h)
        return outputs

    def call(self, x, labels=None, training=False):
        h = self.block_outputs(x, training=training)[-1]
        features = tf.reshape(h, (-1, h.shape[1] * h.shape[2] * h.shape[3]))
        logits = tf.squeeze(self.linear(features, training=training), -1)
        if self.projection is not None:
            logits += self.projection(features, labels, training=training)
        return logits, features


@register("sndcgan")
def build(config, image_shape, num_classes):
    height, width, _ = image_shape
    feature_dim = (height // 8) * (width // 8) * config.channels(512)
    discriminator = Discriminator(config, feature_dim, num_classes, name="discriminator")
    return Generator(image_shape, config, num_classes, name="generator"), discriminator
