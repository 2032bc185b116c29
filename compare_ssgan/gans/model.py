"""The GAN model: G, D, an adversarial loss, a penalty and self-supervision tasks.

Self-supervision tasks only add loss terms (SS-GAN = the base model + RotationTask), so
Uncond-GAN, SS-GAN and Rot-only share this one class. `d_step` and `g_step` run per replica
inside `strategy.run`: they are pure functions of their inputs and the variables (stateless
RNG seeds, static shapes), as TPUs need. Losses are means over the replica's batch divided by
the number of replicas, so the gradients summed across replicas equal the global-batch mean.
"""
import dataclasses
from typing import Any

import gin
import keras
import tensorflow as tf

from compare_ssgan import architectures
from compare_ssgan.gans import losses, penalties


@gin.configurable
def model(name="uncond", tasks=(), adversarial_weight=1.0):
    """What to train. `name` labels results; `tasks` are self-supervision pieces
    (e.g. `[@RotationTask()]`); `adversarial_weight=0` gives the Rot-only ablation."""
    return name, list(tasks), float(adversarial_weight)


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


class GANModel:
    """Builds the networks and optimisers (call inside the strategy scope) and the steps."""

    def __init__(self, arch_config, image_shape, num_classes, global_batch, num_replicas,
                 g_lr, d_lr, beta1, beta2, ema_decay=None):
        self.name, self.tasks, self.adversarial_weight = model()
        self.loss_fn = losses.loss()
        self.penalty_fn, self.penalty_weight = penalties.penalty()
        self.arch = arch_config
        self.global_batch, self.num_replicas = global_batch, num_replicas
        self.per_replica_batch = global_batch // num_replicas
        self.generator, self.discriminator = architectures.build(arch_config, image_shape, num_classes)
        for task in self.tasks:
            task.build(self.discriminator, arch_config.d_spectral_norm, global_batch, num_replicas)
        self.g_optimizer = keras.optimizers.Adam(g_lr, beta_1=beta1, beta_2=beta2, name="g_adam")
        self.d_optimizer = keras.optimizers.Adam(d_lr, beta_1=beta1, beta_2=beta2, name="d_adam")
        self.g_optimizer.build(self.g_variables)
        self.d_optimizer.build(self.d_variables)
        self.ema_decay = ema_decay
        self.ema_generator = None
        if ema_decay is not None:
            self.ema_generator, _ = architectures.build(arch_config, image_shape, num_classes)
            for target, source in zip(self.ema_generator.weights, self.generator.weights):
                target.assign(source)

    @property
    def d_variables(self):
        extra = [w for task in self.tasks for layer in task.d_layers for w in layer.trainable_weights]
        return self.discriminator.trainable_weights + extra

    @property
    def g_variables(self):
        extra = [w for task in self.tasks for layer in task.g_layers for w in layer.trainable_weights]
        return self.generator.trainable_weights + extra

    def trackables(self):
        """Everything a checkpoint must hold."""
        objects = {"generator": self.generator, "discriminator": self.discriminator,
                   "g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer}
        for task in self.tasks:
            for layer in task.d_layers + task.g_layers:
                objects[f"{task.name}_{layer.name}"] = layer
        if self.ema_generator is not None:
            objects["ema_generator"] = self.ema_generator
        return objects

    def sample_latents(self, seed):
        """This replica's slice of the global latent batch, so any replica count sees the same z."""
        z = tf.random.stateless_normal([self.global_batch, self.arch.z_dim], seed=seed)
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.slice(z, [replica * self.per_replica_batch, 0],
                        [self.per_replica_batch, self.arch.z_dim])

    def _replica_seed(self, seed):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.random.experimental.stateless_fold_in(seed, replica)

    def d_step(self, real, labels, seed):
        """One discriminator update on a real batch; returns per-replica metrics."""
        seed_z, seed_penalty = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z = self.sample_latents(seed_z)
        fake = tf.stop_gradient(self.generator(z, labels, training=True))
        with tf.GradientTape() as tape:
            logits, features = self.discriminator(tf.concat([real, fake], 0), labels, training=True)
            d_real, d_fake = tf.split(logits, 2)
            real_features, fake_features = tf.split(features, 2)
            adversarial, _ = self.loss_fn(d_real, d_fake)
            penalty = self.penalty_fn(self.discriminator, real, fake, self._replica_seed(seed_penalty))
            metrics = {"d_adversarial_loss": adversarial, "penalty": penalty}
            ctx = StepContext(self.generator, self.discriminator, real, fake,
                              real_features, fake_features, z, labels, seed)
            total = self._with_task_losses(
                self.adversarial_weight * adversarial + self.penalty_weight * penalty,
                [task.d_loss for task in self.tasks], ctx, metrics)
            scaled = total / self.num_replicas  # inside the tape, or it has no gradient
        self._apply(tape, scaled, self.d_variables, self.d_optimizer)
        metrics["d_loss"] = total
        return metrics

    def g_step(self, labels, seed):
        """One generator update; G's adversarial loss depends on D(G(z)) only, so the loss
        function is given those logits in both places."""
        z = self.sample_latents(seed)
        with tf.GradientTape() as tape:
            fake = self.generator(z, labels, training=True)
            d_fake, fake_features = self.discriminator(fake, labels, training=False)
            _, adversarial = self.loss_fn(d_fake, d_fake)
            metrics = {"g_adversarial_loss": adversarial}
            ctx = StepContext(self.generator, self.discriminator, None, fake,
                              None, fake_features, z, labels, seed)
            total = self._with_task_losses(self.adversarial_weight * adversarial,
                                           [task.g_loss for task in self.tasks], ctx, metrics)
            scaled = total / self.num_replicas
        self._apply(tape, scaled, self.g_variables, self.g_optimizer)
        metrics["g_loss"] = total
        return metrics

    @staticmethod
    def _with_task_losses(total, task_loss_fns, ctx, metrics):
        """Adds each task's weighted loss to `total`, collecting the tasks' metrics."""
        for loss_fn in task_loss_fns:
            task_loss, task_metrics = loss_fn(ctx)
            total += task_loss
            metrics.update(task_metrics)
        return total

    @staticmethod
    def _apply(tape, scaled_loss, variables, optimizer):
        optimizer.apply(tape.gradient(scaled_loss, variables), variables)

    def update_ema(self):
        """EMA of G's trainable weights; BN statistics are copied (cross-replica context)."""
        if self.ema_generator is None:
            return
        for target, source in zip(self.ema_generator.weights, self.generator.weights):
            if source.trainable:
                target.assign(self.ema_decay * target + (1.0 - self.ema_decay) * source)
            else:
                target.assign(source)

    @property
    def sampling_generator(self):
        return self.ema_generator if self.ema_generator is not None else self.generator
