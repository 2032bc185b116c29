"""Faults injected on purpose (issue 13): no damage loses or falsifies a result.

Each test breaks something the way a crash, a full disk or a hand edit would (a bit flip, a
truncated file, a torn line, a replaced image folder, a changed config, a dead trainer) and
asserts what survives: nothing deleted, nothing merged, the right checkpoint restored, and one
`error:` line with exit code 2 where the run must stop.
"""
import glob
import json
import os
import shutil
import sys

import gin
import pytest
import tensorflow as tf

from compare_ssgan import checkpoints, config_contract, datasets, jsonl, main, results, training
from compare_ssgan.errors import UserError
from compare_ssgan.eval import real_cache, schedules, scores
from run_helpers import CIFAR10_TAR, REPO, assert_same_weights, run_cli, smoke_args


def _fails_with(args, *fragments, env=None):
    result = run_cli(args, check=False, env=env)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert sum(line.startswith("error:") for line in result.stderr.splitlines()) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def folder():
    return datasets.Dataset(name="cifar10", image_folder=CIFAR10_TAR).image_folder


@pytest.fixture(scope="module")
def trained(smoke_runs):
    """A smoke uncond run with ckpt-2 and ckpt-4, shared by the session (copy it before damaging it)."""
    return smoke_runs.get("cifar10/uncond.gin")[0]


def _copy(trained, tmp_path):
    model_dir = str(tmp_path / "run")
    shutil.copytree(trained, model_dir)
    return model_dir, os.path.join(model_dir, "checkpoints")


def _trainer(model_dir, folder, gin_file="cifar10/uncond.gin", params=()):
    gin.clear_config()
    main.parse_gin([os.path.join(REPO, "gin", gin_file), os.path.join(REPO, "gin/presets/smoke.gin")],
                   [f"dataset.image_folder='{folder}'", *params])
    os.makedirs(model_dir, exist_ok=True)  # as runner.check_model_dir does
    return training.Trainer(model_dir, tf.distribute.get_strategy())


def _files(directory):
    return sorted(os.path.relpath(p, directory) for p in glob.glob(os.path.join(directory, "**"), recursive=True)
                  if os.path.isfile(p))


# -- 1. a damaged checkpoint: fall back to the newest intact one, keep the damaged files -------

def _flip_a_bit(ckpt_dir):
    [data] = glob.glob(os.path.join(ckpt_dir, "ckpt-4.data-*"))
    with open(data, "r+b") as f:
        f.seek(os.path.getsize(data) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x10]))


