"""Adapt's replay weights swept where a setting can be chosen honestly: on a base that never trained on
tune-b, with the user's photos drawn from tune-a and every score on tune-b (neither trained on nor held
out). `fmnist-edge adapt` learns a user's new classes at the cost of the others; this says what each
weighting of the replay trades.

    python benchmarks/adapt_sweep.py BASE.onnx [--photos ../shared/real-photos] [--new-class hat ...]
                                     [--k 25 --k 100 --k 119] [--seeds 3] [--json]

BASE: a model trained on tune-a only, with its replay bank made from tune-a, e.g.

    fmnist-edge train --recipe bundled --set photo_split=tune-a --photos ../shared/real-photos \\
        --photos ../shared/real-photos-more --out runs/base-tunea
    fmnist-edge export runs/base-tunea/model.keras --int8 --format onnx
    python -m edge_runtime.field.replay runs/base-tunea/export/model_int8.onnx --photos ../shared/real-photos \\
        --photos ../shared/real-photos-more --split tune-a

For each K and seed, K tune-a photos of the new classes (drawn as benchmarks/adapt_loop.py draws them,
with their mirror images) are fit by field.adapt's own fit, in-process (features computed once, nothing
written), with the replayed Fashion-MNIST images and the banked photos weighted together (adapt's
replay_weight) or apart. Scored: tune-b photos of the new classes named by them, the other in-distribution
tune-b photos right, the Fashion-MNIST test set; means over the seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from field_loop import draw  # noqa: E402

from edge_runtime.core.contract import NUM_CLASSES  # noqa: E402
from edge_runtime.core.errors import FmnistEdgeError  # noqa: E402
from edge_runtime.data import photos as photomod  # noqa: E402
from edge_runtime.field import adapt  # noqa: E402
from edge_runtime.field.features import Featurizer, load_base  # noqa: E402
from edge_runtime.field.replay import load_bank  # noqa: E402

WEIGHTINGS = (("together", 4.0), ("together", 8.0), ("together", 16.0), ("apart", (2.0, 2.0)), ("apart", (2.0, 4.0)),
              ("apart", (2.0, 8.0)))
"""(how, weight): adapt's replay_weight over images and bank together, or (images, bank) weighed apart."""


def run(args: argparse.Namespace) -> dict:
    new = tuple(args.new_class)
    base = load_base(args.base)
    featurize = Featurizer(base)
    width = NUM_CLASSES + len(new)
    bank = load_bank(base)
    if bank is None:
        raise SystemExit(f"{args.base} has no replay bank beside it: make one from tune-a (see --help)")
    pool = [p for p in photomod.load_photos(args.photos, "tune-a") if p.photo_class in new]
    if max(args.k) > len(pool):
        raise FmnistEdgeError(f"{args.photos}: {len(pool)} tune-a photos of {', '.join(new)}; choose K <= {len(pool)}")
    scored = photomod.load_photos(args.photos, "tune-b")
    features = featurize(photomod.prepare(scored))
    taught = [i for i, p in enumerate(scored) if p.photo_class in new]
    others = [i for i, p in enumerate(scored) if p.photo_class not in new and p.accepted]
    images, test = adapt._fmnist(None, featurize, width, adapt.AdaptSettings())
    banked = adapt.bank_frames(bank, width)
    share_images = len(images) / (len(images) + len(banked))

    def score(weights: np.ndarray, bias: np.ndarray) -> tuple[float, float, float]:
        top = (features @ weights + bias).argmax(axis=1)
        named = np.mean([top[i] == NUM_CLASSES + new.index(scored[i].photo_class) for i in taught])
        right = np.mean([int(top[i]) in scored[i].accepted for i in others])
        return float(named), float(right), adapt._test_accuracy(test, weights, bias)

    users = {}
    for k in args.k:
        for seed in range(args.seeds):
            frames, mirrored = adapt._user_frames(draw(pool, k, seed), featurize, list(new))
            users[k, seed] = adapt._join(frames, mirrored)
    settings = adapt.AdaptSettings()
    rows = []
    for how, weight in WEIGHTINGS:
        w_images, w_bank = (weight * share_images, weight * (1 - share_images)) if how == "together" else weight
        row = {"how": how, "weight": weight, "images_weight": round(w_images, 3), "bank_weight": round(w_bank, 3),
               "k": {}}
        for k in args.k:
            runs = [score(*adapt.fit_sets([(users[k, seed], 1.0), (images, w_images), (banked, w_bank)],
                                          base.weights, base.bias, len(new), settings)) for seed in range(args.seeds)]
            named, right, fmnist = np.mean(runs, axis=0)
            row["k"][k] = {"new_named": round(named, 4), "others_right": round(right, 4),
                           "fmnist_test": round(fmnist, 4)}
        rows.append(row)
    before = (features @ base.weights + base.bias).argmax(axis=1)
    return {"base": str(args.base), "pool": len(pool), "new_scored": len(taught), "others_scored": len(others),
            "seeds": args.seeds, "defaults": dataclasses.asdict(settings),
            "base_others_right": round(float(np.mean([int(before[i]) in scored[i].accepted for i in others])), 4),
            "rows": rows}


def table(result: dict) -> str:
    ks = list(result["rows"][0]["k"])
    head = "| replay weighting | " + " | ".join(f"K={k}: new named / others right" for k in ks) + " | test, K=" \
           f"{ks[-1]} |"
    lines = [head, "|---|" + "---:|" * (len(ks) + 1)]
    for row in result["rows"]:
        name = (f"together {row['weight']:g}" + (" (adapt's default)" if row["weight"] == result["defaults"]
                                                  ["replay_weight"] and row["how"] == "together" else "")
                if row["how"] == "together" else f"apart: images {row['weight'][0]:g}, bank {row['weight'][1]:g}")
        cells = [f"{100 * r['new_named']:.1f}% / {100 * r['others_right']:.1f}%" for r in row["k"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {100 * row['k'][ks[-1]]['fmnist_test']:.2f}% |")
    lines.append(f"\nbase: others right {100 * result['base_others_right']:.1f}% of {result['others_scored']}; "
                 f"new classes scored on {result['new_scored']} tune-b photos; pool of {result['pool']} tune-a photos; "
                 f"{result['seeds']} seeds")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="an ONNX model trained on tune-a only, its bank made from tune-a")
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "real-photos"))
    parser.add_argument("--new-class", action="append", default=None, metavar="PHOTO_CLASS")
    parser.add_argument("--k", action="append", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.new_class = args.new_class or ["hat", "shorts", "skirt"]
    args.k = args.k or [25, 100, 119]
    try:
        result = run(args)
    except FmnistEdgeError as err:  # a model or photo folder that cannot be read: its one line
        print(f"Error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
