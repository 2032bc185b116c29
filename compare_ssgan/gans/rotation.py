"""Rotation self-supervision of SS-GAN (Chen et al., CVPR 2019).

A sub-batch of `rotated_batch_size` images (global; split evenly across replicas) is rotated
by 90, 180 and 270 degrees; with the unrotated copies already in the batch this gives
4 x rotated_batch_size examples labelled 0..3. D's 4-way head reads the same pooled
features as its real/fake logit. D learns the head from real images only (weight
`d_weight`, beta = 1); G is rewarded for generated images whose rotation D recognises
(weight `g_weight`, alpha = 0.2). The adversarial loss never sees rotated images.
"""
import gin
import tensorflow as tf

from compare_ssgan.architectures import ops
from compare_ssgan.errors import UserError
from compare_ssgan.gans.task import Task

NUM_ROTATIONS = 4


def rotate_all(images):
    """[r, H, W, C] -> ([4r, H, W, C], labels [4r]): 0, 90, 180, 270 degrees, in blocks."""
    rotated = [tf.image.rot90(images, k) for k in range(NUM_ROTATIONS)]
    labels = tf.repeat(tf.range(NUM_ROTATIONS, dtype=tf.int32), tf.shape(images)[0])
    return tf.concat(rotated, axis=0), labels


@gin.configurable
class RotationTask(Task):
    """Adds rotation-prediction losses to D (real images) and G (generated images)."""

    name = "rotation"

    def __init__(self, d_weight=1.0, g_weight=0.2, rotated_batch_size=16):
        self.d_weight, self.g_weight = float(d_weight), float(g_weight)
        self.rotated_batch_size = int(rotated_batch_size)
        self.head = None

    def build(self, discriminator, spectral_norm, global_batch, num_replicas):
        """Creates the head; must run inside the strategy's scope."""
        if self.rotated_batch_size % num_replicas or self.rotated_batch_size > global_batch:
            raise UserError(
                f"RotationTask.rotated_batch_size={self.rotated_batch_size} must divide evenly "
                f"over {num_replicas} replica(s) and be at most the batch size {global_batch}"
            )
        self.per_replica = self.rotated_batch_size // num_replicas
        self.head = ops.Dense(NUM_ROTATIONS, spectral_norm=spectral_norm, name="rotation_head")
        self.head.build((None, discriminator.feature_dim))

    @property
    def d_layers(self):
        return [self.head]

    def _loss(self, discriminator, images, features, update_head):
        """CE and accuracy of the head on all four rotations of images[:per_replica].

        The 0-degree features are the ones D already computed for the adversarial loss.
        """
        subset = images[: self.per_replica]
        rotated, labels = rotate_all(subset)
        _, rotated_features = discriminator(rotated[self.per_replica:], training=True)
        all_features = tf.concat([features[: self.per_replica], rotated_features], axis=0)
        logits = tf.cast(self.head(all_features, training=update_head), tf.float32)  # mixed precision
        ce = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        accuracy = tf.reduce_mean(
            tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32))
        return ce, accuracy

    def accuracy(self, discriminator, images):
        """D's rotation accuracy on all four rotations of `images`, in inference mode (the
        probe's measure of whether D learned the pretext task on held-out real images)."""
        rotated, labels = rotate_all(images)
        _, features = discriminator(rotated, training=False)
        logits = self.head(features, training=False)
        return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32))

    def d_loss(self, ctx):
        ce, accuracy = self._loss(ctx.discriminator, ctx.real, ctx.real_features, update_head=True)
        return self.d_weight * ce, {"rotation_loss_real": ce, "rotation_accuracy_real": accuracy}

    def g_loss(self, ctx):
        ce, accuracy = self._loss(ctx.discriminator, ctx.fake, ctx.fake_features, update_head=False)
        return self.g_weight * ce, {"rotation_loss_fake": ce, "rotation_accuracy_fake": accuracy}
