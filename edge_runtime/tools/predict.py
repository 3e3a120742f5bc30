"""`fmnist-edge predict`: image files through the camera's preprocessing and the classifier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_runtime.camera.preprocess import preprocess_frame
from edge_runtime.core.classifier import load_model
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.data.images import READ_ERRORS, read_image_or_why


@dataclass
class PredictReport:
    predictions: list[dict]
    """One dict per image, in order: {"image", "label", "class_id", "score"}, or {"image", "error"}."""

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.predictions if "error" in r]

    def to_dict(self) -> dict:
        return {"predictions": self.predictions}

    def format_text(self) -> str:
        return "\n".join(f"{r['image']}: {r['label']} ({r['score']:.3f})" for r in self.predictions if "error" not in r)

    def failure_line(self) -> str:
        """The one error line when some images could not be read or classified."""
        failed = self.failed
        what = "read" if all(r["error"] in READ_ERRORS.values() for r in failed) else "classified"
        return f"{len(failed)} of {len(self.predictions)} images could not be {what}"


def predict(paths: Sequence[str], model_path: str | None = None,
            roi: tuple[int, int, int, int] | None = None) -> PredictReport:
    """Each image's prediction through the camera's preprocessing, or why it has none."""
    return PredictReport(predict_files(paths, model_path, roi))


def predict_files(paths: Sequence[str], model_path: str | None = None,
                  roi: tuple[int, int, int, int] | None = None) -> list[dict]:
    """One dict per path, in order: the prediction, or {"image", "error"} for an unreadable file."""
    results: list[dict] = []
    prepared, where = [], []
    for i, path in enumerate(paths):
        image, why = read_image_or_why(path)
        if image is None:
            results.append({"image": path, "error": why})
            continue
        try:
            prepared.append(preprocess_frame(image, roi).image)
        except FmnistEdgeError as exc:  # this image only (a region outside it, an odd shape): the rest run
            results.append({"image": path, "error": str(exc)})
            continue
        where.append(i)
        results.append({"image": path})
    if prepared:
        with load_model(model_path) as model:
            for i, pred in zip(where, model.classify(np.stack(prepared)), strict=True):
                results[i].update(label=pred.label, class_id=pred.class_id, score=round(pred.score, 4))
    return results
