"""Temperature scaling folded into the output layer, and choosing the temperature on photos.

A model's softmax(z) becomes softmax(z / T) by dividing the last Dense layer's kernel and bias by T:
the file keeps its layers and the contract (raw pixels in, ten probabilities out) and the runtime
changes nothing. T > 1 lowers every top probability, so a frame's "unsure" at --min-score follows
how often a label at that score is right.

    python -m toolkit.calibrate MODEL.keras --photos ../shared/real-photos --split tune-b

prints, for a range of temperatures, the expected calibration error on the photos of SPLIT (an
out-of-distribution photo counts as a wrong label), the negative log-likelihood, and the camera's
numbers at --min-score, so T is chosen on photos the model did not train on and then passed to
`fmnist-edge train --temperature T` for the final model, or folded into a trained one:

    python -m toolkit.calibrate MODEL.keras --fold T --out TEMPERED.keras
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge_runtime.data import photos as photo_folder
from edge_runtime.data.scoring import score_photos
from toolkit.keras_io import load_keras_model, save_keras_model
from toolkit.tf import keras


def output_dense(model: keras.Model):
    """The model's last Dense layer (the one whose softmax is the output)."""
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense or dense[-1].get_config().get("activation") != "softmax":
        raise ValueError(f"{model.name}: the output is not a softmax Dense layer; cannot fold a temperature")
    return dense[-1]


def fold_temperature(model: keras.Model, temperature: float) -> None:
    """softmax(z) -> softmax(z / temperature), in place, by scaling the output layer's weights."""
    layer = output_dense(model)
    layer.set_weights([w / temperature for w in layer.get_weights()])


def temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    """What fold_temperature does to a model's probabilities, from the probabilities."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def temperature_table(model: keras.Model, chosen: list, min_score: float) -> str:
    """A markdown table over temperatures of the model's calibration and camera numbers on these photos."""
    probs = model.predict(photo_folder.prepare(chosen).astype(np.float32), batch_size=512, verbose=0)
    mask = photo_folder.accepted_mask(chosen)
    known = mask.sum(axis=1) > 0
    lines = ["| T | ECE open-set | NLL in-dist | in-dist right | OOD unsure | in-dist labelled (right) |",
             "|---:|---:|---:|---:|---:|---:|"]
    for t in (0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.7, 2.0):
        p = temper(probs, t)
        nll = -np.log((p * mask).sum(axis=1)[known] + 1e-12).mean()
        s = score_photos(chosen, p, min_score)  # open set: a label on an out-of-distribution photo is wrong
        lines.append(f"| {t} | {s.open_set_ece:.4f} | {nll:.4f} | {s.accuracy:.4f} | {s.ood_unsure or 0:.4f} | "
                     f"{s.labelled or 0:.4f} ({s.labelled_right or 0:.4f}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Choose a softmax temperature on real photos.")
    parser.add_argument("model")
    parser.add_argument("--photos", default=None, help="the real-photos folder (for the table)")
    parser.add_argument("--fold", type=float, default=None, metavar="T",
                        help="write MODEL with this temperature folded into its output layer to --out")
    parser.add_argument("--out", default=None)
    parser.add_argument("--split", default="tune-b", choices=photo_folder.SPLITS)
    parser.add_argument("--min-score", type=float, default=0.6)
    args = parser.parse_args(argv)
    if args.fold is not None and not args.out:
        parser.error("--fold needs --out")
    if args.fold is None and not args.photos:
        parser.error("give --photos for the table, or --fold T --out FILE")
    model = load_keras_model(args.model)
    if args.fold is None:
        print(temperature_table(model, photo_folder.load_photos(args.photos, args.split), args.min_score))
        return 0
    fold_temperature(model, args.fold)
    save_keras_model(model, Path(args.out))
    print(f"wrote {args.out}: {args.model} with temperature {args.fold} folded into its output layer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
