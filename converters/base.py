"""Shared types of the converters: what a format converter returns and what the gate reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_runtime.core.errors import FmnistEdgeError


class ExportError(FmnistEdgeError):
    """A conversion that could not be made at all."""


@dataclass(frozen=True)
class Target:
    """One file (or, for micro, one folder) to export: a format and a precision."""

    format: str  # "tflite", "onnx" or "micro"
    precision: str  # "fp32", "fp16", "dynamic" or "int8"

    @property
    def filename(self) -> str:
        return "micro" if self.format == "micro" else f"model_{self.precision}.{self.format}"

    @property
    def gate(self) -> str:
        """The gate rule it is held to (converters.validate.GateLimits): its precision's, or "micro"."""
        return "micro" if self.format == "micro" else self.precision


@dataclass
class ExportedModel:
    """One row of export_report.json."""

    path: str
    format: str
    precision: str
    size_bytes: int
    accuracy: float
    top1_agreement: float
    max_abs_diff: float
    passed: bool
    failures: list[str] = field(default_factory=list)
    """Every gate check this file failed, each naming the measured value and the limit."""
    arena_bytes: int | None = None
    """For the micro row: the tensor arena the TFLM example allocates (measured, plus its margin)."""
    photo_top1_agreement: float | None = None
    """With --calib-photos: top-1 agreement with Keras on that folder's frames (reported, not gated)."""
