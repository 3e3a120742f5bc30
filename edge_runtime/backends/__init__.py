"""Runtime backends, chosen by file suffix."""

from __future__ import annotations

from pathlib import Path

from edge_runtime.backends.base import Backend, TensorSpec
from edge_runtime.errors import FmnistEdgeError

SUFFIXES = (".tflite", ".onnx")


def open_backend(path: str | Path, threads: int | None = None) -> Backend:
    """Load a .tflite file with LiteRT or an .onnx file with ONNX Runtime."""
    path = Path(path)
    if not path.is_file():
        raise FmnistEdgeError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from edge_runtime.backends.litert import LiteRTBackend

        return LiteRTBackend(path, threads)
    if suffix == ".onnx":
        from edge_runtime.backends.onnxrt import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, threads)
    raise FmnistEdgeError(f"{path}: unknown model format {suffix or '(no suffix)'}; expected .tflite or .onnx")


__all__ = ["SUFFIXES", "Backend", "TensorSpec", "open_backend"]
