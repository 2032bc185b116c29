"""Optional EMA of G's weights: the sampling generator averages G's trajectory."""
import os

import gin
import keras
import numpy as np
import tensorflow as tf

from compare_ssgan import architectures
from compare_ssgan import main as cli
from compare_ssgan.gans.model import GANModel
from run_helpers import REPO


def test_ema_generator_tracks_an_exponential_average_of_g():
    gin.clear_config()
    cli.parse_gin([os.path.join(REPO, "gin/cifar10/ssgan.gin"), os.path.join(REPO, "gin/presets/smoke.gin")], [])
    keras.utils.set_random_seed(0)
    gan = GANModel(architectures.architecture(), (32, 32, 3), 10, global_batch=8, num_replicas=1,
                   g_lr=1e-2, d_lr=1e-2, beta1=0.0, beta2=0.9, ema_decay=0.75)
    gin.clear_config()
    assert gan.sampling_generator is gan.ema_generator
    before = [w.numpy() for w in gan.generator.weights]
    for ema, w in zip(gan.ema_generator.weights, before):
        np.testing.assert_array_equal(ema.numpy(), w)  # starts as a copy of G
    seed = tf.constant([3, 4], tf.int64)
    real = tf.random.stateless_uniform((8, 32, 32, 3), seed, minval=-1.0, maxval=1.0)
    gan.d_step(real, tf.zeros(8, tf.int32), seed)
    gan.g_step(tf.zeros(8, tf.int32), seed)
    gan.update_ema()
    moved = 0.0
    for ema, w, w0 in zip(gan.ema_generator.weights, gan.generator.weights, before):
        expected = 0.75 * w0 + 0.25 * w.numpy() if w.trainable else w.numpy()
        np.testing.assert_allclose(ema.numpy(), expected, rtol=1e-5, atol=1e-7, err_msg=w.path)
        moved = max(moved, float(np.abs(w.numpy() - w0).max()))
    assert moved > 1e-3  # G really changed, so the average is not trivially G itself
    assert "ema_generator_variables" in gan.trackables()
