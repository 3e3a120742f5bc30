"""Latency, throughput and memory of model files, measured the same way on a laptop and on a Pi.

Each (model, threads) pair runs in a fresh process, so its load time is a real load and its peak
RSS is its own. Inside, the timed loop calls the same `Backend.predict` that `predict` and `camera`
use, on seeded random pixels, with one clock read on each side of the call: the harness adds
nothing a user's call would not pay.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.core.backends import Backend, open_backend
from edge_runtime.core.errors import FmnistEdgeError, first_line
from edge_runtime.tools import device
from edge_runtime.report.tables import display_names, markdown_table, text_table


@dataclass
class BenchResult:
    model: str
    format: str
    precision: str
    backend: str
    backend_version: str
    threads: int
    batch: int
    size_bytes: int
    load_ms: float
    first_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    throughput_ips: float
    """Images per second over the timed runs."""
    peak_rss_mb: float
    """Peak resident memory of the process that loaded and ran this model alone."""
    runs: int = 0
    warmup: int = 0


@dataclass
class BenchReport:
    device: dict
    results: list[BenchResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"device": self.device, "results": [asdict(r) for r in self.results]}

    def format_text(self) -> str:
        return device_line(self.device) + "\n" + text_table(HEADERS, _rows(self))

    def format_markdown(self) -> str:
        return f"Device: {device_line(self.device)}\n\n" + markdown_table(HEADERS, _rows(self))


def _precision(backend: Backend) -> str:
    if backend.metadata is not None:
        return backend.metadata.precision
    stem = backend.path.stem  # model_int8 -> int8, for files exported elsewhere
    return stem.rsplit("_", 1)[-1] if "_" in stem else "unknown"


def _verified(path: str | Path) -> dict:
    """Does this board compute what the exporter computed for the file (tools.verify)? In the device
    block, so a merged fleet benchmark shows which boards compute something else."""
    from edge_runtime.tools.verify import verify_file

    result = verify_file(path)
    return {"model": str(path), "passed": result.passed, "top1_agreement": result.top1_agreement,
            "estimated_test_agreement": result.estimated_test_agreement, "max_abs_diff": result.max_abs_diff,
            "failures": result.failures}


def measure(path: str, threads: int, batch: int, runs: int, warmup: int, seed: int = 0) -> BenchResult:
    """Load one model and time `runs` calls of `predict` after `warmup` untimed ones."""
    path = Path(path)
    images = np.random.default_rng(seed).integers(0, 256, (batch, 28, 28, 1), dtype=np.uint8)
    clock = time.perf_counter_ns
    start = clock()
    backend = open_backend(path, threads)
    load_ms = (clock() - start) / 1e6
    start = clock()
    backend.predict(images)
    first_ms = (clock() - start) / 1e6
    for _ in range(warmup):
        backend.predict(images)
    times = np.empty(runs, dtype=np.int64)
    predict = backend.predict
    for i in range(runs):
        t0 = clock()
        predict(images)
        times[i] = clock() - t0
    ms = times / 1e6
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    if sys.platform == "darwin":
        peak_kb /= 1024  # bytes on macOS
    result = BenchResult(
        model=str(path), format=path.suffix.lstrip(".").lower(), precision=_precision(backend),
        backend=backend.name, backend_version=backend.version, threads=threads, batch=batch,
        size_bytes=path.stat().st_size, load_ms=round(load_ms, 3), first_ms=round(first_ms, 4),
        p50_ms=round(float(np.percentile(ms, 50)), 4), p90_ms=round(float(np.percentile(ms, 90)), 4),
        p99_ms=round(float(np.percentile(ms, 99)), 4), mean_ms=round(float(ms.mean()), 4),
        std_ms=round(float(ms.std()), 4), throughput_ips=round(batch * runs / (ms.sum() / 1e3), 1),
        peak_rss_mb=round(peak_kb / 1024, 1), runs=runs, warmup=warmup)
    backend.close()
    return result


def _die_with_parent(parent: int) -> None:
    """Linux: be killed when the parent dies, however it dies (SIGKILL included), so no worker is left
    spinning under PID 1; and give up at once if it is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _worker(conn, parent: int, args: tuple) -> None:
    _die_with_parent(parent)
    try:
        conn.send(("ok", measure(*args)))
    except FmnistEdgeError as exc:
        conn.send(("error", str(exc)))
    except Exception as exc:  # the parent reports it in one line
        conn.send(("error", f"{args[0]}: {first_line(exc)}"))
    finally:
        conn.close()


