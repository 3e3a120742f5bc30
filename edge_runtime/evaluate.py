"""Accuracy of model files on labelled images, through the edge runtime (no TensorFlow)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_runtime.classifier import load_model
from edge_runtime.metrics import confusion_matrix, per_class_accuracy


@dataclass
class ModelEvaluation:
    path: str
    accuracy: float
    per_class_accuracy: list[float]
    top1_agreement_with_first: float
    """Share of images where this model's top-1 equals the first model's (1.0 for the first)."""
    confusion: list[list[int]]
    images: int


def predict_all(path: str | Path | None, images: np.ndarray, threads: int | None = None,
                batch: int = 500) -> np.ndarray:
    with load_model(path, threads) as model:
        return np.concatenate([model.predict(images[i : i + batch]) for i in range(0, len(images), batch)])


def evaluate(paths: list[str | Path | None], images: np.ndarray, labels: np.ndarray,
             threads: int | None = None) -> list[ModelEvaluation]:
    """Evaluate each model on the same images; agreement is measured against the first."""
    results, first = [], None
    for path in paths:
        predicted = predict_all(path, images, threads).argmax(axis=1)
        first = predicted if first is None else first
        confusion = confusion_matrix(labels, predicted)
        results.append(ModelEvaluation(
            path=str(path), accuracy=float((predicted == labels).mean()),
            per_class_accuracy=[round(float(a), 6) for a in per_class_accuracy(confusion)],
            top1_agreement_with_first=float((predicted == first).mean()),
            confusion=confusion.tolist(), images=len(labels)))
    return results


def as_dict(results: list[ModelEvaluation]) -> dict:
    return {"models": [asdict(r) for r in results]}
