"""`--serve HOST:PORT`: the annotated frames as an MJPEG stream, and the label and how well the camera sees
as JSON, for a browser."""

from __future__ import annotations

from edge_runtime.camera.pipeline import FrameResult
from edge_runtime.camera.quality import Quality
from edge_runtime.camera.serve import FrameServer
from edge_runtime.camera.sinks.base import Outlets, Sink, StreamInfo


class ServerSink(Sink):
    needs_picture = True
    paces = True

    def __init__(self, address: str):
        self.address = address
        self.server: FrameServer | None = None
        self._outlets = Outlets()
        self._quality = Quality(None)

    @classmethod
    def from_options(cls, opts) -> ServerSink | None:
        return cls(opts.serve) if opts.serve else None

    def start(self, stream: StreamInfo) -> None:
        self._outlets, self._quality = stream.outlets, stream.quality
        self.server = FrameServer(self.address, routes=stream.outlets.routes, extra_state=self._extra_state)

    def _extra_state(self) -> dict:
        """What /state.json adds when it is asked for: how well the camera sees (the run's quality tally, as
        MQTT's status gives it) and the fields other sinks offer (the collector's count)."""
        return {"quality": self._quality.status(), **self._outlets.extra_state()}

    def wants_picture(self) -> bool:
        return self.server is not None and self.server.wants_picture  # JPEG-encoded only while watched

    def consume(self, result: FrameResult) -> None:
        state = {"label": result.shown.label, "score": round(result.shown.score, 4), "frame": result.frame.index,
                 "fps": round(result.fps, 2), "latency_ms": round(result.classify_ms, 3)}
        self.server.publish(result.picture, state)

    def stop(self, summary) -> None:
        if self.server is not None:
            self.server.close()
