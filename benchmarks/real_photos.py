"""The camera's five numbers for model files, on real photos, through the edge runtime only.

Every photo goes through edge_runtime.camera.preprocess.preprocess_frame (what `fmnist-edge predict` and
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
        [--photos ../shared/real-photos [--photos ../shared/real-photos-more]] [--min-score 0.6] [--no-test] [--json]

With several folders, every figure is also given per source (the table's `source` column, or the folder)
and per Fashion-MNIST class over the photos labelled with that one class (strict).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_runtime.data import photos as photomod  # noqa: E402
from edge_runtime.data.scoring import right_answers, score_photos  # noqa: E402
from edge_runtime.report.metrics import reliability  # noqa: E402
from edge_runtime.tools.evaluate import predict_all  # noqa: E402


def model_probs(spec: str, images: np.ndarray, flip: bool) -> np.ndarray:
    """The mean probabilities of the '+'-joined files in `spec` (and of their mirrored inputs with `flip`)."""
    answers = []
    for path in spec.split("+"):
        answers.append(predict_all(path, images))
        if flip:
            answers.append(predict_all(path, np.ascontiguousarray(images[:, :, ::-1])))
    return np.mean(answers, axis=0)


def score(probs: np.ndarray, chosen: list, min_score: float, left_out: tuple[str, ...]) -> dict:
    """The one scorer's figures (edge_runtime.data.scoring), and with `left_out` those of the left-out
    classes and of the others apart."""
    out = asdict(score_photos(chosen, probs, min_score))
    known = np.array([bool(p.accepted) for p in chosen])
    right = right_answers(chosen, probs)
    out["reliability"], _ = reliability(probs.max(axis=1)[known], right[known])
    out["left_out"] = out["seen"] = None
    if left_out:
        pick = np.array([p.photo_class in left_out for p in chosen])
        out["left_out"] = {"classes": list(left_out), **_accuracy(probs[pick], [p for p in chosen if p.photo_class
                                                                                 in left_out], min_score)}
        out["seen"] = _accuracy(probs[~pick], [p for p in chosen if p.photo_class not in left_out], min_score)
    return out


def _accuracy(probs: np.ndarray, chosen: list, min_score: float) -> dict:
    scored = score_photos(chosen, probs, min_score)
    return {"n": scored.photos, "accuracy": scored.accuracy if scored.photos else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model files (.tflite/.onnx); join files with + for an ensemble")
    parser.add_argument("--photos", action="append", default=None,
                        help="a photo folder (labels.csv); repeatable [default: ../shared/real-photos]")
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
    args.photos = args.photos or [str(ROOT.parent / "shared" / "real-photos")]
    chosen = photomod.load_folders(args.photos, args.split)
    results = measure(args, chosen, photomod.prepare(chosen))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{len(chosen)} {args.split} photos from {', '.join(args.photos)}, --min-score {args.min_score}"
          f"{', mirrored too' if args.flip else ''} ({time.perf_counter() - start:.0f} s)\n")
    print_tables(results, tuple(args.left_out))
    return 0


def measure(args: argparse.Namespace, chosen: list, images: np.ndarray) -> list[dict]:
    """Each model's rows on the chosen photos, and on the Fashion-MNIST test set unless --no-test."""
    test = None
    if not args.no_test:
        from edge_runtime.data.fashion_mnist import load_split

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
    rows = [("1. in-distribution photos right", lambda r: f"{pct(r['accuracy'])} of {r['photos']}")]
    if left_out:
        rows += [(f"2. left-out {'+'.join(left_out)} right (unseen-type proxy)",
                  lambda r: f"{pct(r['left_out']['accuracy'])} of {r['left_out']['n']}"),
                 ("   the other classes right", lambda r: pct(r["seen"]["accuracy"]))]
    rows += [
        ("3. hats, shorts, skirts unsure", lambda r: f"{pct(r['ood_unsure'])} of {r['ood_photos']}"
                                                    f" (mean top {r['ood_mean_confidence']:.2f})"),
        ("4. in-distribution labelled (right of those)",
         lambda r: f"{pct(r['labelled'])} ({pct(r['labelled_right'])})"),
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
    for cls, n in results[0]["per_class_photos"].items():
        cells = [f"{pct(r['per_class'][cls])} ({pct(r['per_class_labelled'][cls])})" if cls in r["per_class"]
                 else f"unsure {pct(1 - r['per_class_labelled'][cls])}" for r in results]
        print(f"| {cls} | {n} | " + " | ".join(cells) + " |")
    print("\nReliability on in-distribution photos: bin: n, mean confidence -> accuracy\n")
    for r in results:
        bins = "; ".join(f"{b['bin']}: {b['n']}, {b['confidence']:.2f}->{b['accuracy']:.2f}" for b in r["reliability"])
        print(f"- {r['model']}: {bins}")
    for title, key in (("source", "per_source"), ("Fashion-MNIST class (strict: photos of that one class)",
                                                   "per_fmnist_class")):
        print(f"\nPer {title}: accuracy of n\n")
        print("| " + title.split(" (")[0] + " | n | " + " | ".join(names) + " |")
        print("|---|---:|" + "---:|" * len(names))
        for name, row in results[0][key].items():
            print(f"| {name} | {row['photos']} | " + " | ".join(pct(r[key][name]["accuracy"]) for r in results) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
