"""Evaluation: scores.jsonl from eval_after_train / continuous_eval through the real CLI, the
collapsed / diverged flags, the scores file and the real-activation cache."""
import json
import math
import os
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf

from compare_ssgan import datasets, environment, main, provenance, training
from compare_ssgan.errors import UserError
from compare_ssgan.eval import evaluator, feature_networks, options, real_cache, schedules, scores
from run_helpers import CIFAR10_TAR, REPO, run_cli, smoke_args
from test_feature_networks import StandInInception


HYPERPARAMETERS = ("model", "architecture", "loss", "penalty", "lambda", "beta1", "beta2",
                   "disc_iters", "seed", "dataset")


def _no_nan(text):
    raise AssertionError(f"JSON must not contain {text}")


def load_lines(model_dir):
    """scores.jsonl as a list of dicts; fails on NaN/Infinity or a malformed line."""
    with open(os.path.join(model_dir, scores.SCORES_FILE), encoding="utf-8") as f:
        text = f.read()
    assert text.endswith("\n")
    return [json.loads(line, parse_constant=_no_nan) for line in text.splitlines()]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private cache for real activations, over the already-extracted CIFAR-10 folder."""
    folder = datasets.Dataset(name="cifar10", image_folder=CIFAR10_TAR).image_folder
    cache = str(tmp_path_factory.mktemp("cache"))
    return {"COMPARE_SSGAN_CACHE": cache}, f"dataset.image_folder='{folder}'"


def check_record(record, step, network="cifar10_classifier"):
    assert record["step"] == step and record["status"] == "ok"
    assert record["checkpoint"] == f"ckpt-{step}"
    for name in ("fid", "kid", "inception_score"):
        assert isinstance(record[name], float) and math.isfinite(record[name])
    assert record["fid"] > 0 and record["inception_score"] >= 1.0
    assert record["feature_network"]["name"] == network
    assert record["feature_network"]["source"]
    assert record["real_split"] == "test" and record["eval_seed"] == 0
    for key in HYPERPARAMETERS:
        assert key in record, key
    assert record["dataset"] == "cifar10" and record["architecture"] == "resnet_cifar"


def test_eval_after_train_writes_each_checkpoint_once(tmp_path, env):
    extra_env, folder = env
    model_dir = str(tmp_path / "run")
    # Relative, as in the README's main job (`--model_dir=runs/ssgan_mini`).
    args = smoke_args(os.path.relpath(model_dir, REPO), "cifar10/ssgan.gin", params=[folder],
                      schedule="eval_after_train")
    result = run_cli(args, env={**extra_env, "TF_NUM_INTRAOP_THREADS": "1", "TF_ENABLE_ONEDNN_OPTS": "0"})
    records = load_lines(model_dir)
    assert [r["step"] for r in records] == [2, 4]
    # Where it trained (compare_ssgan/environment.py), read after training though described before.
    trained_on = [f"CPU x{os.cpu_count()} cores ({environment.cpu_model()}), 1 thread, oneDNN off, tf {tf.__version__}"]
    assert [r["training_environment"] for r in records] == [trained_on, trained_on]
    for record, step in zip(records, (2, 4)):
        check_record(record, step)
        assert record["fid_label"] == "FID (CIFAR-10 classifier)"
        assert record["feature_network"]["note"] == "not Inception: not comparable to papers' FID"
        assert record["num_samples"] == record["num_real_samples"] == 128
        assert record["num_fake_sets"] == 2 and len(record["per_set"]) == 2
        assert record["fid_std"] is not None and record["fid_std"] >= 0
        assert record["kid_std"] is not None  # std over the 2 sets
        assert record["per_set"][0]["kid_block_std"] is None  # one KID block: undefined, not NaN
        assert record["model"] == "ssgan" and record["loss"] == "hinge" and record["penalty"] == "no_penalty"
        assert record["beta1"] == 0.0 and record["beta2"] == 0.9 and record["disc_iters"] == 1
        assert "evaluation.num_samples = 128" in record["gin_config"]
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
        assert record["code_version"]["git_commit"] == head.strip()  # the commit that produced it
    assert records[0]["per_set"][0]["fid"] != records[1]["per_set"][0]["fid"]  # other weights
    assert f"Code: {provenance.describe_short()}" in result.stderr
    assert "FID (CIFAR-10 classifier)" in result.stderr  # the log line names the network
    # Again: training is done and both steps are scored, so nothing is appended.
    run_cli(args, env=extra_env)
    assert load_lines(model_dir) == records


def test_divergence_before_the_first_checkpoint_is_recorded(tmp_path, env):
    """A run that dies on a NaN loss before any checkpoint still leaves a record, so a
    robustness table counts it as diverged instead of silently missing a seed."""
    extra_env, folder = env
    model_dir = str(tmp_path / "run")
    args = smoke_args(model_dir, "cifar10/uncond.gin", schedule="eval_after_train",
                      params=[folder, "penalty.fn=@wgan_gp", "penalty.weight=1e39"])  # inf D loss at step 1
    result = run_cli(args, env=extra_env, check=False)
    assert result.returncode == 2 and "non-finite loss at generator step 1" in result.stderr
    [record] = load_lines(model_dir)
    assert record["step"] == 1 and record["status"] == "diverged" and record["checkpoint"] is None
    assert record["fid"] is None and record["training_steps"] == 4
    assert "non-finite loss" in record["reason"] and record["feature_network"]["name"] == "cifar10_classifier"
    # A retry starts over (no checkpoint): the earlier attempt's record is set aside, not mixed in.
    run_cli(args, env=extra_env, check=False)
    [again] = load_lines(model_dir)
    assert again["step"] == 1 and again["status"] == "diverged"
    [aside] = [name for name in os.listdir(model_dir) if name.startswith("scores.jsonl.before-restart-")]
    with open(os.path.join(model_dir, aside)) as f:
        assert [json.loads(line) for line in f] == [record]
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import make_tables

    assert [state for state, _ in make_tables.outcomes([record]).values()] == ["diverged"]
    assert "— (1 diverged)" in make_tables.robustness_table([record], "markdown")


def test_continuous_eval_scores_each_checkpoint_once_while_training(tmp_path, env):
    """continuous_eval starts first and waits; training runs concurrently in another process.
    The stand-in Inception SavedModel is the feature network, loaded from a local directory."""
    extra_env, folder = env
    inception_dir = str(tmp_path / "inception")
    tf.saved_model.save(StandInInception(), inception_dir)
    model_dir = str(tmp_path / "run")
    eval_params = [folder, "evaluation.feature_network='inception'", f"inception.path='{inception_dir}'",
                   "evaluation.num_samples=64", "evaluation.num_fake_sets=1",
                   "continuous_eval.timeout_secs=240"]
    eval_args = smoke_args(model_dir, "cifar10/uncond.gin", params=eval_params, schedule="continuous_eval")
    evaluation = subprocess.Popen([sys.executable, "-m", "compare_ssgan.main", *eval_args], cwd=REPO,
                                  env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra_env),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_cli(smoke_args(model_dir, "cifar10/uncond.gin", params=[folder]), env=extra_env)
        _, stderr = evaluation.communicate(timeout=280)
    finally:
        if evaluation.poll() is None:
            evaluation.kill()
            evaluation.communicate()
    assert evaluation.returncode == 0, stderr[-4000:]
    records = load_lines(model_dir)
    assert [r["step"] for r in records] == [2, 4]
    for record, step in zip(records, (2, 4)):
        check_record(record, step, network="inception")
        assert record["fid_label"] == "FID (Inception)"
        assert record["feature_network"]["source"].startswith(f"saved_model:{os.path.abspath(inception_dir)} sha256:")
        assert record["model"] == "uncond" and record["num_samples"] == 64
        assert record["fid_std"] is None and record["kid_std"] is None  # one set: undefined
    assert "continuous evaluation done" in stderr


def _smoke_trainer(model_dir, image_folder, *params):
    main.parse_gin([os.path.join(REPO, "gin/cifar10/ssgan.gin"), os.path.join(REPO, "gin/presets/smoke.gin")],
                   [image_folder, *params])
    return training.Trainer(model_dir, tf.distribute.get_strategy())


def test_collapsed_and_diverged_generators_are_recorded(tmp_path, env, clean_gin, monkeypatch):
    extra_env, folder = env
    for key, value in extra_env.items():
        monkeypatch.setenv(key, value)
    model_dir = str(tmp_path / "run")
    trainer = _smoke_trainer(model_dir, folder)
    scorer = evaluator.Evaluator(evaluator.Run.from_trainer(trainer))
    # Fixed seeds: scoring one checkpoint twice gives the same numbers.
    trainer.save(0)
    first, second = (scorer.evaluate(os.path.join(model_dir, "checkpoints", "ckpt-0")) for _ in range(2))
    assert first["status"] == "ok"
    assert scores.json_safe(first["per_set"]) == scores.json_safe(second["per_set"])  # nan -> None
    assert first["per_set"][0]["fid"] != first["per_set"][1]["fid"]  # different latents per set
    assert scores.append_score(model_dir, first)
    generator = trainer.gan.sampling_generator
    for step, value in ((1, 0.0), (2, float("nan"))):
        # All-zero weights: every sample is the same image; NaN weights: NaN samples.
        for weight in generator.weights:
            weight.assign(tf.fill(weight.shape, tf.constant(value, weight.dtype)))
        trainer.step.assign(step)
        trainer.save(step)
        assert scorer.evaluate_pending() == [step]
    _, collapsed, diverged = load_lines(model_dir)
    assert collapsed["status"] == "collapsed"
    assert all(s["status"] == "collapsed" for s in collapsed["per_set"])
    assert collapsed["fid"] > 0 and math.isfinite(collapsed["fid"])  # valid, and bad
    assert collapsed["inception_score"] == pytest.approx(1.0)  # one image: no diversity
    assert diverged["status"] == "diverged"
    for name in ("fid", "fid_std", "kid", "kid_std", "inception_score", "inception_score_std"):
        assert diverged[name] is None
    assert scorer.evaluate_pending() == []  # already scored: nothing new


def test_checkpoint_holds_every_sampling_generator_variable(tmp_path, env, clean_gin):
    _, folder = env
    trainer = _smoke_trainer(str(tmp_path / "run"), folder)
    # Keras 3 layers in Python lists are invisible to tf.train.Checkpoint unless listed
    # explicitly: BN moving statistics and SN vectors must be saved too.
    assert evaluator.untracked_variables(trainer.checkpoint, trainer.gan.sampling_generator) == []
    assert evaluator.untracked_variables(trainer.checkpoint, trainer.gan.discriminator) == []
    names = [w.path for w in trainer.gan.generator.weights + trainer.gan.discriminator.weights]
    assert any("moving_mean" in n for n in names) and any("sn_u" in n for n in names)


def test_continuous_eval_times_out_without_checkpoints(tmp_path, env, clean_gin, monkeypatch):
    extra_env, folder = env
    for key, value in extra_env.items():
        monkeypatch.setenv(key, value)
    trainer = _smoke_trainer(str(tmp_path / "run"), folder)
    with pytest.raises(UserError, match="without a new checkpoint"):
        schedules.continuous_eval(trainer, timeout_secs=0.5, poll_secs=0.1)


def test_evaluation_config_errors(clean_gin):
    gin.bind_parameter("evaluation.feature_network", "fid_net")
    with pytest.raises(UserError, match="valid names: cifar10_classifier, inception"):
        options.evaluation_options()
    gin.bind_parameter("evaluation.feature_network", "cifar10_classifier")
    gin.bind_parameter("evaluation.num_samples", 10)
    with pytest.raises(UserError, match="too small"):
        options.evaluation_options()


def test_unknown_evaluation_binding_is_a_user_error(tmp_path):
    result = run_cli(smoke_args(str(tmp_path / "run"), "cifar10/ssgan.gin",
                                params=["evaluation.num_sample=10"], schedule="eval_after_train"),
                     check=False)
    assert result.returncode == 2
    assert "num_sample" in result.stderr and "Traceback" not in result.stderr


# -- the scores file and the cache (no TensorFlow models) -----------------------------------------

def _record(step, seed=0, fid=1.0):
    return {"step": step, "fid": fid, "kid_std": float("nan"), "eval_seed": seed, "num_samples": 10,
            "num_fake_sets": 1, "real_split": "test",
            "feature_network": {"name": "cifar10_classifier", "source": "x"}}


def test_append_score_is_one_line_per_key_without_nan(tmp_path):
    model_dir = str(tmp_path)
    assert scores.append_score(model_dir, _record(2))
    assert not scores.append_score(model_dir, _record(2, fid=5.0))  # same key: not duplicated
    assert scores.append_score(model_dir, _record(2, seed=1))  # another eval seed
    assert scores.append_score(model_dir, _record(4))
    lines = load_lines(model_dir)
    assert [(r["step"], r["eval_seed"]) for r in lines] == [(2, 0), (2, 1), (4, 0)]
    assert lines[0]["kid_std"] is None and lines[0]["fid"] == 1.0
    with open(os.path.join(model_dir, scores.SCORES_FILE), "a") as f:
        f.write('{"step": 6, "fid"')  # a torn line (e.g. a full disk) is skipped when reading
    assert [r["step"] for r in scores.read_scores(model_dir)] == [2, 2, 4]


def test_random_subset_is_uniform_and_independent_of_batching():
    rows = np.arange(1000)
    whole, total = real_cache.random_subset([rows], 100, seed=3)
    batched, _ = real_cache.random_subset(np.array_split(rows, 37), 100, seed=3)
    assert total == 1000 and len(whole) == 100 and len(set(whole)) == 100
    np.testing.assert_array_equal(whole, batched)
    assert whole.max() > 500 and not np.all(np.diff(whole) > 0)  # spread out and shuffled
    counts = np.zeros(10)
    for seed in range(200):
        counts += np.bincount(real_cache.random_subset([rows], 100, seed)[0] // 100, minlength=10)
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()


class _CountingNetwork(feature_networks.FeatureNetwork):
    info = feature_networks.NetworkInfo("counting", "FID (counting)", "test", "")

    def __init__(self):
        self.calls = 0

    def _run(self, images):
        self.calls += 1
        flat = tf.reshape(images, [tf.shape(images)[0], -1])
        return flat[:, :8], flat[:, 8:18]


def _tiny_folder(root):
    for split, count in (("train", 2), ("test", 3)):
        for name in datasets.KNOWN["cifar10"].class_names:
            os.makedirs(os.path.join(root, split, name))
            for i in range(count):
                pixels = np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8)
                tf.io.write_file(os.path.join(root, split, name, f"{i}.png"), tf.io.encode_png(pixels))
    return root


def test_real_activations_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPARE_SSGAN_CACHE", str(tmp_path / "cache"))
    data = datasets.Dataset(name="cifar10", image_folder=_tiny_folder(str(tmp_path / "folder")))
    network = _CountingNetwork()
    features, logits = real_cache.real_activations(data, "test", network, 20)
    assert features.shape == (20, 8) and logits.shape == (20, 10) and network.calls == 1
    again = real_cache.real_activations(data, "test", network, 20)
    assert network.calls == 1  # from the cache
    np.testing.assert_array_equal(again[0], features)
    cached = os.listdir(tmp_path / "cache" / "real_activations")
    assert len(cached) == 1 and cached[0].startswith("cifar10-test-counting-20-")
    real_cache.real_activations(data, "train", network, 20)  # another split: computed
    assert network.calls == 2
    with pytest.raises(UserError, match="has 30 images, fewer than evaluation.num_samples=31"):
        real_cache.real_activations(data, "test", network, 31)
