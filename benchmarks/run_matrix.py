"""Benchmark every exported zoo model (formats x precisions x threads) and write docs/zoo-benchmarks.md.

Each ZOO_DIR/<arch>/ holds what `fmnist-edge train` and `fmnist-edge export` wrote (metrics.json,
export/export_report.json and the model files). This script runs `fmnist-edge bench` on every
file at every thread count, scores the int8 and fp32 TFLite files on the held-out real photos
(`fmnist-edge evaluate --photos`), and writes:

- docs/zoo-benchmarks.md: the per-architecture table and the full matrix, with the machine they ran on;
- benchmarks/results/<host>.json: the raw bench report, for benchmarks/merge.py;
- docs/figures/accuracy_latency.png and docs/figures/accuracy_size.png, the accuracy/latency front marked.

    python benchmarks/run_matrix.py runs/zoo [--threads 1,2] [--photos DIR ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "toolkit.cli"]
FIGURES = ROOT / "docs" / "figures"


def run_json(*args: str) -> dict:
    proc = subprocess.run([*CLI, *args, "--json"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"fmnist-edge {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def collect(zoo: Path) -> list[dict]:
    """One entry per architecture: its training metrics and export report."""
    archs = []
    for metrics_path in sorted(zoo.glob("*/metrics.json")):
        report_path = metrics_path.parent / "export" / "export_report.json"
        if not report_path.is_file():
            print(f"skipping {metrics_path.parent}: not exported", file=sys.stderr)
            continue
        archs.append({"dir": metrics_path.parent, "metrics": json.loads(metrics_path.read_text()),
                      "export": json.loads(report_path.read_text())})
    if not archs:
        raise SystemExit(f"no trained and exported models under {zoo}")
    return archs


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both lower x (latency or size) and higher y (accuracy)."""
    front = []
    for i, (x, y) in enumerate(points):
        if not any((x2 <= x and y2 >= y) and (x2, y2) != (x, y) for x2, y2 in points):
            front.append(i)
    return front


