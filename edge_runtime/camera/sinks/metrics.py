"""Prometheus metrics of a running camera, served on `/metrics` by `--serve` (prometheus_client), and
`/healthz`.

Per frame: frames, latency (a histogram), time per stage, frames per second, the shown label and its
score, whether an item is in view; and how well it sees (camera.quality): unsure frames and why, each
frame's top score (a histogram), frames per shown label, the drift of recent scores. Read when scraped:
frames a live source dropped, and its gaps; frames skipped undecoded; what other sinks count (MQTT deliveries).

`/healthz` answers 200 with {"status": "ok", "last_frame_age_s", "fps", "drift"} while frames are
classified, and 503 ({"status": "stalled", ...}) when none was for STALE_AFTER seconds: a source that
stopped delivering, a camera in a gap, or an inference that hangs.
"""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge_runtime._version import __version__

from edge_runtime.camera.pipeline import STAGES, FrameResult, clock
from edge_runtime.camera.quality import SCORE_BINS, Quality, unsure_reason
from edge_runtime.camera.sinks.base import Reply, Sink, StreamInfo
from edge_runtime.camera.smoothing import UNSURE

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
"""Seconds: a frame takes about 1.6 ms on a laptop core, several times that on a Pi."""
STALE_AFTER = 5.0
"""Seconds without a classified frame after which /healthz answers 503."""


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
        skipped = CounterMetricFamily("fmnist_edge_skipped_frames", "Frames the source gave that --max-fps left "
                                      "out")
        skipped.add_metric([], self.source.skipped)
        undecoded = CounterMetricFamily("fmnist_edge_undecoded_frames", "Frames the source gave that were skipped "
                                        "undecoded: damaged, cut short or over the pixel limit (--decode-scale)")
        undecoded.add_metric([], self.source.undecoded)
        yield from (dropped, gaps, skipped, undecoded)


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
        self.reused = Counter("fmnist_edge_frames_reused", "Frames given the last preprocessed frame's result: the "
                              "scene had not changed (--reuse-still)", registry=r)
        self.latency = Histogram("fmnist_edge_frame_latency_seconds", "Preprocessing, inference and drawing of "
                                 "one frame", buckets=LATENCY_BUCKETS, registry=r)
        self.stage = Counter("fmnist_edge_stage_seconds", "Time spent in each stage", ["stage"], registry=r)
        self.fps = Gauge("fmnist_edge_fps", "Frames classified per second since the start", registry=r)
        self.label = Gauge("fmnist_edge_label", "1 for the label shown now, 0 for the others", ["label"], registry=r)
        self.score = Gauge("fmnist_edge_label_score", "The shown label's averaged probability", registry=r)
        self.found = Gauge("fmnist_edge_item_in_view", "1 when an item was found in the last frame", registry=r)
        self.info = Info("fmnist_edge", "What is running", registry=r)
        self.unsure = Counter("fmnist_edge_unsure_frames", "Frames shown as unsure, by why: no item found, or "
                              "a score below --min-score", ["reason"], registry=r)
        self.top_score = Histogram("fmnist_edge_score", "Each classified frame's own top probability (frames "
                                   "with an item in view)", buckets=SCORE_BINS[1:-1], registry=r)
        self.label_frames = Counter("fmnist_edge_label_frames", "Frames per shown label", ["label"], registry=r)
        self.drift = Gauge("fmnist_edge_drift", "Population-stability index of the recent top scores against "
                           "the model's reference answers (NaN until 100 frames with an item)", registry=r)
        self.drift.set(float("nan"))
        self.quality = Quality(None)
        """The run's tally (StreamInfo.quality), read, never added to; an empty one until start."""
        self._shown: str | None = None
        self._last_frame: float | None = None
        self._fps = 0.0

    @classmethod
    def from_options(cls, opts) -> MetricsSink | None:
        return cls() if opts.serve else None  # served on the camera's web server

    def start(self, stream: StreamInfo) -> None:
        stream.outlets.route("GET", "/metrics", lambda: Reply(self.exposition(), CONTENT_TYPE))
        stream.outlets.route("GET", "/healthz", self.health)
        self.quality = stream.quality
        for reason in self.quality.unsure:
            self.unsure.labels(reason)
        self.info.info({"version": __version__, "source": stream.source})
        for name in (*stream.class_names, UNSURE):
            self.label.labels(name).set(0)
            self.label_frames.labels(name)
        for stage in STAGES:
            self.stage.labels(stage)
        if stream.source_counters is not None:
            self.registry.register(_SourceCollector(stream.source_counters))
        self.registry.register(_OutletCollector(stream.outlets))

    def consume(self, result: FrameResult) -> None:
        self.frames.inc()
        if result.reused:
            self.reused.inc()
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
        self._quality(result)
        self._last_frame, self._fps = clock(), result.fps

    def _quality(self, result: FrameResult) -> None:
        if (reason := unsure_reason(result)) is not None:
            self.unsure.labels(reason).inc()
        self.label_frames.labels(result.shown.label).inc()
        if result.found:
            self.top_score.observe(result.score)
        if self.quality.frames % 30 == 0 and (drift := self.quality.drift()) is not None:
            self.drift.set(drift)

    def health(self) -> Reply:
        """/healthz: 200 while frames are classified, 503 when none was for STALE_AFTER seconds."""
        age = None if self._last_frame is None else round(clock() - self._last_frame, 3)
        ok = age is not None and age < STALE_AFTER
        body = {"status": "ok" if ok else "stalled", "last_frame_age_s": age, "frames": self.quality.frames,
                "fps": round(self._fps, 2), "drift": self.quality.drift()}
        return Reply(json.dumps(body).encode(), "application/json", 200 if ok else 503)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
