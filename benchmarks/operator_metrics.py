"""What an operator watches, recorded: a camera run over a video whose scene changes (test items in good
light, then the same kind of items in dim, noisy light, then an empty view), with `/metrics` scraped
twice a second, drawn as the panels of the Grafana dashboard in docs/grafana-dashboard.json.

    python benchmarks/operator_metrics.py [--out docs/figures/operator_metrics.png] [--seconds-per-phase 20]

Writes the figure and prints the scraped series' last values. The camera is `fmnist-edge camera --source
VIDEO --headless --serve 127.0.0.1:PORT` as users run it (the bundled model unless --model).
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("good light", "dim, noisy light", "empty view")


def write_scene(path: Path, seconds: int, fps: int = 30) -> None:
    """A video in three phases of `seconds` each; items change every second."""
    from edge_runtime.camera.video import AtomicVideoWriter
    from edge_runtime.data import fashion_mnist
    from toolkit.synthetic import render_frame

    images, _ = fashion_mnist.load_split("test", limit=2 * seconds)
    writer = AtomicVideoWriter(path, fps, (640, 480))
    for phase in range(3):
        for k in range(seconds * fps):
            item = images[phase * seconds + k // fps, ..., 0] if phase < 2 else np.zeros((28, 28), np.uint8)
            frame, _ = render_frame(item, item_side=260, centre=(320 + k % 7, 240), seed=k,
                                    noise=4.0 if phase != 1 else 18.0, blur=1.2 if phase != 1 else 2.5)
            if phase == 1:
                frame = (frame * 0.45).astype(np.uint8)  # the light goes down
            writer.write(frame)
    writer.close()


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def record(video: Path, model: str | None) -> list[tuple[float, dict]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "toolkit.cli", "camera", "--source", str(video), "--headless", "--serve",
           f"127.0.0.1:{port}"] + (["--model", model] if model else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples, start = [], time.time()
    try:
        while proc.poll() is None:
            try:
                samples.append((time.time() - start, scrape(f"http://127.0.0.1:{port}/metrics")))
            except OSError:
                pass
            time.sleep(0.5)
    finally:
        proc.kill()
    return samples


def series(samples, name: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.array([s[0] for s in samples if name in s[1]])
    return t, np.array([s[1][name] for s in samples if name in s[1]])


def rate(t: np.ndarray, v: np.ndarray, window: float = 3.0) -> np.ndarray:
    """Per-second increase over the last `window` seconds (Prometheus' rate())."""
    out = np.zeros_like(v)
    for i in range(len(t)):
        j = max(0, np.searchsorted(t, t[i] - window))
        out[i] = (v[i] - v[j]) / (t[i] - t[j]) if t[i] > t[j] else 0.0
    return out


def draw(samples, out: Path, seconds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    t, frames = series(samples, "fmnist_edge_frames_total")
    axes[0].plot(t, rate(t, frames), label="frames/s")
    axes[0].set_ylabel("frames / s")
    for reason in ("no_item", "low_score"):
        tu, unsure = series(samples, f'fmnist_edge_unsure_frames_total{{reason="{reason}"}}')
        axes[1].plot(tu, rate(tu, unsure), label=f"unsure: {reason}")
    axes[1].set_ylabel("unsure frames / s")
    axes[1].legend(loc="upper left")
    td, drift = series(samples, "fmnist_edge_drift")
    axes[2].plot(td, drift)
    axes[2].axhline(0.25, color="grey", linestyle=":")
    axes[2].set_ylabel("drift (PSI)")
    tb, low = series(samples, 'fmnist_edge_score_bucket{le="0.6"}')
    _, count = series(samples, "fmnist_edge_score_count")
    axes[3].plot(tb, rate(tb, low) / np.maximum(rate(tb, count), 1e-9))
    axes[3].set_ylabel("share of scores < 0.6")
    axes[3].set_xlabel("seconds")
    paced = t[-1] / 3 if len(t) else seconds
    for ax in axes:
        for k in range(len(PHASES)):
            ax.axvline(k * paced, color="lightgrey")
        ax.grid(alpha=0.3)
    for k, name in enumerate(PHASES):
        axes[0].text(k * paced + 0.5, axes[0].get_ylim()[1] * 0.9, name, fontsize=8, va="top")
    fig.suptitle("What an operator watches: /metrics of a camera whose scene changes")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures" / "operator_metrics.png"))
    parser.add_argument("--seconds-per-phase", type=int, default=20)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fmnist-edge-operator-") as tmp:
        video = Path(tmp) / "scene.mp4"
        write_scene(video, args.seconds_per_phase)
        samples = record(video, args.model)
    draw(samples, Path(args.out), args.seconds_per_phase)
    last = samples[-1][1]
    for name in sorted(k for k in last if re.match(r"fmnist_edge_(drift|unsure|frames_total|score_count)", k)):
        print(f"{name} {last[name]:g}")
    print(f"wrote {args.out} from {len(samples)} scrapes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
