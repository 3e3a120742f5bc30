"""One model file that averages several trained models, and optionally their mirrored answers.

The camera and `predict` run one file; an ensemble or test-time flips need no runtime change when
they are inside that file. The result keeps the model contract (raw 0..255 pixels uint8
[N,28,28,1] in, ten softmax probabilities out) and exports like any trained model:

    python -m toolkit.ensemble OUT.keras A/model.keras [B/model.keras ...] [--flip]
    fmnist-edge export OUT.keras --int8

Each member's layers are copied in (prefixed, so two members of the same architecture do not
clash); `--flip` adds each member's answer on the left-right mirrored image (a mirrored garment is
the same garment). Multiply-accumulates add up: two edge models with flips cost four edge models.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from toolkit.keras_io import load_keras_model, save_keras_model
from toolkit.tf import keras


def mirror(x, name: str = "mirror"):
    """[N,28,28,1] -> the same images mirrored left to right, from built-in layers only (so any Keras
    loads the file and int8 export needs nothing new): a 1x28 convolution whose filter f picks
    column 27-f (0/1 weights, exact in int8, 22 K MACs), then the 28 filters back to columns."""
    conv = keras.layers.Conv2D(28, (1, 28), use_bias=False, trainable=False, name=f"{name}_columns")
    y = conv(x)  # [N,28,1,28]
    conv.set_weights([np.eye(28, dtype=np.float32)[::-1].reshape(1, 28, 1, 28)])
    return keras.layers.Reshape((28, 28, 1), name=name)(y)


def _renamed(model: keras.Model, prefix: str) -> keras.Model:
    config = model.get_config()
    clone = keras.Model.from_config(config)
    clone.set_weights(model.get_weights())
    clone.name = f"{prefix}{model.name}"
    for layer in clone.layers:
        layer.name = f"{prefix}{layer.name}"
    return clone


def build_ensemble(members: list[keras.Model], flip: bool = False, name: str = "ensemble") -> keras.Model:
    inputs = keras.Input((28, 28, 1), name="pixels")
    views = [inputs, mirror(inputs)] if flip else [inputs]
    answers = []
    for i, member in enumerate(members):
        copy = _renamed(member, f"m{i}_")
        answers.extend(copy(view) for view in views)
    outputs = answers[0] if len(answers) == 1 else keras.layers.Average(name="probabilities")(answers)
    return keras.Model(inputs, outputs, name=name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Average trained models (and mirrored views) into one file.")
    parser.add_argument("out")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--flip", action="store_true")
    args = parser.parse_args(argv)
    members = [load_keras_model(path) for path in args.models]
    model = build_ensemble(members, args.flip, name=f"ensemble{len(members)}{'-flip' if args.flip else ''}")
    save_keras_model(model, Path(args.out))  # atomically: a half-written file never replaces a good one
    print(f"wrote {args.out}: {len(members)} model(s){', with mirrored views' if args.flip else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
