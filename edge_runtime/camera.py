"""`fmnist-edge camera`: classify camera frames in real time, on screen, headless or in a browser.

One loop: take a frame, preprocess it (find the item, make it Fashion-MNIST-like), classify it,
smooth the label over recent frames, then draw and show / serve / record it when anything needs
the picture. Every stage is timed per frame.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.classifier import load_model
from edge_runtime.errors import FmnistEdgeError
from edge_runtime.fsutil import temp_beside
from edge_runtime.overlay import draw
from edge_runtime.preprocess import preprocess_frame
from edge_runtime.smoothing import LabelSmoother
from edge_runtime.sources import open_capture, open_source

log = logging.getLogger(__name__)
WINDOW = "fmnist-edge"


@dataclass
class CameraOptions:
    source: str = "0"
    """A camera index (V4L2), a video file, a stream URL, or "picamera"."""
    model: str | None = None
    """A .tflite or .onnx file; None for the bundled model."""
    threads: int | None = 1
    headless: bool = False
    """No window."""
    serve: str | None = None
    """HOST:PORT to serve the annotated stream and label over HTTP."""
    record: str | None = None
    """A video file to write the annotated frames to."""
    max_frames: int | None = None
    roi: tuple[int, int, int, int] | None = None
    """x, y, w, h: only look for the item there."""
    smooth_frames: int = 5
    min_score: float = 0.6
    """Below this averaged probability the label is "unsure"."""
    frame_timeout: float = 10.0
    """Seconds to wait for a live frame before saying the source is silent (and waiting on)."""


@dataclass
class CameraSummary:
    frames: int = 0
    fps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    dropped: int = 0
    """Live frames replaced by newer ones before they could be classified (0 for files)."""
    gaps: list[float] = field(default_factory=list)
    """Seconds a live source was silent before it was reopened."""
    stage_ms: dict = field(default_factory=dict)
    """Mean milliseconds per frame of each stage."""
    ended_by: str = ""


def window_available() -> bool:
    """Can OpenCV open a window here? (opencv-python-headless cannot; neither can a board with no display.)"""
    if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
    except cv2.error:
        return False
    return True


class _Recorder:
    """Annotated frames to a video file, written under a temporary name and renamed at the end."""

    def __init__(self, path: str, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        self._tmp = temp_beside(self.path)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
        self._writer = cv2.VideoWriter(str(self._tmp), fourcc, fps or 30.0, size)
        if not self._writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            raise FmnistEdgeError(f"--record {path}: OpenCV cannot write this video; use a .mp4 or .avi name")

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)

    def close(self) -> None:
        self._writer.release()
        os.replace(self._tmp, self.path)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """`kill` ends the loop like Ctrl-C does: cleanly, with the summary."""
    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else 0.0


def run(opts: CameraOptions, emit: Callable[[dict], None], opener: Callable = open_capture) -> CameraSummary:
    """Run the camera loop until the source ends, `max_frames`, `q`/Esc, Ctrl-C or SIGTERM.

    `emit` receives one dict per classified frame (the JSON line of the CLI contract).
    """
    want_window = not opts.headless
    if want_window and not window_available():
        raise FmnistEdgeError("no window can open here (no display, or the headless OpenCV build); "
                              "use --headless, or --serve 0.0.0.0:8080 and a browser")
    model = load_model(opts.model, opts.threads)
    source = open_source(opts.source, opener)
    server = None
    if opts.serve:
        from edge_runtime.serve import FrameServer

        server = FrameServer(opts.serve)
    smoother = LabelSmoother(model.class_names, opts.smooth_frames, opts.min_score)
    recorder = None
    summary = CameraSummary()
    latencies: list[float] = []
    totals = dict.fromkeys(("wait", "preprocess", "inference", "draw"), 0.0)
    clock = time.perf_counter
    # A file that somebody watches plays at its own frame rate, as a camera would.
    paced = not source.live and source.fps > 0 and (want_window or server is not None)
    start = clock()
    try:
        with _sigterm_as_interrupt():
            while opts.max_frames is None or summary.frames < opts.max_frames:
                t0 = clock()
                frame = source.read(timeout=opts.frame_timeout)
                if frame is None:
                    if source.live:
                        log.warning("no frame from %s for %.0f s; still waiting", opts.source, opts.frame_timeout)
                        continue
                    summary.ended_by = "end of file"
                    break
                if paced:
                    delay = start + frame.index / source.fps - clock()
                    if delay > 0:
                        time.sleep(delay)
                t1 = clock()
                prepared = preprocess_frame(frame.image, opts.roi)
                t2 = clock()
                probs = model.predict(prepared.image[np.newaxis])[0]
                t3 = clock()
                shown = smoother.update(probs if prepared.box is not None else None)
                class_id = int(probs.argmax())
                watched = want_window or opts.record or (server is not None and server.wants_picture)
                fps = (summary.frames + 1) / max(t3 - start, 1e-9)
                if watched or server is not None:
                    picture = draw(frame.image, shown, model.class_names, prepared.image, prepared.box, fps,
                                   (t3 - t1) * 1e3) if watched else None
                    if want_window:
                        cv2.imshow(WINDOW, picture)
                        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                            summary.ended_by = "quit key"
                            break
                    if opts.record:
                        if recorder is None:
                            h, w = picture.shape[:2]
                            recorder = _Recorder(opts.record, source.fps, (w, h))
                        recorder.write(picture)
                    if server is not None:
                        server.publish(picture, {"label": shown.label, "score": round(shown.score, 4),
                                                 "frame": frame.index, "fps": round(fps, 2),
                                                 "latency_ms": round((t3 - t1) * 1e3, 3)})
                t4 = clock()
                stages = {"wait": t1 - t0, "preprocess": t2 - t1, "inference": t3 - t2, "draw": t4 - t3}
                for key, value in stages.items():
                    totals[key] += value
                latency = (t4 - t1) * 1e3
                latencies.append(latency)
                summary.frames += 1
                emit({"frame": frame.index, "label": shown.label, "class_id": class_id,
                      "score": round(float(probs[class_id]), 4), "latency_ms": round(latency, 3),
                      "smoothed_score": round(shown.score, 4), "found": prepared.box is not None,
                      "age_ms": round((clock() - frame.captured) * 1e3, 3),
                      "stages_ms": {k: round(v * 1e3, 3) for k, v in stages.items()}})
            else:
                summary.ended_by = "max frames"
    except KeyboardInterrupt:
        summary.ended_by = "interrupted"
    finally:
        elapsed = clock() - start
        source.close()
        if recorder is not None:
            recorder.close()
        if server is not None:
            server.close()
        if want_window:
            cv2.destroyAllWindows()
        model.close()
    summary.fps = round(summary.frames / elapsed, 2) if elapsed > 0 else 0.0
    summary.p50_ms, summary.p99_ms = _percentile(latencies, 50), _percentile(latencies, 99)
    summary.dropped = source.dropped
    summary.gaps = [round(g, 2) for g in source.gaps]
    summary.stage_ms = {k: round(v * 1e3 / max(summary.frames, 1), 4) for k, v in totals.items()}
    return summary
