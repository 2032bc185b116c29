"""How this package traces its graphs: `graphs.function` is tf.function without AutoGraph.

The traced code (train steps, evaluation, probes, generation) branches and loops only on Python
values (disc_iters, the tasks, the configuration), so AutoGraph has nothing to convert, and
converting every layer, loss and task it calls was 40 % of a run's start-up (smoke SS-GAN, 2-core
CPU: 11.7-15.0 s from "Training steps" to the step 2 log line with it, 6.9-7.0 s without; the
same losses to the printed digits). Code that loops in the graph (`for _ in tf.range(n)`) uses
tf.function itself.

A researcher's loss, penalty or task that branches on a tensor's value then fails at trace time.
A nested @tf.function does not help (it is not converted inside a function traced without
AutoGraph; checked); tf.cond / tf.where or tf.autograph.to_graph do. `branch_error` says so.
"""
import os
import traceback

import tensorflow as tf

from compare_ssgan.errors import UserError

BRANCH_ERRORS = (tf.errors.OperatorNotAllowedInGraphError,)


def function(fn=None, **kwargs):
    """tf.function(fn, autograph=False, **kwargs); also usable as a decorator, with or without
    arguments."""
    if fn is None:
        return lambda f: tf.function(f, autograph=False, **kwargs)
    return tf.function(fn, autograph=False, **kwargs)


def branch_error(error, what):
    """The UserError for a Python branch on a tensor (one of BRANCH_ERRORS) in `what`, naming the
    file and line of the innermost frame outside TensorFlow and Keras: the user's code."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not any(f"{os.sep}{lib}{os.sep}" in f.filename for lib in ("tensorflow", "keras"))]
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "an unknown place"
    return UserError(f"{what} branches or loops in Python on a tensor's value at {where} "
                     f"({str(error).split('. ')[0]}). It is traced without AutoGraph "
                     "(compare_ssgan/graphs.py): in a custom loss, penalty or task, write the branch "
                     "with tf.cond / tf.where, or convert that function with tf.autograph.to_graph.")
