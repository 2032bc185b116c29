"""LT-GAN: latent transformation detection (Patel et al., "Self-Supervised GAN with Latent
Transformation Detection", WACV 2021), as the paper's Algorithm 1.

A GAN-induced transformation is the change G(z) -> G(z + eps) (section 3.2, Eq. 3). Its feature
is T = phi(G(z + eps)) - phi(G(z)) (Eq. 4), phi a named D layer. Per generator step
(Algorithm 1; section 4.1: "sampling two distinct eps and repeating along the batch"):
- draw exactly two eps ~ N(0, eps_std^2 I) and repeat them along G's batch (alternating rows,
  so every replica's slice of the global batch holds both equally often);
- pair every row i with row perm(i) of a random permutation; the pair's label is 1 when the two
  rows got the same eps. With half the rows on each eps, P(label = 1) = 1/2 exactly, fixed
  points of the permutation included: balanced in expectation;
- the auxiliary net A (section 4.1: two fully connected layers, ReLU hidden, sigmoid output;
  input [T_i, T_perm(i)] flattened and concatenated) is trained with binary cross-entropy by
  its OWN Adam "with default values" (supplement section 9); G minimises g_weight * BCE; G and A
  are updated in the same step, alternating with D (section 3.2).
- D is also trained to call G(z + eps) fake (section 3.2): d_weight * the fake part of
  `loss.fn` on D(G(z + eps)), computed as loss_fn(sg(d_real), D(G(z+eps))) -
  loss_fn(sg(d_real), sg(D(G(z)))) (every loss in losses.py is mean(real part) + mean(fake
  part), so the gradient is exactly the fake part's; the value is metric `lt_d_fake_gap`).
  The D step draws its own two eps, repeated along D's batch, from its own seed.
- G's batch is twice D's in LT-GAN's rows (supplement section 9): `model.g_batch_multiplier`.
Every LT term is 0 before `warmup_steps` generator steps, read from the step context (the
training loop's step, checkpointed with the run); A's Adam starts at the warm-up's end (its
step count stays 0 until then, so its bias correction starts there, as a freshly created
optimiser's would).

Pairs never straddle replicas: eps, their assignment to rows and the permutation keys are
global draws sliced per replica (`replica_slice`), but each replica permutes its own rows, so
runs on different replica counts are equal in distribution, not bit for bit.

Features (`feature_block`, `feature_pool_size`): the output of D block `feature_block` (an index
into `discriminator.block_outputs`); the last block's output passes through D's final ReLU when
D has one (it is then exactly what D sum-pools: BigGAN's "last layer ... just before sum
pooling"); then average pooling (kernel `feature_pool_size`, stride `feature_pool_stride`, no
padding; 0 = none) and flattening. LT-GAN's rows: SNDCGAN, the 5th of its 8 layers (7 conv +
activation blocks, then the linear): block 4, average-pooled; BigGAN: block -1, not pooled.

What the paper's text lost (its symbols did not survive extraction), our documented choices
(gin `LatentTransformationTask.*`), never the paper's values:
- eps_std = 0.5: G(z + eps) visibly differs from G(z), and z + eps stays in the prior's bulk.
- g_weight = 1.0: the BCE of a balanced binary task starts at log 2 ~ 0.69, the scale of the
  hinge G loss.
- d_weight = 1.0: G(z + eps) counts as much as G(z) as a fake for D.
- warmup_steps = 5000: G's images have structure by then, so D's features describe them.
- hidden_units = 128; feature_pool_size = 2 (stride 2) for SNDCGAN (the kernel is unreadable).
A's optimiser: Adam lr 1e-3, betas (0.9, 0.999), epsilon 1e-7 (Keras's defaults; PyTorch's
differ only in epsilon, 1e-8): `aux_lr`, `aux_beta1`, `aux_beta2`, `aux_epsilon`.
"""
import gin
import keras
import numpy as np
import tensorflow as tf

from compare_ssgan.errors import UserError
from compare_ssgan.gans.task import Task, replica_slice

