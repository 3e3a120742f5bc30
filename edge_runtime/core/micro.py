"""TensorFlow Lite Micro on this machine: what an int8 model needs on a microcontroller (flash, the
tensor arena) and what it answers there, through TFLM's own interpreter (`tflite-micro`, the `[micro]`
extra). `info` shows flash and arena; `export --micro` (converters.micro) gates with these answers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.core.backends import open_backend
from edge_runtime.core.contract import NUM_CLASSES
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.modelfile import tflite_flatbuffer
from edge_runtime.core.quiet import quiet_native_stderr

ARENA_MARGIN = 1.10
"""The example allocates the measured arena plus 10% (rounded up to 1 KB): allocators differ a little
between this host's TFLM build and a board's."""


@dataclass
class MicroModel:
    flatbuffer: bytes
    """What a board stores in flash: the flatbuffer alone, without fmnist-edge's metadata archive."""
    ops: Counter
    """Operator name -> how often the model uses it."""
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int


def tflm_runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise FmnistEdgeError("TensorFlow Lite Micro's interpreter is not installed: pip install "
                              "'fmnist-edge[micro]'") from None
    return runtime


def read_int8(path: str | Path) -> MicroModel:
    """The int8 TFLite file's flatbuffer, operators and quantization (from LiteRT)."""
    path = Path(path)
    with open_backend(path) as backend:
        if backend.input.dtype != "int8" or backend.output.dtype != "int8":
            raise FmnistEdgeError(f"{path}: a microcontroller needs a full-integer int8 model (int8 in and out)")
        return MicroModel(tflite_flatbuffer(path.read_bytes()), backend.op_counts(), backend.input.scale,
                          backend.input.zero_point, backend.output.scale, backend.output.zero_point)


def tflm_predict(model: MicroModel, images: np.ndarray, arena: int) -> np.ndarray:
    """float32 [N,10]: the TFLM interpreter's answers, one image at a time as on a board."""
    interpreter = tflm_runtime().Interpreter.from_bytes(model.flatbuffer, arena_size=arena)
    quantized = np.clip(np.round(images / model.input_scale + model.input_zero_point), -128, 127).astype(np.int8)
    out = np.empty((len(images), NUM_CLASSES), np.float32)
    for i, image in enumerate(quantized):
        interpreter.set_input(image[np.newaxis], 0)
        interpreter.invoke()
        codes = interpreter.get_output(0).astype(np.float32)[0]
        out[i] = (codes - model.output_zero_point) * model.output_scale
    return out


def measure_arena(model: MicroModel, low: int = 1024, high: int = 4 << 20, step: int = 16) -> int:
    """The smallest tensor arena (to `step` bytes) in which the model allocates and runs one image."""
    runtime = tflm_runtime()
    probe = np.zeros((1, 28, 28, 1), np.int8)

    def runs(size: int) -> bool:
        try:
            with quiet_native_stderr():  # TFLM says "Failed to allocate" for every size that is too small
                interpreter = runtime.Interpreter.from_bytes(model.flatbuffer, arena_size=size)
                interpreter.set_input(probe, 0)
                interpreter.invoke()
            return True
        except RuntimeError:
            return False

    if not runs(high):
        raise FmnistEdgeError(f"TensorFlow Lite Micro cannot run the model even in a {high >> 20} MB arena")
    while high - low > step:
        middle = (low + high) // 2
        low, high = (low, middle) if runs(middle) else (middle, high)
    return high


def example_arena(measured: int) -> int:
    """The arena the generated example allocates: the measured one plus the margin, in whole KB."""
    return -(-int(measured * ARENA_MARGIN) // 1024) * 1024


def footprint(model: MicroModel) -> dict:
    """What a board needs: flash (the flatbuffer) and the tensor arena, measured and with the margin."""
    measured = measure_arena(model)
    return {"flash_bytes": len(model.flatbuffer), "arena_bytes": example_arena(measured),
            "arena_measured_bytes": measured}
