"""generate, export and evaluate: a run's generator at a checkpoint, as PNGs, as a SavedModel
that loads without this package, and scored like the training-time evaluator scores it."""
import dataclasses
import json
import os
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf

from compare_ssgan import architectures, cli, config_contract, datasets, export, generate, latents, results, trained, training
from compare_ssgan.errors import UserError
from compare_ssgan.eval import evaluator, scores
from compare_ssgan.evaluate import evaluate
from run_helpers import REPO

NUM_SAMPLES = 24  # >= 2 x the 10 Inception Score splits; <= the 30 test images of the tiny folder


def _png(path, seed, size=(32, 32)):
    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(pixels))


def _tiny_cifar10(root):
    """CIFAR-10's layout with 2 train and 3 test images per class (random pixels)."""
    for split, count in (("train", 2), ("test", 3)):
        for c, name in enumerate(datasets.KNOWN["cifar10"].class_names):
            for i in range(count):
                _png(os.path.join(root, split, name, f"{i}.png"), [c, i, split == "test"])
    return root


def _subprocess(args, env, cwd=REPO, timeout=240):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | env
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two trained smoke runs (2 steps): 'uncond' (scored by the training-time evaluator) and
    'cond_ema' (conditional, with an EMA generator), each exported as a SavedModel."""
    root = tmp_path_factory.mktemp("use_trained")
    env = {"COMPARE_SSGAN_CACHE": str(root / "cache"), "PYTHONPATH": REPO}
    folder = _tiny_cifar10(str(root / "cifar10"))
    paths = {"root": root, "folder": folder, "env": env}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COMPARE_SSGAN_CACHE", env["COMPARE_SSGAN_CACHE"])
        for name, gin_file, params in (("uncond", "uncond.gin", []), ("cond_ema", "cond.gin", ["options.ema_decay=0.9"])):
            model_dir = str(root / name)
            os.makedirs(model_dir)  # as runner.check_model_dir does
            gin.clear_config()
            cli.parse_gin([os.path.join(REPO, "gin/cifar10", gin_file), os.path.join(REPO, "gin/presets/smoke.gin")],
                          [f"dataset.image_folder='{folder}'", "options.training_steps=2", "options.save_every=1",
                           f"evaluation.num_samples={NUM_SAMPLES}", "evaluation.sample_batch_size=16", *params])
            trainer = training.Trainer(model_dir, tf.distribute.get_strategy())
            # As eval_after_train: the evaluator first, so the operative config has its options.
            scorer = evaluator.Evaluator(evaluator.Run.from_trainer(trainer)) if name == "uncond" else None
            trainer.train()
            if scorer:
                assert scorer.evaluate_pending() == [1, 2]
            paths[name] = model_dir
        # Loaded once for the tests that only read them (loading rebuilds the whole run).
        paths["loaded"] = {name: trained.load(paths[name]) for name in ("uncond", "cond_ema")}
        gin.clear_config()
        export.export(paths["loaded"]["cond_ema"], str(root / "cond_ema_saved"))
        paths["cond_ema_saved"] = str(root / "cond_ema_saved")
    paths["uncond_saved"] = str(root / "uncond_saved")  # through the command line
    _subprocess(["-m", "compare_ssgan.export", f"--model_dir={paths['uncond']}", f"--out={paths['uncond_saved']}"], env)
    yield paths
    gin.clear_config()


@pytest.fixture(autouse=True)
def clean_gin():
    yield
    gin.clear_config()  # trained.load leaves the run's config bound


@pytest.fixture
def cache(runs, monkeypatch):
    monkeypatch.setenv("COMPARE_SSGAN_CACHE", runs["env"]["COMPARE_SSGAN_CACHE"])


def test_saved_model_gives_the_in_package_images_without_the_package(runs, tmp_path):
    cases = []
    for name in ("uncond", "cond_ema"):
        run = runs["loaded"][name]
        z = latents.sample(run.arch, 6, seed=1).numpy()
        labels = np.array([0, 1, 2, 9, 9, 3], np.int32)
        expected = run.generate(z, labels).numpy()
        if name == "cond_ema":
            assert run.is_ema and run.conditional
            raw = run.trainer.gan.generator(z, labels, training=False).numpy()
            assert np.abs(raw - expected).max() > 1e-8  # the EMA weights differ from G's: exported is EMA
            other = run.generate(z, np.zeros(6, np.int32)).numpy()
            assert np.abs(other - expected).max() > 1e-8  # labels matter
        np.savez(tmp_path / f"{name}.npz", z=z, labels=labels, expected=expected)
        cases.append((runs[f"{name}_saved"], str(tmp_path / f"{name}.npz"), run.conditional))
        with open(os.path.join(runs[f"{name}_saved"], export.METADATA_FILE)) as f:
            meta = json.load(f)
        assert meta["step"] == 2 and meta["z_prior"] == "uniform" and meta["z_dim"] == 16
        assert meta["generator"] == ("ema_generator" if name == "cond_ema" else "generator")
        assert meta["conditional"] == (name == "cond_ema") and meta["model_dir"] == runs[name]
        assert "[-1, 1]" in meta["signature"]["outputs"]["images"] and "model.name" in meta["gin_config"]
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"for path, data, conditional in {cases!r}:\n"
        "    d = np.load(data)\n"
        "    fn = tf.saved_model.load(path).signatures['serving_default']\n"
        "    inputs = {'z': tf.constant(d['z'])}\n"
        "    if conditional: inputs['labels'] = tf.constant(d['labels'])\n"
        "    images = fn(**inputs)['images'].numpy()\n"
        "    assert images.dtype == np.float32 and images.shape == d['expected'].shape\n"
        "    np.testing.assert_allclose(images, d['expected'], atol=1e-5, rtol=0)\n"
        "assert 'compare_ssgan' not in sys.modules\n"
        "print('same images')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "same images" in result.stdout, result.stderr[-3000:]


def test_standing_statistics_replace_only_bn_statistics(runs):
    run = trained.load(runs["cond_ema"])
    generator = run.generator
    before = {w.path: w.numpy() for w in generator.weights}
    layers = trained.batch_norm_layers(generator)
    assert layers and all(layer.momentum == 0.9 for layer in layers)
    trained.standing_statistics(run, 3, batch_size=8, seed=5)
    after = {w.path: w.numpy() for w in generator.weights}
    moving = [p for p in before if "moving_" in p]
    assert len(moving) == 2 * len(layers)
    assert all(not np.array_equal(before[p], after[p]) for p in moving)
    assert all(np.array_equal(before[p], after[p]) for p in before if p not in moving)  # SN vectors too
    assert all(layer.momentum == 0.9 for layer in layers)
    assert all((after[p] > 0).all() for p in moving if "variance" in p)
    assert run.standing_statistics == {"batches": 3, "batch_size": 8, "seed": 5, "layers": len(layers)}


def test_generate_is_deterministic_per_seed(runs, tmp_path):
    run = runs["loaded"]["cond_ema"]
    labels = generate.parse_labels("cat,1", 5, run)
    np.testing.assert_array_equal(labels, [3, 1, 3, 1, 3])
    np.testing.assert_array_equal(generate.parse_labels(None, 12, run), np.arange(12) % 10)
    images = generate.sample(run, 5, seed=3, labels=labels)
    assert images.shape == (5, 32, 32, 3) and images.min() >= -1 and images.max() <= 1
    np.testing.assert_array_equal(images, generate.sample(run, 5, seed=3, labels=labels))
    # another seed, other images (a smoke G's N(0, 0.02) outputs vary by ~1e-5 only)
    assert np.abs(images - generate.sample(run, 5, seed=4, labels=labels)).max() > 1e-7
    paths = generate.write(images, str(tmp_path / "pngs"), 8)
    assert sorted(os.listdir(tmp_path / "pngs")) == [f"{i:06d}.png" for i in range(5)] == [os.path.basename(p) for p in paths]
    # Interpolation: 2 paths of 4 images whose ends are the latents drawn with the seed.
    path_images = generate.sample(run, 2, seed=3, labels=labels[:2], interpolate=4)
    ends = latents.sample(run.arch, 4, seed=3)
    np.testing.assert_allclose(path_images[[0, 3, 4, 7]],
                               run.generate(tf.gather(ends, [0, 2, 1, 3]), labels[[0, 0, 1, 1]]).numpy(), atol=1e-5)
    for prior in ("normal", "uniform"):
        config = dataclasses.replace(run.arch, z_prior=prior)
        z = latents.sample(config, 200, seed=0, truncation=0.5).numpy()
        assert np.abs(z).max() <= 0.5 and np.abs(z).max() > 0.45
    with pytest.raises(UserError, match="not a class of this run"):
        generate.parse_labels("cow", 5, run)
    with pytest.raises(UserError, match="unconditional"):
        generate.parse_labels("1", 5, runs["loaded"]["uncond"])
    with pytest.raises(UserError, match="no checkpoint at step 7; its checkpoints are at steps 1, 2"):
        trained.load(runs["uncond"], step=7)
    with pytest.raises(UserError, match="is not a training run"):
        trained.load(str(tmp_path))


def test_generate_command_writes_the_requested_count_quietly(runs, tmp_path):
    out = str(tmp_path / "images")
    result = _subprocess(["-m", "compare_ssgan.generate", f"--model_dir={runs['uncond']}", "--num=3",
                          f"--out={out}", "--seed=2"], runs["env"])
    assert sorted(os.listdir(out)) == ["000000.png", "000001.png", "000002.png", "generation.json"]
    with open(os.path.join(out, "generation.json")) as f:
        assert json.load(f)["seed"] == 2
    assert "Wrote 3 image(s)" in result.stderr
    for notice in ("cuInit", "absl::InitializeLog", "cudart_stub", "oneDNN"):
        assert notice not in result.stderr


def test_evaluate_matches_the_training_time_evaluator(runs, cache):
    [record] = [r for r in scores.read_scores(runs["uncond"]) if r["step"] == 2]
    again = evaluate(runs["uncond"], step=2)  # real: the run's own dataset and split
    assert again["fid_label"] == "FID (CIFAR-10 classifier)" and again["num_fake_sets"] == 2
    for name in ("fid", "fid_std", "kid", "inception_score"):
        assert again[name] == record[name], name
    assert again["real"]["source"] == record["dataset_source"] and again["real_split"] == "test"
    # The exported SavedModel of that checkpoint scores the same (to float tolerance).
    saved = evaluate(runs["uncond_saved"], real="cifar10", image_folder=runs["folder"],
                     feature_network="cifar10_classifier", num_samples=NUM_SAMPLES, num_fake_sets=2)
    assert saved["fake"]["kind"] == "saved_model" and saved["num_samples"] == NUM_SAMPLES
    assert saved["fid"] == pytest.approx(record["fid"], rel=1e-4)


def test_an_evaluator_needs_a_generator_and_a_run_description_not_a_trainer(runs, cache, tmp_path):
    """G rebuilt alone from the run's config, restored from the run's checkpoints by a
    checkpoint of its own: the same scores as the training-time evaluator's."""
    gin.clear_config()
    cli.parse_gin([os.path.join(runs["uncond"], config_contract.CONFIG_FILE)], [])
    arch = architectures.architecture()
    data = datasets.Dataset(name="cifar10", image_folder=runs["folder"])
    generator, _ = architectures.build(arch, data.image_shape, data.num_classes)
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(step=step, generator=generator, generator_variables=list(generator.weights))
    before = scores.read_scores(runs["uncond"])
    description = {name: before[0][name] for name in (*results.RUN_FIELDS, "seed")}
    run = evaluator.Run(str(tmp_path), os.path.join(runs["uncond"], training.CHECKPOINT_SUBDIR), data, generator,
                        arch, checkpoint, step, description)
    assert evaluator.Evaluator(run).evaluate_pending() == [1, 2]  # written to tmp_path
    for old, new in zip(before, scores.read_scores(str(tmp_path)), strict=True):
        assert new["step"] == old["step"] and new["warnings"] == [] and new["model"] == "uncond"
        for name in ("fid", "fid_std", "kid", "kid_std", "inception_score", "inception_score_std", "per_set"):
            assert new[name] == old[name], name
    assert new["fid"] != before[0]["fid"]  # step 2 was restored, not step 1 kept


