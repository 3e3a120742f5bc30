"""Frames per second and per-stage time of the headless camera pipeline on a 640x480 video, with the
frame preprocessing as it is and as it was (benchmarks/reference_preprocess.py), side by side.

Makes a camera-like video from Fashion-MNIST test images (toolkit.synthetic; MJPEG in an .avi, what a
USB camera sends, or mp4v with --container mp4), runs `fmnist-edge camera --source VIDEO --headless
--json` on it (the command as users run it: decode, preprocessing, inference, smoothing, one JSON line
per frame), alternating the current preprocessing and the reference one run by run so both see the
same machine, and reports the best and median run of each, with the mean time of each stage per frame.
The reference run is the same command with the pipeline's preprocess_frame swapped for the reference's.

With --reuse-still, a third row: the current preprocessing behind `camera --reuse-still` (a frame of
the same scene as the last one preprocessed gets its result), with the share of frames reused. The
video's camera drifts 2 px a frame, as a hand-held one does; --on-stand writes it without the drift (only
the sensor noise changes between an item's frames), as a camera on a stand or in a corner sees it.
With --max-fps HZ, a row for `camera --max-fps HZ` (at most HZ of the video's 30 frames a second are
classified; a file's skipped frames are still decoded, a V4L2 camera's are not). With --decode-scale N, a
row for `camera --decode-scale N` (each MJPEG frame decoded at 1/N of its size: the decode and the
preprocessing both cost less; with mp4v it says it decodes in full); with both --reuse-still and
--decode-scale N, also a row for the two together (what a still camera on a small board would run). Every row says what
share of one core the run would take at the video's own 30 frames a second (its busy seconds over the
video's length).

    python benchmarks/camera_pipeline.py [--model PATH] [--frames 600] [--repeats 3] [--container avi|mp4]
                                         [--no-reference] [--reuse-still] [--on-stand] [--max-fps HZ]
                                         [--decode-scale N] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {"current": "as it is (edge_runtime.camera.preprocess)",
            "reference": "as it was (benchmarks/reference_preprocess.py)",
            "reuse": "as it is, camera --reuse-still",
            "rate": "as it is, camera --max-fps {hz:g}",
            "decode": "as it is, camera --decode-scale {scale}",
            "decode_reuse": "as it is, camera --decode-scale {scale} --reuse-still"}
VIDEO_FPS = 30


def run_once(video: Path, model: str | None, threads: int, variant: str = "current", max_fps: float = 0.0,
             decode_scale: int = 1) -> dict:
    camera = ["camera", "--source", str(video), "--headless", "--json", "--threads", str(threads)]
    camera += ["--model", model] if model else []
    camera += ["--reuse-still"] if variant in ("reuse", "decode_reuse") else []
    camera += ["--max-fps", str(max_fps)] if variant == "rate" else []
    camera += ["--decode-scale", str(decode_scale)] if variant in ("decode", "decode_reuse") else []
    runner = ["-m", "toolkit.cli"] if variant != "reference" else [str(Path(__file__).resolve()), "--as-reference"]
    proc = subprocess.run([sys.executable, *runner, *camera], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"camera ({variant}) failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.splitlines()[-1])["summary"]


def camera_with_reference(argv: list[str]) -> None:
    """`fmnist-edge camera ARGV` with the reference preprocessing in the per-frame step."""
    sys.path.insert(0, str(HERE))
    import reference_preprocess

    from edge_runtime.camera import pipeline
    from toolkit.cli import cli

    pipeline.preprocess_frame = reference_preprocess.preprocess_frame
    cli.main(argv, prog_name="fmnist-edge")


def summarise(runs: list[dict]) -> dict:
    best = max(runs, key=lambda r: r["fps"])
    return {"runs": runs, "best": best, "best_fps": best["fps"],
            "median_fps": statistics.median(r["fps"] for r in runs),
            "core_share": round(statistics.median(core_share(r) for r in runs), 4)}


def core_share(run: dict) -> float:
    """The share of one core the run would take at the video's own frame rate: its busy seconds (frames over
    FPS: a file is read as fast as the camera goes) over the video's length."""
    return run["frames"] / run["fps"] / ((run["frames"] + run.get("skipped", 0)) / VIDEO_FPS) if run["fps"] else 0.0


