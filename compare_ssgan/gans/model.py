"""The GAN model: G, D, an adversarial loss, a penalty and self-supervision tasks.

Self-supervision tasks only add loss terms (SS-GAN = the base model + RotationTask), so
Uncond-GAN, SS-GAN and Rot-only share this one class. `d_step` and `g_step` run per replica
inside `strategy.run`: they are pure functions of their inputs and the variables (stateless
RNG seeds, static shapes), as TPUs need. Losses are means over the replica's batch divided by
the number of replicas, so the gradients summed across replicas equal the global-batch mean.

Labels: with `model.conditional = True` (Cond-GAN) G and D get labels: D sees real images with
their dataset labels and generated images with the labels G was given, which are drawn
uniformly from the classes with the step's stateless seed (one global draw sliced per replica,
like the latents). Unconditional models pass labels=None to both networks.

The model owns the generator step (`step`, G updates so far; the training loop advances and
checkpoints it): tasks read it from the StepContext, the EMA from `self.step`.
"""
import gin
import keras
import tensorflow as tf

from compare_ssgan import architectures
from compare_ssgan.errors import UserError
from compare_ssgan.gans import losses, penalties
from compare_ssgan.gans.task import StepContext, Task, replica_slice

__all__ = ["GANModel", "StepContext", "model"]


@gin.configurable
def model(name="uncond", tasks=(), adversarial_weight=1.0, conditional=False, g_batch_multiplier=1):
    """What to train. `name` labels results; `tasks` are self-supervision pieces
    (e.g. `[@RotationTask()]`); `adversarial_weight=0` gives the Rot-only ablation;
    `conditional=True` feeds class labels to G and D (Cond-GAN; the architecture must read them:
    architecture.g_norm = 'conditional_batch_norm' and/or architecture.projection = True);
    `g_batch_multiplier`: G's step generates this many times D's batch (LT-GAN's rows use 2:
    "twice the batch size for G", Patel et al. 2021, supplement section 9)."""
    if not isinstance(conditional, bool):
        raise UserError(f"model.conditional must be True or False (got {conditional!r})")
    if not isinstance(g_batch_multiplier, int) or g_batch_multiplier < 1:
        raise UserError(f"model.g_batch_multiplier must be an integer >= 1 (got {g_batch_multiplier!r})")
    for task in tasks:
        if not isinstance(task, Task):
            raise UserError(f"model.tasks holds {task!r}, which is not a compare_ssgan.gans.task.Task")
    return name, list(tasks), float(adversarial_weight), conditional, g_batch_multiplier