_EPS_TAG = 0x4C54  # "LT": separates this task's random streams from the step's others
_PAIR_TAG = 0x4C50  # "LP"


def _input_shape(discriminator):
    """[H, W, C] of D's images (the discriminator base class records it)."""
    shape = getattr(discriminator, "image_shape", None)
    if shape is None:
        raise UserError("LatentTransformationTask cannot tell the discriminator's image shape; "
                        "build the networks with compare_ssgan.architectures.build")
    return tuple(int(d) for d in shape)


def block_features(discriminator, images, block, pool_size=0, pool_stride=None):
    """The flattened activation of D block `block` [N, F]: the last block's output through D's
    final ReLU when D has one; average-pooled first when `pool_size` > 0."""
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
    if block % len(outputs) == len(outputs) - 1 and getattr(discriminator, "final_relu", False):
        h = tf.nn.relu(h)
    if pool_size:
        if len(h.shape) != 4 or min(h.shape[1:3]) < pool_size:
            raise UserError(f"LatentTransformationTask.feature_pool_size={pool_size} does not fit D block "
                            f"{block}'s output of shape {tuple(h.shape[1:])}")
        h = tf.nn.avg_pool2d(h, pool_size, pool_stride or pool_size, "VALID")
    return tf.reshape(h, [-1, int(np.prod(h.shape[1:]))])


