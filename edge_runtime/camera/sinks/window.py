"""A desktop window with the annotated frames; q or Esc ends the run."""

from __future__ import annotations

import os

import cv2

from edge_runtime.camera.pipeline import FrameResult
from edge_runtime.camera.sinks.base import Sink, StopCamera
from edge_runtime.core.errors import FmnistEdgeError

WINDOW = "fmnist-edge"
QUIT_KEYS = (ord("q"), 27)


def window_available() -> bool:
    """Can OpenCV open a window here? (opencv-python-headless cannot; neither can a board with no display.)"""
    if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
    except cv2.error:
        return False
    return True


class WindowSink(Sink):
    needs_picture = True
    paces = True

    @classmethod
    def from_options(cls, opts) -> WindowSink | None:
        return None if opts.headless else cls()

    def __init__(self):
        if not window_available():
            raise FmnistEdgeError("no window can open here (no display, or the headless OpenCV build); "
                                  "use --headless, or --serve 0.0.0.0:8080 and a browser")

    def consume(self, result: FrameResult) -> None:
        cv2.imshow(WINDOW, result.picture)
        if cv2.waitKey(1) & 0xFF in QUIT_KEYS:
            raise StopCamera("quit key")

    def stop(self, summary) -> None:
        cv2.destroyAllWindows()
