"""The run's summary: frames, frames per second, latency percentiles, stage times, drops and gaps."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edge_runtime.camera.pipeline import STAGES, FrameResult
from edge_runtime.camera.quality import Quality
from edge_runtime.camera.sinks.base import Sink, StreamInfo


@dataclass
class CameraSummary:
    frames: int = 0
    fps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    dropped: int = 0
    """Live frames replaced by newer ones before they could be classified (0 for files)."""
    gaps: list[float] = field(default_factory=list)
    """Seconds a live source was silent before it was reopened (the last 100 gaps)."""
    stage_ms: dict = field(default_factory=dict)
    """Mean milliseconds per frame of each stage (pipeline.STAGES), and "outputs": what the outputs that take
    a frame after it is shown (JSON lines, /metrics, MQTT, this summary) cost; together, about 1000 / fps."""
    reused: int = 0
    """Frames whose preprocessing was reused (--reuse-still): the scene had not changed."""
    skipped: int = 0
    """Frames the source gave that --max-fps left out (not classified; not decoded where the camera allows)."""
    undecoded: int = 0
    """Frames the source gave that were skipped undecoded: damaged, cut short or over the pixel limit (read as
    JPEG packets, --decode-scale; a source OpenCV decodes itself drops such frames unseen)."""
    ended_by: str = ""
    quality: dict = field(default_factory=dict)
    """How well it saw (camera.quality.Quality.to_dict): unsure frames by reason, frames per shown label,
    mean top score, drift."""

    def to_dict(self) -> dict:
        return asdict(self)

    def format_text(self) -> str:
        unsure = sum(self.quality.get("unsure_frames", {}).values())
        drift = self.quality.get("drift")
        return (f"{self.frames} frames at {self.fps:.1f} FPS, latency p50 {self.p50_ms:.2f} ms "
                f"p99 {self.p99_ms:.2f} ms, {self.dropped} dropped, {unsure} unsure"
                f"{f', {self.undecoded} undecoded' if self.undecoded else ''}"
                f"{'' if drift is None else f', drift {drift:.2f}'} ({self.ended_by})")


class LatencyHistogram:
    """Latencies in fixed logarithmic bins, 0.1% apart, from 1 us to 100 s: constant memory however long
    the camera runs (a list of every frame's latency grew by 80 MB a day at 30 fps), and percentiles
    within 0.1% of the exact ones."""

    LOW_MS, HIGH_MS, BINS_PER_DECADE = 1e-3, 1e5, 2300

    def __init__(self):
        decades = np.log10(self.HIGH_MS / self.LOW_MS)
        self.counts = np.zeros(int(decades * self.BINS_PER_DECADE) + 2, np.int64)
        self.total = 0

    def add(self, ms: float) -> None:
        position = np.log10(max(ms, self.LOW_MS) / self.LOW_MS) * self.BINS_PER_DECADE
        self.counts[min(int(position) + 1, len(self.counts) - 1)] += 1
        self.total += 1

    def percentile(self, q: float) -> float:
        """The q-th percentile, as the geometric middle of its bin (0 when empty)."""
        if not self.total:
            return 0.0
        index = int(np.searchsorted(np.cumsum(self.counts), q / 100 * self.total))
        return round(float(self.LOW_MS * 10 ** ((index - 0.5) / self.BINS_PER_DECADE)), 3)


class SummarySink(Sink):
    """Counts frames and their latency and stage times in constant memory; `summary()` makes the
    CameraSummary."""

    def __init__(self):
        self.latency = LatencyHistogram()
        self.totals = dict.fromkeys(STAGES, 0.0)
        self.reused = 0
        self.quality = Quality(None)
        """The run's tally (StreamInfo.quality), read, never added to; an empty one until start."""

    def start(self, stream: StreamInfo) -> None:
        self.quality = stream.quality

    def consume(self, result: FrameResult) -> None:
        self.latency.add(result.latency_ms)
        self.reused += result.reused
        for stage, seconds in result.stages.items():
            self.totals[stage] += seconds

    def summary(self, elapsed: float, ended_by: str, dropped: int, gaps, outputs_seconds: float = 0.0,
                skipped: int = 0, undecoded: int = 0) -> CameraSummary:
        frames = self.latency.total
        totals = {**self.totals, "outputs": outputs_seconds}
        return CameraSummary(
            frames=frames, fps=round(frames / elapsed, 2) if elapsed > 0 else 0.0,
            p50_ms=self.latency.percentile(50), p99_ms=self.latency.percentile(99),
            dropped=dropped, gaps=[round(g, 2) for g in gaps],
            stage_ms={k: round(v * 1e3 / max(frames, 1), 4) for k, v in totals.items()}, reused=self.reused,
            skipped=skipped, undecoded=undecoded, ended_by=ended_by,
            quality=self.quality.to_dict())
