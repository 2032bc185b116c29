"""Linear probes of D's blocks (compare_ssgan/eval/probes.py): the classifier recovers a known
answer, eval_after_train (with probe.enabled) probes every checkpoint and block, --schedule=probe
resumes without redoing work, bad settings are refused."""
import os

import gin
import numpy as np
import pytest

from compare_ssgan import distribute, runner
from compare_ssgan import main as cli
from compare_ssgan.errors import UserError
from compare_ssgan.eval import probes
from run_helpers import REPO
from tiny_cifar import tiny_cifar10_folder


def _clusters(rng, n, informative):
    labels = rng.integers(0, 10, n)
    noise = rng.normal(size=(n, 32))
    if not informative:
        return noise, labels
    centres = np.random.default_rng(123).normal(size=(10, 32)) * 3.0
    return centres[labels] + noise, labels


@pytest.mark.parametrize("informative", [True, False])
def test_probe_recovers_label_information(informative):
    rng = np.random.default_rng(0)
    train_x, train_y = _clusters(rng, 800, informative)
    test_x, test_y = _clusters(rng, 400, informative)
    result = probes.fit_probe(train_x, train_y, test_x, test_y,
                              probes.probe_options(inverse_regularization=(0.01, 1.0), blas_threads=1))
    assert result["converged"]
    if informative:  # features that encode the label: ~100 %
        assert result["test_top1"] > 0.97 and result["train_top1"] > 0.97
    else:  # random features: chance (10 %), however well the train set is fit
        assert result["test_top1"] < 0.17
    assert set(result["validation_top1"]) == {"0.01", "1"}


@pytest.mark.parametrize("params, message", [
    ({"pooled_size": 0}, "probe.pooled_size"),
    ({"num_train_examples": -5}, "probe.num_train_examples"),
    ({"inverse_regularization": (1.0, -1.0)}, "inverse_regularization"),
    ({"solver": "adam"}, "unknown probe.solver"),
    ({"inverse_regularization": (0.1, 1.0), "validation_fraction": 1.0}, "validation_fraction"),
    ({"steps": (500, -1)}, "probe.steps"),
])
def test_bad_settings_are_refused(params, message):
    with pytest.raises(UserError, match=message):
        probes.probe_options(**params)


def test_one_class_cannot_be_probed():
    with pytest.raises(UserError, match="two or more"):
        probes.fit_probe(np.ones((4, 3)), np.zeros(4, int), np.ones((2, 3)), np.zeros(2, int),
                         probes.probe_options())


def test_pooling_follows_zhang_et_al_or_a_fixed_grid():
    zhang = probes.probe_options()  # <= 10,000 dims by equal kernel and stride
    assert probes.pooled_grid(16, 16, 128, zhang) == (8, 8)  # 32,768 -> 8,192
    assert probes.pooled_grid(8, 8, 128, zhang) == (8, 8)
    assert probes.pooled_grid(4, 4, 1024, zhang) == (2, 2)
    assert probes.pooled_grid(16, 16, 32, probes.probe_options(pooled_size=4)) == (4, 4)
    maps = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    pooled = probes.pool(maps, (2, 2)).numpy().reshape(2, 2, 2, 3)
    np.testing.assert_allclose(pooled[0, 0, 0], maps[0, :2, :2].mean(axis=(0, 1)))


def _parse(folder, *params):
    gin.clear_config()
    cli.parse_gin([os.path.join(REPO, "gin/cifar10/uncond.gin"), os.path.join(REPO, "gin/presets/smoke.gin")],
                  [f"dataset.image_folder='{folder}'", "probe.num_train_examples=60",
                   "probe.num_test_examples=40", "probe.inverse_regularization=0.1", "probe.blas_threads=1", *params])
    return distribute.make_strategy()


def test_probes_after_training_and_resume(tmp_path, monkeypatch):
    folder = tiny_cifar10_folder(tmp_path / "cifar", train_per_class=8, test_per_class=4)
    monkeypatch.setenv("COMPARE_SSGAN_CACHE", str(tmp_path / "cache"))
    model_dir = str(tmp_path / "run")
    try:
        with pytest.raises(UserError, match="no checkpoints to probe"):
            runner.run(model_dir, "probe", _parse(folder))
        # smoke: checkpoints at steps 2 and 4, scored, then probed (probe.enabled)
        runner.run(model_dir, "eval_after_train", _parse(
            folder, "probe.enabled=True", "evaluation.num_samples=40", "evaluation.num_fake_sets=1",
            "evaluation.inception_score_splits=2"))
        assert os.path.exists(os.path.join(model_dir, "scores.jsonl"))
        records = probes.read_probes(model_dir)
        assert sorted((r["step"], r["block"]) for r in records) == [(s, b) for s in (2, 4) for b in range(4)]
        for r in records:
            assert 0.0 <= r["test_top1"] <= 1.0 and r["num_train"] == 60 and r["num_test"] == 40
            assert r["model"] == "uncond" and "git_commit" in r["code_version"]
            assert r["probe"]["inverse_regularization"] == [0.1] and r["converged"]
            assert r["d_rotation_accuracy"] is None  # no rotation task
        # smoke width 0.0625: 8 channels; block 0 is 16x16x8 = 2,048 dims (< 10,000: not pooled)
        assert records[0]["feature_shape"] == [16, 16, 8] and records[0]["feature_dim"] == 2048
        assert len(os.listdir(os.path.join(model_dir, probes.FEATURES_SUBDIR))) == 2

        # A crash after step 4's first block: the rerun fits the other three from the cached
        # features (restoring nothing, computing no features) and leaves step 2 alone.
        path = os.path.join(model_dir, probes.PROBES_FILE)
        with open(path) as f:
            lines = f.readlines()
        with open(path, "w") as f:
            f.writelines(lines[:5])
        monkeypatch.setattr(probes, "block_features", lambda *a: pytest.fail("features recomputed"))
        runner.run(model_dir, "probe", _parse(folder))
        again = probes.read_probes(model_dir)
        assert again[:5] == records[:5]
        assert sorted((r["step"], r["block"]) for r in again) == sorted((r["step"], r["block"]) for r in records)
        runner.run(model_dir, "probe", _parse(folder))  # all done: nothing is written
        assert len(probes.read_probes(model_dir)) == 8
    finally:
        gin.clear_config()


def test_rotation_accuracy_is_the_heads_on_all_four_rotations():
    """The probe's D rotation accuracy: the head's argmax on each image rotated by 0, 90, 180,
    270 degrees, in inference mode, over every batch; None for a model without the task."""
    import tensorflow as tf

    from run_helpers import build_smoke_gan

    images = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    opts = probes.probe_options(batch_size=4)  # batches of 4, 4, 2
    gan = build_smoke_gan("gin/cifar10/ssgan.gin")
    [task] = gan.tasks
    x = tf.constant(images, tf.float32) / 127.5 - 1.0
    hits = []
    for k in range(4):
        _, features = gan.discriminator(tf.image.rot90(x, k), training=False)
        hits.append(np.argmax(task.head(features, training=False).numpy(), -1) == k)
    assert probes.rotation_accuracy(gan, images, opts) == pytest.approx(np.mean(hits))
    assert probes.rotation_accuracy(build_smoke_gan("gin/cifar10/uncond.gin"), images, opts) is None
