"""The run's summary: frames, frames per second, latency percentiles, stage times, drops and gaps."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edge_runtime.camera.pipeline import STAGES, FrameResult
from edge_runtime.camera.sinks.base import Sink


@dataclass
class CameraSummary:
    frames: int = 0
    fps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    dropped: int = 0
    """Live frames replaced by newer ones before they could be classified (0 for files)."""
    gaps: list[float] = field(default_factory=list)
    """Seconds a live source was silent before it was reopened."""
    stage_ms: dict = field(default_factory=dict)
    """Mean milliseconds per frame of each stage."""
    ended_by: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def format_text(self) -> str:
        return (f"{self.frames} frames at {self.fps:.1f} FPS, latency p50 {self.p50_ms:.2f} ms "
                f"p99 {self.p99_ms:.2f} ms, {self.dropped} dropped ({self.ended_by})")


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else 0.0


class SummarySink(Sink):
    """Collects every frame's latency and stage times; `summary()` makes the CameraSummary."""

    def __init__(self):
        self.latencies: list[float] = []
        self.totals = dict.fromkeys(STAGES, 0.0)

    def consume(self, result: FrameResult) -> None:
        self.latencies.append(result.latency_ms)
        for stage, seconds in result.stages.items():
            self.totals[stage] += seconds

    def summary(self, elapsed: float, ended_by: str, dropped: int, gaps: list[float]) -> CameraSummary:
        frames = len(self.latencies)
        return CameraSummary(
            frames=frames, fps=round(frames / elapsed, 2) if elapsed > 0 else 0.0,
            p50_ms=_percentile(self.latencies, 50), p99_ms=_percentile(self.latencies, 99),
            dropped=dropped, gaps=[round(g, 2) for g in gaps],
            stage_ms={k: round(v * 1e3 / max(frames, 1), 4) for k, v in self.totals.items()}, ended_by=ended_by)
