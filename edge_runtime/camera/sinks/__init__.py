"""The camera's outputs, one module each: window, recorder, web server, JSON lines, summary."""

from edge_runtime.camera.sinks.base import Sink, StopCamera, StreamInfo

__all__ = ["Sink", "StopCamera", "StreamInfo"]
