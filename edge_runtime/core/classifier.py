"""The public face of the edge runtime: load a model file (or the bundled one) and classify."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.core.backends import Backend, open_backend
from edge_runtime.core.contract import CLASS_NAMES, PREPROCESSING_VERSION
from edge_runtime.core.errors import FmnistEdgeError

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent / "models"
BUNDLED = {"tflite": BUNDLED_DIR / "default_int8.tflite", "onnx": BUNDLED_DIR / "default_int8.onnx"}


def bundled_model_path(fmt: str = "tflite") -> Path:
    """The int8 model shipped inside the package (TFLite unless asked for ONNX)."""
    path = BUNDLED[fmt]
    if not path.is_file():
        raise FmnistEdgeError(f"the bundled model {path.name} is missing from {BUNDLED_DIR}; "
                              "reinstall fmnist-edge or pass --model PATH")
    return path


@dataclass(frozen=True)
class Prediction:
    class_id: int
    label: str
    score: float


class Classifier:
    """A model file with its class names: uint8 [N,28,28,1] in, probabilities or top-1 out."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.metadata = backend.metadata
        self.path = backend.path
        self.class_names = tuple(self.metadata.class_names) if self.metadata else CLASS_NAMES
        width = backend.output.shape[1]
        if len(self.class_names) != width:
            raise FmnistEdgeError(f"{self.path}: its metadata names {len(self.class_names)} classes but it answers "
                                  f"{width}; the file is damaged: export (or adapt) it again")

    def predict(self, images: np.ndarray, batch: int = 500) -> np.ndarray:
        """float32 [N,10] probabilities for raw Fashion-MNIST-polarity pixels, any N (`batch` at a time,
        so memory stays bounded)."""
        if len(images) <= batch:
            return self.backend.predict(images)
        return self.backend.predict_batches(images, batch)

    def classify(self, images: np.ndarray) -> list[Prediction]:
        probs = self.predict(images)
        ids = probs.argmax(axis=1)
        return [Prediction(int(i), self.class_names[i], float(p[i])) for i, p in zip(ids, probs, strict=True)]

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_model(path: str | Path | None = None, threads: int | None = None) -> Classifier:
    """Load `path` (.tflite or .onnx) or, with no path, the bundled int8 TFLite model."""
    path = Path(path) if path is not None else bundled_model_path()
    model = Classifier(open_backend(path, threads))
    meta = model.metadata
    if meta is None:
        log.warning("%s carries no fmnist-edge metadata; assuming the Fashion-MNIST classes in order", path)
    elif meta.preprocessing and meta.preprocessing != PREPROCESSING_VERSION:
        log.warning("%s was made for frame preprocessing %s, this runtime has %s; camera and predict results "
                    "may differ from what was measured at export", path, meta.preprocessing, PREPROCESSING_VERSION)
    return model
