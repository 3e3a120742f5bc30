"""Real photos of clothing with Fashion-MNIST labels (../shared/real-photos): loading and a fixed split.

Each photo belongs to the "tune" half (which training may use) or the "held-out" half (which only
measures), decided by a hash of its path, so every tool and every run agrees on the split and no
result is reported on a photo that training saw. NumPy and OpenCV only.

labels.csv columns: path, photo_class, fashion_mnist_classes (space-separated acceptable class
ids; empty for items no Fashion-MNIST class fits: hats, shorts, skirts).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.camera.preprocess import preprocess_frame
from edge_runtime.core.errors import FmnistEdgeError

SPLITS = ("tune", "held-out", "all")


@dataclass(frozen=True)
class Photo:
    path: Path
    photo_class: str
    accepted: frozenset[int]
    """Fashion-MNIST classes that count as right; empty for out-of-distribution items."""

    @property
    def split(self) -> str:
        digest = hashlib.sha256(f"{self.photo_class}/{self.path.name}".encode()).digest()
        return "tune" if digest[0] % 2 == 0 else "held-out"


def load_photos(root: str | Path, split: str = "all") -> list[Photo]:
    """The photos listed in ROOT/labels.csv, in file order, restricted to `split`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    root = Path(root)
    table = root / "labels.csv"
    if not table.is_file():
        raise FmnistEdgeError(f"{table}: no labels.csv; point --photos at the real-photos folder")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    photos = [Photo(root / r["path"], r["photo_class"], frozenset(int(c) for c in r["fashion_mnist_classes"].split()))
              for r in rows]
    return [p for p in photos if split == "all" or p.split == split]


def accepted_mask(photos: list[Photo]) -> np.ndarray:
    """float32 [N,10]: 1 where a class counts as right (all zeros for out-of-distribution photos)."""
    mask = np.zeros((len(photos), 10), np.float32)
    for i, photo in enumerate(photos):
        mask[i, sorted(photo.accepted)] = 1.0
    return mask


def prepare(photos: list[Photo]) -> np.ndarray:
    """uint8 [N,28,28,1]: each photo through the camera's frame preprocessing."""
    out = np.zeros((len(photos), 28, 28, 1), np.uint8)
    for i, photo in enumerate(photos):
        image = cv2.imread(str(photo.path), cv2.IMREAD_COLOR)
        if image is None:
            raise FmnistEdgeError(f"{photo.path}: unreadable photo")
        out[i] = preprocess_frame(image).image
    return out


@dataclass
class PhotoScore:
    photos: int
    """In-distribution photos scored (those with at least one accepted class)."""
    accuracy: float
    per_class: dict[str, float]
    ood_photos: int
    ood_mean_confidence: float
    """Mean top probability on out-of-distribution photos: lower is better."""
    in_mean_confidence: float


def score(photos: list[Photo], probs: np.ndarray) -> PhotoScore:
    """Accuracy where the top class is an accepted one; confidence on the out-of-distribution rest."""
    top = probs.argmax(axis=1)
    right = np.array([int(t) in p.accepted for t, p in zip(top, photos, strict=True)])
    known = np.array([bool(p.accepted) for p in photos])
    per_class = {}
    for name in sorted({p.photo_class for p in photos if p.accepted}):
        idx = [i for i, p in enumerate(photos) if p.photo_class == name]
        per_class[name] = round(float(right[idx].mean()), 4)
    conf = probs.max(axis=1)
    return PhotoScore(photos=int(known.sum()), accuracy=round(float(right[known].mean()), 4) if known.any() else 0.0,
                      per_class=per_class, ood_photos=int((~known).sum()),
                      ood_mean_confidence=round(float(conf[~known].mean()), 4) if (~known).any() else 0.0,
                      in_mean_confidence=round(float(conf[known].mean()), 4) if known.any() else 0.0)
