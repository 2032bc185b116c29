"""Architectures: full-size parameter counts against analytic counts from the layer shapes,
a forward pass of every family at width 1/16, the D block outputs used by linear probes, and
the registry's errors.

Counted: kernels, biases, BN gammas/betas, embeddings, attention gains (trainable weights).
Not counted: spectral-norm vectors and BN moving statistics (non-trainable).
"""
import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from compare_ssgan import architectures  # noqa: E402
from compare_ssgan.errors import UserError  # noqa: E402


def conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def dense(i, o, bias=True):
    return i * o + (o if bias else 0)


def bn(c):
    return 2 * c


def config(name, g_norm="batch_norm", projection=False, g_sn=False, z_dim=128, width=1.0):
    return architectures.ArchitectureConfig(name, z_dim, True, g_norm, width, g_sn, projection)


def counts(cfg, shape, num_classes):
    g, d = architectures.build(cfg, shape, num_classes)
    return architectures.parameter_count(g), architectures.parameter_count(d)


def g_norm_params(kind, c, num_classes=10, z_dim=128):
    return {"batch_norm": bn(c), "conditional_batch_norm": 2 * num_classes * c,
            "self_modulated_batch_norm": dense(z_dim, 32) + 2 * dense(32, c)}[kind]


@pytest.mark.parametrize("g_norm", ["batch_norm", "conditional_batch_norm", "self_modulated_batch_norm"])
def test_resnet_cifar_full_size_counts_match_compare_gan(g_norm):
    """compare_gan resnet_cifar.py:90-112 (G) and :144-165 (D), blocks from resnet_ops.py:136-182:
    every block has conv1, conv2 and a 3x3 conv shortcut; D's first block reads 3 channels."""
    projection = g_norm == "conditional_batch_norm"
    norm = lambda c: g_norm_params(g_norm, c)  # noqa: E731
    g = dense(128, 4 * 4 * 256) + 3 * (2 * norm(256) + 3 * conv(3, 256, 256))
    g += norm(256) + conv(3, 256, 3)
    d = 2 * conv(3, 3, 128) + conv(3, 128, 128)  # B1: shortcut + conv1 read the image
    d += 3 * 3 * conv(3, 128, 128) + dense(128, 1)
    d += 10 * 128 if projection else 0  # embedding_fc: linear from one-hot labels, no bias
    assert counts(config("resnet_cifar", g_norm, projection), (32, 32, 3), 10) == (g, d)
    if g_norm == "batch_norm":
        assert (g, d) == (5_849_603, 1_483_137)


def test_sngan_resnet_cifar_full_size_counts_match_miyato():
    """sngan_projection gen_models/resnet_32.py + resblocks.py (1x1 shortcut, every G block
    upsamples) and dis_models/snresnet_32.py (optimized block, identity shortcuts in blocks 3-4,
    l5 without bias)."""
    g = dense(128, 4 * 4 * 256) + 3 * (2 * bn(256) + 2 * conv(3, 256, 256) + conv(1, 256, 256))
    g += bn(256) + conv(3, 256, 3)
    d = conv(3, 3, 128) + conv(3, 128, 128) + conv(1, 3, 128)  # OptimizedBlock
    d += 2 * conv(3, 128, 128) + conv(1, 128, 128)  # block2, downsampling
    d += 2 * 2 * conv(3, 128, 128) + dense(128, 1, bias=False)  # block3, block4, l5
    assert counts(config("sngan_resnet_cifar"), (32, 32, 3), 10) == (g, d) == (4_276_739, 1_053_824)


def test_sndcgan_full_size_counts_match_compare_gan():
    """compare_gan sndcgan.py:59-74: BN over the flattened linear output (g_bn1), then
    deconvs; the last is a 3x3 stride-1 deconv."""
    g = dense(128, 4 * 4 * 512) + bn(4 * 4 * 512)
    for cin, cout in ((512, 256), (256, 128), (128, 64)):
        g += conv(4, cin, cout) + bn(cout)  # transposed convs: same kernel size
    g += conv(3, 64, 3)
    d, cin = 0, 3
    for cout, k, _ in ((64, 3, 1), (128, 4, 2), (128, 3, 1), (256, 4, 2), (256, 3, 1), (512, 4, 2), (512, 3, 1)):
        d += conv(k, cin, cout)
        cin = cout
    d += dense(4 * 4 * 512, 1)
    assert counts(config("sndcgan"), (32, 32, 3), 10) == (g, d) == (3_828_739, 5_860_865)


