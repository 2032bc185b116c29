"""LT-GAN: latent transformation detection (Patel et al., "Self-Supervised GAN with Latent
Transformation Detection", WACV 2021).

A GAN-induced transformation is the change G(z) -> G(z + eps), eps ~ N(0, eps_std^2 I). Its
"transformation feature" is phi(G(z + eps)) - phi(G(z)), where phi is an intermediate D block's
activation, average-pooled over space. An auxiliary MLP A (hidden ReLU layer, sigmoid output)
receives two transformation features and predicts whether they came from the same eps: a
positive pair applies one eps to two different z, a negative pair two independent eps.
Pairs never straddle replicas, so (unlike z, which is sliced from one global draw) eps and the
pairs depend on the replica count: runs on different replica counts are equal in distribution,
not bit for bit.

Per replica, of the batch's B latents the first n = B // 2 form pair members "a", the next n
members "b"; the first n // 2 pairs are positive (b reuses a's eps), the rest negative. So the
classes are balanced and every shape is static.

Objectives (all terms are 0 before `warmup_steps` generator steps, via a 0/1 tensor factor):
- G and A:  g_weight * BCE(A(T_a, T_b), same-eps label). A's variables are `g_layers`, so they
  are trained by G's optimizer (Adam with options.g_lr and betas): A has no learning rate of its
  own (Adam is invariant to loss scaling, so g_weight does not change A's step size either).
- D:        d_weight * the fake half of `loss.fn` on D(G(z + eps)): D is also trained to call
  the perturbed images fake. Every loss in losses.py is mean(real part) + mean(fake part); the
  term is computed as loss_fn(sg(d_real), D(G(z+eps))) - loss_fn(sg(d_real), sg(D(G(z)))), so
  its gradient is exactly that of the fake part on G(z + eps), and its value is how much more
  D's loss is on G(z + eps) than on G(z) (metric `lt_d_fake_gap`).
D's features feed A with D's weights fixed in a G step (only G's and A's variables update) and
are not used in a D step: the auxiliary task trains G and A, never D's body.

The step: generator updates so far are counted by a non-trainable int64 `steps` variable of the
auxiliary net (incremented by each g_loss, after it is read; the D steps of an iteration see the
same value as its G step). It lives in a g_layer, so checkpoints carry it and resumed runs
continue the warm-up where they stopped. (The training loop's step is not visible to a model;
this counter equals it for runs that used LT-GAN from step 0.)

Constants the paper leaves open, our choices (gin `LatentTransformationTask.*`):
- eps_std = 0.5: G(z + eps) visibly differs from G(z), and z + eps ~ N(0, 1.25 I) stays in the
  prior's high-density region.
- g_weight = 1.0: the BCE of a balanced binary task starts at log 2 ~ 0.69, the scale of the
  hinge G loss, so neither dominates.
- d_weight = 1.0: G(z + eps) counts as much as G(z) as fakes for D.
- warmup_steps = 5000 (5% of the 100k-step protocol): by then G's images have structure and D's
  features describe them; before that, transformation features are noise.
- feature_block = -2: the second-to-last D block, deep enough to be semantic but not the block
  that feeds the real/fake logit directly.
- hidden_units = 128.
"""
import gin
import keras
import numpy as np
import tensorflow as tf

from compare_ssgan.errors import UserError

_SEED_TAG = 0x4C54  # "LT": separates this task's random stream from the step's others


def _input_shape(discriminator):
    """[H, W, C] of D's images (architectures.build records it on the discriminator)."""
    shape = getattr(discriminator, "image_shape", None)
    if shape is None:
        raise UserError("LatentTransformationTask cannot tell the discriminator's image shape; "
                        "build the networks with compare_ssgan.architectures.build")
    return tuple(int(d) for d in shape)


def block_features(discriminator, images, block):
    """Average-pooled, flattened activation of D block `block` (an index into
    `discriminator.block_outputs(images, training=False)`): [N, C]."""
    block_outputs = getattr(discriminator, "block_outputs", None)
    if block_outputs is None:
        raise UserError(
            f"LatentTransformationTask needs the discriminator to expose its per-block activations, "
            f"but {type(discriminator).__module__}.{type(discriminator).__name__} has no "
            f"`block_outputs(images, training=False) -> [per-block activations]` method; add it to the "
            f"architecture (compare_ssgan/architectures/) or use another model.")
    outputs = list(block_outputs(images, training=False))
    if not -len(outputs) <= block < len(outputs):
        raise UserError(f"LatentTransformationTask.feature_block={block} is out of range: the "
                        f"discriminator has {len(outputs)} blocks (valid: {-len(outputs)}..{len(outputs) - 1})")
    h = outputs[block]
    if len(h.shape) == 4:
        h = tf.reduce_mean(h, axis=[1, 2])
    return tf.reshape(h, [-1, int(np.prod(h.shape[1:]))])


class AuxiliaryNet(keras.layers.Layer):
    """A: [T_a, T_b] -> logit of "same eps" (the sigmoid is in the BCE). Also holds the
    generator-step counter used for the warm-up."""

    def __init__(self, hidden_units, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(hidden_units, activation="relu", name="hidden")
        self.out = keras.layers.Dense(1, name="out")

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.out.build((None, self.hidden.units))
        self.steps = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False,
                                     aggregation="only_first_replica", name="steps")
        self.built = True

    def call(self, pair_features):
        return tf.squeeze(self.out(self.hidden(pair_features)), -1)


