"""`resnet128`: the SNGAN / projection-discriminator ResNet for 128x128 images (Miyato et al.
2018; Miyato & Koyama 2018), used by SS-GAN (Chen et al., CVPR 2019) for ImageNet, LSUN-bedroom
and CelebA-HQ. ch = 64 at width 1.

G: z -> linear 4x4x16ch -> five up-blocks with outputs 16ch, 8ch, 4ch, 2ch, ch (inputs 16ch,
   16ch, 8ch, 4ch, 2ch) -> norm, ReLU, 3x3 conv -> tanh. Up-block: norm-ReLU-up-conv3-norm-
   ReLU-conv3 plus an up + 1x1-conv shortcut (every block upsamples, so every shortcut is a
   conv, as in SNGAN's `Block`).
D: six blocks named block0..block5 (the SS-GAN paper's Block0..Block5, whose outputs its
   Table 3 probes): block0 is SNGAN's "optimized" first block 3 -> ch (no leading ReLU,
   pool before the shortcut conv); block1..block4 are pre-activation blocks ch -> 2ch -> 4ch
   -> 8ch -> 16ch, each downsampling (2x2 average pool after the second conv and after the
   1x1 shortcut conv); block5 is 16ch -> 16ch without downsampling and with an identity
   shortcut. Then ReLU, global sum pooling (features, 16ch = 1024) and a linear -> 1
   (+ <embed(y), features> with architecture.projection). All D layers spectrally normalised
   when architecture.d_spectral_norm.

Checked against google/compare_gan `architectures/resnet_biggan.py` (its 128x128 multipliers:
G 16,16,8,4,2,1 and D 1,2,4,8,16,16 with the last D block not downsampling) and the SNGAN
projection-discriminator code (`snresnet 128`). Departures from compare_gan's own `resnet5.py`
(channels 8,8,4,4,2,1 / six downsampling D blocks, mean pooling, 3x3 shortcuts, sigmoid output,
zero-insertion "unpool"): we follow SNGAN's 128x128 layout that the brief and the SS-GAN paper's
six-block D describe, with nearest-neighbour upsampling, 1x1 shortcuts, sum pooling and tanh.

Any square input whose side is a multiple of 32 works (the start is side/32); tests use 32x32.
"""
import keras

from compare_ssgan import architectures
from compare_ssgan.architectures import ops, register
from compare_ssgan.architectures.resnet_cifar import DiscriminatorBlock, Generator
from compare_ssgan.errors import UserError

G_MULTIPLIERS = (16, 16, 8, 4, 2, 1)  # the linear's output, then each block's output
D_MULTIPLIERS = (1, 2, 4, 8, 16, 16)  # block0..block5 outputs
D_DOWNSAMPLE = (True, True, True, True, True, False)
BASE_CHANNELS = 64


class Discriminator(keras.Model):
    """SNGAN-style ResNet D: blocks, ReLU, sum pooling, linear (+ projection), optional
    non-local blocks after the blocks listed in `attention_after`."""

    def __init__(self, channels, downsample, spectral_norm, projection=None, attention_after=(), **kwargs):
        super().__init__(**kwargs)
        self.blocks, previous = [], None
        for i, (c, down) in enumerate(zip(channels, downsample)):
            self.blocks.append(DiscriminatorBlock(
                c, downsample=down, first=i == 0, spectral_norm=spectral_norm,
                learnable_shortcut=i == 0 or down or c != previous, name=f"block{i}"))
            previous = c
        self.attention_after = tuple(attention_after)
        self.attention = [ops.NonLocalBlock(channels[i], spectral_norm, name=f"attention{i}")
                          for i in self.attention_after]
        self.linear = ops.Dense(1, spectral_norm=spectral_norm)
        self.projection = projection
        self.feature_dim = channels[-1]

    def block_outputs(self, x, training=False):
        outputs, h = [], x
        for i, block in enumerate(self.blocks):
            h = block(h, training=training)
            if i in self.attention_after:
                h = self.attention[self.attention_after.index(i)](h, training=training)
            outputs.append(h)
        return outputs

    def call(self, x, labels=None, training=False):
        h = self.block_outputs(x, training=training)[-1]
        return ops.sum_pooled_logits(h, self.linear, self.projection, labels, training)


@register("resnet128")
def build(config, image_shape, num_classes):
    if image_shape[0] % 32 or image_shape[1] % 32:
        raise UserError(f"resnet128 needs image sides that are multiples of 32 "
                                      f"(got {image_shape[:2]})")
    channels = [config.channels(BASE_CHANNELS * m) for m in D_MULTIPLIERS]
    projection = architectures.projection(config, num_classes, channels[-1])
    discriminator = Discriminator(channels, D_DOWNSAMPLE, config.d_spectral_norm, projection,
                                  name="discriminator")
    make_norm = lambda: architectures.generator_norm(config, num_classes)  # noqa: E731
    g_channels = [config.channels(BASE_CHANNELS * m) for m in G_MULTIPLIERS]
    return Generator(image_shape, make_norm, g_channels, name="generator"), discriminator
