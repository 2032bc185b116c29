"""XLA compile failures turned into one clear error naming the op (options.jit_compile)."""
import re

import tensorflow as tf

from compare_ssgan.errors import UserError

# XLA's compile errors read: "Detected unsupported operations when trying to compile graph ...:
# OpName (No registered 'OpName' OpKernel for XLA_CPU_JIT devices ...)".
_FAILURE = re.compile(r"XLA|compile graph|OpKernel for XLA")
_OP = re.compile(r"No registered '(\w+)' OpKernel for XLA")
COMPILE_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError)


def compile_error(error, what, fix):
    """The UserError for `error` (one of COMPILE_ERRORS) if it is an XLA compile failure of
    `what` (e.g. "the train step"), else None (the caller re-raises the original)."""
    if not _FAILURE.search(str(error)):
        return None
    ops = sorted(set(_OP.findall(str(error))))
    return UserError(f"options.jit_compile=True: XLA cannot compile {what} "
                     f"(op{'s' if len(ops) > 1 else ''}: {', '.join(ops) or 'unknown'}; "
                     f"{str(error).strip().splitlines()[0][:300]}). {fix}")
