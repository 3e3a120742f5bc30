"""Keep native libraries' chatter (TensorFlow's converter, LiteRT's delegate banner) out of what a
user reads, unless asked for with `--verbose` or FMNIST_EDGE_VERBOSE=1.

The chatter is written by C++ straight to file descriptor 2, below Python's sys.stderr, so only
pointing the descriptor elsewhere for the duration silences it. Python exceptions still surface:
they are raised after the descriptor is restored.
"""

from __future__ import annotations

import contextlib
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
