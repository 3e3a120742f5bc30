"""`fmnist-edge camera`: classify camera frames in real time, on screen, headless or in a browser.

The loop takes a frame from the source, runs the per-frame step (camera.pipeline: preprocess,
infer, smooth, each timed) and hands the result to every sink (camera.sinks): the outputs the
options ask for (SINKS: window, recorder, metrics, web server, MQTT), those the caller adds (the
CLI's JSON lines or label changes, the field loop's collector), and the summary. The picture is
drawn only when a sink wants it; a video file plays at its own frame rate only while a sink that
someone watches is attached.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from edge_runtime.camera.pipeline import FrameStep, clock
from edge_runtime.camera.quality import Quality, reference_shares
from edge_runtime.camera.sinks.base import Sink, StopCamera, StreamInfo
from edge_runtime.camera.sinks.metrics import MetricsSink
from edge_runtime.camera.sinks.mqtt import MqttSink
from edge_runtime.camera.sinks.recorder import RecorderSink
from edge_runtime.camera.sinks.server import ServerSink
from edge_runtime.camera.sinks.summary import CameraSummary, SummarySink
from edge_runtime.camera.sinks.watchdog import WatchdogSink
from edge_runtime.camera.sinks.window import WindowSink
from edge_runtime.camera.smoothing import LabelSmoother
from edge_runtime.camera.sources import open_capture, open_source
from edge_runtime.core.classifier import load_model

log = logging.getLogger(__name__)


@dataclass
class CameraOptions:
    source: str = "0"
    """A camera index (V4L2), a video file, a stream URL, or "picamera"."""
    model: str | None = None
    """A .tflite or .onnx file; None for the bundled model."""
    threads: int | None = 1
    headless: bool = False
    """No window."""
    serve: str | None = None
    """HOST:PORT to serve the annotated stream and label over HTTP."""
    record: str | None = None
    """A video file to write the annotated frames to."""
    max_frames: int | None = None
    roi: tuple[int, int, int, int] | None = None
    """x, y, w, h: only look for the item there."""
    smooth_frames: int = 5
    min_score: float = 0.6
    """Below this averaged probability the label is "unsure"."""
    frame_timeout: float = 10.0
    """Seconds to wait for a live frame before saying the source is silent (and waiting on)."""
    mqtt: str | None = None
    """HOST:PORT of an MQTT broker to publish each change of the shown label to."""
    topic: str = "fmnist-edge/label"
    reuse_still: bool = False
    """Give a frame of the same scene as the last one preprocessed that frame's result (camera.still)."""
    capture_size: tuple[int, int] | None = None
    """(width, height) to ask the camera for (an index or picamera); None: its default."""
    max_fps: float | None = None
    """At most this many frames a second are classified (asked of a camera; the rest skipped); None: all."""
    decode_scale: int | str = 1
    """Decode an MJPEG source's frames at 1/N of their size (1, 2, 4 or 8, or "auto": the smallest that keeps the
    item search's copy; sources.ReducedJpegCapture)."""


SINKS: tuple[type[Sink], ...] = (WindowSink, RecorderSink, MetricsSink, ServerSink, MqttSink, WatchdogSink)
"""The outputs options can ask for, in the order they start. The window comes first: without a
display it fails at once."""


def option_sinks(opts: CameraOptions) -> list[Sink]:
    """The outputs the options ask for."""
    return [sink for cls in SINKS if (sink := cls.from_options(opts)) is not None]


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """`kill` ends the loop like Ctrl-C does: cleanly, with the summary."""
    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _loop(step: FrameStep, source, sinks: Sequence[Sink], quality: Quality, opts: CameraOptions) -> str:
    """Classify frames until the source or `max_frames` ends the run; returns why it ended. Each frame is
    added to the run's quality tally once, before the sinks told of it (the ones that report it) see it."""
    shown = [s for s in sinks if s.needs_picture]  # they run inside the frame's timed draw stage
    told = [s for s in sinks if not s.needs_picture]  # they get the frame with its timing complete
    paced = not source.live and source.fps > 0 and any(s.paces for s in sinks)
    step.started = clock()
    while opts.max_frames is None or step.frames < opts.max_frames:
        t0 = clock()
        frame = source.read(timeout=opts.frame_timeout)
        if frame is None:
            if source.live:
                log.warning("no frame from %s for %.0f s; still waiting", opts.source, opts.frame_timeout)
                continue
            return "end of file"
        if paced and (delay := step.started + frame.index / source.fps - clock()) > 0:
            time.sleep(delay)
        result = step.process(frame, waited=clock() - t0)
        if any(s.wants_picture() for s in shown):
            result.picture = step.annotate(result)
        for sink in shown:
            sink.consume(result)
        result.finish()
        t_told = clock()
        quality.add(result)  # timed with the outputs: the summary, /metrics and MQTT report it
        for sink in told:
            sink.consume(result)
        step.outputs_seconds += clock() - t_told
    return "max frames"


def _stop_all(sinks: Sequence[Sink], summary: CameraSummary | None) -> None:
    """Stop every sink, even when one fails to; then raise the first failure."""
    failure = None
    for sink in sinks:
        try:
            sink.stop(summary)
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure


def run(opts: CameraOptions, sinks: Sequence[Sink] = (), opener: Callable = open_capture) -> CameraSummary:
    """Run the camera until the source ends, `max_frames`, `q`/Esc, Ctrl-C or SIGTERM.

    The options' own outputs (SINKS) come first, then `sinks` (the CLI's JSON lines, the field loop's
    collector), then the summary.
    """
    tally = SummarySink()
    outputs = [*option_sinks(opts), *sinks, tally]
    model = load_model(opts.model, opts.threads)
    started: list[Sink] = []
    summary, source = None, None
    try:
        asked = {k: v for k, v in (("size", opts.capture_size), ("fps", opts.max_fps)) if v is not None}
        asked.update({"decode_scale": opts.decode_scale} if opts.decode_scale != 1 else {})
        source = open_source(opts.source, (lambda src: opener(src, **asked)) if asked else opener, opts.max_fps)
        stream = StreamInfo(opts.source, source.rate, source.live, model.class_names, source,
                            quality=Quality(reference_shares(model)))
        for sink in outputs:
            sink.start(stream)
            started.append(sink)
        step = FrameStep(model, LabelSmoother(model.class_names, opts.smooth_frames, opts.min_score), opts.roi,
                         opts.reuse_still)
        with _sigterm_as_interrupt():
            try:
                ended_by = _loop(step, source, outputs, stream.quality, opts)
            except StopCamera as stop:
                ended_by = str(stop)
            except KeyboardInterrupt:
                ended_by = "interrupted"
        summary = tally.summary(clock() - step.started, ended_by, source.dropped, source.gaps, step.outputs_seconds,
                                skipped=source.skipped, undecoded=source.undecoded)
        return summary
    finally:
        if source is not None:
            source.close()
        model.close()
        _stop_all(started, summary)
