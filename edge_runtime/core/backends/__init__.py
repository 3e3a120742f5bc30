"""Runtime backends, chosen by file suffix."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from edge_runtime.core.backends.base import Backend, TensorSpec
from edge_runtime.core.errors import FmnistEdgeError

BACKENDS = {
    ".tflite": ("edge_runtime.core.backends.litert", "LiteRTBackend"),
    ".onnx": ("edge_runtime.core.backends.onnxrt", "OnnxRuntimeBackend"),
}
"""Suffix -> (module, class); a runtime's module is imported only when a file needs it."""


def open_backend(path: str | Path, threads: int | None = None) -> Backend:
    """Load a .tflite file with LiteRT or an .onnx file with ONNX Runtime."""
    path = Path(path)
    if not path.is_file():
        raise FmnistEdgeError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix not in BACKENDS:
        raise FmnistEdgeError(f"{path}: unknown model format {suffix or '(no suffix)'}; "
                              f"expected {' or '.join(BACKENDS)}")
    module, name = BACKENDS[suffix]
    return getattr(importlib.import_module(module), name)(path, threads)


def predict_file(path: str | Path, images: np.ndarray, threads: int | None = None, batch: int = 500) -> np.ndarray:
    """float32 [N,10]: a model file's answers on many images, through the backend users run."""
    with open_backend(path, threads) as backend:
        return backend.predict_batches(images, batch)


__all__ = ["BACKENDS", "Backend", "TensorSpec", "open_backend", "predict_file"]
