"""The seam between the GAN model and a self-supervision task.

A task only adds loss terms (and possibly layers and optimisers of its own) to the plain GAN's D
and G steps; `GANModel` calls every task's `d_loss` inside D's step and `g_loss` inside G's, with
a `StepContext`. The base class has no-op defaults, so a task overrides only what it adds.
"""
import dataclasses
from typing import Any

import tensorflow as tf


def replica_slice(values):
    """This replica's rows of `values`, a tensor drawn for the global batch (axis 0 split evenly
    across the replicas in sync). Drawing globally and slicing makes a run's random choices the
    same on any replica count."""
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync
    if replicas == 1:
        return values
    rows = values.shape[0] // replicas
    start = context.replica_id_in_sync_group * rows
    return values[start:start + rows]


@dataclasses.dataclass
class StepContext:
    """What a self-supervision task may read in a D or G step (per replica)."""
    generator: Any
    discriminator: Any
    real: Any
    fake: Any
    real_features: Any
    fake_features: Any
    z: Any
    labels: Any
    seed: Any
    # The generator step (int64 tensor): G updates completed before this iteration; the D steps
    # of an iteration read the same value as its G step. Warm-ups and schedules read it.
    step: Any = None
    # D's logits on `real` and `fake` (with gradient inside the step's tape; real_logits is
    # None in a G step) and the run's adversarial loss fn(d_real, d_fake) -> (d_loss, g_loss).
    real_logits: Any = None
    fake_logits: Any = None
    loss_fn: Any = None
    # The labels G was given for `fake` (and D for its fake logits); None when unconditional.
    # `labels` are the dataset labels of the step's real batch (in a G step: the last D batch's).
    fake_labels: Any = None


class Task:
    """A self-supervision task. Subclasses set `name` (checkpoint keys and metric prefixes) and
    override what they add; every default adds nothing."""

    name = "task"

    def build(self, discriminator, spectral_norm, global_batch, num_replicas):
        """Creates the task's layers (inside the strategy's scope). `global_batch` is D's."""

    @property
    def d_layers(self):
        """Layers trained by D's optimiser (and covered by D's penalties)."""
        return []

    @property
    def g_layers(self):
        """Layers trained by G's optimiser."""
        return []

    def optimizers(self):
        """{name: (optimiser, layers)}: optimisers of the task's own, each with the layers it
        trains. The task applies them itself (in its losses); the model checkpoints both."""
        return {}

    def d_loss(self, ctx):
        """(weighted loss added to D's objective, metrics)."""
        del ctx
        return tf.constant(0.0), {}

    def g_loss(self, ctx):
        """(weighted loss added to G's objective, metrics)."""
        del ctx
        return tf.constant(0.0), {}
