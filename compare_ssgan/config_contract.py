"""A run's operative config is its contract: resuming may not change what it trains.

<model_dir>/operative_config.gin (every gin parameter the run used, defaults included) is
compared with the config of a process resuming or evaluating the run. A changed binding
that can change the model, the data order or the objective is refused with a diff, since
the run would silently continue as another experiment (its scores.jsonl mixing both). The
bindings in HARMLESS cannot alter the weights a step produces and may change freely.
"""
import fnmatch
import os
import re

import gin

from compare_ssgan.errors import UserError

CONFIG_FILE = "operative_config.gin"

# How long to train, how often to log/save/sample, how many checkpoints to keep, how to score
# them, where the (same) data lives, and how the work is distributed (the batch is global).
HARMLESS = ("options.training_steps", "options.log_every", "options.save_every",
            "options.sample_every", "options.keep_checkpoints", "options.steps_per_loop", "evaluation.*",
            "inception.*", "probe.*",
            "cifar10_classifier.*", "continuous_eval.*", "dataset.image_folder", "dataset.data_dir",
            "strategy.*", "config_contract.*")

_BINDING = re.compile(r"^([\w./]+)\s*=\s*(.*)$")


@gin.configurable("config_contract")
def accepted(accept=()):
    """Bindings whose change you accept knowingly (e.g. a parameter a code update added, whose
    default keeps the old behaviour): --gin_param="config_contract.accept=['architecture.z_prior']"."""
    return tuple(accept)


def bindings(text):
    """{'configurable.parameter': value text} of an operative config (multi-line values joined)."""
    found, name = {}, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _BINDING.match(line)
        if match and not line[0].isspace():
            name = match.group(1)
            found[name] = match.group(2).strip()
        elif name:  # a continuation line of a long value
            found[name] += " " + line.strip()
    return found


def check(model_dir, operative_config):
    """Raises UserError if `operative_config` changes a binding of the run's saved config that
    is neither HARMLESS nor accepted; a run without a saved config passes."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        saved = bindings(f.read())
    now = bindings(operative_config)
    allowed = HARMLESS + accepted()
    changed = sorted(k for k in saved.keys() | now.keys()
                     if saved.get(k) != now.get(k) and not any(fnmatch.fnmatchcase(k, p) for p in allowed))
    if changed:
        diff = "\n".join(f"  {k}: {saved.get(k, '(not set)')} -> {now.get(k, '(not set)')}" for k in changed)
        raise UserError(
            f"--model_dir={model_dir} holds a run trained with another configuration ({path}); "
            f"resuming would mix two experiments in one run:\n{diff}\n"
            f"Use the run's original gin files and bindings, or a new --model_dir. Changes that "
            f"cannot alter results ({', '.join(HARMLESS)}) are allowed; to accept others knowingly: "
            f"--gin_param=\"config_contract.accept={changed!r}\"")
