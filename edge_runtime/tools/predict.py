"""`fmnist-edge predict`: image files through the camera's preprocessing and the classifier."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.camera.preprocess import preprocess_frame
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.classifier import load_model


READ_ERRORS = {False: "no such file", True: "not an image OpenCV can read"}
"""Why an image could not be read, by whether the path exists."""


def read_image(path: str) -> np.ndarray | None:
    """Any image file OpenCV reads, as it is on disk (grey, BGR or BGRA); None if unreadable."""
    if not Path(path).is_file():
        return None
    data = np.fromfile(path, dtype=np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None


def predict_files(paths: Sequence[str], model_path: str | None = None,
                  roi: tuple[int, int, int, int] | None = None) -> list[dict]:
    """One dict per path, in order: the prediction, or {"image", "error"} for an unreadable file."""
    results: list[dict] = []
    prepared, where = [], []
    for i, path in enumerate(paths):
        image = read_image(path)
        if image is None:
            reason = READ_ERRORS[Path(path).exists()]
            results.append({"image": path, "error": reason})
            continue
        if image.dtype != np.uint8:  # 16-bit PNGs and the like
            image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
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
