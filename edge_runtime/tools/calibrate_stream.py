"""`fmnist-edge calibrate-stream VIDEO --labels FILE`: choose the camera's `--smooth` and `--min-score` on
the user's own recorded stream, for a target.

The video goes through the camera's own steps once (preprocess_frame, the model), frame by frame; then
every pair of GRID settings replays the camera's smoother (camera.smoothing.LabelSmoother) over those
answers, and each pair is scored against the labels:

- **wrong changes per hour**: times the shown label changed to a class that is not the frame's true one
  (what an operator sees as a false alarm on MQTT or the page);
- **labelled**: the share of frames with an item of a known class where a class (not "unsure") is
  shown, **right**: the share of those shown labels that are right, and **labelled right**: the share
  of those frames shown with their own class (smoothing that lags behind a new item costs here);
- **unsure where none**: the share of frames with no item, or an item no class fits, shown "unsure".

The labels file has one line per frame: a class id (0-9, or beyond for an adapted model), a class name,
or `-` where no class should be shown (no item, an item no class fits); `python -m toolkit.synthetic`
writes one beside each video it makes. The target is at most `--max-wrong-per-hour` wrong changes (the
setting with the most frames labelled right among those) or at least `--min-labelled` frames labelled
right (the setting with fewest wrong changes among those).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.core.errors import FmnistEdgeError

SMOOTH = (1, 2, 3, 5, 8, 12, 20)
MIN_SCORE = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
NONE = -1


@dataclass
class StreamAnswers:
    """The model's answers on each frame of a stream, and the truth."""

    probs: np.ndarray
    """float32 [N, classes]; a uniform row where no item was found (as the camera feeds its smoother)."""
    truth: np.ndarray
    """int [N]: the true class, NONE where no class should be shown."""
    fps: float


@dataclass
class CalibrationReport:
    video: str
    frames: int
    hours: float
    target: str
    chosen: dict
    """The chosen row (smooth, min_score and its figures); empty when no setting meets the target."""
    table: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def format_text(self) -> str:
        head = (f"{'smooth':>6} {'min-score':>9} {'wrong/h':>8} {'labelled':>8} {'right':>6} {'lab.right':>9} "
                f"{'unsure-none':>11}")
        rows = [f"{r['smooth']:>6} {r['min_score']:>9.2f} {r['wrong_changes_per_hour']:>8.1f} "
                f"{r['labelled']:>8.3f} {_fmt(r['right']):>6} {r['labelled_right']:>9.3f} "
                f"{_fmt(r['unsure_where_none']):>11}" for r in self.table]
        pick = (f"chosen for {self.target}: --smooth {self.chosen['smooth']} --min-score {self.chosen['min_score']}"
                if self.chosen else f"no setting meets {self.target}; the table shows what each gives")
        return "\n".join([f"{self.video}: {self.frames} frames ({self.hours * 60:.1f} min)", head, *rows, pick])


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def read_labels(path: str | Path, class_names: tuple[str, ...]) -> np.ndarray:
    """The labels file: a class id, a class name or `-` per line; one line, one frame."""
    truth = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        word = line.strip()
        if word == "-":
            truth.append(NONE)
        elif word.isascii() and word.isdigit() and int(word) < len(class_names):
            truth.append(int(word))
        elif word in class_names:
            truth.append(class_names.index(word))
        else:
            raise FmnistEdgeError(f"--labels {path}: line {number} is {word[:40]!r}: give a class id (0 to "
                                  f"{len(class_names) - 1}), a class name or - (no class), one line per frame")
    if not truth:
        raise FmnistEdgeError(f"--labels {path}: no lines; give one line per frame of the video")
    return np.array(truth)


