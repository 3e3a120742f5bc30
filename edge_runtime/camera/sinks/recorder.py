"""`--record FILE`: the annotated frames as a video, renamed into place when the run ends."""

from __future__ import annotations

from edge_runtime.camera.pipeline import FrameResult
from edge_runtime.camera.sinks.base import Sink, StreamInfo
from edge_runtime.camera.video import AtomicVideoWriter


class RecorderSink(Sink):
    needs_picture = True

    def __init__(self, path: str):
        self.path = path
        self._fps = 0.0
        self._writer: AtomicVideoWriter | None = None

    @classmethod
    def from_options(cls, opts) -> RecorderSink | None:
        return cls(opts.record) if opts.record else None

    def start(self, stream: StreamInfo) -> None:
        self._fps = stream.fps

    def consume(self, result: FrameResult) -> None:
        if self._writer is None:  # the size is known with the first frame
            h, w = result.picture.shape[:2]
            self._writer = AtomicVideoWriter(self.path, self._fps, (w, h))
        self._writer.write(result.picture)

    def stop(self, summary) -> None:
        if self._writer is not None:
            self._writer.close()  # what was recorded until the end, also after an interruption
