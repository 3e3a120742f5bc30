"""How a model does on labelled photos: the one scorer that `evaluate --photos`, training's held-out
report, toolkit.calibrate and benchmarks/real_photos.py share.

A photo is right when the model's top class is one it accepts (a long-sleeved top is right as Pullover
or Shirt). Photos no class fits (hats, shorts, skirts) are out-of-distribution: the camera should leave
them "unsure", so they are scored by how sure the model is of them. At the camera's --min-score, a
photo is labelled when its top probability reaches it; the share labelled and the share of those
that are right are what a user of the camera sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_runtime.core.contract import CLASS_NAMES
from edge_runtime.data.photos import Photo
from edge_runtime.report.metrics import reliability

DEFAULT_MIN_SCORE = 0.6
"""The camera's default --min-score."""


@dataclass
class PhotoScore:
    photos: int
    """In-distribution photos scored (those with at least one accepted class)."""
    accuracy: float
    per_class: dict[str, float]
    """Accuracy per photo class (in-distribution classes)."""
    ood_photos: int
    ood_mean_confidence: float
    """Mean top probability on out-of-distribution photos: lower is better."""
    in_mean_confidence: float
    min_score: float = DEFAULT_MIN_SCORE
    ood_unsure: float | None = None
    """Share of out-of-distribution photos whose top probability is below min_score (left "unsure")."""
    labelled: float | None = None
    """Share of in-distribution photos whose top probability reaches min_score (the camera labels them)."""
    labelled_right: float | None = None
    """Of those, the share that are right."""
    ece: float | None = None
    """Expected calibration error on the in-distribution photos."""
    open_set_ece: float | None = None
    """The same with every photo, a label on an out-of-distribution photo counting as wrong."""
    per_class_photos: dict[str, int] = field(default_factory=dict)
    per_class_labelled: dict[str, float] = field(default_factory=dict)
    """Share of each photo class's photos that the camera labels at min_score."""
    per_source: dict[str, dict] = field(default_factory=dict)
    """Source (the table's `source` column, or the folder) -> {"photos", "accuracy"} of its
    in-distribution photos."""
    per_fmnist_class: dict[str, dict] = field(default_factory=dict)
    """Fashion-MNIST class -> {"photos", "accuracy"} over the photos labelled with that one class alone
    (strict: a photo that accepts several classes, a long-sleeved top, is not in any row)."""


def right_answers(photos: Sequence[Photo], probs: np.ndarray) -> np.ndarray:
    """bool [N]: the top class is one the photo accepts (False for out-of-distribution photos)."""
    top = probs.argmax(axis=1)
    return np.array([int(t) in p.accepted for t, p in zip(top, photos, strict=True)], dtype=bool)


def _share(mask: np.ndarray, of: np.ndarray) -> float | None:
    return round(float(mask[of].mean()), 4) if of.any() else None


def score_photos(photos: Sequence[Photo], probs: np.ndarray, min_score: float = DEFAULT_MIN_SCORE) -> PhotoScore:
    """Every figure of the module's docstring, for `probs` (float [N,classes]) on `photos`."""
    right = right_answers(photos, probs)
    known = np.array([bool(p.accepted) for p in photos], dtype=bool)
    conf = probs.max(axis=1)
    keep = conf >= min_score
    classes = np.array([p.photo_class for p in photos])
    score = PhotoScore(photos=int(known.sum()), accuracy=_share(right, known) or 0.0, per_class={},
                       ood_photos=int((~known).sum()), ood_mean_confidence=_mean(conf, ~known),
                       in_mean_confidence=_mean(conf, known), min_score=min_score,
                       ood_unsure=_share(~keep, ~known), labelled=_share(keep, known),
                       labelled_right=_share(right, known & keep))
    if known.any():
        _, score.ece = reliability(conf[known], right[known])
    _, score.open_set_ece = reliability(conf, right & known)
    for name in sorted(set(classes)):
        pick = classes == name
        score.per_class_photos[name] = int(pick.sum())
        score.per_class_labelled[name] = _share(keep, pick)
        if known[pick].any():
            score.per_class[name] = _share(right, pick)
    score.per_source = _groups(np.array([p.source for p in photos]), right, known)
    strict = np.array([CLASS_NAMES[min(p.accepted)] if len(p.accepted) == 1 else "" for p in photos])
    by_class = _groups(strict, right, strict != "")
    score.per_fmnist_class = {name: by_class[name] for name in CLASS_NAMES if name in by_class}
    return score


def _groups(names: np.ndarray, right: np.ndarray, counted: np.ndarray) -> dict[str, dict]:
    """name -> {"photos", "accuracy"} over the counted photos of each name, in the order names first appear."""
    rows = {}
    for name in dict.fromkeys(names[counted]):
        pick = counted & (names == name)
        rows[str(name)] = {"photos": int(pick.sum()), "accuracy": _share(right, pick)}
    return rows


def _mean(values: np.ndarray, pick: np.ndarray) -> float:
    return round(float(values[pick].mean()), 4) if pick.any() else 0.0
