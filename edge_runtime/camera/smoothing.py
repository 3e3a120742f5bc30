"""Steady labels from noisy frames: an exponential average of probabilities and an "unsure" floor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNSURE = "unsure"


@dataclass
class SmoothedLabel:
    label: str
    """A class name, or "unsure" when nothing is confidently in view."""
    class_id: int | None
    score: float
    """The averaged probability of `class_id` (of the best class when unsure)."""
    probs: np.ndarray


class LabelSmoother:
    """Averages class probabilities over about `frames` recent frames.

    The label shown is the best averaged class when its averaged probability reaches `min_score`,
    else "unsure". A frame where no item was found counts as a uniform guess, so the label fades
    to "unsure" when the item leaves instead of freezing on the last answer.
    """

    def __init__(self, class_names: tuple[str, ...], frames: int = 5, min_score: float = 0.6):
        if frames < 1:
            raise ValueError("frames must be at least 1")
        self.class_names = class_names
        self.min_score = min_score
        self._alpha = 2.0 / (frames + 1)
        self._avg: np.ndarray | None = None

    def update(self, probs: np.ndarray | None) -> SmoothedLabel:
        n = len(self.class_names)
        current = np.full(n, 1.0 / n, np.float32) if probs is None else np.asarray(probs, np.float32)
        self._avg = current.copy() if self._avg is None else self._avg + self._alpha * (current - self._avg)
        best = int(self._avg.argmax())
        score = float(self._avg[best])
        if score < self.min_score:
            return SmoothedLabel(UNSURE, None, score, self._avg)
        return SmoothedLabel(self.class_names[best], best, score, self._avg)
