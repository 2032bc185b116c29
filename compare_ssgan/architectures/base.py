"""The discriminator interface every architecture inherits.

A discriminator is a list of blocks (each called as block(h, training)) followed by a head:
optional ReLU, spatial pooling to the feature vector, a linear logit, and the projection
term <embed(y), features> of a conditional discriminator (Miyato & Koyama 2018). Linear
probes read `block_outputs`, self-supervision tasks read the features and `feature_dim`,
and tasks that size layers by the input read `image_shape`. The structure follows
google/compare_gan's `AbstractDiscriminator` (architectures/abstract_arch.py:101-146), which
returns the logit and the pre-logit features from one call.
"""
import keras
import tensorflow as tf

from compare_ssgan.architectures import ops

POOLINGS = ("sum", "mean", "flatten")


class Discriminator(keras.Model):
    """`blocks`: layers applied in order. `pooling`: 'sum' (SNGAN, BigGAN), 'mean'
    (compare_gan's ResNets) or 'flatten' (SNDCGAN). `final_relu`: ReLU before pooling (the
    ResNets). `input_transform`: applied to the [-1, 1] images first (compare_gan's ResNets
    read [0, 1] images). `linear`: the logit layer (Dense to 1 unit)."""

    def __init__(self, image_shape, blocks, feature_dim, linear, pooling="sum", final_relu=True,
                 projection=None, input_transform=None, **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
        self.image_shape = tuple(int(d) for d in image_shape)
        self.blocks = list(blocks)
        self.feature_dim = int(feature_dim)
        self.linear, self.projection = linear, projection
        self.pooling, self.final_relu = pooling, final_relu
        self.input_transform = input_transform

    def block_outputs(self, x, training=False):
        """Every block's output activation [N, h, w, c], in order."""
        h = self.input_transform(x) if self.input_transform is not None else x
        outputs = []
        for block in self.blocks:
            h = block(h, training=training)
            outputs.append(h)
        return outputs

    def pool(self, h):
        """The last block's output -> the feature vector [N, feature_dim] the logit reads."""
        if self.final_relu:
            h = tf.nn.relu(h)
        if self.pooling == "flatten":
            return tf.reshape(h, (-1, h.shape[1] * h.shape[2] * h.shape[3]))
        return (tf.reduce_sum if self.pooling == "sum" else tf.reduce_mean)(h, axis=[1, 2])

    def call(self, x, labels=None, training=False):
        """-> (logits [N], features [N, feature_dim])."""
        features = self.pool(self.block_outputs(x, training=training)[-1])
        logits = tf.squeeze(self.linear(features, training=training), -1)
        if self.projection is not None:
            logits += self.projection(features, labels, training=training)
        return logits, features


def logit_layer(spectral_norm, use_bias=True, kernel_initializer="glorot_uniform"):
    return ops.Dense(1, spectral_norm=spectral_norm, use_bias=use_bias,
                     kernel_initializer=kernel_initializer, name="logit")


def zero_one_input(x):
    """[-1, 1] images -> [0, 1], the range compare_gan's ResNet discriminators read."""
    return (x + 1.0) * 0.5
