"""Do two machines compute the same answers from the same model files? (The x86 / arm64 table of docs/raspberry-pi.md.)

    python benchmarks/agreement.py save OUT.npz MODEL...        # on each machine: every test image's answers
    python benchmarks/agreement.py compare A.npz B.npz [--markdown]

`save` runs each model file on all 10,000 Fashion-MNIST test images through the edge runtime (no
TensorFlow) and stores the probabilities with the machine's name; `compare` prints, per model, each
machine's accuracy, how many images get a different top-1, the top-1 agreement and the largest
difference in a probability. Models are matched by the name their files share in both saves.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np


def save(out: Path, models: list[str], cpu: str) -> None:
    from edge_runtime.core.backends import predict_file
    from edge_runtime.report.tables import display_names
    from edge_runtime.data import fashion_mnist as data

    images, labels = data.load_split("test")
    names = display_names(models)
    arrays = {names[m]: predict_file(m, images) for m in models}
    info = {"machine": platform.machine(), "cpu": cpu, "python": platform.python_version()}
    np.savez_compressed(out, labels=labels, info=np.array(json.dumps(info)), **arrays)
    print(f"wrote {out}: {', '.join(arrays)} on {info}", file=sys.stderr)


def compare(a: Path, b: Path, markdown: bool) -> str:
    from edge_runtime.report.tables import markdown_table, text_table

    with np.load(a) as first, np.load(b) as second:
        labels = first["labels"]
        where = [json.loads(str(x["info"])) for x in (first, second)]
        rows = []
        for name in sorted(set(first.files) & set(second.files) - {"labels", "info"}):
            p, q = first[name], second[name]
            differ = int((p.argmax(1) != q.argmax(1)).sum())
            rows.append([name, f"{(p.argmax(1) == labels).mean():.4f}", f"{(q.argmax(1) == labels).mean():.4f}",
                         str(differ), f"{1 - differ / len(labels):.4f}", f"{np.abs(p - q).max():.4f}"])
    heads = [f"{w['machine']} {w['cpu']}".strip() for w in where]
    headers = ["model", f"accuracy, {heads[0]}", f"accuracy, {heads[1]}", "top-1 differs on", "agreement",
               "max abs diff"]
    return (markdown_table if markdown else text_table)(headers, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    saving = sub.add_parser("save")
    saving.add_argument("out", type=Path)
    saving.add_argument("models", nargs="+")
    saving.add_argument("--cpu", default="", help="what to call this machine's CPU in the table")
    comparing = sub.add_parser("compare")
    comparing.add_argument("a", type=Path)
    comparing.add_argument("b", type=Path)
    comparing.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.command == "save":
        save(args.out, args.models, args.cpu)
    else:
        print(compare(args.a, args.b, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
