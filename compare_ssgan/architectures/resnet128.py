"""`resnet128`: Miyato & Koyama's projection-discriminator ResNet for 128x128 images
(ICLR 2018; pfnet-research/sngan_projection gen_models/resnet.py:8-47 and
dis_models/snresnet.py:8-38, ch = 64), built from SNGAN's blocks (see sngan_resnet_cifar).

G: z -> linear 4x4x16ch -> five up-blocks 16ch, 8ch, 4ch, 2ch, ch -> BN, ReLU, conv3 -> tanh.
D: six blocks block0..block5 (the SS-GAN paper's Block0..Block5, which its Table 3 probes):
   optimized block 3 -> ch, then ch -> 2ch -> 4ch -> 8ch -> 16ch (each downsampling, conv1
   shortcuts), then 16ch -> 16ch without downsampling (identity shortcut); ReLU, sum pooling
   (features, 16ch = 1024), linear -> 1 with bias (snresnet.py:20), + <embed(y), features>.
Full width: G 32,150,787 / D 38,419,137 trainable parameters (tests pin the analytic counts).

The SS-GAN paper does not name its 128x128 network. compare_gan's own `resnet5` (a
separate architecture here) is far smaller; the gin headers of the 128x128 rows say which
one each uses and why. Any square side that is a multiple of 32 works (tests use 32x32).
"""
from compare_ssgan import architectures
from compare_ssgan.architectures import base, blocks, register, sngan_resnet_cifar
from compare_ssgan.errors import UserError

G_MULTIPLIERS = (16, 16, 8, 4, 2, 1)  # the linear's output, then each block's output
D_MULTIPLIERS = (1, 2, 4, 8, 16, 16)  # block0..block5 outputs
D_DOWNSAMPLE = (True, True, True, True, True, False)
BASE_CHANNELS = 64


@register("resnet128")
def build(config, image_shape, num_classes):
    if image_shape[0] % 32 or image_shape[1] % 32:
        raise UserError(f"resnet128 needs image sides that are multiples of 32 (got {image_shape[:2]})")
    sn = config.d_spectral_norm
    channels = [config.d_channels(BASE_CHANNELS * m) for m in D_MULTIPLIERS]
    discriminator = base.Discriminator(
        image_shape, sngan_resnet_cifar.discriminator_blocks(channels, D_DOWNSAMPLE, sn), channels[-1],
        base.logit_layer(sn, kernel_initializer=blocks.SNGAN_INIT), pooling="sum",
        projection=architectures.projection(config, num_classes, channels[-1], initializer=blocks.SNGAN_INIT),
        name="discriminator")
    generator = sngan_resnet_cifar.generator(config, image_shape, num_classes, G_MULTIPLIERS, BASE_CHANNELS)
    return generator, discriminator
