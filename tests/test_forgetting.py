"""benchmarks/forgetting.py end to end on a tiny real CIFAR-10 subset: both variants, their
outputs, and resuming (a larger --cycles continues a finished run from its checkpoint)."""
import csv
import json
import os
import sys

import pytest

from run_helpers import REPO
from tiny_cifar import tiny_cifar10_folder

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import forgetting  # noqa: E402


def _run(out, folder, *extra):
    forgetting.FLAGS.unparse_flags()
    forgetting.FLAGS(["forgetting.py", f"--out={out}", f"--image_folder={folder}", "--width=0.0625",
                      "--iterations_per_task=2", "--eval_every=2", "--batch_size=8", "--rotated_batch_size=4",
                      "--eval_examples=20", *extra])
    return forgetting._run()


def test_forgetting_runs_both_variants_and_resumes(tmp_path):
    folder = tiny_cifar10_folder(tmp_path / "cifar", train_per_class=6, test_per_class=4)
    out = tmp_path / "out"
    try:
        results = _run(out, folder, "--cycles=1")
        for name in ("plain", "rotation"):
            log = results[name]["log"]
            assert [(r["task"], r["task_iteration"]) for r in log] == [(t, i) for t in range(10) for i in (0, 2)]
            assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in log)
        assert results["rotation"]["log"][1]["rotation_loss"] > 0
        assert results["plain"]["log"][1]["rotation_loss"] is None
        assert results["rotation"]["log"][1]["task_iteration"] == 2
        # Same initial weights, same first test set: the same accuracy before any update.
        assert results["plain"]["log"][0]["test_accuracy"] == results["rotation"]["log"][0]["test_accuracy"]
        with open(out / "forgetting.json") as f:
            saved = json.load(f)
        assert saved["settings"]["num_train"] == 60 and "cycle_1" in saved["variants"]["plain"]["summary"]
        with open(out / "forgetting.csv") as f:
            assert len(list(csv.reader(f))) == 1 + 2 * 20
        assert os.path.getsize(out / "forgetting.png") > 0

        resumed = _run(out, folder, "--cycles=2", "--variants=rotation")["rotation"]["log"]
        assert resumed[:20] == results["rotation"]["log"]  # the first cycle is not redone
        assert [(r["cycle"], r["task"]) for r in resumed[20:]] == [(1, t) for t in range(10) for _ in range(2)]
        # The optimiser (and with it the networks) continues from the checkpoint, not from scratch.
        assert resumed[20]["optimizer_step"] == 20 and resumed[-1]["optimizer_step"] == resumed[-1]["iteration"] == 40
        with pytest.raises(forgetting.UserError, match="other settings"):
            _run(out, folder, "--cycles=2", "--variants=rotation", "--lr=0.1")
    finally:
        forgetting.FLAGS.unparse_flags()
