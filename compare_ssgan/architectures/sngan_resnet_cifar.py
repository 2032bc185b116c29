"""`sngan_resnet_cifar`: Miyato et al.'s SNGAN ResNet for 32x32 images (ICLR 2018), as their
code has it (pfnet-research/sngan_projection gen_models/resnet_32.py, dis_models/
snresnet_32.py, */resblocks.py), the network kwotsin/mimicry and most PyTorch suites follow.
Use it to compare with SNGAN and Mimicry; SS-GAN's rows use compare_gan's `resnet_cifar`.

G (resnet_32.py:8-47): z -> linear 4x4x256 -> three up-blocks 256 (BN-ReLU-nearest up-conv3-
   BN-ReLU-conv3, shortcut nearest up + conv1) -> BN, ReLU, conv3 -> tanh.
D (snresnet_32.py:8-34): "optimized" block 3 -> 128 (conv3-ReLU-conv3-pool, shortcut pool +
   conv1), a downsampling block 128 (conv1 shortcut), two blocks 128 with identity shortcuts
   (resblocks.py:20: learnable only if channels change or it downsamples); ReLU, *sum* over
   space, linear -> 1 without bias (snresnet_32.py:17, nobias=True), plus <embed(y), h>.
Initialisers: GlorotUniform(sqrt 2) on residual convs, GlorotUniform on shortcuts, linears and
the embedding (resblocks.py:16-17, resnet_32.py:17,22, snresnet_32.py:17,19). Full width:
G 4,276,739 and D 1,053,824 trainable parameters (pinned in tests).
Departure: Chainer's BatchNormalization uses eps 2e-5 and decay 0.9; we use eps 1e-5 (as
every other network here) and momentum 0.9.
"""
from compare_ssgan import architectures
from compare_ssgan.architectures import base, blocks, register


def generator(config, image_shape, num_classes, multipliers, base_channels):
    """SNGAN's ResNet G (shared with resnet128)."""
    make_norm = lambda: architectures.generator_norm(config, num_classes)  # noqa: E731
    channels = [config.channels(base_channels * m) for m in multipliers]
    return blocks.ResNetGenerator(image_shape, make_norm, channels, upsample="nearest", shortcut_kernel=1,
                                  kernel_initializer=blocks.SNGAN_RESIDUAL_INIT,
                                  shortcut_initializer=blocks.SNGAN_INIT, end_initializer=blocks.SNGAN_INIT,
                                  output="tanh", spectral_norm=config.g_spectral_norm, name="generator")


def discriminator_blocks(channels, downsample, spectral_norm, attention_after=(),
                         kernel_initializer=blocks.SNGAN_RESIDUAL_INIT, shortcut_initializer=blocks.SNGAN_INIT):
    """SNGAN's D blocks: optimized first block, conv1 shortcuts where the shape changes,
    identity otherwise; `attention_after`: indices followed by a non-local block (BigGAN);
    the initialisers default to SNGAN's (BigGAN-PyTorch's CIFAR script uses N(0, 0.02))."""
    from compare_ssgan.architectures import ops

    layers, previous = [], None
    for i, (c, down) in enumerate(zip(channels, downsample)):
        learnable = i == 0 or down or c != previous
        block = blocks.DiscriminatorBlock(
            c, down, spectral_norm, shortcut=1 if learnable else "identity", optimized=i == 0,
            kernel_initializer=kernel_initializer, shortcut_initializer=shortcut_initializer,
            name=f"block{i}")
        if i in attention_after:
            block = blocks.WithAttention(block, ops.NonLocalBlock(c, spectral_norm, name=f"attention{i}"),
                                         name=f"block{i}_attention")
        layers.append(block)
        previous = c
    return layers


@register("sngan_resnet_cifar")
def build(config, image_shape, num_classes):
    sn, channels = config.d_spectral_norm, [config.d_channels(128)] * 4
    layers = discriminator_blocks(channels, (True, True, False, False), sn)
    discriminator = base.Discriminator(
        image_shape, layers, channels[-1],
        base.logit_layer(sn, use_bias=False, kernel_initializer=blocks.SNGAN_INIT), pooling="sum",
        projection=architectures.projection(config, num_classes, channels[-1], initializer=blocks.SNGAN_INIT),
        name="discriminator")
    return generator(config, image_shape, num_classes, (1, 1, 1, 1), 256), discriminator
