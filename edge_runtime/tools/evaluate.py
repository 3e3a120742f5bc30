"""Accuracy of model files on labelled images, through the edge runtime (no TensorFlow): the
Fashion-MNIST test set and, optionally, a folder of real photos."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.core.classifier import load_model
from edge_runtime.core.contract import CLASS_NAMES, NUM_CLASSES
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.data import photos as photo_folder
from edge_runtime.data.scoring import score_photos
from edge_runtime.report.tables import display_names
from edge_runtime.report.metrics import confusion_matrix, per_class_accuracy
from edge_runtime.report.plots import plot_confusions
from edge_runtime.report.tables import text_table


@dataclass
class ModelEvaluation:
    path: str
    accuracy: float
    per_class_accuracy: list[float]
    top1_agreement_with_first: float
    """Share of images where this model's top-1 equals the first model's (1.0 for the first)."""
    confusion: list[list[int]]
    images: int
    photos: dict | None = None
    """With a photo folder: this model's PhotoScore on it, and which split was scored."""


@dataclass
class EvaluationReport:
    models: list[ModelEvaluation] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"models": [{k: v for k, v in asdict(m).items() if k != "photos" or v is not None}
                           for m in self.models]}

    def names(self) -> dict[str, str]:
        return display_names([m.path for m in self.models])

    def plot(self, path: str | Path) -> None:
        """The confusion matrices, one panel per model (needs matplotlib)."""
        names = self.names()
        plot_confusions([(f"{names[m.path]}: {m.accuracy:.4f}", np.array(m.confusion)) for m in self.models], path)

    def format_text(self) -> str:
        names = self.names()
        headers = ["model", "accuracy", "agree", *(n[:7] for n in CLASS_NAMES)]
        rows = [[names[m.path], f"{m.accuracy:.4f}", f"{m.top1_agreement_with_first:.4f}",
                 *(f"{a:.3f}" for a in m.per_class_accuracy)] for m in self.models]
        lines = [f"{self.models[0].images} test images", text_table(headers, rows)]
        for m in self.models:
            if m.photos is not None:
                lines += _photo_lines(names[m.path], m.photos)
        return "\n".join(lines)


def _photo_lines(name: str, p: dict) -> list[str]:
    """A model's score on real photos, for a person: overall, per source, per Fashion-MNIST class."""
    per_class = ", ".join(f"{k} {v:.2f}" for k, v in p["per_class"].items())
    lines = [f"{name}: {p['accuracy']:.4f} of {p['photos']} {p['split']} real photos right ({per_class}); mean "
             f"confidence on {p['ood_photos']} out-of-distribution photos {p['ood_mean_confidence']:.2f}"]
    for title, rows in (("per source", p["per_source"]), ("per Fashion-MNIST class, strict", p["per_fmnist_class"])):
        if rows:
            lines.append(f"  {title}: " + ", ".join(f"{k} {r['accuracy']:.2f} of {r['photos']}" for k, r in rows.items()
                                                     if r["accuracy"] is not None))
    return lines


def predict_all(path: str | Path | None, images: np.ndarray, threads: int | None = None) -> np.ndarray:
    """A model's probabilities on many images (load_model warns about a file made for other preprocessing)."""
    with load_model(path, threads) as model:
        return model.predict(images)


def _evaluation(path, predicted: np.ndarray, first: np.ndarray, labels: np.ndarray) -> ModelEvaluation:
    confusion = confusion_matrix(labels, predicted)
    return ModelEvaluation(path=str(path), accuracy=float((predicted == labels).mean()),
                           per_class_accuracy=[round(float(a), 6) for a in per_class_accuracy(confusion)],
                           top1_agreement_with_first=float((predicted == first).mean()),
                           confusion=confusion.tolist(), images=len(labels))


def evaluate(paths: list[str | Path], images: np.ndarray, labels: np.ndarray, threads: int | None = None,
             photos: tuple[str, ...] = (), photo_split: str = "held-out") -> EvaluationReport:
    """Evaluate each model on the same images (agreement against the first), and on the photos of
    `photo_split` in the `photos` folders when given, through the camera's preprocessing."""
    chosen = photo_folder.load_folders(photos, photo_split) if photos else None
    if photos and not chosen:  # asked for a photo score: none is not a silent omission
        raise FmnistEdgeError(f"--photos {', '.join(map(str, photos))}: no labelled photo in the {photo_split} split "
                              "to score; label some frames (fmnist-edge label DIR), or choose another --photo-split")
    photo_images = photo_folder.prepare(chosen) if chosen else None
    report, first = EvaluationReport(), None
    for path in paths:
        predicted = predict_all(path, images, threads)[:, :NUM_CLASSES].argmax(axis=1)  # the first ten: Fashion-MNIST's
        first = predicted if first is None else first
        row = _evaluation(path, predicted, first, labels)
        if chosen:
            scored = score_photos(chosen, predict_all(path, photo_images, threads))
            row.photos = {"split": photo_split, **asdict(scored)}
        report.models.append(row)
    return report
