"""Teachers for knowledge distillation: model files whose averaged answers a run also learns from."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edge_runtime.core.errors import FmnistEdgeError, first_line
from toolkit.keras_io import load_keras_model
from toolkit.train.config import model_file

TEACHER_HINT = "give a model.keras that train wrote, or an exported .tflite/.onnx file"


def load_teacher(names: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
    """images -> the mean of these models' probabilities (an ensemble teacher). A .tflite or .onnx
    file (an exported model, e.g. the bundled one) answers through the edge runtime."""
    paths = [model_file(name) for name in names]
    teachers = [_exported_teacher(p) if p.suffix in (".tflite", ".onnx") else _keras_teacher(p) for p in paths]

    def predict(images: np.ndarray) -> np.ndarray:
        return np.mean([answer(images) for answer in teachers], axis=0).astype(np.float32)

    return predict


def _keras_teacher(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    model = load_keras_model(path, "--teacher", TEACHER_HINT)
    if tuple(model.input_shape[1:]) != (28, 28, 1) or tuple(model.output_shape[1:]) != (10,):
        raise FmnistEdgeError(f"--teacher {path}: takes {model.input_shape} and answers {model.output_shape}; "
                              "a teacher must map 28x28x1 images to 10 class probabilities")
    return lambda images: model.predict(images.astype(np.float32), batch_size=512, verbose=0)


def _exported_teacher(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """An exported file's answers, through the edge runtime (raw 0..255 pixels, like the Keras models)."""
    from edge_runtime import load_model

    try:
        model = load_model(path)
    except FmnistEdgeError as exc:
        raise FmnistEdgeError(f"--teacher {path}: {first_line(exc)}") from None
    return lambda images: model.predict(np.clip(np.rint(images), 0, 255).astype(np.uint8))
