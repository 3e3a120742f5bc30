"""Keep native libraries' chatter (TensorFlow's converter, LiteRT's delegate banner) out of what a
user reads, unless asked for with `--verbose` or FMNIST_EDGE_VERBOSE=1.

The chatter is written by C++ straight to file descriptor 2, below Python's sys.stderr, so only
pointing the descriptor elsewhere for the duration silences it. Python exceptions still surface:
they are raised after the descriptor is restored.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
import tempfile
from collections.abc import Iterator

VERBOSE_ENV = "FMNIST_EDGE_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Discard what native code writes to fd 2 inside the block (kept when verbose)."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


@functools.cache
def load_tensorflow():
    """(tensorflow, keras), imported once, with TensorFlow's start-up chatter silenced unless verbose.

    The one quiet TensorFlow import of the training side (toolkit.tf) and the converters. It lives here,
    beside the silencing it needs, so neither side borrows it from the other; the edge runtime itself
    never calls it (a test checks), and TensorFlow is named only as a string, imported on the call.
    """
    # TensorFlow's C++ start-up logs go to stderr and drown the user's output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with quiet_native_stderr():  # absl's pre-init banner, the CUDA probe
        keras = importlib.import_module("keras")
        tf = importlib.import_module("tensorflow")
        tf.config.list_physical_devices()  # the CUDA probe happens here, once, silenced
    tf.get_logger().setLevel("ERROR")
    return tf, keras
