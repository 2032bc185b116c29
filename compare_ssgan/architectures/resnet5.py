"""`resnet5`: google/compare_gan's ResNet for 128x128 images (compare_gan/architectures/
resnet5.py at commit 19922d3; after Gulrajani et al.'s 64x64 WGAN-GP ResNet), built from
compare_gan's blocks (see resnet_cifar).

G (resnet5.py:36-93): z -> linear 4x4x8ch (no spectral norm) -> five up-blocks with outputs
   8ch, 4ch, 4ch, 2ch, ch (ch = 64; inputs 8ch, 8ch, 4ch, 4ch, 2ch) -> norm, ReLU, conv3 (no
   spectral norm) -> sigmoid (returned as tanh(h / 2), this project's [-1, 1] range).
D (resnet5.py:96-145): six downsampling blocks block0..block5: 3 -> ch, ch -> 2ch -> 4ch ->
   4ch -> 8ch -> 8ch, ReLU-first with conv3 shortcuts; ReLU, mean over space, linear -> 1.
Full width: G 13,786,115 / D 15,086,529 trainable parameters (tests pin the analytic counts).
128x128 only: at smaller sides compare_gan's G adds non-upsampling blocks, which are not
built here.
"""
from compare_ssgan.architectures import register, resnet_cifar
from compare_ssgan.errors import UserError

G_MULTIPLIERS = (8, 8, 4, 4, 2, 1)  # resnet5.py:39
D_MULTIPLIERS = (1, 2, 4, 4, 8, 8)  # block outputs: B0's ch, then resnet5.py:99's channels[1:]
BASE_CHANNELS = 64


@register("resnet5")
def build(config, image_shape, num_classes):
    if tuple(image_shape[:2]) != (128, 128):
        raise UserError(f"resnet5 is compare_gan's 128x128 network (got {image_shape[:2]}); use "
                        f"resnet128 or biggan for other sizes")
    d_channels = [config.d_channels(BASE_CHANNELS * m) for m in D_MULTIPLIERS]
    generator = resnet_cifar.generator(config, image_shape, num_classes, G_MULTIPLIERS, BASE_CHANNELS,
                                       end_spectral_norm=False)
    discriminator = resnet_cifar.discriminator(config, image_shape, num_classes, d_channels, (True,) * 6)
    return generator, discriminator