def stream_answers(video: str, labels: str, model, roi=None) -> StreamAnswers:
    """Run the camera's preprocessing and the model over every frame of `video` once."""
    from edge_runtime.camera.preprocess import preprocess_frame
    from edge_runtime.camera.sources import capture_rate, open_capture
    from edge_runtime.camera.video import DEFAULT_FPS

    truth = read_labels(labels, model.class_names)
    capture, rows = open_capture(video), []
    uniform = np.full(len(model.class_names), 1 / len(model.class_names), np.float32)
    try:
        fps = capture_rate(capture, video) or DEFAULT_FPS
        while len(rows) <= len(truth):
            ok, frame = capture.read()
            if not ok:
                break
            prepared = preprocess_frame(frame, roi)
            rows.append(uniform if prepared.box is None else model.predict(prepared.image[np.newaxis])[0])
    finally:
        capture.release()
    if len(rows) != len(truth):
        raise FmnistEdgeError(f"--labels {labels}: {len(truth)} lines for {video}'s {len(rows)}"
                              f"{'+' if len(rows) > len(truth) else ''} frames: give one line per frame")
    return StreamAnswers(np.array(rows, np.float32), truth, fps)


def score_setting(answers: StreamAnswers, class_names: tuple[str, ...], smooth: int, min_score: float) -> dict:
    """The camera's smoother over the answers with these settings, scored against the truth."""
    from edge_runtime.camera.smoothing import LabelSmoother

    smoother = LabelSmoother(class_names, smooth, min_score)
    shown = np.array([NONE if (s := smoother.update(p)).class_id is None else s.class_id for p in answers.probs])
    changed = np.flatnonzero(shown[1:] != shown[:-1]) + 1
    wrong = sum(1 for i in changed if shown[i] != NONE and shown[i] != answers.truth[i])
    known, none = answers.truth != NONE, answers.truth == NONE
    labelled = known & (shown != NONE)
    hours = len(shown) / answers.fps / 3600
    return {"smooth": smooth, "min_score": min_score, "wrong_changes_per_hour": round(wrong / hours, 1),
            "wrong_changes": wrong, "labelled": round(float(labelled.sum() / max(known.sum(), 1)), 4),
            "labelled_right": round(float((labelled & (shown == answers.truth)).sum() / max(known.sum(), 1)), 4),
            "right": round(float((shown[labelled] == answers.truth[labelled]).mean()), 4) if labelled.any() else None,
            "unsure_where_none": round(float((shown[none] == NONE).mean()), 4) if none.any() else None}


def choose(table: list[dict], max_wrong_per_hour: float | None, min_labelled: float | None) -> dict:
    """The row meeting the target: most frames labelled right within the wrong-change budget, or fewest
    wrong changes with at least that share labelled right (ties: the smaller smoothing, which reacts sooner)."""
    if min_labelled is not None:
        fits = [r for r in table if r["labelled_right"] >= min_labelled]
        return min(fits, key=lambda r: (r["wrong_changes_per_hour"], -r["labelled_right"], r["smooth"])) if fits else {}
    fits = [r for r in table if r["wrong_changes_per_hour"] <= max_wrong_per_hour]
    return max(fits, key=lambda r: (r["labelled_right"], -r["wrong_changes_per_hour"], -r["smooth"])) if fits else {}


def calibrate_stream(video: str, labels: str, model_path: str | None = None, max_wrong_per_hour: float | None = None,
                     min_labelled: float | None = None, roi=None) -> CalibrationReport:
    from edge_runtime.core.classifier import load_model

    if max_wrong_per_hour is not None and min_labelled is not None:
        raise FmnistEdgeError("give one target: --max-wrong-per-hour or --min-labelled")
    if max_wrong_per_hour is None and min_labelled is None:
        max_wrong_per_hour = 60.0
    with load_model(model_path) as model:
        answers = stream_answers(video, labels, model, roi)
        table = [score_setting(answers, model.class_names, s, m) for s, m in itertools.product(SMOOTH, MIN_SCORE)]
    target = (f"at least {min_labelled:.0%} of item frames labelled right" if min_labelled is not None
              else f"at most {max_wrong_per_hour:g} wrong label changes per hour")
    return CalibrationReport(video, len(answers.truth), len(answers.truth) / answers.fps / 3600, target,
                             choose(table, max_wrong_per_hour, min_labelled), table)
