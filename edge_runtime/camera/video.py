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


class AtomicVideoWriter:
    """BGR frames of one size to an .mp4 (mp4v) or .avi (MJPG) file."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        self._tmp = temp_beside(self.path)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
        self._writer = cv2.VideoWriter(str(self._tmp), fourcc, fps or DEFAULT_FPS, size)
        if not self._writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            raise FmnistEdgeError(f"{path}: OpenCV cannot write this video; use a .mp4 or .avi name")

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
