"""How well a running camera sees, not only how fast: what `/metrics`, `/healthz` and the summary say
about its answers.

- **Unsure frames, and why**: no item found in the frame, or an item whose smoothed score stayed below
  `--min-score`.
- **Scores**: each classified frame's own top probability (frames with an item in view).
- **Frames per shown label**, the user's new classes included.
- **Drift**: the population-stability index (PSI) of the top scores of the last WINDOW frames with an
  item in view against the top scores of the model's own reference answers (the stratified Fashion-MNIST
  test images every exported file carries, weighted by their strata), over the bins SCORE_BINS:
  PSI = sum over bins of (p - q) * ln(p / q), p the recent share and q the reference share of a bin
  (each at least 0.001). Below 0.1 the scores look like the test set's; 0.1 to 0.25 is a moderate
  shift; above 0.25 a large one (the usual reading of PSI). A camera's frames are harder than the test
  set, so a steady camera settles at a level of its own: watch it change (light, a knocked camera, new
  kinds of item), not its first value. None until MIN_FRAMES frames with an item were seen.
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter, deque

import numpy as np

from edge_runtime.camera.pipeline import FrameResult
from edge_runtime.camera.smoothing import UNSURE

log = logging.getLogger(__name__)

SCORE_BINS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
"""Edges of the top-score bins (the last bin holds 0.99 to 1 inclusive)."""
WINDOW = 900
"""Frames with an item in view the drift looks back over: 30 s at 30 frames/s."""
MIN_FRAMES = 100
FLOOR = 1e-3


def score_bin(scores: np.ndarray) -> np.ndarray:
    """The bin index of each top score."""
    return np.clip(np.searchsorted(SCORE_BINS, scores, side="right") - 1, 0, len(SCORE_BINS) - 2)


def _bin_of(score: float) -> int:
    """score_bin of one score, without NumPy's cost per call (a few microseconds, on every frame)."""
    return min(max(bisect.bisect_right(SCORE_BINS, score) - 1, 0), len(SCORE_BINS) - 2)


def reference_shares(model) -> np.ndarray | None:
    """The share of each score bin among the model's reference answers (weighted by stratum); None for a
    file without references (nothing to compare against)."""
    from edge_runtime.core.errors import FmnistEdgeError
    from edge_runtime.core.references import References

    blob = getattr(model.backend, "references_blob", None)
    if blob is None:
        return None
    try:
        refs = References.from_bytes(model.path, blob)
    except FmnistEdgeError as err:
        log.warning("no drift figure: %s", err)
        return None
    stratum = np.asarray(refs.stratum, np.int64)
    sizes = np.bincount(stratum, minlength=len(refs.weights))
    weights = np.asarray(refs.weights, np.float64)[stratum] / np.maximum(sizes[stratum], 1)  # per image
    counts = np.bincount(score_bin(refs.probs.max(axis=1)), weights=weights, minlength=len(SCORE_BINS) - 1)
    return counts / counts.sum()


def psi(recent: np.ndarray, reference: np.ndarray) -> float:
    """Population-stability index of two share vectors (each share floored at FLOOR)."""
    p, q = np.maximum(recent, FLOOR), np.maximum(reference, FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


def unsure_reason(result: FrameResult) -> str | None:
    """Why a frame is shown as unsure: "no_item" (nothing found in it) or "low_score" (an item whose smoothed
    score is below --min-score); None when it is not shown as unsure."""
    if result.shown.label != UNSURE:
        return None
    return "low_score" if result.found else "no_item"


class Quality:
    """Counts of one run's answers in constant memory, and the drift of its recent scores. One per run: the
    camera's loop adds each frame once (camera.app), and every output that reports it (the summary,
    /metrics and /healthz, MQTT's status) reads the same one (StreamInfo.quality)."""

    def __init__(self, reference: np.ndarray | None, window: int = WINDOW):
        self.reference = reference
        self.recent: deque[int] = deque(maxlen=window)
        self.recent_counts = [0] * (len(SCORE_BINS) - 1)
        """Frames per score bin among `recent`, kept as frames come and go (drift reads it, not the deque)."""
        self.unsure = {"no_item": 0, "low_score": 0}
        self.labels: Counter[str] = Counter()
        self.frames = self.with_item = 0
        self.score_total = 0.0

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.labels[result.shown.label] += 1
        if (reason := unsure_reason(result)) is not None:
            self.unsure[reason] += 1
        if not result.found:
            return
        score_bin_ = _bin_of(result.score)
        if len(self.recent) == self.recent.maxlen:  # the oldest leaves the window
            self.recent_counts[self.recent[0]] -= 1
        self.recent.append(score_bin_)
        self.recent_counts[score_bin_] += 1
        self.with_item += 1
        self.score_total += result.score

    def drift(self) -> float | None:
        """PSI of the last WINDOW scores against the reference; None before MIN_FRAMES or without one."""
        if self.reference is None or len(self.recent) < MIN_FRAMES:
            return None
        counts = np.array(self.recent_counts, np.float64)
        return round(psi(counts / counts.sum(), self.reference), 4)

    def to_dict(self) -> dict:
        """The summary's `quality`: unsure frames by reason, frames per shown label, mean top score of the
        frames with an item in view, drift."""
        return {"unsure_frames": dict(self.unsure), "label_frames": dict(self.labels),
                "mean_score": self.mean_score(), "drift": self.drift()}

    def status(self) -> dict:
        """How well it sees so far, as a running service reports it (MQTT's status, the served page's
        /state.json): frames, unsure frames by reason, mean top score, drift; not the per-label counts."""
        return {"frames": self.frames, "unsure_frames": dict(self.unsure), "mean_score": self.mean_score(),
                "drift": self.drift()}

    def mean_score(self) -> float | None:
        """Mean top score of the frames with an item in view (None before the first)."""
        return round(self.score_total / self.with_item, 4) if self.with_item else None
