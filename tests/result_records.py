"""Valid result records (compare_ssgan.results) for schema and table tests, without training."""
import json

from compare_ssgan import results

LABELS = {"fid": "FID (CIFAR-10 classifier)", "kid": "KID (CIFAR-10 classifier)",
          "inception_score": "IS (CIFAR-10 classifier)"}


def score(model="ssgan", seed=0, fid=20.0, step=100, training_steps=100, status=None, **fields):
    """A score record of a finished SN (0, 0.9, 1) run scored by the CIFAR-10 classifier."""
    status = status or ("ok" if fid is not None else "diverged")
    record = {**results.score_header("checkpoint", step, f"ckpt-{step}", status),
              "fid": fid, "fid_std": None, "kid": None if fid is None else fid / 1000, "kid_std": None,
              "inception_score": None if fid is None else 2.0, "inception_score_std": None,
              "metric_labels": dict(LABELS), "model": model, "seed": seed, "dataset": "cifar10",
              "architecture": "resnet_cifar", "architecture_config": {"d_spectral_norm": True, "width": 0.25},
              "tasks": [], "adversarial_weight": 1.0, "conditional": False, "loss": "hinge",
              "penalty": "no_penalty", "lambda": 1.0, "beta1": 0.0, "beta2": 0.9, "disc_iters": 1,
              "g_lr": 2e-4, "d_lr": 2e-4, "batch_size": 32, "training_steps": training_steps, "ema_decay": None,
              "feature_network": {"name": "cifar10_classifier", "source": "shipped:test"},
              "num_samples": 2000, "num_fake_sets": 3, "real_split": "test", "eval_seed": 0,
              "kid_max_block_size": 1024, "inception_score_splits": 10, "model_dir": f"/runs/{model}-s{seed}"}
    record.update(fields)
    results.validate(record)
    return record


def divergence(model="ssgan", seed=0, step=50, **fields):
    """Training stopped on a non-finite loss at `step` (no checkpoint)."""
    record = score(model, seed, None, step=step, **fields)
    record.update(origin="training", checkpoint=None)
    results.validate(record)
    return record


def in_sweep(record, run_id=None, labels=(), bindings=(), state="done"):
    """`record` as sweep.gather_results writes it into results.jsonl."""
    labels = dict(labels)
    record["sweep"] = {"run_id": run_id or record["model_dir"], "dataset": record["dataset"],
                       "model": record["model"], "seed": record["seed"], "gin_files": [], "state": state,
                       "bindings": [list(b) for b in bindings], "labels": labels, "axes": list(labels)}
    return record


def write(path, records):
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return str(path)
