"""`resnet_cifar`: google/compare_gan's ResNet for 32x32 images, the network behind SS-GAN's
CIFAR-10 numbers (Chen et al., CVPR 2019 ran compare_gan). Reference:
compare_gan/architectures/resnet_cifar.py and resnet_ops.py at commit 19922d3.

G (resnet_cifar.py:59-112): z -> linear 4x4x256 (+bias) -> three up-blocks 256 -> 256
   (norm-ReLU-unpool-conv3-norm-ReLU-conv3, shortcut unpool + conv3) -> final norm, ReLU,
   conv3 -> sigmoid. Here the output is 2 sigmoid(h) - 1 = tanh(h / 2), this project's
   [-1, 1] range (tests/test_architectures.py checks the affine map).
D (resnet_cifar.py:123-167): four blocks of 128 (ReLU-conv3-ReLU-conv3-(avg pool), shortcut
   conv3-(avg pool)); the first two downsample; the first block's ReLU acts on the [0, 1]
   image (no "optimized" block); then ReLU, *mean* over space (the features), linear -> 1,
   plus the projection term <embed(y), features> (embedding_fc, no bias) when conditional.
   D reads [0, 1] images, so it first maps this project's [-1, 1] input by (x + 1) / 2.
Every kernel starts N(0, 0.02), every bias 0 (arch_ops.py:47-63, 538-573). Full width:
G 5,849,603 and D 1,483,137 trainable parameters (pinned in tests).
G's norms follow architecture.g_norm; compare_gan's cBN and sBN linears start N(0, 0.02) too.
"""
from compare_ssgan import architectures
from compare_ssgan.architectures import base, blocks, register


def generator(config, image_shape, num_classes, multipliers, base_channels, end_spectral_norm=None):
    """compare_gan's ResNet G (shared with resnet5)."""
    init = blocks.COMPARE_GAN_INIT
    make_norm = lambda: architectures.generator_norm(config, num_classes, modulation_initializer=init)  # noqa: E731
    channels = [config.channels(base_channels * m) for m in multipliers]
    return blocks.ResNetGenerator(image_shape, make_norm, channels, upsample="unpool", shortcut_kernel=3,
                                  kernel_initializer=init, shortcut_initializer=init, end_initializer=init,
                                  output="sigmoid", spectral_norm=config.g_spectral_norm,
                                  end_spectral_norm=end_spectral_norm, name="generator")


def discriminator(config, image_shape, num_classes, channels, downsample):
    """compare_gan's ResNet D (shared with resnet5): ReLU-first blocks with 3x3 conv
    shortcuts, mean pooling, [0, 1] input."""
    init, sn = blocks.COMPARE_GAN_INIT, config.d_spectral_norm
    layers = [blocks.DiscriminatorBlock(c, down, sn, shortcut=3, kernel_initializer=init,
                                        shortcut_initializer=init, name=f"block{i}")
              for i, (c, down) in enumerate(zip(channels, downsample))]
    return base.Discriminator(
        image_shape, layers, channels[-1], base.logit_layer(sn, kernel_initializer=init), pooling="mean",
        projection=architectures.projection(config, num_classes, channels[-1], initializer=init),
        input_transform=base.zero_one_input, name="discriminator")


@register("resnet_cifar")
def build(config, image_shape, num_classes):
    d_channels = [config.d_channels(128)] * 4
    return (generator(config, image_shape, num_classes, (1, 1, 1, 1), 256),
            discriminator(config, image_shape, num_classes, d_channels, (True, True, False, False)))