def test_resnet5_full_size_counts_match_compare_gan():
    """compare_gan resnet5.py:57-93 (G, ch 64, channels 8,8,4,4,2,1) and :119-145 (D: B0 then
    B1..B5 with channels 1,2,4,4,8,8), every block with a 3x3 conv shortcut."""
    gch = [64 * m for m in (8, 8, 4, 4, 2, 1)]
    g = dense(128, 4 * 4 * gch[0])
    for cin, cout in zip(gch[:-1], gch[1:]):
        g += bn(cin) + conv(3, cin, cout) + bn(cout) + conv(3, cout, cout) + conv(3, cin, cout)
    g += bn(64) + conv(3, 64, 3)
    dch = [3] + [64 * m for m in (1, 2, 4, 4, 8, 8)]
    d = sum(2 * conv(3, cin, cout) + conv(3, cout, cout) for cin, cout in zip(dch[:-1], dch[1:]))
    d += dense(512, 1)
    assert counts(config("resnet5"), (128, 128, 3), 10) == (g, d) == (13_786_115, 15_086_529)


def resnet128_counts(g_norm="batch_norm", projection=False, num_classes=1000):
    norm = lambda c: g_norm_params(g_norm, c, num_classes)  # noqa: E731
    ch = [64 * m for m in (16, 16, 8, 4, 2, 1)]
    g = dense(128, 4 * 4 * ch[0])
    for cin, cout in zip(ch[:-1], ch[1:]):
        g += norm(cin) + conv(3, cin, cout) + norm(cout) + conv(3, cout, cout) + conv(1, cin, cout)
    g += norm(64) + conv(3, 64, 3)
    dch = [64 * m for m in (1, 2, 4, 8, 16, 16)]
    d = conv(3, 3, 64) + conv(3, 64, 64) + conv(1, 3, 64)  # block0
    for cin, cout in zip(dch[:4], dch[1:5]):  # block1..block4, downsampling
        d += conv(3, cin, cout) + conv(3, cout, cout) + conv(1, cin, cout)
    d += 2 * conv(3, 1024, 1024)  # block5: identity shortcut
    d += dense(1024, 1) + (num_classes * 1024 if projection else 0)
    return g, d


def test_resnet128_full_size_counts():
    """sngan_projection gen_models/resnet.py:17-25 and dis_models/snresnet.py:13-22."""
    assert counts(config("resnet128"), (128, 128, 3), 1000) == resnet128_counts() == (32_150_787, 38_419_137)


def test_resnet128_conditional_full_size_counts():
    cfg = config("resnet128", "conditional_batch_norm", projection=True)
    assert counts(cfg, (128, 128, 3), 1000) == resnet128_counts("conditional_batch_norm", True)


