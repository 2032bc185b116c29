"""Evaluation's compiled generate-and-embed call (eval/evaluator.set_embedder): with XLA it gives
the graph's numbers, and an op XLA cannot compile is a UserError naming it."""
import numpy as np
import pytest
import tensorflow as tf

from compare_ssgan.errors import UserError
from compare_ssgan.eval import evaluator, feature_networks, options


def _generator(z, labels):
    """A deterministic stand-in generator: [N, 8] -> [N, 32, 32, 3] images in (-1, 1)."""
    colour = tf.reshape(z[:, :3], [-1, 1, 1, 3])
    return tf.tanh(tf.tile(colour, [1, 32, 32, 1]) + tf.sin(tf.range(32.0))[None, :, None, None])


@pytest.fixture(scope="module")
def network():
    return feature_networks.build("cifar10_classifier")


def test_xla_embedding_agrees_with_the_graph(network, monkeypatch):
    z, labels = tf.random.stateless_normal([20, 8], [1, 2]), tf.zeros([20], tf.int32)
    features, logits = network(_generator(z, labels).numpy())  # one batch of the network's 500
    monkeypatch.setattr(network, "batch_size", 3)  # 20 images: six batches of 3 and one of 2
    graph = evaluator.set_embedder(_generator, network)(z, labels)
    xla = evaluator.set_embedder(_generator, network, jit_compile=True)(z, labels)
    for a, b in zip(graph, xla):
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), atol=1e-4)
    # The features are the network's own, every image once, in order, whatever the batch split.
    np.testing.assert_allclose(graph[0].numpy(), features, atol=1e-4)
    np.testing.assert_allclose(graph[1].numpy(), logits, atol=1e-4)


def test_a_set_accumulates_on_device_and_names_its_status(network):
    opts = options.evaluation_options(feature_network="cifar10_classifier", num_samples=30, num_fake_sets=1,
                                      sample_batch_size=8)  # batches 8, 8, 8, 6: the last one partial
    prior = type("Prior", (), {"z_dim": 8, "z_prior": "normal"})
    status, features, logits = evaluator.generated_set(evaluator.set_embedder(_generator, network), prior, 10,
                                                       opts, 0)
    assert status == "ok" and features.shape == (30, 256) and logits.shape == (30, 10)
    constant = evaluator.set_embedder(lambda z, y: tf.zeros([tf.shape(z)[0], 32, 32, 3]), network)
    assert evaluator.generated_set(constant, prior, 10, opts, 0)[0] == "collapsed"
    nan_late = evaluator.set_embedder(  # only the last batch is not finite
        lambda z, y: _generator(z, y) * tf.where(tf.shape(z)[0] < 8, np.nan, 1.0), network)
    assert evaluator.generated_set(nan_late, prior, 10, opts, 0) == ("diverged", None, None)
    calls = []

    def nan_everywhere(z, labels):
        calls.append(1)
        return evaluator.set_embedder(lambda z, y: _generator(z, y) * np.nan, network)(z, labels)

    assert evaluator.generated_set(nan_everywhere, prior, 10, opts, 0) == ("diverged", None, None)
    assert len(calls) == 1  # reported at its first batch, not after generating all four


def test_an_op_xla_cannot_compile_is_named(network):
    def host_op(z, labels):
        images = tf.numpy_function(lambda x: x, [_generator(z, labels)], tf.float32)
        return tf.ensure_shape(images, [None, 32, 32, 3])

    embed = evaluator.set_embedder(host_op, network, jit_compile=True)
    with pytest.raises(UserError, match="XLA cannot compile evaluation.*PyFunc.*options.jit_compile=False.*--nojit_compile"):
        embed(tf.zeros([4, 8]), tf.zeros([4], tf.int32))
