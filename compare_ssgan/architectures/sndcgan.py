"""`sndcgan`: google/compare_gan's SNDCGAN (compare_gan/architectures/sndcgan.py:36-127 at
commit 19922d3; Miyato et al. 2018, the SN-DCGAN of Table 3 in SNGAN's appendix), the
network of LT-GAN's and CR-GAN's SNDCGAN rows.

G (sndcgan.py:42-79): linear (s/8)^2 x 512 -> batch norm over the *flattened* linear output
   (one gamma/beta per unit, g_bn1) -> ReLU -> reshape -> deconv4 s2 256, 128, 64 (each BN,
   ReLU) -> deconv3 s1 to RGB -> tanh. compare_gan then maps tanh to [0, 1]; we keep the
   [-1, 1] tanh output (the same function up to that map).
D (sndcgan.py:88-127): compare_gan maps its [0, 1] input back to [-1, 1] (x * 2 - 1), which
   is the identity here; convs 64(3x3,s1) 128(4x4,s2) 128(3x3) 256(4x4,s2) 256(3x3)
   512(4x4,s2) 512(3x3), each followed by leaky ReLU 0.1 (one `block` each: 7 blocks),
   flatten (the features), linear -> 1 (+ the projection term when conditional).
Every kernel starts N(0, 0.02), biases 0 (arch_ops.py:47-63, 538-592).
"""
import keras
import tensorflow as tf

from compare_ssgan import architectures
from compare_ssgan.architectures import base, blocks, ops, register

D_LAYERS = ((64, 3, 1), (128, 4, 2), (128, 3, 1), (256, 4, 2), (256, 3, 1), (512, 4, 2), (512, 3, 1))
INIT = blocks.COMPARE_GAN_INIT


class Generator(keras.Model):
    def __init__(self, image_shape, config, num_classes, **kwargs):
        super().__init__(**kwargs)
        height, width, colors = image_shape
        self.start = (height // 8, width // 8, config.channels(512))
        make_norm = lambda: architectures.generator_norm(config, num_classes, modulation_initializer=INIT)  # noqa: E731
        self.linear = ops.Dense(self.start[0] * self.start[1] * self.start[2], kernel_initializer=INIT)
        self.norms = [make_norm() for _ in range(4)]
        self.deconvs = [ops.Conv2DTranspose(config.channels(c), 4, kernel_initializer=INIT) for c in (256, 128, 64)]
        self.to_rgb = ops.Conv2DTranspose(colors, 3, strides=1, kernel_initializer=INIT)

    def call(self, z, labels=None, training=False):
        h = tf.nn.relu(self.norms[0](self.linear(z), z, labels, training=training))
        h = tf.reshape(h, (-1,) + self.start)
        for deconv, norm in zip(self.deconvs, self.norms[1:]):
            h = tf.nn.relu(norm(deconv(h), z, labels, training=training))
        return tf.tanh(self.to_rgb(h))


@register("sndcgan")
def build(config, image_shape, num_classes):
    sn = config.d_spectral_norm
    layers = [blocks.ConvActivation(config.d_channels(c), k, s, sn, INIT, name=f"block{i}")
              for i, (c, k, s) in enumerate(D_LAYERS)]
    feature_dim = (image_shape[0] // 8) * (image_shape[1] // 8) * config.d_channels(512)
    discriminator = base.Discriminator(
        image_shape, layers, feature_dim, base.logit_layer(sn, kernel_initializer=INIT), pooling="flatten",
        final_relu=False, projection=architectures.projection(config, num_classes, feature_dim, initializer=INIT),
        name="discriminator")
    return Generator(image_shape, config, num_classes, name="generator"), discriminator
