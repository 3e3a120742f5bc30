"""The field loop, simulated: a user labels K photos of garment types the model was weak on, fine-tunes
with the defaults, and gets a better model on the other photos of those types.

    python benchmarks/field_loop.py BASE.keras --classes outwear --classes shirt --k 25 --k 50 --k 100 --k 200 \
        [--photos ../shared/real-photos] [--out runs/field-loop]

BASE should not have trained on the photos of CLASSES (e.g. `train --photo-exclude outwear
--photo-exclude shirt`), so the simulation starts where a user with unseen garment types starts.
For each K, K photos of CLASSES are drawn (seeded, classes in proportion) from the tune half of
PHOTOS and written as a labelled photo folder (what `camera --collect` and `label` make), then

    fmnist-edge train --init BASE --photos FOLDER --photo-split all --out OUT/kK
    fmnist-edge export OUT/kK/model.keras --int8 --format tflite

run exactly as a user runs them (the fine-tune recipe's defaults), and the int8 file is scored
through the edge runtime, like the base: the held-out photos of CLASSES (the user's other items of
those types), all held-out in-distribution photos, hats/shorts/skirts left unsure, Fashion-MNIST
test. Writes OUT/field_loop.json, prints a markdown table and draws docs/figures/field_loop.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "docs" / "figures" / "field_loop.png"
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from real_photos import model_probs, score  # noqa: E402

from edge_runtime.core.files import write_json_atomic  # noqa: E402
from edge_runtime.data import photos as photomod  # noqa: E402
from edge_runtime.report.plots import pyplot, save_figure  # noqa: E402


def draw(pool: list, k: int, seed: int) -> list:
    """K of the pool, drawn with the seed, in the pool's order: the photos a simulated user labels."""
    return [pool[i] for i in sorted(np.random.default_rng(seed).permutation(len(pool))[:k])]


def user_folder(root: str, classes: tuple[str, ...], k: int, seed: int, dest: Path) -> list[str]:
    """A labelled photo folder of K tune-half photos of `classes` (links to the files); their paths."""
    pool = [p for p in photomod.load_photos(root, "tune") if p.photo_class in classes]
    if k > len(pool):
        raise SystemExit(f"only {len(pool)} tune photos of {', '.join(classes)}; choose K <= {len(pool)}")
    picked = draw(pool, k, seed)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    rows = []
    for i, photo in enumerate(picked):
        name = f"{i:04d}{photo.path.suffix}"
        shutil.copyfile(photo.path, dest / name)  # a photo folder holds its own files (links out are refused)
        rows.append({"path": name, "photo_class": photo.photo_class,
                     "fashion_mnist_classes": " ".join(str(c) for c in sorted(photo.accepted))})
    photomod.write_rows(dest, rows)
    return [str(p.path) for p in picked]


def cli(*args: str) -> float:
    """Run fmnist-edge as a user does; the seconds it took."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "toolkit.cli", *args], check=True, cwd=ROOT)
    return time.perf_counter() - start


def evaluate(model: str, held: list, images: np.ndarray, test: tuple, classes: tuple[str, ...]) -> dict:
    result = score(model_probs(model, images, False), held, 0.6, classes)
    result["fmnist_test_accuracy"] = round(float((model_probs(model, test[0], False).argmax(1) == test[1]).mean()), 4)
    return result


def run(args: argparse.Namespace) -> list[dict]:
    from edge_runtime.data.fashion_mnist import load_split

    out, classes = Path(args.out), tuple(args.classes)
    held = photomod.load_photos(args.photos, "held-out")
    images, test = photomod.prepare(held), load_split("test", None)
    base = out / "base"
    cli("export", args.base, "--int8", "--format", "tflite", "--out", str(base))
    rows = [{"k": 0, "seconds": 0.0, **evaluate(str(base / "model_int8.tflite"), held, images, test, classes)}]
    for k in args.k:
        run_dir = out / f"k{k}"
        user_folder(args.photos, classes, k, args.seed, run_dir / "photos")
        seconds = cli("train", "--init", args.base, "--photos", str(run_dir / "photos"), "--photo-split", "all",
                      "--out", str(run_dir / "model"))
        cli("export", str(run_dir / "model" / "model.keras"), "--int8", "--format", "tflite", "--out",
            str(run_dir / "export"))
        rows.append({"k": k, "seconds": round(seconds, 1),
                     **evaluate(str(run_dir / "export" / "model_int8.tflite"), held, images, test, classes)})
        write_json_atomic(out / "field_loop.json", rows)
    return rows


def table(rows: list[dict], classes: tuple[str, ...]) -> str:
    lines = [f"| K labelled | held-out {'+'.join(classes)} right | other classes right | all in-distribution "
             "right | hats/shorts/skirts unsure | Fashion-MNIST test | fine-tune time |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['k'] or 'base'} | {100 * r['left_out']['accuracy']:.1f}% of {r['left_out']['n']} | "
                     f"{100 * r['seen']['accuracy']:.1f}% | {100 * r['accuracy']:.1f}% | "
                     f"{100 * r['ood_unsure']:.1f}% | {100 * r['fmnist_test_accuracy']:.2f}% | "
                     f"{r['seconds']:.0f} s |")
    return "\n".join(lines)


def plot(rows: list[dict], classes: tuple[str, ...], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ks = [r["k"] for r in rows]
    for label, get in ((f"held-out {'+'.join(classes)}", lambda r: r["left_out"]["accuracy"]),
                       ("other held-out classes", lambda r: r["seen"]["accuracy"]),
                       ("Fashion-MNIST test", lambda r: r["fmnist_test_accuracy"])):
        ax.plot(ks, [100 * get(r) for r in rows], marker="o", label=label)
    ax.set_xlabel("photos the user labelled (K)")
    ax.set_ylabel("top-1 right, int8 (%)")
    ax.set_title("Fine-tuning on a user's labelled frames")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="model.keras that did not train on the photos of --classes")
    parser.add_argument("--classes", action="append", required=True, metavar="PHOTO_CLASS")
    parser.add_argument("--k", action="append", type=int, required=True)
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "real-photos"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/field-loop")
    args = parser.parse_args(argv)
    args.base, args.out, args.photos = (str(Path(x).resolve()) for x in (args.base, args.out, args.photos))
    rows = run(args)
    print(table(rows, tuple(args.classes)))
    plot(rows, tuple(args.classes), FIGURE)
    print(json.dumps({"wrote": [str(Path(args.out) / "field_loop.json"), str(FIGURE)]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