def _truncate(ckpt_dir):
    [data] = glob.glob(os.path.join(ckpt_dir, "ckpt-4.data-*"))
    os.truncate(data, os.path.getsize(data) // 3)


def _delete_index(ckpt_dir):
    os.remove(os.path.join(ckpt_dir, "ckpt-4.index"))


def _garbage_index(ckpt_dir):
    with open(os.path.join(ckpt_dir, "ckpt-4.index"), "wb") as f:
        f.write(b"garbage")


DAMAGE = {"bit flip in .data": _flip_a_bit, "truncated .data": _truncate, "deleted .index": _delete_index,
          "garbage .index": _garbage_index}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(trained, folder, tmp_path, clean_gin, how,
                                                                  monkeypatch, caplog):
    caplog.set_level("INFO")
    caplog.set_level("INFO", logger="absl")  # an earlier test may have quieted absl's own logger
    _copy(trained, tmp_path)
    monkeypatch.chdir(tmp_path)
    model_dir, ckpt_dir = "run", os.path.join("run", "checkpoints")  # relative, as `--model_dir=runs/x`
    DAMAGE[how](ckpt_dir)
    before = _files(ckpt_dir)
    assert checkpoints.damage(os.path.join(ckpt_dir, "ckpt-4")) is not None
    assert checkpoints.damage(os.path.join(ckpt_dir, "ckpt-2")) is None
    trainer = _trainer(model_dir, folder)
    assert trainer.restore() == 2
    assert "Damaged checkpoint(s) skipped: ckpt-4 (" in caplog.text and "not deleted" in caplog.text
    assert "Resuming from run/checkpoints/ckpt-2 at step 2" in caplog.text
    [aside] = glob.glob(os.path.join(ckpt_dir, "damaged-*"))
    # Nothing deleted: every file is where it was, or in damaged-*/.
    after = [f.split(os.sep, 1)[1] if f.startswith("damaged-") else f for f in _files(ckpt_dir)]
    assert sorted(after) == before
    assert all(os.path.basename(f).startswith("ckpt-4") for f in _files(aside))
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-2")
    # Every restored variable is ckpt-2's (a failed attempt at ckpt-4 left nothing behind).
    assert_same_weights(os.path.join(ckpt_dir, "ckpt-2"), trainer.checkpoint.write(str(tmp_path / "now")))
    trainer.save(3)  # training goes on from there, ckpt-2 still listed (and so evaluated)
    assert [step for step, _ in checkpoints.listed(ckpt_dir)[0]] == [2, 3]
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-3")


@pytest.mark.parametrize("content", [b"", b"\x00garbage\xff{", None])
def test_unreadable_state_file_lists_the_checkpoint_files(trained, folder, tmp_path, clean_gin, content):
    model_dir, ckpt_dir = _copy(trained, tmp_path)
    if content is None:  # deleted: not a fresh start that would overwrite ckpt-2 and ckpt-4
        os.remove(os.path.join(ckpt_dir, "checkpoint"))
    else:
        with open(os.path.join(ckpt_dir, "checkpoint"), "wb") as f:
            f.write(content)
    trainer = _trainer(model_dir, folder)
    assert trainer.restore() == 4
    if content is not None:
        [aside] = glob.glob(os.path.join(ckpt_dir, "damaged-*"))
        with open(os.path.join(aside, "checkpoint"), "rb") as f:
            assert f.read() == content  # the bad state file is kept, and a good one written
    assert [s for s, _ in checkpoints.listed(ckpt_dir)[0]] == [2, 4] and not checkpoints.listed(ckpt_dir)[1]
    trainer.save(5)
    assert [s for s, _ in checkpoints.listed(ckpt_dir)[0]] == [2, 4, 5]


def test_readable_checkpoint_of_another_model_is_a_config_error_not_damage(trained, folder, tmp_path, clean_gin):
    model_dir, ckpt_dir = _copy(trained, tmp_path)
    os.remove(os.path.join(model_dir, "operative_config.gin"))  # past the config contract (case 4)
    trainer = _trainer(model_dir, folder, params=["architecture.z_dim=8"])
    with pytest.raises(UserError, match="Its files are intact, so the gin config differs"):
        trainer.restore()
    assert not glob.glob(os.path.join(ckpt_dir, "damaged-*"))


# -- 2. a torn last line of scores.jsonl: the next record stays whole, the torn one is named ---

def _score(step):
    import result_records  # a valid record of the current schema (tests/result_records.py)

    return result_records.score(step=step, training_steps=6)


def test_append_after_a_torn_line_keeps_the_new_record(tmp_path, caplog):
    model_dir = str(tmp_path)
    assert scores.append_score(model_dir, _score(2))
    path = os.path.join(model_dir, scores.SCORES_FILE)
    with open(path, "rb+") as f:  # a short write of step 4's line: no newline at the end
        f.seek(0, 2)
        f.write(json.dumps(_score(4)).encode()[:25])
    assert scores.append_score(model_dir, _score(6))
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["step"] == 6  # not glued onto the torn line
    caplog.clear()
    assert [r["step"] for r in scores.read_scores(model_dir)] == [2, 6]
    assert f"{path} line 2 is not a JSON record" in caplog.text
    # make_tables stops on it, naming the file and the line.
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import make_tables

    with pytest.raises(UserError, match=f"{path} line 2: not valid JSON"):
        make_tables.load(path)
    result = run_cli_script([os.path.join(REPO, "benchmarks", "make_tables.py"), f"--results={path}"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: {path} line 2: not valid JSON" in result.stderr


def run_cli_script(args):
    import subprocess

    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO))


def test_jsonl_reports_a_non_object_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n\n{"b": 2}\n')
    assert jsonl.read(str(path)) == [{"a": 1}, {"b": 2}]
    with pytest.raises(jsonl.BadLine, match="x.jsonl line 2 is not a JSON record"):
        jsonl.read(str(path), strict=True)


# -- 3. replaced real images: the activation cache is not reused ------------------------------

def _write_folder(root, seed, splits=(("train", 1), ("test", 2))):
    import numpy as np

    for split, count in splits:
        for name in datasets.KNOWN["cifar10"].class_names:
            os.makedirs(os.path.join(root, split, name), exist_ok=True)
            for i in range(count):
                pixels = np.random.default_rng([seed, i]).integers(0, 255, (32, 32, 3), dtype=np.uint8)
                tf.io.write_file(os.path.join(root, split, name, f"{i}.png"), tf.io.encode_png(pixels))
    return root


class _Counting:
    """A feature network stand-in that counts its calls (features: the first 8 pixels)."""
    from compare_ssgan.eval import feature_networks as _fn

    info = _fn.NetworkInfo("counting", "FID (counting)", "test", "")

    def __init__(self):
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        flat = tf.reshape(images, [len(images), -1]).numpy()
        return flat[:, :8], flat[:, 8:18]


@pytest.mark.parametrize("kind", ["directory", "archive"])
def test_replaced_images_are_not_scored_from_a_stale_cache(tmp_path, monkeypatch, kind):
    import tarfile

    monkeypatch.setenv("COMPARE_SSGAN_CACHE", str(tmp_path / "cache"))
    root = str(tmp_path / "folder")
    network = _Counting()

    def replace_images(seed):
        _write_folder(root, seed)
        if kind == "archive":  # the same archive path, new content
            with tarfile.open(str(tmp_path / "new.tar.gz"), "w:gz") as tar:
                tar.add(root, arcname="cifar10")
            os.replace(str(tmp_path / "new.tar.gz"), str(tmp_path / "images.tar.gz"))

    def activations():
        source = str(tmp_path / "images.tar.gz") if kind == "archive" else root
        data = datasets.Dataset(name="cifar10", image_folder=source)
        return real_cache.real_activations(data, "test", network, 20)[0]

    replace_images(seed=0)
    first = activations()
    assert (activations() == first).all() and network.calls == 1  # unchanged: from the cache
    replace_images(seed=1)
    replaced = activations()
    assert network.calls == 2 and not (replaced == first).all()


# -- 4. resuming with another model is refused; harmless changes are not ---------------------

def test_resuming_with_another_model_is_refused_with_a_diff(trained, tmp_path):
    model_dir, _ = _copy(trained, tmp_path)
    config = os.path.join(model_dir, "operative_config.gin")
    with open(config) as f:
        saved = f.read()
    result = _fails_with(smoke_args(model_dir, "cifar10/ssgan.gin", params=["options.training_steps=6"]),
                         "holds a run trained with another configuration", "model.name: 'uncond' -> 'ssgan'",
                         "model.tasks: [] -> [@RotationTask()]", "config_contract.accept=")
    assert "options.training_steps" not in result.stderr.split("error:")[1].split("Use the run")[0]
    with open(config) as f:
        assert f.read() == saved  # the contract is not overwritten
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-4")


def test_harmless_or_accepted_changes_resume(trained, folder, tmp_path, clean_gin):
    model_dir, _ = _copy(trained, tmp_path)
    harmless = ["options.training_steps=6", "options.save_every=3", "options.keep_checkpoints=2",
                "evaluation.num_samples=64", "strategy.name='default'"]
    assert _trainer(model_dir, folder, params=harmless).restore() == 4
    with open(os.path.join(model_dir, "operative_config.gin")) as f:
        changed = f.read().replace("options.g_lr = 0.0002", "options.g_lr = 0.001")
    with pytest.raises(UserError, match=r"options.g_lr: 0.0002 -> 0.001"):
        config_contract.check(model_dir, changed)
    accepted = _trainer(model_dir, folder, params=["options.g_lr=1e-3", "config_contract.accept=['options.g_lr']"])
    assert accepted.restore() == 4


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


# -- 5. one damaged checkpoint does not block scoring the others ------------------------------

def test_eval_after_train_records_a_damaged_checkpoint_and_scores_the_rest(
        trained, folder, cache, tmp_path, clean_gin, monkeypatch):
    monkeypatch.setenv("COMPARE_SSGAN_CACHE", cache)
    model_dir, ckpt_dir = _copy(trained, tmp_path)
    [data] = glob.glob(os.path.join(ckpt_dir, "ckpt-2.data-*"))
    os.truncate(data, os.path.getsize(data) // 2)
    before = _files(ckpt_dir)
    schedules.eval_after_train(_trainer(model_dir, folder, params=["evaluation.num_fake_sets=1"]))
    damaged, ok = scores.read_scores(model_dir)
    assert (damaged["step"], damaged["status"], damaged["checkpoint"]) == (2, "damaged", "ckpt-2")
    assert damaged["fid"] is None and damaged["reason"]
    # Written in the record schema, like every score (not left to the reader's migration).
    assert (damaged["schema_version"], damaged["kind"], damaged["origin"]) == (results.SCHEMA_VERSION, "score",
                                                                              "checkpoint")
    assert (ok["step"], ok["status"]) == (4, "ok") and ok["fid"] > 0
    assert _files(ckpt_dir) == before  # the evaluator moves nothing


# -- 7. continuous_eval stops with a diverged record when the trainer died of a NaN loss ------

def test_continuous_eval_records_a_dead_trainers_divergence(trained, folder, cache, tmp_path, clean_gin,
                                                           monkeypatch):
    from compare_ssgan import runner
    from compare_ssgan.errors import NaNLossError

    monkeypatch.setenv("COMPARE_SSGAN_CACHE", cache)
    model_dir, _ = _copy(trained, tmp_path)
    with runner.training_lock(model_dir):
        trainer = _trainer(model_dir, folder, params=["options.training_steps=6", "evaluation.num_fake_sets=1"])
        # What train() leaves on a NaN loss (its writing it is tested in test_bad_input.py).
        trainer.record_stop(NaNLossError("non-finite loss at generator step 5: d_loss=inf", step=5))
        assert trainer.stopped() is None  # its trainer (alive: this process) holds the lock
    with open(os.path.join(model_dir, runner.TRAINING_LOCK), "w") as f:
        f.write("pid 999999999 on " + __import__("socket").gethostname() + "\n")  # a dead holder
    assert trainer.stopped()["step"] == 5
    with pytest.raises(NaNLossError, match="recorded step 5 as diverged"):
        schedules.continuous_eval(trainer, timeout_secs=3600, poll_secs=1)  # returns at once
    records = scores.read_scores(model_dir)
    assert [(r["step"], r["status"]) for r in records] == [(2, "ok"), (4, "ok"), (5, "diverged")]
    assert records[2]["checkpoint"] is None and "non-finite loss" in records[2]["reason"]


# -- 6. bad inputs and full disks: one error naming the file and the fix ----------------------

def test_undecodable_images_are_named(tmp_path, monkeypatch, clean_gin):
    """A text file named .png and a JPEG cut after its header: training stops naming both."""
    monkeypatch.setenv("COMPARE_SSGAN_CACHE", str(tmp_path / "cache"))
    root = _write_folder(str(tmp_path / "folder"), seed=0, splits=(("train", 2), ("test", 1)))
    text, jpeg = os.path.join(root, "train", "cat", "bad.png"), os.path.join(root, "train", "dog", "bad.jpg")
    with open(text, "w") as f:
        f.write("just some text, not an image\n")
    with open(jpeg, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    trainer = _trainer(str(tmp_path / "run"), root, params=["options.training_steps=3"])
    with pytest.raises(UserError, match=f"2 file\\(s\\) in image folder {root} \\(train split\\) cannot be "
                                        f"decoded as images: {text}, {jpeg} "):
        trainer.train()
    # The real-statistics pass names it too (eval split).
    os.replace(text, os.path.join(root, "test", "cat", "bad.png"))
    data = datasets.Dataset(name="cifar10", image_folder=root)
    with pytest.raises(UserError, match=f"{root}/test/cat/bad.png"):
        real_cache.real_activations(data, "test", _Counting(), 5)


def test_truncated_archive_is_an_error_and_leaves_no_staging_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPARE_SSGAN_CACHE", str(tmp_path / "cache"))
    with open(CIFAR10_TAR, "rb") as f:
        head = f.read(200_000)
    archive = str(tmp_path / "cifar10-jpeg.tar.gz")
    with open(archive, "wb") as f:
        f.write(head)
    for _ in range(2):
        with pytest.raises(UserError, match=f"cannot extract image folder archive {archive}.*truncated or corrupted"):
            datasets.Dataset(name="cifar10", image_folder=archive)
    assert os.listdir(tmp_path / "cache" / "image_folders") == []  # no .extracting-* left behind


def test_unwritable_cache_dir_is_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("COMPARE_SSGAN_CACHE", str(blocker / "cache"))
    root = _write_folder(str(tmp_path / "folder"), seed=0, splits=(("test", 1),))
    with pytest.raises(UserError, match="cache directory .* is not writable .* COMPARE_SSGAN_CACHE"):
        datasets.Dataset(name="cifar10", image_folder=CIFAR10_TAR)  # extracting it
    data = datasets.Dataset(name="cifar10", image_folder=root)
    with pytest.raises(UserError, match="COMPARE_SSGAN_CACHE"):
        real_cache.real_activations(data, "test", _Counting(), 5)


def _disk_full(path):
    """Makes writing `path` (a temporary file the run writes, then renames) hit a real ENOSPC."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink("/dev/full", path)


NO_SPACE = "no space left on the device holding"
SAFE = "Nothing written before is corrupted"


def test_full_disk_while_writing_config_samples_or_a_checkpoint(trained, folder, tmp_path, clean_gin, monkeypatch):
    model_dir, ckpt_dir = _copy(trained, tmp_path)
    trainer = _trainer(model_dir, folder, params=["options.training_steps=6"])
    _disk_full(os.path.join(model_dir, "operative_config.gin.tmp"))  # real ENOSPC (/dev/full)
    with pytest.raises(UserError, match=f"{NO_SPACE} {model_dir} while writing operative_config.gin. {SAFE}"):
        trainer.train()  # resumes from ckpt-4, then writes the config
    _disk_full(os.path.join(model_dir, "samples", "step_000006.png.tmp"))
    with pytest.raises(UserError, match=f"{NO_SPACE} {model_dir}/samples while writing sample grid step_000006.png"):
        trainer.write_samples(6)
    # A checkpoint's temporary files have random names, so ENOSPC is simulated there: the error
    # tf's file system raises (its text as tf writes it for /dev/full).
    real_save = tf.train.CheckpointManager.save

    def full(self, checkpoint_number=None, **kwargs):
        if checkpoint_number == 6:
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{ckpt_dir}/ckpt-6_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; "
                            "No space left on device")
        return real_save(self, checkpoint_number=checkpoint_number, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
    with pytest.raises(UserError, match=f"{NO_SPACE} {ckpt_dir} while writing checkpoint ckpt-6. {SAFE}"):
        trainer.save(6)
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-4")
    assert checkpoints.damage(os.path.join(ckpt_dir, "ckpt-4")) is None
    assert os.path.exists(os.path.join(model_dir, "operative_config.gin"))  # the old one, kept


@pytest.mark.parametrize("binding, message", [
    ("options.batch_size='x'", "options.batch_size must be a whole number (got 'x')"),
    ("options.training_steps=5.5", "options.training_steps must be a whole number (got 5.5)"),
    ("options.g_lr='fast'", "options.g_lr must be a number (got 'fast')"),
])
def test_wrong_value_types_in_gin(clean_gin, binding, message):
    main.parse_gin([], [binding])
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        training.options()


def test_integral_float_is_accepted(clean_gin):
    main.parse_gin([], ["options.training_steps=1e5"])
    assert training.options().training_steps == 100_000


def test_continuous_eval_stops_when_its_trainer_is_gone(trained, folder, cache, tmp_path, clean_gin, monkeypatch):
    import socket

    from compare_ssgan import runner

    monkeypatch.setenv("COMPARE_SSGAN_CACHE", cache)
    model_dir, _ = _copy(trained, tmp_path)
    lock = os.path.join(model_dir, runner.TRAINING_LOCK)
    with open(lock, "w") as f:
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")  # a trainer running (alive)

    def trainer_dies(seconds):  # killed (e.g. kill -9) while continuous_eval waits
        with open(lock, "w") as f:
            f.write(f"pid 999999999 on {socket.gethostname()}\n")

    monkeypatch.setattr(schedules.time, "sleep", trainer_dies)
    trainer = _trainer(model_dir, folder, params=["options.training_steps=8", "evaluation.num_fake_sets=1"])
    with pytest.raises(UserError, match="is gone .* before step 8; last scored step: 4"):
        schedules.continuous_eval(trainer, timeout_secs=3600, poll_secs=1)