class AuxiliaryNet(keras.layers.Layer):
    """A: [T_a, T_b] -> logit of "same eps" (the sigmoid is in the BCE)."""

    def __init__(self, hidden_units, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(hidden_units, activation="relu", name="hidden")
        self.out = keras.layers.Dense(1, name="out")

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.out.build((None, self.hidden.units))
        self.built = True

    def call(self, pair_features):
        return tf.squeeze(self.out(self.hidden(pair_features)), -1)


@gin.configurable
class LatentTransformationTask(Task):
    """LT-GAN's auxiliary task (G and A) and D's fake term on G(z + eps)."""

    name = "latent_transformation"

    def __init__(self, eps_std=0.5, g_weight=1.0, d_weight=1.0, warmup_steps=5000, feature_block=-1,
                 feature_pool_size=0, feature_pool_stride=None, hidden_units=128, aux_lr=1e-3,
                 aux_beta1=0.9, aux_beta2=0.999, aux_epsilon=1e-7):
        self.eps_std, self.g_weight, self.d_weight = float(eps_std), float(g_weight), float(d_weight)
        self.warmup_steps, self.feature_block = int(warmup_steps), int(feature_block)
        self.feature_pool_size = int(feature_pool_size)
        self.feature_pool_stride = None if feature_pool_stride is None else int(feature_pool_stride)
        self.hidden_units = int(hidden_units)
        self.aux_settings = dict(learning_rate=float(aux_lr), beta_1=float(aux_beta1),
                                 beta_2=float(aux_beta2), epsilon=float(aux_epsilon))
        self.aux = self.optimizer = None

    def build(self, discriminator, spectral_norm, global_batch, num_replicas):
        """Creates A and its Adam; must run inside the strategy's scope."""
        del spectral_norm, global_batch  # A is not a discriminator: no Lipschitz constraint
        self.num_replicas = num_replicas
        height, width, channels = _input_shape(discriminator)
        probe = self.features(discriminator, tf.zeros([1, height, width, channels]))
        self.feature_dim = int(probe.shape[-1])
        self.aux = AuxiliaryNet(self.hidden_units, name="lt_aux_net")
        self.aux.build((None, 2 * self.feature_dim))
        self.optimizer = keras.optimizers.Adam(name="lt_aux_adam", **self.aux_settings)
        self.optimizer.build(self.aux.trainable_weights)

    def optimizers(self):
        return {"aux_adam": (self.optimizer, [self.aux])}

    def features(self, discriminator, images):
        return block_features(discriminator, images, self.feature_block, self.feature_pool_size,
                              self.feature_pool_stride)

    def active(self, step):
        """1.0 once `step` generator steps are done, else 0.0 (a tensor: no Python branch)."""
        if step is None:
            raise UserError("LatentTransformationTask needs StepContext.step (the generator step)")
        return tf.cast(step >= self.warmup_steps, tf.float32)

    def _global_rows(self, rows):
        if rows < 2 or rows % 2:
            raise UserError(f"LatentTransformationTask needs an even number (>= 2) of images per replica "
                            f"so that both eps cover half of them; got {rows}: change options.batch_size")
        return rows * self.num_replicas

    def perturbations(self, seed, global_rows, z_dim):
        """(eps for this replica's rows [n, z_dim], which of the step's two eps each row got [n]).
        Exactly two eps per call, repeated along the global batch (rows alternate)."""
        seed = tf.random.experimental.stateless_fold_in(seed, _EPS_TAG)
        two = self.eps_std * tf.random.stateless_normal([2, z_dim], seed=seed)
        which = replica_slice(tf.range(global_rows) % 2)
        return tf.gather(two, which), which

    def pairing(self, seed, which, global_rows):
        """(permutation of this replica's rows, label per pair: 1.0 when both rows share eps)."""
        seed = tf.random.experimental.stateless_fold_in(seed, _PAIR_TAG)
        keys = replica_slice(tf.random.stateless_uniform([global_rows], seed=seed))
        permutation = tf.argsort(keys)
        return permutation, tf.cast(tf.equal(which, tf.gather(which, permutation)), tf.float32)

    def _perturbed(self, ctx, seed):
        """(G(z + eps) for this step's z with the labels G(z) had, which eps each row got)."""
        rows, z_dim = ctx.z.shape
        eps, which = self.perturbations(seed, self._global_rows(rows), z_dim)
        return ctx.generator(ctx.z + eps, ctx.fake_labels, training=True), which

    def d_loss(self, ctx):
        if ctx.loss_fn is None or ctx.real_logits is None or ctx.fake_logits is None:
            raise UserError("LatentTransformationTask needs StepContext.loss_fn, real_logits and fake_logits")
        perturbed, _ = self._perturbed(ctx, ctx.seed)
        eps_logits, _ = ctx.discriminator(tf.stop_gradient(perturbed), ctx.fake_labels, training=True)
        real, fake = tf.stop_gradient(ctx.real_logits), tf.stop_gradient(ctx.fake_logits)
        gap = ctx.loss_fn(real, eps_logits)[0] - ctx.loss_fn(real, fake)[0]
        active = self.active(ctx.step)
        return self.d_weight * active * gap, {
            "lt_d_fake_gap": gap,
            "lt_d_adversarial_eps": ctx.loss_fn(ctx.real_logits, eps_logits)[0],
            "lt_active": active}

    def g_loss(self, ctx):
        """G's weighted BCE; A's own Adam step on the unweighted BCE happens here too."""
        active = self.active(ctx.step)
        perturbed, which = self._perturbed(ctx, ctx.seed)
        rows = ctx.z.shape[0]
        features = self.features(ctx.discriminator, tf.concat([ctx.fake, perturbed], 0))
        transformation = features[rows:] - features[:rows]
        permutation, labels = self.pairing(ctx.seed, which, self._global_rows(rows))
        pair_features = tf.concat([transformation, tf.gather(transformation, permutation)], axis=-1)
        with tf.GradientTape() as tape:  # nested in the model's tape: G's gradient flows through it
            logits = self.aux(pair_features)
            bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
            scaled = bce / self.num_replicas  # replicas' gradients sum to the global-batch mean's
        variables = self.aux.trainable_weights
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply([active * g for g in gradients], variables)
        # Until the warm-up ends the gradients are 0 (A does not move) and A's Adam forgets its
        # step count, so its first real step is Adam's step 1.
        self.optimizer.iterations.assign(self.optimizer.iterations * tf.cast(active, tf.int64))
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.cast(logits > 0, tf.float32), labels), tf.float32))
        return self.g_weight * active * bce, {
            "lt_loss": bce, "lt_accuracy": accuracy, "lt_active": active,
            "lt_same_eps_fraction": tf.reduce_mean(labels)}
