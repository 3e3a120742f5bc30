"""The camera's outputs, one module each: window, recorder (--record), metrics (/metrics), web server
(--serve), MQTT (--mqtt), JSON lines or label changes on stdout (lines.py), and the summary. The
field loop's collector (--collect) is a sink too, in edge_runtime.field.collect."""

from edge_runtime.camera.sinks.base import Outlets, Reply, Sink, StopCamera, StreamInfo

__all__ = ["Outlets", "Reply", "Sink", "StopCamera", "StreamInfo"]
