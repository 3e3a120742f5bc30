"""fmnist-edge's edge runtime: TensorFlow-free inference for a Fashion-MNIST classifier."""

from edge_runtime._version import __version__
from edge_runtime.labels import CLASS_NAMES

__all__ = ["CLASS_NAMES", "__version__"]
