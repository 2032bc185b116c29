"""LT-GAN's structure as the paper's Algorithm 1 (Patel et al., WACV 2021), on the real GANModel
built from the paper-row gin files with the smoke preset (batch 8, width 1/16, z_dim 16):
two distinct eps per step, pairs by a random permutation with balanced labels in expectation,
the auxiliary net's own Adam (settings, checkpointing, resume mid-warm-up), G's batch twice D's,
the feature layer per architecture, and the warm-up read from the step context. Also the
BigGAN-PyTorch CIFAR protocol of the BigGAN rows and the EMA start step.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from compare_ssgan import main as cli  # noqa: E402
from compare_ssgan import training  # noqa: E402
from compare_ssgan.architectures import biggan  # noqa: E402
from compare_ssgan.gans import latent_transformation, model as model_lib  # noqa: E402
from run_helpers import REPO, build_smoke_gan  # noqa: E402

REAL = tf.constant(np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32))
LABELS = tf.constant(np.arange(8) % 10, tf.int32)
LT_ROWS = ("ltgan", "cr_ltgan", "biggan_lt", "biggan_cr_lt")


@pytest.fixture(autouse=True)
def _clean_gin():
    yield
    gin.clear_config()


def lt_task(gan):
    return next(t for t in gan.tasks if isinstance(t, latent_transformation.LatentTransformationTask))


def values(variables):
    return [np.array(v.numpy()) for v in variables]


def parsed(row, params=()):
    """(model(), options(), biggan_options()) of a paper-row gin file, without building."""
    gin.clear_config()
    cli.parse_gin([os.path.join(REPO, f"gin/cifar10/{row}.gin")], list(params))
    return model_lib.model(), training.options(), biggan.biggan_options()


def spy_perturbations(task):
    """Records every (eps, which) the task draws in eager steps."""
    calls, original = [], task.perturbations

    def spy(seed, global_rows, z_dim):
        eps, which = original(seed, global_rows, z_dim)
        calls.append((eps.numpy(), which.numpy()))
        return eps, which

    task.perturbations = spy
    return calls


@pytest.fixture(scope="module")
def ltgan():
    """One smoke LT-GAN (warm-up 0), one D step and one G step taken: (gan, eps drawn, aux
    weights before the G step, G step's metrics)."""
    gan = build_smoke_gan("gin/cifar10/ltgan.gin", ["LatentTransformationTask.warmup_steps = 0"])
    task = lt_task(gan)
    calls = spy_perturbations(task)
    before_d = values(task.aux.trainable_weights)
    gan.d_step(REAL, LABELS, tf.constant([1, 0], tf.int64))
    before_g = values(task.aux.trainable_weights)
    metrics = gan.g_step(LABELS, tf.constant([2, 0], tf.int64))
    del task.perturbations  # the class's method again
    return gan, calls, before_d, before_g, {k: float(v) for k, v in metrics.items()}


def test_two_distinct_eps_per_step_repeated_along_g_batch_twice_ds(ltgan):
    gan, calls, _, _, _ = ltgan
    task = lt_task(gan)
    (d_eps, d_which), (g_eps, g_which) = calls
    assert gan.g_global_batch == 2 * gan.global_batch == 16
    assert d_eps.shape == (8, 16) and g_eps.shape == (16, 16)  # D's batch 8, G's batch 16
    for eps, which in calls:
        distinct = np.unique(eps, axis=0)
        assert len(distinct) == 2 and not np.allclose(distinct[0], distinct[1])
        np.testing.assert_array_equal(which, np.arange(len(which)) % 2)  # half the rows each
        np.testing.assert_array_equal(eps[which == 0], np.repeat(eps[:1], len(eps) // 2, 0))
    assert not np.allclose(d_eps[:2], g_eps[:2])  # a fresh pair of eps per step
    many = task.perturbations(tf.constant([9, 9], tf.int64), 16, 4096)[0].numpy()
    np.testing.assert_allclose(many[:2].std(), task.eps_std, rtol=0.05)


def test_pairs_by_a_random_permutation_with_balanced_labels_in_expectation(ltgan):
    task = lt_task(ltgan[0])
    which = tf.range(16) % 2
    fractions = []
    for i in range(400):
        permutation, labels = task.pairing(tf.constant([i, 1], tf.int64), which, 16)
        permutation, labels = permutation.numpy(), labels.numpy()
        assert sorted(permutation) == list(range(16))
        np.testing.assert_array_equal(labels, which.numpy() == which.numpy()[permutation])
        fractions.append(labels.mean())
    # P(same eps) = 1/2 exactly (8 of the 16 candidate partners share eps, fixed points included);
    # the mean of 400 x 16 labels has standard deviation ~ 0.01
    assert abs(np.mean(fractions) - 0.5) < 0.04
    assert len(set(fractions)) > 3  # a random permutation, not a fixed half/half construction


def test_aux_net_has_its_own_default_adam_updated_with_g(ltgan):
    gan, _, before_d, before, metrics = ltgan
    task = lt_task(gan)
    optimizer = task.optimizer
    assert optimizer not in (gan.g_optimizer, gan.d_optimizer)
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.999, 1e-7)
    ids = lambda vs: {id(v) for v in vs}  # noqa: E731
    assert not ids(task.aux.weights) & (ids(gan.g_variables) | ids(gan.d_variables))
    assert len(task.aux.trainable_weights) == 4 and not task.aux.non_trainable_weights  # no private counter
    assert all(np.array_equal(a, b) for a, b in zip(before, before_d))  # D's step leaves A alone
    assert first_adam_step_size(task, before) == pytest.approx(1e-3, rel=0.05)
    assert int(optimizer.iterations.numpy()) == 1 and int(gan.g_optimizer.iterations.numpy()) == 1
    np.testing.assert_allclose(metrics["g_loss"], metrics["g_adversarial_loss"] + metrics["lt_loss"], rtol=1e-5)
    assert "latent_transformation_aux_adam" in gan.trackables()


def first_adam_step_size(task, before):
    """The largest weight change of A (Adam's first step moves a weight by ~lr * sign(grad))."""
    return max(np.abs(a - b).max() for a, b in zip(values(task.aux.trainable_weights), before))


def test_aux_adam_settings_are_gin_parameters():
    gan = build_smoke_gan("gin/cifar10/ltgan.gin", ["LatentTransformationTask.aux_lr = 0.01",
                                                    "LatentTransformationTask.aux_beta1 = 0.5",
                                                    "LatentTransformationTask.warmup_steps = 0"])
    task = lt_task(gan)
    assert float(task.optimizer.learning_rate) == pytest.approx(0.01) and task.optimizer.beta_1 == 0.5
    before = values(task.aux.trainable_weights)
    gan.g_step(LABELS, tf.constant([2, 0], tf.int64))
    assert first_adam_step_size(task, before) == pytest.approx(0.01, rel=0.05)  # G's lr is 1e-3


def test_warmup_is_read_from_the_step_context():
    gan = build_smoke_gan("gin/cifar10/ltgan.gin", ["LatentTransformationTask.warmup_steps = 7"])
    task = lt_task(gan)
    before = values(task.aux.trainable_weights)
    gan.step.assign(6)
    d, g = gan.d_step(REAL, LABELS, tf.constant([1, 0], tf.int64)), gan.g_step(LABELS, tf.constant([2, 0], tf.int64))
    assert float(d["lt_active"]) == float(g["lt_active"]) == 0.0
    np.testing.assert_allclose(float(g["g_loss"]), float(g["g_adversarial_loss"]), rtol=1e-6)
    assert all(np.array_equal(a, b) for a, b in zip(values(task.aux.trainable_weights), before))
    assert int(task.optimizer.iterations.numpy()) == 0  # A's Adam has not started
    gan.step.assign(7)
    d, g = gan.d_step(REAL, LABELS, tf.constant([1, 1], tf.int64)), gan.g_step(LABELS, tf.constant([2, 1], tf.int64))
    assert float(d["lt_active"]) == float(g["lt_active"]) == 1.0
    np.testing.assert_allclose(float(d["d_loss"]), float(d["d_adversarial_loss"]) + float(d["lt_d_fake_gap"]),
                               rtol=1e-5)
    assert int(task.optimizer.iterations.numpy()) == 1  # Adam's step 1 at the warm-up's end


def _run(gan, steps):
    for step in steps:
        gan.step.assign(step)
        gan.d_step(REAL, LABELS, tf.constant([1, step], tf.int64))
        gan.g_step(LABELS, tf.constant([2, step], tf.int64))
    gan.step.assign(steps[-1] + 1)


def test_resume_mid_warmup_equals_an_uninterrupted_run(tmp_path):
    params = ["LatentTransformationTask.warmup_steps = 1"]
    whole = build_smoke_gan("gin/cifar10/ltgan.gin", params)
    _run(whole, [0, 1, 2])
    first = build_smoke_gan("gin/cifar10/ltgan.gin", params)
    _run(first, [0])  # stop inside the warm-up
    path = tf.train.Checkpoint(step=first.step, **first.trackables()).save(str(tmp_path / "ckpt"))
    resumed = build_smoke_gan("gin/cifar10/ltgan.gin", params)
    for layer in (resumed.generator, lt_task(resumed).aux):  # the restore must overwrite these
        layer.set_weights([w + 1.0 for w in layer.get_weights()])
    tf.train.Checkpoint(step=resumed.step, **resumed.trackables()).restore(path).assert_existing_objects_matched()
    assert int(resumed.step.numpy()) == 1
    _run(resumed, [1, 2])
    a, b = lt_task(whole), lt_task(resumed)
    assert int(a.optimizer.iterations.numpy()) == int(b.optimizer.iterations.numpy()) == 2  # steps 1, 2
    for x, y in zip(values(a.aux.weights + a.optimizer.variables + whole.generator.weights),
                    values(b.aux.weights + b.optimizer.variables + resumed.generator.weights)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_feature_layer_per_architecture(ltgan):
    # SNDCGAN: the 5th of D's 8 layers (7 conv + activation blocks, then the linear), average-pooled
    gan = ltgan[0]
    d = gan.discriminator
    assert len(d.blocks) == 7 and d.blocks[4].name == "block4"
    outputs = d.block_outputs(REAL)
    assert outputs[4].shape[1:3] == (8, 8)
    expected = tf.nn.avg_pool2d(outputs[4], 2, 2, "VALID").numpy().reshape(8, -1)
    np.testing.assert_allclose(lt_task(gan).features(d, REAL).numpy(), expected, rtol=1e-5, atol=1e-6)
    # BigGAN: the last layer before sum pooling: summing the feature map over space gives D's
    # pooled features, the input of its linear
    gan = build_smoke_gan("gin/cifar10/biggan_lt.gin")
    d, task = gan.discriminator, lt_task(gan)
    feature_map = task.features(d, REAL).numpy().reshape(d.block_outputs(REAL)[-1].shape)
    _, pooled = d(REAL, LABELS)
    np.testing.assert_allclose(feature_map.sum((1, 2)), pooled.numpy(), rtol=1e-4, atol=1e-4)
    assert (feature_map >= 0).all()


@pytest.mark.parametrize("row", ["sndcgan", "crgan", *LT_ROWS])
def test_lt_paper_rows_protocol(row):
    (_, tasks, _, _, multiplier), opts, _ = parsed(row)
    lt = [t for t in tasks if isinstance(t, latent_transformation.LatentTransformationTask)]
    assert opts.training_steps == 200_000  # LT-GAN section 4.1, CIFAR-10
    assert multiplier == (2 if lt else 1)  # G's batch twice D's for LT-GAN only (supplement 9)
    if lt:
        assert (lt[0].aux_settings["learning_rate"], lt[0].aux_settings["beta_1"],
                lt[0].aux_settings["beta_2"]) == (1e-3, 0.9, 0.999)
    if row.startswith("biggan"):
        return
    assert (opts.batch_size, opts.disc_iters, opts.g_lr, opts.d_lr, opts.beta1, opts.beta2) == (
        64, 1, 2e-4, 2e-4, 0.5, 0.999)
    if lt:
        assert (lt[0].feature_block, lt[0].feature_pool_size) == (4, 2)


@pytest.mark.parametrize("row", ["biggan", "biggan_lt", "biggan_cr_lt"])
def test_biggan_rows_follow_biggan_pytorch_cifar_script(row):
    (_, _, _, conditional, _), opts, (hierarchical, shared_dim, attention, init) = parsed(row)
    assert conditional
    assert (opts.batch_size, opts.disc_iters, opts.g_lr, opts.d_lr, opts.beta1, opts.beta2) == (
        50, 4, 2e-4, 2e-4, 0.0, 0.999)
    assert (opts.ema_decay, opts.ema_start_step) == (0.9999, 1000)
    assert (hierarchical, shared_dim, attention, init) == (False, 0, 0, "N02")
    assert gin.query_parameter("architecture.name") == "biggan"


def test_biggan_cifar_networks_n02_no_shared_embedding_no_attention():
    gan = build_smoke_gan("gin/cifar10/biggan.gin")
    g, d = gan.generator, gan.discriminator
    assert g.shared is None and not g.attention and not g.split
    kernels = [w.numpy() for w in d.trainable_weights if "kernel" in w.path and w.numpy().size > 500]
    stds = [k.std() for k in kernels]
    assert kernels and all(0.017 < s < 0.023 for s in stds), stds
    # per-layer class tables for cBN's gamma and beta (BigGAN-PyTorch without --G_shared)
    norm = g.blocks[0].norm1
    assert norm.condition == "labels" and tuple(norm.gamma.kernel.shape)[0] == 10


def test_ema_copies_g_until_its_start_step():
    gin.clear_config()
    cli.parse_gin([os.path.join(REPO, "gin/cifar10/sndcgan.gin"), os.path.join(REPO, "gin/presets/smoke.gin")], [])
    from compare_ssgan import architectures
    gan = model_lib.GANModel(architectures.architecture(), (32, 32, 3), 10, global_batch=8, num_replicas=1,
                             g_lr=1e-2, d_lr=1e-2, beta1=0.0, beta2=0.9, ema_decay=0.5, ema_start_step=2)
    trainable = [i for i, w in enumerate(gan.generator.weights) if w.trainable]
    for step, copies in ((1, True), (2, False)):
        gan.step.assign(step)
        gan.g_step(tf.zeros([8], tf.int32), tf.constant([3, step], tf.int64))
        gan.update_ema()
        g, ema = gan.generator.weights, gan.ema_generator.weights
        same = all(np.array_equal(g[i].numpy(), ema[i].numpy()) for i in trainable)
        assert same == copies, step
