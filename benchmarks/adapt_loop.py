"""The field loop on the device, simulated: a user labels K photos and runs `fmnist-edge adapt` (no
TensorFlow), and the adapted model is scored on the photos the user did not label.

    python benchmarks/adapt_loop.py BASE.onnx --classes outwear --classes shirt --k 25 --k 50 --k 100 --k 200
    python benchmarks/adapt_loop.py BASE.onnx --new-class hat --new-class shorts --new-class skirt --k 100
        [--photos ../shared/real-photos] [--out runs/adapt-loop] [--seed 0] [--json]

--classes: garment types BASE never saw in a photo (e.g. the bundled recipe trained with those photo
classes left out); the user's K photos of them are drawn (seeded) from the tune half of PHOTOS and
written as a labelled folder, and the adapted model is scored on the held-out half: the held-out
photos of those types, of every other class, hats/shorts/skirts left unsure, the Fashion-MNIST test.
--new-class: photo classes no Fashion-MNIST class fits, taught as classes of their own; the held-out
photos of them must be named by their new class, the others as before.

Each adapt runs exactly as a user runs it (`fmnist-edge adapt FOLDER --model BASE --out FILE`), timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from field_loop import cli, user_folder  # noqa: E402

from edge_runtime.core.backends import predict_file  # noqa: E402
from edge_runtime.core.contract import NUM_CLASSES  # noqa: E402
from edge_runtime.data import photos as photomod  # noqa: E402
from edge_runtime.data.scoring import DEFAULT_MIN_SCORE  # noqa: E402


def shares(probs: np.ndarray, held: list, classes: tuple[str, ...], new: tuple[str, ...]) -> dict:
    """Share right of the held-out photos of `classes` (or of the new classes, named by them), of the
    other in-distribution photos, and of the rest (hats, shorts, skirts not taught) left unsure."""
    top, conf = probs.argmax(axis=1), probs.max(axis=1)
    names = [p.photo_class for p in held]

    def right(i: int) -> bool:
        if names[i] in new:
            return top[i] == NUM_CLASSES + new.index(names[i])
        return int(top[i]) in held[i].accepted

    taught = [i for i, n in enumerate(names) if n in classes or n in new]
    others = [i for i, n in enumerate(names) if i not in set(taught) and held[i].accepted]
    rest = [i for i, n in enumerate(names) if n not in new and not held[i].accepted]
    return {"taught": {"n": len(taught), "right": _mean([right(i) for i in taught])},
            "others": {"n": len(others), "right": _mean([right(i) for i in others])},
            "unsure": {"n": len(rest), "share": _mean([conf[i] < DEFAULT_MIN_SCORE for i in rest])}}


def _mean(values: list) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def measure(model: str, held: list, images: np.ndarray, test: tuple, classes, new) -> dict:
    result = shares(predict_file(model, images), held, classes, new)
    result["fmnist_test"] = round(float((predict_file(model, test[0])[:, :NUM_CLASSES].argmax(1) == test[1]).mean()),
                                  4)
    return result


def run(args: argparse.Namespace) -> list[dict]:
    from edge_runtime.data.fashion_mnist import load_split

    classes, new = tuple(args.classes), tuple(args.new_class)
    held = photomod.load_photos(args.photos, "held-out")
    images, test = photomod.prepare(held), load_split("test", None)
    rows = [{"k": 0, "seconds": 0.0, **measure(args.base, held, images, test, classes, ())}]
    for k in args.k:
        run_dir = Path(args.out) / f"k{k}"
        user_folder(args.photos, classes + new, k, args.seed, run_dir / "photos")
        start = time.perf_counter()
        cli("adapt", str(run_dir / "photos"), "--model", args.base, *(a for n in new for a in ("--new-class", n)),
            "--out", str(run_dir / "adapted.onnx"))
        seconds = time.perf_counter() - start
        rows.append({"k": k, "seconds": round(seconds, 1),
                     **measure(str(run_dir / "adapted.onnx"), held, images, test, classes, new)})
    return rows


def table(rows: list[dict], what: str) -> str:
    lines = [f"| K labelled | held-out {what} right | other classes right | the rest unsure | Fashion-MNIST test "
             "| adapt time |", "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        taught = "-" if r["taught"]["right"] is None else f"{100 * r['taught']['right']:.1f}%"
        unsure = "-" if r["unsure"]["share"] is None else f"{100 * r['unsure']['share']:.1f}%"
        lines.append(f"| {r['k'] or 'base'} | {taught} of {r['taught']['n']} | {100 * r['others']['right']:.1f}% of "
                     f"{r['others']['n']} | {unsure} of {r['unsure']['n']} | {100 * r['fmnist_test']:.2f}% | "
                     f"{r['seconds']:.1f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="the ONNX model the user starts from")
    parser.add_argument("--classes", action="append", default=[], metavar="PHOTO_CLASS")
    parser.add_argument("--new-class", action="append", default=[], metavar="PHOTO_CLASS")
    parser.add_argument("--k", action="append", type=int, required=True)
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "real-photos"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/adapt-loop")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.classes and not args.new_class:
        parser.error("give --classes PHOTO_CLASS or --new-class PHOTO_CLASS")
    args.base, args.out, args.photos = (str(Path(x).resolve()) for x in (args.base, args.out, args.photos))
    rows = run(args)
    print(json.dumps(rows, indent=2) if args.json else table(rows, "+".join(args.classes + args.new_class)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
