"""`--serve HOST:PORT`: the annotated frames as an MJPEG stream and the label as JSON, for a browser."""

from __future__ import annotations

from collections.abc import Callable

from edge_runtime.camera.pipeline import FrameResult
from edge_runtime.camera.serve import FrameServer
from edge_runtime.camera.sinks.base import Sink, StreamInfo


class ServerSink(Sink):
    needs_picture = True
    paces = True

    def __init__(self, address: str, metrics: Callable[[], bytes] | None = None, collector=None):
        self.address = address
        self.metrics = metrics
        self.collector = collector
        """A CollectorSink: the page gets a button that keeps the current frame."""
        self.server: FrameServer | None = None

    def start(self, stream: StreamInfo) -> None:
        self.server = FrameServer(self.address, metrics=self.metrics,
                                  on_save=self.collector.ask if self.collector else None)

    def wants_picture(self) -> bool:
        return self.server is not None and self.server.wants_picture  # JPEG-encoded only while watched

    def consume(self, result: FrameResult) -> None:
        state = {"label": result.shown.label, "score": round(result.shown.score, 4), "frame": result.frame.index,
                 "fps": round(result.fps, 2), "latency_ms": round(result.classify_ms, 3)}
        if self.collector is not None:
            state["collected"] = self.collector.saved
        self.server.publish(result.picture, state)

    def stop(self, summary) -> None:
        if self.server is not None:
            self.server.close()
