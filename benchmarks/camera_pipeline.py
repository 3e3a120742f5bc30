"""Frames per second and per-stage time of the headless camera pipeline on a 640x480 video.

Makes a camera-like video from Fashion-MNIST test images (toolkit.synthetic), runs
`fmnist-edge camera --source VIDEO --headless --json` on it several times (the command as users run
it: decode, preprocessing, inference, smoothing, one JSON line per frame) and reports the best and
median run, with the mean time of each stage per frame.

    python benchmarks/camera_pipeline.py [--model PATH] [--frames 600] [--repeats 3] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run_once(video: Path, model: str | None, threads: int) -> dict:
    cmd = [sys.executable, "-m", "toolkit.cli", "camera", "--source", str(video), "--headless", "--json",
           "--threads", str(threads)] + (["--model", model] if model else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"camera failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.splitlines()[-1])["summary"]


def main() -> int:
    from edge_runtime.data import fashion_mnist as data
    from toolkit.synthetic import write_video

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="default: the bundled model")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    per_item = 10
    images, _ = data.load_split("test", limit=max(1, args.frames // per_item))
    with tempfile.TemporaryDirectory(prefix="fmnist-edge-camera-") as tmp:
        video = Path(tmp) / "camera_640x480.mp4"
        write_video(video, images[..., 0], frames_per_item=per_item, size=(480, 640))
        runs = [run_once(video, args.model, args.threads) for _ in range(args.repeats)]
    best = max(runs, key=lambda r: r["fps"])
    median_fps = statistics.median(r["fps"] for r in runs)
    stages = best["stage_ms"]
    if args.markdown:
        from edge_runtime.report.tables import markdown_table

        headers = ["frames", "runs", "best FPS", "median FPS", "p50 ms", "p99 ms", "decode+wait ms", "preprocess ms",
                   "inference ms", "draw ms"]
        row = [best["frames"], len(runs), f"{best['fps']:.0f}", f"{median_fps:.0f}", f"{best['p50_ms']:.3f}",
               f"{best['p99_ms']:.3f}", f"{stages['wait']:.3f}", f"{stages['preprocess']:.3f}",
               f"{stages['inference']:.3f}", f"{stages['draw']:.3f}"]
        print(markdown_table(headers, [row], "r" * len(headers)))
    else:
        print(json.dumps({"runs": runs, "best_fps": best["fps"], "median_fps": median_fps}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
