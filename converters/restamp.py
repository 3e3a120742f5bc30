"""Give model files exported before fmnist-edge stored reference inputs and checksums both, without
converting them again: `fmnist-edge verify` can then check them on a device.

    python -m converters.restamp MODEL.tflite|MODEL.onnx ... [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from converters import references
from converters.base import ExportError
from converters.export import onnx_bytes
from converters.validate import GateLimits
from edge_runtime.core.backends import open_backend, predict_file
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.files import atomic_path
from edge_runtime.core.metadata import tflite_with_metadata
from edge_runtime.data import fashion_mnist


def restamp(path: str | Path, test_images: np.ndarray, test_labels: np.ndarray,
            limits: GateLimits | None = None) -> None:
    """Give a file exported before references and checksums existed both, without converting it again:
    the model bytes stay, its metadata stays, its own answers on the test set become its references.
    The file is replaced atomically, and only if it still gives exactly the same answers."""
    path, limits = Path(path), limits or GateLimits()
    with open_backend(path) as backend:
        if backend.metadata is None:
            raise ExportError(f"{path}: carries no fmnist-edge metadata; export it with fmnist-edge instead")
        probs = backend.predict_batches(test_images)
        refs = references.build(test_images, test_labels, probs, backend, limits.rule(backend.metadata.precision))
        info = backend.metadata
    if path.suffix.lower() == ".tflite":
        data = tflite_with_metadata(path.read_bytes(), info, refs.to_bytes())
    else:
        import onnx

        proto = onnx.load_from_string(path.read_bytes())
        del proto.metadata_props[:]
        data = onnx_bytes(proto, info, refs)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        if not np.array_equal(predict_file(tmp, test_images), probs):
            raise ExportError(f"{path}: stamping changed the model's answers; the file was left as it was")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    try:
        images, labels = fashion_mnist.load_split("test", args.data_dir)
        for path in args.models:
            restamp(path, images, labels)
            print(f"{path}: reference inputs and checksum added", file=sys.stderr)
    except FmnistEdgeError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
