"""The converters' TensorFlow: imported quietly and only when a conversion needs it (importing it costs
seconds and hundreds of MB), and the converters' own chatter kept out of the user's output."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

from edge_runtime.core.quiet import load_tensorflow, quiet_native_stderr, verbose

load = load_tensorflow
"""(tensorflow, keras), imported once, quietly."""


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
