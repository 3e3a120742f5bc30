"""Prometheus metrics of a running camera, served on `/metrics` by `--serve` (prometheus_client).

Per frame: frames, latency (a histogram), time per stage, frames per second, the shown label and its
score, whether an item is in view. Read when scraped: frames a live source dropped, and its gaps.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge_runtime._version import __version__
from edge_runtime.camera.pipeline import STAGES, FrameResult
from edge_runtime.camera.sinks.base import Reply, Sink, StreamInfo
from edge_runtime.camera.smoothing import UNSURE

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
"""Seconds: a frame takes about 1.6 ms on a laptop core, several times that on a Pi."""


class _SourceCollector:
    """The source's own counters, read at scrape time (nothing to do per frame)."""

    def __init__(self, source):
        self.source = source

    def collect(self):
        dropped = CounterMetricFamily("fmnist_edge_dropped_frames", "Live frames replaced by newer ones before "
                                      "they could be classified")
        dropped.add_metric([], self.source.dropped)
        gaps = CounterMetricFamily("fmnist_edge_source_gaps", "Times a live source stopped delivering and was "
                                   "reopened")
        gaps.add_metric([], self.source.gap_count)
        yield from (dropped, gaps)


class _OutletCollector:
    """Series other sinks offer through the run's outlets (the MQTT sink's deliveries), read when scraped."""

    def __init__(self, outlets):
        self.outlets = outlets

    def collect(self):
        for provider in self.outlets.counters:
            for name, (kind, help_text, value) in provider().items():
                family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, help_text)
                family.add_metric([], value)
                yield family


class MetricsSink(Sink):
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("fmnist_edge_frames", "Frames classified", registry=r)
        self.latency = Histogram("fmnist_edge_frame_latency_seconds", "Preprocessing, inference and drawing of "
                                 "one frame", buckets=LATENCY_BUCKETS, registry=r)
        self.stage = Counter("fmnist_edge_stage_seconds", "Time spent in each stage", ["stage"], registry=r)
        self.fps = Gauge("fmnist_edge_fps", "Frames classified per second since the start", registry=r)
        self.label = Gauge("fmnist_edge_label", "1 for the label shown now, 0 for the others", ["label"], registry=r)
        self.score = Gauge("fmnist_edge_label_score", "The shown label's averaged probability", registry=r)
        self.found = Gauge("fmnist_edge_item_in_view", "1 when an item was found in the last frame", registry=r)
        self.info = Info("fmnist_edge", "What is running", registry=r)
        self._shown: str | None = None

    @classmethod
    def from_options(cls, opts) -> MetricsSink | None:
        return cls() if opts.serve else None  # served on the camera's web server

    def start(self, stream: StreamInfo) -> None:
        stream.outlets.route("GET", "/metrics", lambda: Reply(self.exposition(), CONTENT_TYPE))
        self.info.info({"version": __version__, "source": stream.source})
        for name in (*stream.class_names, UNSURE):
            self.label.labels(name).set(0)
        for stage in STAGES:
            self.stage.labels(stage)
        if stream.source_counters is not None:
            self.registry.register(_SourceCollector(stream.source_counters))
        self.registry.register(_OutletCollector(stream.outlets))

    def consume(self, result: FrameResult) -> None:
        self.frames.inc()
        self.latency.observe(result.latency_ms / 1e3)
        for stage, seconds in result.stages.items():
            self.stage.labels(stage).inc(seconds)
        self.fps.set(result.fps)
        shown = result.shown.label
        if shown != self._shown:
            if self._shown is not None:
                self.label.labels(self._shown).set(0)
            self.label.labels(shown).set(1)
            self._shown = shown
        self.score.set(result.shown.score)
        self.found.set(1 if result.found else 0)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
