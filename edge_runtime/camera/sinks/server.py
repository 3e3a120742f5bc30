"""`--serve HOST:PORT`: the annotated frames as an MJPEG stream and the label as JSON, for a browser."""

from __future__ import annotations

from edge_runtime.camera.pipeline import FrameResult
from edge_runtime.camera.serve import FrameServer
from edge_runtime.camera.sinks.base import Outlets, Sink, StreamInfo


class ServerSink(Sink):
    needs_picture = True
    paces = True

    def __init__(self, address: str):
        self.address = address
        self.server: FrameServer | None = None
        self._outlets = Outlets()

    @classmethod
    def from_options(cls, opts) -> ServerSink | None:
        return cls(opts.serve) if opts.serve else None

    def start(self, stream: StreamInfo) -> None:
        self._outlets = stream.outlets
        self.server = FrameServer(self.address, routes=stream.outlets.routes)

    def wants_picture(self) -> bool:
        return self.server is not None and self.server.wants_picture  # JPEG-encoded only while watched

    def consume(self, result: FrameResult) -> None:
        state = {"label": result.shown.label, "score": round(result.shown.score, 4), "frame": result.frame.index,
                 "fps": round(result.fps, 2), "latency_ms": round(result.classify_ms, 3),
                 **self._outlets.extra_state()}
        self.server.publish(result.picture, state)

    def stop(self, summary) -> None:
        if self.server is not None:
            self.server.close()
