"""What every camera output implements.

The loop hands each classified frame to every attached sink and knows nothing about them: a new
output is a new small Sink, not a new branch in the loop. A sink says whether it needs the
annotated picture (drawing costs time, so it is drawn only when one does) and whether a video
file should play at its own frame rate while it is attached (someone is watching).

Sinks never hold each other. What one offers the others goes through the run's Outlets, which the
pipeline hands every sink at start: the metrics sink adds `/metrics` to the routes the web server
serves, the collector adds `POST /save` and its count to the page's state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from edge_runtime.camera.pipeline import FrameResult
from edge_runtime.camera.quality import Quality


@dataclass(frozen=True)
class Reply:
    """One HTTP answer of a route a sink offers."""

    body: bytes
    content_type: str
    status: int = 200


@dataclass
class Outlets:
    """What sinks offer each other through the pipeline, filled while they start."""

    routes: dict[tuple[str, str], Callable[[], Reply]] = field(default_factory=dict)
    """(method, path) -> a handler: extra routes of the camera's web server (--serve)."""
    state: list[Callable[[], dict]] = field(default_factory=list)
    """Providers of extra fields for the web page's /state.json, asked when the page asks (not on every frame)."""
    counters: list[Callable[[], dict[str, tuple[str, str, float]]]] = field(default_factory=list)
    """Providers of extra /metrics series, read when scraped: name -> (kind "counter"|"gauge", help, value)."""

    def route(self, method: str, path: str, handler: Callable[[], Reply]) -> None:
        self.routes[(method, path)] = handler

    def extra_state(self) -> dict:
        extra: dict = {}
        for provider in self.state:
            extra.update(provider())
        return extra


class StopCamera(Exception):
    """Raised by a sink to end the run cleanly (the window's q key); the message is the reason."""


@dataclass(frozen=True)
class StreamInfo:
    """What sinks may need to know before the first frame."""

    source: str
    fps: float
    """The rate frames come at, as the source says (its `rate`; a recording plays at it): the source's own
    frame rate, or --max-fps where that is lower or a camera does not say; 0 when it is not known (a video
    file without a frame rate, which gives every frame with --max-fps too)."""
    live: bool
    class_names: tuple[str, ...]
    source_counters: object | None = None
    """The source, for its running counters (`dropped`, `gap_count`, `skipped`, `undecoded`); read them, never
    call it."""
    outlets: Outlets = field(default_factory=Outlets)
    """Where sinks offer routes and state to the others (see the module's docstring)."""
    quality: Quality = field(default_factory=lambda: Quality(None))
    """The run's one tally of how well it sees (camera.quality), with the model's reference scores for the
    drift figure. The loop adds every frame to it before the sinks that do not draw get the frame; sinks
    only read it."""


class Sink:
    """An output of the camera. `from_options` makes the sink the camera's options ask for (None when
    they ask for none), so the app builds its outputs from a table of sink classes."""

    needs_picture: bool = False
    """Does it use the annotated picture at all? Such sinks run before the frame's timing is closed."""
    paces: bool = False
    """Does a file source play at its own frame rate while this sink is attached?"""

    @classmethod
    def from_options(cls, opts) -> Sink | None:
        """The sink `opts` (camera.app.CameraOptions) ask for, or None."""
        return None

    def start(self, stream: StreamInfo) -> None:
        """Acquire what the sink needs (a port, a window) before the first frame."""

    def wants_picture(self) -> bool:
        """Does it want this frame's picture? (The web server only while someone watches.)"""
        return self.needs_picture

    def consume(self, result: FrameResult) -> None:
        """One classified frame; result.picture is set when any sink wanted it."""

    def stop(self, summary) -> None:
        """Release everything. `summary` is the run's CameraSummary, or None when the run failed."""
