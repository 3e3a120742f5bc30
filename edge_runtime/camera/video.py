"""Writing a video file atomically: frames go to a temporary file that is renamed into place only
when the video is complete, so an interrupted run never leaves a half-written file under the name."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.files import temp_beside

DEFAULT_FPS = 30.0
"""The rate a video is written at when its source has none (a file without a frame rate)."""
RATES = (0.1, 1000.0)
"""The frame rates, in frames a second, that a video or camera is believed to have. A broken header can
say a millionth or a million, a camera driver infinity; OpenCV's writer refuses the first two under a
misleading error and hangs for good on the third."""


def believable_rate(fps: object) -> float:
    """`fps` when it is a frame rate within RATES, else 0 (not known)."""
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        return 0.0
    return fps if RATES[0] <= fps <= RATES[1] else 0.0


class AtomicVideoWriter:
    """BGR frames of one size to an .mp4 (mp4v) or .avi (MJPG) file, at `fps` frames a second (DEFAULT_FPS
    when that is not a believable rate)."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        self._tmp = temp_beside(self.path)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
        self._writer = cv2.VideoWriter(str(self._tmp), fourcc, believable_rate(fps) or DEFAULT_FPS, size)
        if not self._writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            raise FmnistEdgeError(f"{path}: OpenCV cannot write a {size[0]}x{size[1]} video to this file; use an .avi "
                                  "name (MJPG takes any frame size) or .mp4 for frames of at least 2x2")

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)

    def close(self) -> None:
        """Finish the file and put it in place."""
        self._writer.release()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file; whatever was at `path` stays."""
        self._writer.release()
        self._tmp.unlink(missing_ok=True)
