"""What every camera output implements.

The loop hands each classified frame to every attached sink and knows nothing about them: a new
output is a new small Sink, not a new branch in the loop. A sink says whether it needs the
annotated picture (drawing costs time, so it is drawn only when one does) and whether a video
file should play at its own frame rate while it is attached (someone is watching).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_runtime.camera.pipeline import FrameResult


class StopCamera(Exception):
    """Raised by a sink to end the run cleanly (the window's q key); the message is the reason."""


@dataclass(frozen=True)
class StreamInfo:
    """What sinks may need to know before the first frame."""

    source: str
    fps: float
    """The source's own frame rate; 0 when it does not say."""
    live: bool
    class_names: tuple[str, ...]
    source_counters: object | None = None
    """The source, for its running counters (`dropped`, `gap_count`); read them, never call it."""


class Sink:
    needs_picture: bool = False
    """Does it use the annotated picture at all? Such sinks run before the frame's timing is closed."""
    paces: bool = False
    """Does a file source play at its own frame rate while this sink is attached?"""

    def start(self, stream: StreamInfo) -> None:
        """Acquire what the sink needs (a port, a window) before the first frame."""

    def wants_picture(self) -> bool:
        """Does it want this frame's picture? (The web server only while someone watches.)"""
        return self.needs_picture

    def consume(self, result: FrameResult) -> None:
        """One classified frame; result.picture is set when any sink wanted it."""

    def stop(self, summary) -> None:
        """Release everything. `summary` is the run's CameraSummary, or None when the run failed."""
