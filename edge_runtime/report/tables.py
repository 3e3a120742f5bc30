"""Tables for people: aligned plain text for a terminal, Markdown for reports. Every table the
toolkit prints goes through these two functions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def _alignment(headers: Sequence[str], align: str | None) -> str:
    """One letter per column, l or r; by default the first column left and the rest right (numbers)."""
    align = align or "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers):
        raise ValueError(f"{len(headers)} columns but alignment {align!r}")
    return align


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """Columns padded to their widest cell, a rule under the header."""
    align = _alignment(headers, align)
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align, strict=True))
             .rstrip() for row in cells]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    align = _alignment(headers, align)
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", rule]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def display_names(paths: list[str]) -> dict[str, str]:
    """Each path's shortest trailing part that no other path shares: `model_int8.tflite` alone, or
    `edge/export/model_int8.tflite` when two runs' files have the same name."""
    parts = {p: Path(p).parts for p in set(paths)}
    names = {}
    for path, own in parts.items():
        for n in range(1, len(own) + 1):
            tail = own[-n:]
            if all(other[-n:] != tail for q, other in parts.items() if q != path):
                break
        names[path] = str(Path(*tail))
    return names
