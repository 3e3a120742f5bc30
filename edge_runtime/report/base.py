"""The one protocol every command's report follows, and the one way a command prints it.

A report is a dataclass with `to_dict()` (what `--json` prints: the CLI contract's keys) and
`format_text()` (what a person reads); a report that also makes a Markdown table has
`format_markdown()`. `render` picks one; the CLI prints what it returns.
"""

from __future__ import annotations

import json
from typing import Protocol, runtime_checkable


@runtime_checkable
class Report(Protocol):
    def to_dict(self) -> dict: ...

    def format_text(self) -> str: ...


FORMATS = ("text", "json", "markdown")


def render(report: Report, fmt: str = "text") -> str:
    """The report as "text", "json" (one indented JSON document) or "markdown" (where it has one)."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2)
    if fmt == "markdown":
        if not hasattr(report, "format_markdown"):
            raise ValueError(f"{type(report).__name__} has no Markdown form")
        return report.format_markdown()
    return report.format_text()