def test_evaluate_folders(runs, cache, tmp_path):
    for i in range(24):
        _png(str(tmp_path / "a" / "sub" / f"{i}.png"), [7, i])
        _png(str(tmp_path / "b" / f"{i}.png"), [8, i], size=(40, 40))
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    same = evaluate(a, real=a, feature_network="cifar10_classifier")
    assert abs(same["fid"]) < 1e-6 and same["num_samples"] == same["num_real_samples"] == 24
    assert same["fake"]["preprocessing"].startswith("none: 32x32 images as stored")
    cached = os.listdir(os.path.join(os.environ["COMPARE_SSGAN_CACHE"], "real_activations"))
    assert any(name.startswith("folder-all-cifar10_classifier-24-") for name in cached)
    other = evaluate(b, real=a, feature_network="cifar10_classifier", image_size="32")
    assert other["fid"] > 1.0 and "resize to 32x32" in other["fake"]["preprocessing"]
    # Against a dataset split: as many real images as fakes.
    vs_data = evaluate(a, real="cifar10", image_folder=runs["folder"], feature_network="cifar10_classifier")
    assert vs_data["real"]["split"] == "test" and vs_data["num_real_samples"] == 24
    _png(str(tmp_path / "a" / "big.png"), [9], size=(64, 64))
    with pytest.raises(UserError, match=r"mixes image sizes: .*(32x32 .*64x64|64x64 .*32x32).*--image_size"):
        evaluate(a, real=b, feature_network="cifar10_classifier")
    os.makedirs(tmp_path / "empty" / "x")
    with pytest.raises(UserError, match="holds no PNG or JPEG images"):
        evaluate(str(tmp_path / "empty"), real=a, feature_network="cifar10_classifier")
    with open(tmp_path / "b" / "broken.png", "wb") as f:
        f.write(b"not a png")
    with pytest.raises(UserError, match="cannot read image .*broken.png"):
        evaluate(b, real=a, feature_network="cifar10_classifier", image_size="32")


def test_evaluate_command_prints_json_and_a_labelled_line(runs, tmp_path):
    folder = runs["folder"] + "/test"
    out = str(tmp_path / "scores.json")
    result = _subprocess(["-m", "compare_ssgan.evaluate", f"--fake={folder}", f"--real={folder}",
                          "--feature_network=cifar10_classifier", f"--json={out}"], runs["env"])
    with open(out) as f:
        record = json.load(f)
    assert abs(record["fid"]) < 1e-6 and record["fake"]["images"] == 30
    assert "ok | FID (CIFAR-10 classifier) 0.000 | KID (CIFAR-10 classifier)" in result.stderr
    assert "cuInit" not in result.stderr


def test_user_errors_end_in_one_line(capsys):
    def fails(argv):
        raise UserError("no such run")

    with pytest.raises(SystemExit) as exit_info:
        cli.exit_on_user_error(fails)([])
    assert exit_info.value.code == 2 and "error: no such run" in capsys.readouterr().err
