"""The one place TensorFlow and Keras are imported, quietly, and only when a conversion or a
training run needs them: importing it costs seconds and hundreds of MB, so nothing imports it at
module level except toolkit.tf, which only the training commands load."""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Iterator

from edge_runtime.core.quiet import quiet_native_stderr, verbose


@functools.cache
def load():
    """(tensorflow, keras), imported once; TensorFlow's start-up chatter silenced unless verbose."""
    # TensorFlow's C++ start-up logs go to stderr and drown the user's output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with quiet_native_stderr():  # absl's pre-init banner, the CUDA probe
        import keras
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe happens here, once, silenced
    tf.get_logger().setLevel("ERROR")
    return tf, keras


@contextlib.contextmanager
def quiet_conversion() -> Iterator[None]:
    """The converters' own chatter ("Saved artifact at ...", "fully_quantize: 0, ...", warnings about
    quantization statistics) kept out of the user's output unless verbose; errors still raise."""
    if verbose():
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), warnings.catch_warnings(), \
            quiet_native_stderr():
        warnings.simplefilter("ignore")
        yield
