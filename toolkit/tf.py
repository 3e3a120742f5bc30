"""The one place the training side imports TensorFlow, quietly.

Importing this module costs seconds and hundreds of MB, so only commands that train, tune or
export import it, and only inside the command.
"""

import contextlib
import os
import sys

# TensorFlow's C++ start-up logs go to stderr and drown the user's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence what native code writes to fd 2 (absl's pre-init banner, the CUDA probe).

    Python-level errors still surface: they are raised after the descriptor is restored.
    """
    if os.environ.get("FMNIST_EDGE_TF_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with _quiet_native_stderr():
    import keras
    import tensorflow as tf

    tf.config.list_physical_devices()  # the CUDA probe happens here, once, silenced

tf.get_logger().setLevel("ERROR")

__all__ = ["keras", "tf"]
