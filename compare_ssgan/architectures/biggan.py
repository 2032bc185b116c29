"""`biggan`: a BigGAN ResNet (Brock et al. 2019, not BigGAN-deep) for 32x32, 64x64 and 128x128,
as used by LT-GAN (Patel et al., WACV 2021) and CR-GAN on CIFAR-10.

Layout (BigGAN-PyTorch's `G_arch`/`D_arch`, the authors' code; multipliers times ch):
  32x32  (ch = 64): G 4x4x4ch -> up-blocks 4ch, 4ch, 4ch.   D blocks 4ch x4, downsample T,T,F,F.
  64x64  (ch = 64): G 4x4x16ch -> 8ch, 4ch, 2ch, ch.        D ch, 2ch, 4ch, 8ch, 16ch; T,T,T,T,F.
  128x128 (ch = 96): G 4x4x16ch -> 16ch, 8ch, 4ch, 2ch, ch. D ch, 2ch, 4ch, 8ch, 16ch, 16ch;
                                                             T,T,T,T,T,F.
G block: cBN-ReLU-up-conv3-cBN-ReLU-conv3 plus up + 1x1-conv shortcut. G: linear(z0) -> blocks
-> plain (unconditional, affine) BN, ReLU, conv3 -> tanh. Every G layer spectrally normalised
when architecture.g_spectral_norm (BigGAN sets it).
Conditioning (architecture.g_norm = 'conditional_batch_norm'): a shared class embedding
(`shared_dim` = 128, no SN) and, with `hierarchical_z`, z split into one chunk per block plus
z0 for the linear; each block's norms get c = [z_i, embed(y)] and use gamma = 1 + linear(c),
beta = linear(c) (linears without bias, SN with G). With 'self_modulated_batch_norm' the block
norms are sBN of z_i; with 'batch_norm' the blocks use plain BN and z is not split.
D block: (ReLU)-conv3-ReLU-conv3-(avg-pool) with a 1x1-conv shortcut when the shape changes
(the first block has no leading ReLU and pools before its shortcut), identity otherwise. D:
blocks, ReLU, sum pooling (features), linear -> 1 (+ projection with architecture.projection).
A non-local (self-attention) block follows the G and D blocks whose output resolution is
`attention_resolution` (64: BigGAN's 128x128 setting; none exists at 32x32; 0 turns it off).

Parameter count check: at 128x128, conditional (1000 classes, projection, SN in G), z_dim 120,
G has 70,433,988 and D 87,982,370 trainable parameters, exactly the counts compare_gan's
`resnet_biggan.py` documents for its 128x128 BigGAN (tests/test_architectures.py).

Without a shared embedding (`shared_dim = 0`, BigGAN-PyTorch without --G_shared, its CIFAR
script) each cBN has its own class tables: gamma = E_gamma[y] (starting at 1), beta = E_beta[y]
(BigGAN-PyTorch: gain 1 + embedding(y), BigGAN.py:133-138, layers.py:279-308; the same function,
its table starting N(0, 0.02) around 1 instead of at 1), and z feeds only the first linear.
`init = 'N02'`: every conv, linear and embedding kernel starts N(0, 0.02) (BigGAN-PyTorch's
--G_init/--D_init N02, BigGAN.py:209-220; biases 0 here, PyTorch's default uniform there);
None keeps Keras's / SNGAN's initialisers.

Departures: no orthogonal init/regularisation; BN momentum 0.9, eps 1e-5;
z chunks of unequal size take the remainder in z0 (BigGAN-PyTorch truncates z instead); no
"cross-replica" BN (BN statistics are per replica). compare_gan's `resnet_biggan` differs at
32x32 (ch 96, D multipliers 2,2,2,2 with three downsampling blocks) and puts a ReLU before
D's first conv; we follow BigGAN-PyTorch.
"""
import gin
import keras
import tensorflow as tf

from compare_ssgan import architectures
from compare_ssgan.architectures import base, blocks, ops, register, sngan_resnet_cifar
from compare_ssgan.errors import UserError

# resolution: (ch, G multipliers (linear output, then each block's output), D multipliers, D downsample)
LAYOUTS = {
    32: (64, (4, 4, 4, 4), (4, 4, 4, 4), (True, True, False, False)),
    64: (64, (16, 8, 4, 2, 1), (1, 2, 4, 8, 16), (True, True, True, True, False)),
    128: (96, (16, 16, 8, 4, 2, 1), (1, 2, 4, 8, 16, 16), (True, True, True, True, True, False)),
}


INITS = (None, "N02")


@gin.configurable
def biggan_options(hierarchical_z=True, shared_dim=128, attention_resolution=64, init=None):
    """BigGAN's own switches: hierarchical z, the shared class-embedding size (0: no shared
    embedding, per-layer class tables), where the non-local block goes (output resolution of
    the block it follows; 0 = nowhere), and the kernel initialisation (None or 'N02')."""
    if init not in INITS:
        raise UserError(f"biggan_options.init={init!r}; valid: None, 'N02'")
    if shared_dim < 0:
        raise UserError(f"biggan_options.shared_dim must be >= 0 (got {shared_dim})")
    return bool(hierarchical_z), int(shared_dim), int(attention_resolution), init


def _initializers(init):
    """{name: initializer} kwargs for BigGAN's layers; empty keeps each layer's default."""
    if init == "N02":
        return dict(kernel_initializer=blocks.COMPARE_GAN_INIT)
    return {}


