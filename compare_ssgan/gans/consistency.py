"""CR-GAN: consistency regularisation (Zhang, Zhang, Odena and Lee, "Consistency Regularization
for Generative Adversarial Networks", ICLR 2020).

D's objective adds weight * mean_i (D(x_i) - D(T(x_i)))^2 over the real images x of the step,
where D(.) is D's logit (the last layer before any activation) and T is the paper's CIFAR-10
augmentation: a random horizontal flip and a random translation by up to `translation` pixels
(pad by `translation` pixels, then crop back to H x W at a random offset). Both D(x) and
D(T(x)) are differentiated, as in the paper's algorithm. The term trains D only; G's objective
is unchanged (CR-GAN regularises real images; the bCR/zCR variants are not implemented).

Gin: `ConsistencyTask.weight` (lambda, paper default 10), `translation` (4 pixels on 32x32),
`flip` (True), `padding` ('reflect' or 'constant' i.e. zeros; the paper does not say how it
pads; reflection adds no black borders, which D could otherwise learn to tell apart).
"""
import gin
import tensorflow as tf

from compare_ssgan.errors import UserError
from compare_ssgan.gans.task import Task, replica_slice

_SEED_TAG = 0x4352  # "CR"
PADDINGS = ("reflect", "constant")


def augment(images, seed, translation=4, flip=True, padding="reflect", total=None):
    """T(x) per image, stateless: random horizontal flip, then a random shift of
    [-translation, translation] pixels in each direction (pad, then crop back).

    With `total` (the global batch), the random choices are drawn for `total` images and this
    replica's rows are used (`replica_slice`), so a replica transforming its slice of a global
    batch makes the same choices as one device transforming the whole batch."""
    seed_flip, seed_shift = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    n = images.shape[0] if images.shape[0] is not None else tf.shape(images)[0]
    pick = (lambda draw: draw) if total is None else replica_slice  # noqa: E731
    total = n if total is None else total
    height, width = images.shape[1], images.shape[2]
    if flip:
        do_flip = pick(tf.random.stateless_uniform([total], seed=seed_flip)) < 0.5
        images = tf.where(do_flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if translation:
        p = translation
        padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]], mode=padding.upper())
        offsets = pick(tf.random.stateless_uniform([total, 2], seed=seed_shift, minval=0, maxval=2 * p + 1,
                                                   dtype=tf.int32))
        rows = offsets[:, :1] + tf.range(height)[None]  # [n, H]
        cols = offsets[:, 1:] + tf.range(width)[None]  # [n, W]
        images = tf.gather(padded, rows, axis=1, batch_dims=1)  # [n, H, W + 2p, C]
        images = tf.gather(images, cols, axis=2, batch_dims=1)  # [n, H, W, C]
    return images


@gin.configurable
class ConsistencyTask(Task):
    """Adds weight * ||D(x) - D(T(x))||^2 on real images to D's loss."""

    name = "consistency"

    def __init__(self, weight=10.0, translation=4, flip=True, padding="reflect"):
        if padding not in PADDINGS:
            raise UserError(f"ConsistencyTask.padding={padding!r}; valid: {', '.join(PADDINGS)}")
        if translation < 0:
            raise UserError(f"ConsistencyTask.translation must be >= 0 (got {translation})")
        self.weight, self.translation = float(weight), int(translation)
        self.flip, self.padding = bool(flip), padding
        self.global_batch = None

    def build(self, discriminator, spectral_norm, global_batch, num_replicas):
        del discriminator, spectral_norm, num_replicas  # no variables of its own
        self.global_batch = global_batch

    def transform(self, images, seed):
        """T on this replica's slice of the global real batch (choices drawn globally, so any
        replica count transforms each image alike)."""
        seed = tf.random.experimental.stateless_fold_in(seed, _SEED_TAG)
        return augment(images, seed, self.translation, self.flip, self.padding, total=self.global_batch)

    def consistency(self, discriminator, real, real_logits, labels, seed):
        """mean((D(x) - D(T(x)))^2), unweighted."""
        augmented_logits, _ = discriminator(self.transform(real, seed), labels, training=True)
        return tf.reduce_mean(tf.square(real_logits - augmented_logits))

    def d_loss(self, ctx):
        if ctx.real_logits is None:
            raise UserError("ConsistencyTask needs StepContext.real_logits")
        # a conditional model (fake_labels given) shows D the real images' labels, as for D(x)
        labels = ctx.labels if getattr(ctx, "fake_labels", None) is not None else None
        loss = self.consistency(ctx.discriminator, ctx.real, ctx.real_logits, labels, ctx.seed)
        return self.weight * loss, {"consistency_loss": loss}