def markdown(results: dict[str, dict], max_fps: float = 0.0, decode_scale: int = 1) -> str:
    from edge_runtime.report.tables import markdown_table

    headers = ["preprocessing", "frames", "runs", "best FPS", "median FPS", "p50 ms", "p99 ms", "decode+wait ms",
               "preprocess ms", "decode+wait+preprocess ms", "inference ms", "draw ms", "outputs ms",
               "preprocess / wait", "reused", f"core at {VIDEO_FPS} fps"]
    rows = []
    for variant, result in results.items():
        best, stages = result["best"], result["best"]["stage_ms"]
        rows.append([VARIANTS[variant].format(hz=max_fps, scale=decode_scale), best["frames"], len(result["runs"]),
                     f"{best['fps']:.0f}", f"{result['median_fps']:.0f}", f"{best['p50_ms']:.3f}",
                     f"{best['p99_ms']:.3f}", f"{stages['wait']:.3f}", f"{stages['preprocess']:.3f}",
                     f"{stages['wait'] + stages['preprocess']:.3f}", f"{stages['inference']:.3f}",
                     f"{stages['draw']:.3f}", f"{stages.get('outputs', 0):.3f}",
                     f"{stages['preprocess'] / stages['wait']:.2f}",
                     f"{best.get('reused', 0) / max(best['frames'], 1):.0%}",
                     f"{result['core_share']:.1%}"])
    return markdown_table(headers, rows, "l" + "r" * (len(headers) - 1))


def main() -> int:
    if sys.argv[1:2] == ["--as-reference"]:
        camera_with_reference(sys.argv[2:])
        return 0
    from edge_runtime.data import fashion_mnist as data
    from toolkit.synthetic import write_video

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="default: the bundled model")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--container", choices=("avi", "mp4"), default="avi",
                        help="avi: MJPEG, as USB cameras send; mp4: mp4v")
    parser.add_argument("--no-reference", action="store_true", help="time only the current preprocessing")
    parser.add_argument("--reuse-still", action="store_true", help="also time camera --reuse-still")
    parser.add_argument("--on-stand", action="store_true", help="a camera that does not drift (only sensor noise)")
    parser.add_argument("--max-fps", type=float, default=None, metavar="HZ", help="also time camera --max-fps HZ")
    parser.add_argument("--decode-scale", type=int, choices=(2, 4, 8), default=None, metavar="N",
                        help="also time camera --decode-scale N (2, 4 or 8)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.max_fps is not None and not 0 < args.max_fps < float("inf"):
        parser.error(f"--max-fps {args.max_fps}: give a number of frames a second above 0")
    per_item = 10
    images, _ = data.load_split("test", limit=max(1, args.frames // per_item))
    variants = ["current"] if args.no_reference else ["current", "reference"]
    variants += ["reuse"] if args.reuse_still else []
    variants += ["rate"] if args.max_fps is not None else []
    variants += ["decode"] if args.decode_scale is not None else []
    variants += ["decode_reuse"] if args.decode_scale is not None and args.reuse_still else []
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="fmnist-edge-camera-") as tmp:
        video = Path(tmp) / f"camera_640x480.{args.container}"
        write_video(video, images[..., 0], frames_per_item=per_item, size=(480, 640), hand_held=not args.on_stand)
        for _ in range(args.repeats):
            for variant in variants:
                runs[variant].append(run_once(video, args.model, args.threads, variant, args.max_fps,
                                              args.decode_scale or 1))
    results = {v: summarise(r) for v, r in runs.items()}
    if args.markdown:
        print(markdown(results, args.max_fps or 0.0, args.decode_scale or 1))
    else:
        keys = ("runs", "best_fps", "median_fps", "core_share")
        print(json.dumps({v: {k: r[k] for k in keys} for v, r in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
