"""A model's replay bank: its own features of real photos of every Fashion-MNIST class, stored beside
the model file, so that `adapt` keeps what the model knew about real garments while it learns a
user's (Fashion-MNIST images alone keep the test set, not the look of real photos).

    python -m edge_runtime.field.replay MODEL.onnx --photos ../shared/real-photos [--photos ...]
        [--split all] [--exclude PHOTO_CLASS ...] [--per-class 150] [--out MODEL.replay.npz]

The bank holds derived numbers only (features, each quantized to 8 bits per column, and the classes
each photo accepts), not the photos; it names the model it was made with (its source's SHA-256 and
feature tensors), and adapt uses it only with a model that computes the same features. An adapted
model keeps its base's network, so its base's bank serves it too.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_runtime.core.contract import NUM_CLASSES
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.files import write_bytes_atomic
from edge_runtime.data import photos as photo_folder
from edge_runtime.field.features import Base, Featurizer, load_base

SUFFIX = ".replay.npz"
MAX_BANK_BYTES = 8 << 20


def bank_path(model: str | Path) -> Path:
    """Where a model's bank lives: model_int8.onnx -> model_int8.replay.npz."""
    model = Path(model)
    return model.with_name(model.stem + SUFFIX)


def _identity(base: Base) -> str:
    return json.dumps({"source_sha256": base.metadata.source_sha256, "features": base.features})


def make_bank(base: Base, folders: Sequence[str | Path], split: str = "all", exclude: tuple[str, ...] = (),
              per_class: int = 150, seed: int = 0) -> bytes:
    """The bank of `base` (field.adapt.Base) from the folders' photos of `split`, up to `per_class` photos
    per Fashion-MNIST class (by the first class a photo accepts), without the photo classes `exclude`."""
    chosen = [p for p in photo_folder.load_folders(folders, split, exclude) if p.accepted]
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(NUM_CLASSES):
        of_class = [i for i, p in enumerate(chosen) if min(p.accepted) == c]
        picked += sorted(rng.permutation(of_class)[:per_class].tolist())
    chosen = [chosen[i] for i in picked]
    if not chosen:
        raise FmnistEdgeError(f"{', '.join(map(str, folders))}: no labelled photo of a Fashion-MNIST class to bank")
    features = Featurizer(base)(photo_folder.prepare(chosen))
    low, high = features.min(axis=0), features.max(axis=0)
    step = np.where(high > low, (high - low) / 255, 1.0).astype(np.float32)
    codes = np.round((features - low) / step).astype(np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, codes=codes, low=low.astype(np.float32), step=step,
                        accepted=photo_folder.accepted_mask(chosen).astype(np.uint8), model=np.array(_identity(base)))
    return buf.getvalue()


def load_bank(base: Base, path: Path | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(features float32 [N, D], accepted float32 [N, 10]) of the bank beside `base`, or None when there is
    none or it was made with another model; a damaged bank is one FmnistEdgeError line."""
    path = path or bank_path(base.path)
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_BANK_BYTES:
        raise FmnistEdgeError(f"{path}: {path.stat().st_size:,} bytes is not a replay bank; remove it")
    try:
        with np.load(path, allow_pickle=False) as bank:
            if str(bank["model"]) != _identity(base):
                return None
            codes, low, step, accepted = bank["codes"], bank["low"], bank["step"], bank["accepted"]
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise FmnistEdgeError(f"{path}: damaged replay bank ({exc}); make it again or remove it") from None
    width = base.weights.shape[0]
    if codes.ndim != 2 or codes.shape[1] != width or low.shape != (width,) or step.shape != (width,) \
            or accepted.shape != (len(codes), NUM_CLASSES):
        raise FmnistEdgeError(f"{path}: damaged replay bank (unexpected shapes); make it again or remove it")
    return codes.astype(np.float32) * step + low, accepted.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--photos", action="append", required=True)
    parser.add_argument("--split", default="all", choices=photo_folder.SPLITS)
    parser.add_argument("--exclude", action="append", default=[], metavar="PHOTO_CLASS")
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    try:
        base = load_base(args.model)
        out = Path(args.out) if args.out else bank_path(args.model)
        write_bytes_atomic(out, make_bank(base, args.photos, args.split, tuple(args.exclude), args.per_class))
    except FmnistEdgeError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