class Generator(keras.Model):
    def __init__(self, image_shape, config, num_classes, ch, multipliers, **kwargs):
        super().__init__(**kwargs)
        height, width, colors = image_shape
        hierarchical, shared_dim, attention_resolution, init = biggan_options()
        kernel_init = _initializers(init)
        sn = config.g_spectral_norm
        channels = [config.channels(ch * m) for m in multipliers]
        num_blocks = len(channels) - 1
        self.start = (height // 2 ** num_blocks, width // 2 ** num_blocks, channels[0])
        self.shared_conditioning = config.g_norm == "conditional_batch_norm" and shared_dim > 0
        if hierarchical and config.g_norm == "conditional_batch_norm" and not shared_dim:
            raise UserError("biggan: hierarchical z feeds the shared class embedding's cBN; with "
                            "biggan_options.shared_dim = 0 set biggan_options.hierarchical_z = False")
        self.split = hierarchical and config.g_norm in ("conditional_batch_norm", "self_modulated_batch_norm")
        if self.split:
            chunk = config.z_dim // (num_blocks + 1)
            if chunk < 1:
                raise UserError(f"biggan with hierarchical z needs architecture.z_dim >= {num_blocks + 1}")
            self.z_sizes = [config.z_dim - chunk * num_blocks] + [chunk] * num_blocks
        self.shared = None
        if self.shared_conditioning:
            if not num_classes or num_classes < 2:
                raise UserError(f"biggan with conditional_batch_norm needs a labelled dataset "
                                f"(this one has {num_classes} classes)")
            self.shared = ops.Embedding(num_classes, shared_dim, name="shared_embedding",
                                        **({"initializer": blocks.COMPARE_GAN_INIT} if init else {}))
        condition = "vector" if self.shared_conditioning else "labels"
        make_norm = lambda: architectures.generator_norm(config, num_classes, condition=condition)  # noqa: E731
        self.linear = ops.Dense(self.start[0] * self.start[1] * channels[0], spectral_norm=sn, **kernel_init)
        block_init = dict(kernel_initializer=blocks.COMPARE_GAN_INIT,
                          shortcut_initializer=blocks.COMPARE_GAN_INIT) if init else {}
        self.blocks = [blocks.GeneratorBlock(c, make_norm, "nearest", 1, sn, name=f"block{i}", **block_init)
                       for i, c in enumerate(channels[1:])]
        resolutions = [self.start[0] * 2 ** (i + 1) for i in range(num_blocks)]
        self.attention_after = tuple(i for i, r in enumerate(resolutions) if r == attention_resolution)
        self.attention = [ops.NonLocalBlock(channels[i + 1], sn, name=f"attention{i}")
                          for i in self.attention_after]
        self.final_norm = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
        self.to_rgb = ops.Conv2D(colors, 3, spectral_norm=sn, **kernel_init)

    def call(self, z, labels=None, training=False):
        num_blocks = len(self.blocks)
        if self.split:
            z0, *chunks = tf.split(z, self.z_sizes, axis=1)
        else:
            z0, chunks = z, [z] * num_blocks
        if self.shared_conditioning:
            if labels is None:
                raise ValueError("a conditional biggan generator needs labels")
            embedded = self.shared(labels, training=training)
            chunks = [tf.concat([c, embedded], axis=1) for c in chunks]
        h = tf.reshape(self.linear(z0, training=training), (-1,) + self.start)
        for i, (block, condition) in enumerate(zip(self.blocks, chunks)):
            h = block(h, condition, labels, training=training)
            if i in self.attention_after:
                h = self.attention[self.attention_after.index(i)](h, training=training)
        h = tf.nn.relu(self.final_norm(h, training=training))
        return tf.tanh(self.to_rgb(h, training=training))


@register("biggan")
def build(config, image_shape, num_classes):
    if image_shape[0] != image_shape[1] or image_shape[0] not in LAYOUTS:
        raise UserError(f"biggan supports square images of side {', '.join(map(str, sorted(LAYOUTS)))} "
                        f"(got {image_shape[:2]})")
    ch, g_multipliers, d_multipliers, downsample = LAYOUTS[image_shape[0]]
    _, _, attention_resolution, init = biggan_options()
    d_channels = [config.d_channels(ch * m) for m in d_multipliers]
    side, d_attention = image_shape[0], []
    for i, down in enumerate(downsample):
        side = side // 2 if down else side
        if side == attention_resolution:
            d_attention.append(i)
    d_attention = d_attention[:1]  # one non-local block, after the first block at that resolution
    sn = config.d_spectral_norm
    block_init = dict(kernel_initializer=blocks.COMPARE_GAN_INIT,
                      shortcut_initializer=blocks.COMPARE_GAN_INIT) if init else {}
    layers = sngan_resnet_cifar.discriminator_blocks(d_channels, downsample, sn, attention_after=d_attention,
                                                     **block_init)
    projection_init = {"initializer": blocks.COMPARE_GAN_INIT} if init else {}
    discriminator = base.Discriminator(
        image_shape, layers, d_channels[-1], base.logit_layer(sn, **_initializers(init)), pooling="sum",
        projection=architectures.projection(config, num_classes, d_channels[-1], **projection_init),
        name="discriminator")
    generator = Generator(image_shape, config, num_classes, ch, g_multipliers, name="generator")
    return generator, discriminator
