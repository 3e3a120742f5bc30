"""Text on stdout: one JSON line per frame (`--json`), or a line whenever the shown label changes."""

from __future__ import annotations

import json
from collections.abc import Callable

from edge_runtime.camera.pipeline import FrameResult
from edge_runtime.camera.sinks.base import Sink


class JsonLinesSink(Sink):
    """The CLI contract's JSON lines, one per classified frame (the CLI adds the summary line)."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write

    def consume(self, result: FrameResult) -> None:
        self.write(json.dumps(result.record()))


class LabelChangesSink(Sink):
    """For a person watching a terminal: the label whenever it changes."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write
        self._last: str | None = None

    def consume(self, result: FrameResult) -> None:
        if result.shown.label != self._last:
            self.write(f"frame {result.frame.index}: {result.shown.label} ({result.shown.score:.2f})")
            self._last = result.shown.label