def _scale_loss(optimizer, loss):
    """The loss times the dynamic loss scale under mixed_float16 (LossScaleOptimizer); as is otherwise."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.scale_loss(loss)
    return loss


class _Float32Outputs:
    """A network whose outputs (images, logits, features) are cast to float32, so losses,
    penalties and task heads see float32 under a mixed-precision policy (the Keras
    mixed-precision guide keeps model outputs in float32); a no-op for float32 networks."""

    def __init__(self, network):
        self.network = network

    def __call__(self, *args, **kwargs):
        return tf.nest.map_structure(lambda x: tf.cast(x, tf.float32), self.network(*args, **kwargs))

    def __getattr__(self, name):
        return getattr(self.network, name)


class _DiscriminatorView:
    """D as a penalty sees it: labels bound (for code that calls discriminator(images,
    training=...)), and `trainable_weights` including the task heads D trains (compare_gan's
    l2 penalty covers every kernel in D's scope, the rotation head's too)."""

    def __init__(self, discriminator, labels, extra_layers):
        self.discriminator, self.labels, self.extra_layers = discriminator, labels, list(extra_layers)

    def __call__(self, images, labels=None, training=False):
        return self.discriminator(images, self.labels if labels is None else labels, training=training)

    @property
    def trainable_weights(self):
        return self.discriminator.trainable_weights + [w for l in self.extra_layers for w in l.trainable_weights]

    def __getattr__(self, name):
        return getattr(self.discriminator, name)


class GANModel:
    """Builds the networks and optimisers (call inside the strategy scope) and the steps."""

    def __init__(self, arch_config, image_shape, num_classes, global_batch, num_replicas,
                 g_lr, d_lr, beta1, beta2, ema_decay=None, ema_start_step=0):
        self.name, self.tasks, self.adversarial_weight, self.conditional, g_multiplier = model()
        self.num_classes = num_classes
        if arch_config.uses_labels and not self.conditional:
            raise UserError(
                f"architecture (g_norm={arch_config.g_norm!r}, projection={arch_config.projection}) "
                f"reads class labels: set model.conditional = True, or use g_norm 'batch_norm' / "
                f"'self_modulated_batch_norm' and projection = False")
        if self.conditional and not arch_config.uses_labels:
            raise UserError("model.conditional = True but the architecture ignores labels: set "
                            "architecture.g_norm = 'conditional_batch_norm' and/or architecture.projection = True")
        if self.conditional and (not num_classes or num_classes < 2):
            raise UserError(f"model.conditional = True needs a labelled dataset (this one has {num_classes} classes)")
        self.loss_fn = losses.loss()
        self.penalty_fn, self.penalty_weight = penalties.penalty()
        self.arch = arch_config
        self.global_batch, self.num_replicas = global_batch, num_replicas
        self.per_replica_batch = global_batch // num_replicas
        self.g_global_batch = g_multiplier * global_batch
        self.generator, self.discriminator = architectures.build(arch_config, image_shape, num_classes)
        self._g, self._d = _Float32Outputs(self.generator), _Float32Outputs(self.discriminator)
        for task in self.tasks:
            task.build(self.discriminator, arch_config.d_spectral_norm, global_batch, num_replicas)
        # epsilon 1e-8: TF1's AdamOptimizer default, which compare_gan used (Keras 3's is 1e-7).
        self.g_optimizer = keras.optimizers.Adam(g_lr, beta_1=beta1, beta_2=beta2, epsilon=1e-8, name="g_adam")
        self.d_optimizer = keras.optimizers.Adam(d_lr, beta_1=beta1, beta_2=beta2, epsilon=1e-8, name="d_adam")
        if keras.config.dtype_policy().name == "mixed_float16":
            # Dynamic loss scaling: a step whose gradients overflow is skipped and the scale
            # halved (keras.optimizers.LossScaleOptimizer); its scale is an optimizer variable,
            # so checkpoints keep it.
            self.g_optimizer = keras.optimizers.LossScaleOptimizer(self.g_optimizer, name="g_loss_scale")
            self.d_optimizer = keras.optimizers.LossScaleOptimizer(self.d_optimizer, name="d_loss_scale")
        self.g_optimizer.build(self.g_variables)
        self.d_optimizer.build(self.d_variables)
        self.ema_decay, self.ema_start_step = ema_decay, int(ema_start_step)
        self.ema_generator = None
        if ema_decay is not None:
            self.ema_generator, _ = architectures.build(arch_config, image_shape, num_classes)
            for target, source in zip(self.ema_generator.weights, self.generator.weights):
                target.assign(source)
        # Created last, as the training loop once did: variables made before the networks would
        # shift how the run's random initialisation is drawn.
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")

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
        # Keras 3 layers kept in Python lists (blocks) are invisible to tf.train.Checkpoint, so
        # every network's variables are also listed, in construction order (the same in every
        # process): BN statistics, SN vectors and the EMA generator are saved too.
        objects = {"generator": self.generator, "discriminator": self.discriminator,
                   "g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer,
                   "generator_variables": list(self.generator.weights),
                   "discriminator_variables": list(self.discriminator.weights)}
        for task in self.tasks:
            for index, layer in enumerate(task.d_layers + task.g_layers):
                objects[f"{task.name}_layer{index}"] = layer
                objects[f"{task.name}_layer{index}_variables"] = list(layer.weights)
            for name, (optimizer, layers) in task.optimizers().items():
                objects[f"{task.name}_{name}"] = optimizer
                for index, layer in enumerate(layers):
                    objects[f"{task.name}_{name}_layer{index}"] = layer
                    objects[f"{task.name}_{name}_layer{index}_variables"] = list(layer.weights)
        if self.ema_generator is not None:
            objects["ema_generator"] = self.ema_generator
            objects["ema_generator_variables"] = list(self.ema_generator.weights)
        return objects

    def sample_latents(self, seed, global_batch=None):
        """This replica's slice of a global latent batch (D's batch size unless given), so any
        replica count sees the same z."""
        batch = self.global_batch if global_batch is None else global_batch
        return replica_slice(architectures.sample_latents(self.arch, [batch, self.arch.z_dim], seed))

    def sample_fake_labels(self, seed, global_batch=None):
        """Uniform class labels for this replica's generated images (slice of a global draw);
        None for an unconditional model. `seed` is the latents' seed; labels use a fold of it
        so an unconditional run's latents are unchanged."""
        if not self.conditional:
            return None
        seed = tf.random.experimental.stateless_fold_in(seed, 1)
        batch = self.global_batch if global_batch is None else global_batch
        return replica_slice(tf.random.stateless_uniform([batch], seed=seed, minval=0,
                                                         maxval=self.num_classes, dtype=tf.int32))

    def _replica_seed(self, seed):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.random.experimental.stateless_fold_in(seed, replica)

    def d_step(self, real, labels, seed):
        """One discriminator update on a real batch; returns per-replica metrics."""
        seed_z, seed_penalty = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z = self.sample_latents(seed_z)
        fake_labels = self.sample_fake_labels(seed_z)
        real_labels = tf.cast(labels, tf.int32) if self.conditional else None
        d_labels = tf.concat([real_labels, fake_labels], 0) if self.conditional else None
        fake = tf.stop_gradient(self._g(z, fake_labels, training=True))
        discriminator = _DiscriminatorView(self._d, real_labels if self.conditional else None,
                                           [layer for task in self.tasks for layer in task.d_layers])
        with tf.GradientTape() as tape:
            logits, features = self._d(tf.concat([real, fake], 0), d_labels, training=True)
            d_real, d_fake = tf.split(logits, 2)
            real_features, fake_features = tf.split(features, 2)
            adversarial, _ = self.loss_fn(d_real, d_fake)
            penalty = self.penalty_fn(discriminator, real, fake, self._replica_seed(seed_penalty))
            metrics = {"d_adversarial_loss": adversarial, "penalty": penalty}
            ctx = StepContext(self._g, self._d, real, fake,
                              real_features, fake_features, z, labels, seed, step=self.step.read_value(),
                              real_logits=d_real, fake_logits=d_fake, loss_fn=self.loss_fn,
                              fake_labels=fake_labels)
            # The weight scales the penalty too: compare_gan's Rot-only zeroes D's whole
            # adversarial objective, penalty included (gans/ssgan.py:191-214).
            total = self._with_task_losses(
                self.adversarial_weight * (adversarial + self.penalty_weight * penalty),
                [task.d_loss for task in self.tasks], ctx, metrics)
            # Inside the tape, or it has no gradient; scale_loss: the loss scale under mixed_float16.
            scaled = _scale_loss(self.d_optimizer, total / self.num_replicas)
        self._apply(tape, scaled, self.d_variables, self.d_optimizer)
        metrics["d_loss"] = total
        return metrics

    def g_step(self, labels, seed):
        """One generator update on `model.g_batch_multiplier` times D's batch; G's adversarial
        loss depends on D(G(z)) only, so the loss function is given those logits in both places."""
        z = self.sample_latents(seed, self.g_global_batch)
        fake_labels = self.sample_fake_labels(seed, self.g_global_batch)
        with tf.GradientTape() as tape:
            fake = self._g(z, fake_labels, training=True)
            # training=True: spectral norm advances u on every D call made while training, as
            # compare_gan's (its u update is part of every D forward, arch_ops.py:515-517).
            d_fake, fake_features = self._d(fake, fake_labels, training=True)
            _, adversarial = self.loss_fn(d_fake, d_fake)
            metrics = {"g_adversarial_loss": adversarial}
            ctx = StepContext(self._g, self._d, None, fake,
                              None, fake_features, z, labels, seed, step=self.step.read_value(),
                              fake_logits=d_fake, loss_fn=self.loss_fn, fake_labels=fake_labels)
            total = self._with_task_losses(self.adversarial_weight * adversarial,
                                           [task.g_loss for task in self.tasks], ctx, metrics)
            scaled = _scale_loss(self.g_optimizer, total / self.num_replicas)
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
        # A LossScaleOptimizer's apply() unscales the gradients and skips the update if any is
        # not finite; a plain optimizer's scale_loss is the identity.
        optimizer.apply(tape.gradient(scaled_loss, variables), variables)

    def update_ema(self):
        """EMA of G's trainable weights; BN statistics are copied (cross-replica context).
        Before `ema_start_step` generator steps the EMA copies G (decay 0), as BigGAN-PyTorch's
        `--ema_start` (utils.py:614-638)."""
        if self.ema_generator is None:
            return
        decay = tf.where(self.step < self.ema_start_step, 0.0, self.ema_decay)
        for target, source in zip(self.ema_generator.weights, self.generator.weights):
            if source.trainable:
                target.assign(decay * target + (1.0 - decay) * source)
            else:
                target.assign(source)

    @property
    def sampling_generator(self):
        return self.ema_generator if self.ema_generator is not None else self.generator
