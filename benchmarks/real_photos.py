"""The camera's five numbers for model files, on real photos, through the edge runtime only.

Every photo goes through edge_runtime.preprocess.preprocess_frame (what `fmnist-edge predict` and
`camera` do) and the model file's backend (LiteRT or ONNX Runtime): no TensorFlow, so this runs on
a base install. For each model it prints

1. in-distribution accuracy: the top class is an accepted one, on the photos of the seven classes
   that map to Fashion-MNIST;
2. with --left-out CLASS (a model trained without that photo class): accuracy on that class's
   photos, the proxy for garment types no training photo shows;
3. out-of-distribution photos (hats, shorts, skirts) left "unsure" at --min-score (top probability
   below it), as the camera shows them;
4. in-distribution photos that keep a label at --min-score, and how many of those labels are right;
5. Fashion-MNIST test accuracy;

then accuracy per photo class and the calibration picture: accuracy per confidence bin on the
in-distribution photos, their expected calibration error (ECE), and the open-set ECE where an
out-of-distribution photo counts as a wrong label.

A model argument may join several files with "+" (an ensemble: the mean of their probabilities);
--flip also averages each model's answer on the mirrored image.

    python benchmarks/real_photos.py MODEL.tflite [MODEL2.tflite ...] [--split held-out] [--left-out outwear]
        [--photos ../shared/real-photos] [--min-score 0.6] [--no-test] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_runtime.tools.evaluate import predict_all  # noqa: E402
from edge_runtime.tools import photos as photomod  # noqa: E402
from edge_runtime.tools.metrics import reliability  # noqa: E402


def model_probs(spec: str, images: np.ndarray, flip: bool) -> np.ndarray:
    """The mean probabilities of the '+'-joined files in `spec` (and of their mirrored inputs with `flip`)."""
    answers = []
    for path in spec.split("+"):
        answers.append(predict_all(path, images))
        if flip:
            answers.append(predict_all(path, np.ascontiguousarray(images[:, :, ::-1])))
    return np.mean(answers, axis=0)


def score(probs: np.ndarray, chosen: list, min_score: float, left_out: tuple[str, ...]) -> dict:
    top, conf = probs.argmax(axis=1), probs.max(axis=1)
    known = np.array([bool(p.accepted) for p in chosen])
    right = np.array([int(t) in p.accepted for t, p in zip(top, chosen, strict=True)])
    cls = np.array([p.photo_class for p in chosen])
    keep = conf >= min_score
    seen = known & ~np.isin(cls, left_out)
    out = {
        "in_distribution": {"n": int(known.sum()), "accuracy": round(float(right[known].mean()), 4)},
        "seen_classes": {"n": int(seen.sum()), "accuracy": round(float(right[seen].mean()), 4) if seen.any() else None},
        "left_out": None,
        "ood_unsure": {"n": int((~known).sum()),
                       "share": round(float((~keep[~known]).mean()), 4) if (~known).any() else None,
                       "mean_confidence": round(float(conf[~known].mean()), 4) if (~known).any() else None},
        "in_labelled": {"share": round(float(keep[known].mean()), 4),
                        "accuracy_of_labelled": round(float(right[known & keep].mean()), 4) if (known & keep).any()
                        else None},
        "per_class": {},
    }
    if left_out:
        pick = known & np.isin(cls, left_out)
        out["left_out"] = {"classes": list(left_out), "n": int(pick.sum()),
                           "accuracy": round(float(right[pick].mean()), 4) if pick.any() else None}
    for name in sorted(set(cls)):
        pick = cls == name
        entry = {"n": int(pick.sum()), "labelled": round(float(keep[pick].mean()), 4)}
        if known[pick].any():
            entry["accuracy"] = round(float(right[pick].mean()), 4)
        out["per_class"][name] = entry
    out["reliability"], out["ece"] = reliability(conf[known], right[known])
    # Open set: a label on an out-of-distribution photo is a wrong label.
    _, out["open_set_ece"] = reliability(conf, right & known)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model files (.tflite/.onnx); join files with + for an ensemble")
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "real-photos"))
    parser.add_argument("--split", default="held-out", choices=photomod.SPLITS)
    parser.add_argument("--left-out", action="append", default=[], metavar="CLASS",
                        help="photo class the model(s) did not train on: its accuracy is the unseen-type proxy")
    parser.add_argument("--min-score", type=float, default=0.6)
    parser.add_argument("--flip", action="store_true", help="also average each answer on the mirrored image")
    parser.add_argument("--no-test", action="store_true", help="skip the Fashion-MNIST test set")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    chosen = photomod.load_photos(args.photos, args.split)
    results = measure(args, chosen, photomod.prepare(chosen))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{len(chosen)} {args.split} photos from {args.photos}, --min-score {args.min_score}"
          f"{', mirrored too' if args.flip else ''} ({time.perf_counter() - start:.0f} s)\n")
    print_tables(results, tuple(args.left_out))
    return 0


def measure(args: argparse.Namespace, chosen: list, images: np.ndarray) -> list[dict]:
    """Each model's rows on the chosen photos, and on the Fashion-MNIST test set unless --no-test."""
    test = None
    if not args.no_test:
        from toolkit.data import load_split

        test = load_split("test", args.data_dir)
    results = []
    for spec in args.models:
        probs = model_probs(spec, images, args.flip)
        result = {"model": spec, "split": args.split, "flip": args.flip, "min_score": args.min_score,
                  **score(probs, chosen, args.min_score, tuple(args.left_out))}
        if test is not None:
            test_probs = model_probs(spec, test[0], args.flip)
            hit = test_probs.argmax(axis=1) == test[1]
            result["fmnist_test_accuracy"] = round(float(hit.mean()), 4)
            _, result["fmnist_test_ece"] = reliability(test_probs.max(axis=1), hit)
        results.append(result)
    return results


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def print_tables(results: list[dict], left_out: tuple[str, ...]) -> None:
    names = [r["model"] for r in results]
    print("| row | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    rows = [
        ("1. in-distribution photos right", lambda r: f"{pct(r['in_distribution']['accuracy'])} "
                                                      f"of {r['in_distribution']['n']}"),
    ]
    if left_out:
        rows += [(f"2. left-out {'+'.join(left_out)} right (unseen-type proxy)",
                  lambda r: f"{pct(r['left_out']['accuracy'])} of {r['left_out']['n']}"),
                 ("   the other classes right", lambda r: pct(r["seen_classes"]["accuracy"]))]
    rows += [
        ("3. hats, shorts, skirts unsure", lambda r: f"{pct(r['ood_unsure']['share'])} of {r['ood_unsure']['n']}"
                                                    f" (mean top {r['ood_unsure']['mean_confidence']:.2f})"),
        ("4. in-distribution labelled (right of those)",
         lambda r: f"{pct(r['in_labelled']['share'])} ({pct(r['in_labelled']['accuracy_of_labelled'])})"),
        ("5. Fashion-MNIST test", lambda r: pct(r.get("fmnist_test_accuracy"))),
        ("ECE in-distribution / open-set / test",
         lambda r: f"{r['ece']:.3f} / {r['open_set_ece']:.3f} / "
                   + (f"{r['fmnist_test_ece']:.3f}" if "fmnist_test_ece" in r else "-")),
    ]
    for label, fn in rows:
        print(f"| {label} | " + " | ".join(fn(r) for r in results) + " |")
    print("\nPer photo class: accuracy (labelled at --min-score)\n")
    print("| class | n | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for cls, entry in results[0]["per_class"].items():
        cells = []
        for r in results:
            e = r["per_class"][cls]
            cells.append(f"{pct(e['accuracy'])} ({pct(e['labelled'])})" if "accuracy" in e
                         else f"unsure {pct(1 - e['labelled'])}")
        print(f"| {cls} | {entry['n']} | " + " | ".join(cells) + " |")
    print("\nReliability on in-distribution photos: bin: n, mean confidence -> accuracy\n")
    for r in results:
        bins = "; ".join(f"{b['bin']}: {b['n']}, {b['confidence']:.2f}->{b['accuracy']:.2f}" for b in r["reliability"])
        print(f"- {r['model']}: {bins}")


if __name__ == "__main__":
    raise SystemExit(main())
