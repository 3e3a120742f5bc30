"""fmnist-edge training side: data, model zoo, training, tuning and the CLI.

Nothing here imports TensorFlow at import time; `toolkit.tf` does, when a command needs it.
"""

from edge_runtime._version import __version__

__all__ = ["__version__"]
