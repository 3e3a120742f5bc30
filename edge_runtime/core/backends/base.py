"""The small interface every runtime backend implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.core.contract import IMAGE_SHAPE, MAX_CLASSES, NUM_CLASSES
from edge_runtime.core.errors import FmnistEdgeError, first_line
from edge_runtime.core.metadata import ModelMetadata


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor as the file declares it."""

    name: str
    shape: tuple
    """Dimensions; None where the file leaves one free (the batch)."""
    dtype: str
    scale: float | None = None
    """Quantization scale and zero point: real = scale * (q - zero_point); None if not quantized."""
    zero_point: int | None = None


class Backend(abc.ABC):
    """A loaded model: uint8 pixels in, float32 probabilities out. Quantization stays inside."""

    name: str
    """Runtime name: "litert", "tflite_runtime" or "onnxruntime"."""
    version: str
    path: Path
    input: TensorSpec
    output: TensorSpec
    threads: int | None
    metadata: ModelMetadata | None
    """What the file says about itself; None for a file exported without fmnist-edge's metadata."""
    checksum: str
    """"ok" (the file's bytes match its checksum) or "missing" (a file exported without one)."""
    references_blob: bytes | None
    """The reference inputs and answers the exporter stored (tools.verify reads them); None if none."""

    @abc.abstractmethod
    def predict(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N,28,28,1] raw pixels -> float32 [N,10] class probabilities."""

    def output_step(self) -> float | None:
        """The step between the values the output can take (its quantization scale); None for a float one."""
        return self.output.scale

    def probe(self) -> None:
        """One inference on a blank image: a file that loads but cannot run (a damaged tensor or
        kernel) fails here, at load, with one line, and not later in a camera loop."""
        probs = self.predict(np.zeros((1, *IMAGE_SHAPE), np.uint8))
        if not np.isfinite(probs).all():
            miss = float("nan")
        else:
            miss = abs(float(probs.sum(dtype=np.float64)) - 1)
            if miss <= FLOAT_SUM_TOLERANCE or miss <= sum_tolerance(self.output_step(), probs.shape[1]):
                return
        raise FmnistEdgeError(f"{self.path}: its answer to a blank image is not a set of probabilities (it "
                              f"misses a sum of 1 by {miss:.4f}); the file is damaged: export it again")

    def predict_batches(self, images: np.ndarray, batch: int = 500) -> np.ndarray:
        """predict() over any number of images, `batch` at a time (bounded memory, one tensor size)."""
        return np.concatenate([self.predict(images[i : i + batch]) for i in range(0, len(images), batch)])

    @abc.abstractmethod
    def close(self) -> None:
        """Release the runtime's resources."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


FLOAT_SUM_TOLERANCE = 0.01
"""How far a float output's probabilities may miss a sum of 1 (fp16 arithmetic included)."""


def sum_tolerance(step: float | None, classes: int) -> float:
    """How far a valid file's probabilities may miss a sum of 1 when its output comes in `step`s.

    Each of the `classes` probabilities is rounded to its step, so it is up to half a step off,
    and an integer softmax kernel (LiteRT's computes exp in fixed point) may be off by one step
    more in all: ten int8 outputs at 1/256 may miss 1 by 0.0234 and still be right, which is
    more than the 0.01 a float output is held to."""
    if step is None or not np.isfinite(step) or step <= 0:
        return FLOAT_SUM_TOLERANCE
    return max(FLOAT_SUM_TOLERANCE, classes * step / 2 + step)


def check_images(images: np.ndarray) -> np.ndarray:
    """Refuse anything but a uint8 [N,28,28,1] batch: the model contract's input."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        got = getattr(images, "dtype", type(images))
        raise ValueError(f"images must be a uint8 array of raw 0..255 pixels, got {got}")
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE or images.shape[0] < 1:
        raise ValueError(f"images must have shape [N,28,28,1], got {list(images.shape)}")
    return images


def load_error(path: Path, kind: str, exc: Exception) -> FmnistEdgeError:
    """One line for a file the runtime could not load: its first line of complaint, and the fix."""
    return FmnistEdgeError(f"{path}: not a valid {kind} model ({first_line(exc)}); export it again")


MAX_TENSOR_BYTES = 256 << 20
"""All tensors of a model at batch 1, at most: the zoo's largest (seed-b, fp32) needs under 2 MB. A
damaged shape can ask for gigabytes; the runtime refuses such a file before allocating anything."""


def check_tensor_memory(path: Path, sizes: list[int]) -> None:
    total = sum(sizes)
    if total > MAX_TENSOR_BYTES or min(sizes, default=0) < 0:
        raise FmnistEdgeError(f"{path}: its tensors would take {total / 2**20:,.0f} MB, more than the "
                              f"{MAX_TENSOR_BYTES >> 20} MB any Fashion-MNIST classifier needs; the file is damaged: "
                              "export it again")


def inference_error(path: Path, exc: Exception) -> FmnistEdgeError:
    return FmnistEdgeError(f"{path}: inference failed ({first_line(exc)}); the file is damaged: export it again")


def classifier_io(path: Path, inputs: list, outputs: list, spec) -> tuple[TensorSpec, TensorSpec]:
    """The one input and one output of a runtime's tensor lists, as specs; refuse any other model."""
    if len(inputs) != 1 or len(outputs) != 1:
        raise FmnistEdgeError(f"{path}: expected one input and one output tensor, "
                              f"found {len(inputs)} and {len(outputs)}")
    inp, out = spec(inputs[0]), spec(outputs[0])
    check_model_shape(path, inp, out)
    return inp, out


def check_model_shape(path: Path, inp: TensorSpec, out: TensorSpec) -> None:
    """Refuse a file that is not a Fashion-MNIST classifier of this toolkit's shape."""
    if len(inp.shape) != 4 or tuple(inp.shape[1:]) != IMAGE_SHAPE:
        raise FmnistEdgeError(f"{path}: input shape {list(inp.shape)} is not [N,28,28,1]; "
                              "this is not a Fashion-MNIST classifier")
    if len(out.shape) != 2 or not isinstance(out.shape[1], int) or not NUM_CLASSES <= out.shape[1] <= MAX_CLASSES:
        raise FmnistEdgeError(f"{path}: output shape {list(out.shape)} is not [N,10] (or [N,10+K] for a model "
                              "adapted with classes of its own); this is not a Fashion-MNIST classifier")