def _isolated(args: tuple) -> BenchResult:
    """measure() in a fresh process, so load time and peak RSS are the model's own. A worker that dies
    (a crashing model, the OOM killer) is one error line, not a benchmark that waits forever."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(target=_worker, args=(sender, os.getpid(), args), daemon=True)
    worker.start()
    sender.close()
    try:
        while not receiver.poll(0.2) and worker.is_alive():
            pass
        status, value = receiver.recv() if receiver.poll() else ("died", None)
    except EOFError:
        status, value = "died", None
    finally:
        worker.join(timeout=5)
        if worker.is_alive():
            worker.kill()
    if status == "died":
        code = worker.exitcode
        how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
        raise FmnistEdgeError(f"{args[0]}: the process measuring it died ({how}); the model or its runtime "
                              "crashed on this machine, or it ran out of memory")
    if status == "error":
        raise FmnistEdgeError(value)
    return value


def run(models: list[str | Path], threads: list[int], batch: int = 1, runs: int = 200, warmup: int = 20,
        isolate: bool = True) -> BenchReport:
    """Benchmark every model at every thread count; `isolate` runs each in its own process."""
    before = device.snapshot()
    report = BenchReport(device=device.describe())
    report.device["verify"] = [_verified(model) for model in models]
    for model in models:
        for n in threads:
            args = (str(model), n, batch, runs, warmup)
            report.results.append(_isolated(args) if isolate else measure(*args))
    after = device.snapshot()
    report.device.update(before=before, after=after, throttled=device.throttled_during(before, after))
    return report


def _cells(r: BenchResult, name: str) -> list[str]:
    return [name, r.precision, f"{r.backend} {r.backend_version}", str(r.threads), str(r.batch),
            f"{r.size_bytes / 1024:.0f} KB", f"{r.load_ms:.1f}", f"{r.first_ms:.3f}", f"{r.p50_ms:.4f}",
            f"{r.p90_ms:.4f}", f"{r.p99_ms:.4f}", f"{r.mean_ms:.4f}", f"{r.std_ms:.4f}",
            f"{r.throughput_ips:,.0f}", f"{r.peak_rss_mb:.0f}"]


HEADERS = ["model", "precision", "runtime", "threads", "batch", "size", "load ms", "first ms", "p50 ms",
           "p90 ms", "p99 ms", "mean ms", "std ms", "images/s", "peak RSS MB"]


def device_line(dev: dict) -> str:
    where = dev.get("board") or dev.get("cpu")
    temps = [dev.get(k, {}).get("temperature_c") for k in ("before", "after")]
    temp = " -> ".join(f"{t:.1f} C" for t in temps if t is not None) or "temperature unknown"
    throttled = {True: "THROTTLED during the run", False: "not throttled",
                 None: "throttling unknown"}[dev.get("throttled")]
    checked = dev.get("verify") or []
    differs = [Path(v["model"]).name for v in checked if not v["passed"]]
    verified = (f"verify FAILED for {', '.join(differs)}" if differs else
                "verify passed" if checked else "not verified")
    return (f"{where}; {dev.get('cores_usable')} cores, governor {dev.get('governor') or 'unknown'}; "
            f"{dev.get('os')}; Python {dev.get('python')}; {temp}; {throttled}; {verified}")


def _rows(report: BenchReport) -> list[list[str]]:
    names = display_names([r.model for r in report.results])
    return [_cells(r, names[r.model]) for r in report.results]