def plot(rows: list[dict], x_key: str, x_label: str, path: Path) -> None:
    from edge_runtime.report.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    points = [(r[x_key], r["accuracy"]) for r in rows]
    front = set(pareto(points))
    for i, r in enumerate(rows):
        marker = "o" if r["format"] == "tflite" else "s"
        ax.scatter(r[x_key], 100 * r["accuracy"], marker=marker, s=60 if i in front else 25,
                   edgecolors="black" if i in front else "none")
        ax.annotate(f"{r['arch']} {r['precision']} {r['format']}", (r[x_key], 100 * r["accuracy"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    ordered = sorted(front, key=lambda i: points[i][0])
    ax.plot([points[i][0] for i in ordered], [100 * points[i][1] for i in ordered], "k--", lw=1, label="front")
    ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Fashion-MNIST test accuracy (circles TFLite, squares ONNX; front outlined)")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zoo", type=Path)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runs", default="5000")
    parser.add_argument("--warmup", default="500")
    parser.add_argument("--photos", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "zoo-benchmarks.md")
    args = parser.parse_args()

    archs = collect(args.zoo)
    files = [row["path"] for a in archs for row in a["export"]["models"] if row["passed"]]
    bench = run_json("bench", *files, "--threads", args.threads, "--runs", args.runs, "--warmup", args.warmup)
    results_dir = ROOT / "benchmarks" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{platform.node() or 'machine'}.json").write_text(json.dumps(bench, indent=2) + "\n")

    photo_scores = {}
    if args.photos:
        int8 = [str(a["dir"] / "export" / "model_int8.tflite") for a in archs]
        fp32 = [str(a["dir"] / "export" / "model_fp32.tflite") for a in archs]
        folders = [a for folder in args.photos for a in ("--photos", str(folder))]
        for entry in run_json("evaluate", *int8, *fp32, "--limit", "10", *folders)["models"]:
            photo_scores[entry["path"]] = entry["photos"]["accuracy"]

    accuracy = {row["path"]: row for a in archs for row in a["export"]["models"]}
    arch_of = {row["path"]: a["metrics"]["arch"] for a in archs for row in a["export"]["models"]}
    rows = []
    for r in bench["results"]:
        rows.append({**r, "arch": arch_of[r["model"]], "accuracy": accuracy[r["model"]]["accuracy"],
                     "photos": photo_scores.get(r["model"])})

    one_thread = [r for r in rows if r["threads"] == min(int(t) for t in args.threads.split(","))]
    plot(one_thread, "p50_ms", "p50 latency, batch 1, one thread (ms)", FIGURES / "accuracy_latency.png")
    plot(one_thread, "size_bytes", "file size (bytes)", FIGURES / "accuracy_size.png")
    args.out.write_text(render(archs, rows, bench["device"], photo_scores, args))
    print(f"wrote {args.out}")
    return 0


def _fmt_photo(value) -> str:
    return f"{100 * value:.1f}%" if value is not None else "-"


def _arch_row(a: dict, rows: list[dict], photos: dict, threads: int) -> list[str]:
    """One architecture: its training facts, its fp32 and int8 TFLite files, their latency and photo score."""
    by = {Path(r["path"]).name: r for r in a["export"]["models"]}
    fp32, int8 = by["model_fp32.tflite"], by["model_int8.tflite"]
    lat = next(r for r in rows if r["model"] == int8["path"] and r["threads"] == threads)
    m = a["metrics"]
    return [m["arch"], f"{m['params']:,}", f"{m['macs']:,}", f"{fp32['size_bytes'] / 1024:.0f} KB",
            f"{int8['size_bytes'] / 1024:.0f} KB", f"{100 * fp32['accuracy']:.2f}%", f"{100 * int8['accuracy']:.2f}%",
            f"{lat['p50_ms']:.4f}", f"{lat['p99_ms']:.4f}", _fmt_photo(photos.get(int8["path"])), m["epochs_run"]]


def _file_row(r: dict) -> list[str]:
    return [r["arch"], Path(r["model"]).name, f"{r['backend']} {r['backend_version']}", r["threads"],
            f"{r['size_bytes'] / 1024:.0f} KB", f"{100 * r['accuracy']:.2f}%", f"{r['p50_ms']:.4f}",
            f"{r['p99_ms']:.4f}", f"{r['throughput_ips']:,.0f}", f"{r['peak_rss_mb']:.0f}"]


def render(archs: list[dict], rows: list[dict], device: dict, photos: dict, args) -> str:
    from edge_runtime.tools.bench import device_line
    from edge_runtime.report.tables import markdown_table

    t1 = min(int(t) for t in args.threads.split(","))
    lines = ["# Benchmarks", "",
             f"Measured with `python benchmarks/run_matrix.py {args.zoo} --threads {args.threads} --runs {args.runs} "
             f"--warmup {args.warmup}"
             + (f" --photos {args.photos}`" if args.photos else "`") + " (every number below comes from that run).",
             "", f"Machine: {device_line(device)}", "",
             "## Architectures", "",
             "Test accuracy is on the 10,000 Fashion-MNIST test images through the edge runtime; real photos is "
             "the share of the held-out half of ../shared/real-photos classified right through the camera's "
             "preprocessing; latency is int8 TFLite, batch 1, one thread. Each model is what `make zoo` makes: "
             "`fmnist-edge train --arch ARCH --photos ...` with the architecture's recipe (epochs run in the "
             "last column), then `fmnist-edge export --int8 --fp16`.", "",
             markdown_table(["arch", "params", "MACs", "fp32 size", "int8 size", "fp32 accuracy", "int8 accuracy",
                             "int8 p50 ms", "int8 p99 ms", "real photos (int8)", "epochs"],
                            [_arch_row(a, rows, photos, t1) for a in archs]),
             "", "![accuracy against latency](figures/accuracy_latency.png)",
             "![accuracy against size](figures/accuracy_size.png)", "",
             "## Every file", "",
             markdown_table(["arch", "file", "runtime", "threads", "size", "accuracy", "p50 ms", "p99 ms", "images/s",
                             "peak RSS MB"], [_file_row(r) for r in rows], "lllrrrrrrr"),
             "", "Other machines: run `fmnist-edge bench --json` there and merge the files with "
             "`python benchmarks/merge.py benchmarks/results/*.json`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
