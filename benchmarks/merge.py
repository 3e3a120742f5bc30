"""Merge `fmnist-edge bench --json` reports from several machines into one comparison table.

Rows are (model file, precision, runtime, threads, batch); columns are the machines, each cell the
p50 latency in ms (and p99 with --p99). Machines are named by their board (a Pi's device-tree
model) or CPU, with the file name when two are alike. A machine that throttled during its run is
marked, because its numbers are not its best.

    python benchmarks/merge.py laptop.json pi4.json pi5.json [--p99] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_runtime.report.tables import markdown_table


def machine_name(report: dict, path: Path) -> str:
    """The board or CPU, marked where the run throttled or the board failed `verify` (it computes
    something other than what the exporter computed for a file)."""
    device = report.get("device", {})
    name = device.get("board") or device.get("cpu") or path.stem
    marks = ["throttled"] * bool(device.get("throttled"))
    marks += ["verify failed"] * any(not v["passed"] for v in device.get("verify") or [])
    return name + (f" ({', '.join(marks)})" if marks else "")


def merge(reports: list[tuple[Path, dict]], p99: bool = False) -> str:
    """A Markdown table: one row per (model, precision, runtime, threads, batch), one column per machine."""
    names, seen = [], {}
    for path, report in reports:
        name = machine_name(report, path)
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    cells: dict[tuple, dict[str, str]] = {}
    for name, (_, report) in zip(names, reports, strict=True):
        for r in report["results"]:
            key = (Path(r["model"]).name, r["precision"], r["backend"], r["threads"], r["batch"])
            value = f"{r['p50_ms']:.4f}" + (f" / {r['p99_ms']:.4f}" if p99 else "")
            cells.setdefault(key, {})[name] = value
    unit = "p50 / p99 ms" if p99 else "p50 ms"
    rows = [[*key, *(cells[key].get(n, "-") for n in names)] for key in sorted(cells)]
    lines = [f"Latency ({unit}) per machine", "",
             markdown_table(["model", "precision", "runtime", "threads", "batch", *names], rows,
                            "lllrr" + "r" * len(names)),
             "", "Machines:"]
    for name, (path, report) in zip(names, reports, strict=True):
        d = report.get("device", {})
        lines.append(f"- {name}: {d.get('cpu')}, {d.get('cores_usable')} cores, {d.get('os')}, "
                     f"Python {d.get('python')}, governor {d.get('governor')}, throttled {d.get('throttled')} ({path})")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--p99", action="store_true", help="show p99 beside p50")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    loaded = []
    for path in args.reports:
        try:
            report = json.loads(path.read_text())
            if not isinstance(report.get("results"), list):
                raise KeyError("results")
        except (OSError, ValueError, KeyError) as exc:
            print(f"{path}: not a `fmnist-edge bench --json` report ({exc})", file=sys.stderr)
            return 1
        loaded.append((path, report))
    text = merge(loaded, args.p99)
    if args.out:
        args.out.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
