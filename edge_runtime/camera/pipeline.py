"""The camera's per-frame step: preprocess -> infer -> smooth, each timed, and the annotated
picture drawn only when a sink wants it.

A FrameResult is everything a sink may need about one frame: the frame as captured, what the
model saw, its answer, the smoothed label, and how long each stage took.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from edge_runtime.camera.overlay import draw
from edge_runtime.camera.preprocess import PreparedFrame, preprocess_frame
from edge_runtime.camera.smoothing import LabelSmoother, SmoothedLabel
from edge_runtime.camera.sources import Frame
from edge_runtime.camera.still import StillScene
from edge_runtime.core.classifier import Classifier

STAGES = ("wait", "preprocess", "inference", "draw")
"""Timed per frame: waiting for the capture, preprocessing, inference (with smoothing), and
drawing and showing the picture (every sink that needs it)."""

clock = time.perf_counter


@dataclass
class FrameResult:
    frame: Frame
    prepared: PreparedFrame
    probs: np.ndarray
    """This frame's own probabilities."""
    shown: SmoothedLabel
    """What the display shows: averaged over recent frames, "unsure" below the threshold."""
    fps: float
    """Frames classified per second since the start, this one included."""
    stages: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each of STAGES; "draw" once finish() has run."""
    picture: np.ndarray | None = None
    """The annotated frame (BGR), when a sink wanted it."""
    inferred_at: float = 0.0
    """clock() when inference and smoothing ended: the draw stage starts there."""
    reused: bool = False
    """The preprocessing was the last preprocessed frame's: the scene had not changed (--reuse-still)."""

    @cached_property  # every output asks; the answer never changes
    def class_id(self) -> int:
        return int(self.probs.argmax())

    @cached_property
    def score(self) -> float:
        return float(self.probs[self.class_id])

    @property
    def found(self) -> bool:
        return self.prepared.box is not None

    @property
    def classify_ms(self) -> float:
        """Preprocessing and inference: what the overlay and the web page show as latency."""
        return (self.stages["preprocess"] + self.stages["inference"]) * 1e3

    @property
    def latency_ms(self) -> float:
        """From the frame in hand to every picture shown."""
        return sum(self.stages[s] for s in STAGES[1:]) * 1e3

    def finish(self) -> None:
        """End the draw stage: the picture, if any, is drawn and shown."""
        self.stages["draw"] = clock() - self.inferred_at

    def record(self) -> dict:
        """The frame's JSON line (the CLI contract's keys first)."""
        return {"frame": self.frame.index, "label": self.shown.label, "class_id": self.class_id,
                "score": round(self.score, 4), "latency_ms": round(self.latency_ms, 3),
                "smoothed_score": round(self.shown.score, 4), "found": self.found,
                "box": list(self.frame.in_source_pixels(self.prepared.box)) if self.found else None,
                "age_ms": round((clock() - self.frame.captured) * 1e3, 3),
                "stages_ms": {k: round(v * 1e3, 3) for k, v in self.stages.items()}, "reused": self.reused}


class FrameStep:
    """Turns one captured frame into a FrameResult with the model, the smoother and the region of interest;
    with `reuse_still`, a frame of the same scene as the last one preprocessed gets its result (camera.still),
    and then the model's answer to it too: the same input, the same answer, not computed again."""

    def __init__(self, model: Classifier, smoother: LabelSmoother, roi: tuple[int, int, int, int] | None = None,
                 reuse_still: bool = False):
        self.model = model
        self.smoother = smoother
        self.roi = roi
        self.still = StillScene(preprocess_frame) if reuse_still else None
        self._answered: tuple[PreparedFrame, np.ndarray] | None = None
        """With reuse_still: the last input the model was run on, and its answer."""
        self.frames = 0
        self.started = clock()
        self.outputs_seconds = 0.0
        """Seconds the outputs that take a frame after it is shown (JSON lines, /metrics, MQTT, the summary)
        spent, over the run: the loop adds them up, the summary reports them as the "outputs" stage."""

    def process(self, frame: Frame, waited: float) -> FrameResult:
        t0 = clock()
        roi = frame.in_image_pixels(self.roi)  # given in the source's pixels; a frame may be decoded smaller
        if self.still is None:
            prepared, reused = preprocess_frame(frame.image, roi), False
        else:
            prepared, reused = self.still(frame.image, roi)
        t1 = clock()
        if reused and self._answered is not None and self._answered[0] is prepared:
            probs = self._answered[1]
        else:
            probs = self.model.predict(prepared.image[np.newaxis])[0]
            if self.still is not None:
                self._answered = prepared, probs
        shown = self.smoother.update(probs if prepared.box is not None else None)
        t2 = clock()
        self.frames += 1
        return FrameResult(frame, prepared, probs, shown, fps=self.frames / max(t2 - self.started, 1e-9),
                           stages={"wait": waited, "preprocess": t1 - t0, "inference": t2 - t1}, inferred_at=t2,
                           reused=reused)

    def annotate(self, result: FrameResult) -> np.ndarray:
        """The frame with the label, score, top-3 bars, the model's input, FPS and latency drawn on a copy
        (the captured frame stays as it was, for sinks that keep it)."""
        return draw(result.frame.image.copy(), result.shown, self.model.class_names, result.prepared.image,
                    result.prepared.box, result.fps, result.classify_ms)