def attention(c):
    return 2 * conv(1, c, c // 8, False) + conv(1, c, c // 2, False) + conv(1, c // 2, c, False) + 1


def biggan_counts(side, num_classes, z_dim):
    ch, gm, dm, down = {32: (64, (4, 4, 4, 4), (4, 4, 4, 4), (1, 1, 0, 0)),
                        128: (96, (16, 16, 8, 4, 2, 1), (1, 2, 4, 8, 16, 16), (1, 1, 1, 1, 1, 0))}[side]
    gch, dch = [ch * m for m in gm], [ch * m for m in dm]
    blocks = len(gch) - 1
    chunk = z_dim // (blocks + 1)
    cond = chunk + 128  # z chunk + shared embedding
    g = num_classes * 128 + dense(z_dim - blocks * chunk, 16 * gch[0])
    for i, (cin, cout) in enumerate(zip(gch[:-1], gch[1:])):
        g += 2 * dense(cond, cin, False) + 2 * dense(cond, cout, False)  # cBN gamma, beta
        g += conv(3, cin, cout) + conv(3, cout, cout) + conv(1, cin, cout)
        if 4 * 2 ** (i + 1) == 64:
            g += attention(cout)
    g += bn(gch[-1]) + conv(3, gch[-1], 3)
    d, cin, res = 0, 3, side
    for i, (cout, dn) in enumerate(zip(dch, down)):
        d += conv(3, cin, cout) + conv(3, cout, cout)
        if i == 0 or dn or cin != cout:
            d += conv(1, cin, cout)
        res //= 2 if dn else 1
        if res == 64 and i == 0:
            d += attention(cout)
        cin = cout
    d += dense(dch[-1], 1) + num_classes * dch[-1]
    return g, d


def test_biggan32_full_size_counts():
    cfg = config("biggan", "conditional_batch_norm", projection=True, g_sn=True)
    assert counts(cfg, (32, 32, 3), 10) == biggan_counts(32, 10, 128)


def test_biggan128_full_size_counts_match_compare_gan():
    cfg = config("biggan", "conditional_batch_norm", projection=True, g_sn=True, z_dim=120)
    result = counts(cfg, (128, 128, 3), 1000)
    assert result == biggan_counts(128, 1000, 120)
    # compare_gan's resnet_biggan.py documents these for 128x128: (G) 70,433,988, (D) 87,982,370
    assert result == (70_433_988, 87_982_370)


TINY = [("resnet_cifar", (32, 32, 3), 4), ("sngan_resnet_cifar", (32, 32, 3), 4), ("sndcgan", (32, 32, 3), 7),
        ("resnet128", (32, 32, 3), 6), ("resnet5", (128, 128, 3), 6), ("biggan", (32, 32, 3), 4),
        ("biggan", (128, 128, 3), 6)]


@pytest.mark.parametrize("name,shape,blocks", TINY)
def test_tiny_forward_pass_and_block_outputs(name, shape, blocks):
    cfg = config(name, "conditional_batch_norm", projection=True, g_sn=name == "biggan", z_dim=16,
                 width=1 / 16)
    g, d = architectures.build(cfg, shape, 10)
    z = tf.random.stateless_normal([3, 16], seed=[0, 1])
    labels = tf.constant([0, 4, 9])
    images = g(z, labels, training=True)
    assert images.shape == (3,) + shape
    assert np.all(np.abs(images.numpy()) <= 1.0)
    logits, features = d(images, labels, training=True)
    assert logits.shape == (3,) and features.shape == (3, d.feature_dim)
    assert np.all(np.isfinite(logits.numpy())) and np.all(np.isfinite(features.numpy()))
    outputs = d.block_outputs(images)
    assert len(outputs) == blocks and all(o.shape[0] == 3 for o in outputs)
    assert d.image_shape == shape
    if name == "resnet128":
        assert [b.name for b in d.blocks] == [f"block{i}" for i in range(6)]
        assert [o.shape[1] for o in outputs] == [shape[0] // 2 ** k for k in (1, 2, 3, 4, 5, 5)]
    if name == "resnet5":  # six downsampling blocks (resnet5.py:125-138)
        assert [o.shape[1] for o in outputs] == [shape[0] // 2 ** k for k in range(1, 7)]


@pytest.mark.parametrize("name,pool", [("resnet128", tf.reduce_sum), ("sngan_resnet_cifar", tf.reduce_sum),
                                       ("resnet_cifar", tf.reduce_mean)])
def test_d_features_pool_the_last_block_as_the_reference(name, pool):
    """SNGAN sums over space (snresnet_32.py:29); compare_gan takes the mean (resnet_cifar.py:156)."""
    g, d = architectures.build(config(name, width=1 / 16, z_dim=16), (32, 32, 3), 10)
    images = g(tf.random.stateless_normal([2, 16], seed=[1, 1]), None)
    _, features = d(images, None)
    last = d.block_outputs(images)[-1]
    np.testing.assert_allclose(features, pool(tf.nn.relu(last), [1, 2]), rtol=1e-5, atol=1e-5)


def test_unknown_names_list_valid_ones():
    gin.clear_config()
    with pytest.raises(UserError, match="biggan.*resnet128.*resnet_cifar.*sndcgan"):
        architectures.architecture(name="resnet9000")
    with pytest.raises(UserError, match="conditional_batch_norm.*self_modulated_batch_norm"):
        architectures.architecture(g_norm="layer_norm")
    with pytest.raises(UserError, match="projection"):
        architectures.architecture(projection="yes")
    with pytest.raises(UserError, match="multiples of 32"):
        architectures.build(config("resnet128"), (48, 48, 3), 10)
    with pytest.raises(UserError, match="biggan supports"):
        architectures.build(config("biggan"), (48, 48, 3), 10)
    with pytest.raises(UserError, match="labelled dataset"):
        architectures.build(config("resnet_cifar", projection=True), (32, 32, 3), 1)


@pytest.mark.parametrize("name", ["resnet_cifar", "sngan_resnet_cifar", "sndcgan"])
def test_d_width_scales_only_the_discriminator(name):
    """architecture.d_width widens D alone: G's parameters stay those of `width`."""
    narrow = config(name, width=1 / 16, z_dim=16)
    wide = dataclasses.replace(narrow, d_width=1 / 8)
    g_narrow, d_narrow = counts(narrow, (32, 32, 3), 10)
    g_wide, d_wide = counts(wide, (32, 32, 3), 10)
    assert g_wide == g_narrow and d_wide > 2 * d_narrow
    gin.clear_config()
    gin.parse_config("architecture.width = 0.25\narchitecture.d_width = 0.5")
    assert architectures.architecture().d_channels(128) == 64
    assert architectures.architecture().channels(128) == 32
    gin.clear_config()
    with pytest.raises(UserError, match="d_width must be a number > 0"):
        architectures.architecture(d_width=0)