@gin.configurable
class LatentTransformationTask:
    """Adds LT-GAN's auxiliary loss (to G and A) and D's fake term on G(z + eps)."""

    name = "latent_transformation"

    def __init__(self, eps_std=0.5, g_weight=1.0, d_weight=1.0, warmup_steps=5000,
                 feature_block=-2, hidden_units=128):
        self.eps_std, self.g_weight, self.d_weight = float(eps_std), float(g_weight), float(d_weight)
        self.warmup_steps, self.feature_block = int(warmup_steps), int(feature_block)
        self.hidden_units = int(hidden_units)
        self.aux = None

    def build(self, discriminator, spectral_norm, global_batch, num_replicas):
        """Creates A; must run inside the strategy's scope."""
        del spectral_norm  # A is not a discriminator: no Lipschitz constraint
        self.per_replica = global_batch // num_replicas
        if self.per_replica < 4:
            raise UserError(f"LatentTransformationTask needs at least 4 images per replica (2 positive "
                            f"and 2 negative pairs), got batch {global_batch} over {num_replicas} replica(s)")
        self.pairs = self.per_replica // 2
        self.num_positive = self.pairs // 2
        height, width, channels = _input_shape(discriminator)
        probe = block_features(discriminator, tf.zeros([1, height, width, channels]), self.feature_block)
        self.feature_dim = int(probe.shape[-1])
        self.aux = AuxiliaryNet(self.hidden_units, name="lt_aux_net")
        self.aux.build((None, 2 * self.feature_dim))

    @property
    def d_layers(self):
        return []

    @property
    def g_layers(self):
        return [self.aux]

    def active(self):
        """1.0 once warm-up is over, else 0.0 (a tensor: no Python branch on the step)."""
        return tf.cast(tf.convert_to_tensor(self.aux.steps) >= self.warmup_steps, tf.float32)

    def perturbations(self, seed, z_dim):
        """eps for the 2n pair members [2n, z_dim]: b-members of positive pairs reuse a's eps."""
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = tf.random.experimental.stateless_fold_in(
            tf.random.experimental.stateless_fold_in(seed, _SEED_TAG), replica)
        eps = self.eps_std * tf.random.stateless_normal([2 * self.pairs, z_dim], seed=seed)
        eps_a, eps_b = eps[: self.pairs], eps[self.pairs:]
        eps_b = tf.concat([eps_a[: self.num_positive], eps_b[self.num_positive:]], axis=0)
        return tf.concat([eps_a, eps_b], axis=0)

    def pair_labels(self):
        return tf.concat([tf.ones([self.num_positive]), tf.zeros([self.pairs - self.num_positive])], 0)

    def _perturbed(self, ctx, stop_gradient):
        """G(z + eps) for the 2n pair members, with the labels G(z) had (None if unconditional)."""
        n2 = 2 * self.pairs
        z = ctx.z[:n2]
        fake_labels = getattr(ctx, "fake_labels", None)
        labels = None if fake_labels is None else fake_labels[:n2]
        eps = self.perturbations(ctx.seed, z.shape[-1])
        images = ctx.generator(z + eps, labels, training=True)
        return (tf.stop_gradient(images) if stop_gradient else images), labels

    def d_loss(self, ctx):
        if ctx.loss_fn is None or ctx.real_logits is None or ctx.fake_logits is None:
            raise UserError("LatentTransformationTask needs StepContext.loss_fn, real_logits and fake_logits")
        perturbed, labels = self._perturbed(ctx, stop_gradient=True)
        eps_logits, _ = ctx.discriminator(perturbed, labels, training=True)
        real = tf.stop_gradient(ctx.real_logits)
        fake = tf.stop_gradient(ctx.fake_logits[: 2 * self.pairs])
        gap = ctx.loss_fn(real, eps_logits)[0] - ctx.loss_fn(real, fake)[0]
        active = self.active()
        return self.d_weight * active * gap, {
            "lt_d_fake_gap": gap,
            "lt_d_adversarial_eps": ctx.loss_fn(ctx.real_logits, eps_logits)[0],
            "lt_active": active}

    def g_loss(self, ctx):
        step = tf.convert_to_tensor(self.aux.steps)
        active = tf.cast(step >= self.warmup_steps, tf.float32)
        n2 = 2 * self.pairs
        perturbed, _ = self._perturbed(ctx, stop_gradient=False)
        features = block_features(ctx.discriminator, tf.concat([ctx.fake[:n2], perturbed], 0),
                                  self.feature_block)
        base, moved = features[:n2], features[n2:]
        transformation = moved - base
        pair_features = tf.concat([transformation[: self.pairs], transformation[self.pairs:]], axis=-1)
        logits = self.aux(pair_features)
        labels = self.pair_labels()
        bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.cast(logits > 0, tf.float32), labels), tf.float32))
        with tf.control_dependencies([bce]):
            self.aux.steps.assign_add(1)
        return self.g_weight * active * bce, {"lt_loss": bce, "lt_accuracy": accuracy, "lt_active": active}
