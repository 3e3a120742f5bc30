"""Give model files exported before fmnist-edge stored reference inputs and checksums both, without
converting them again (converters.export.restamp): `fmnist-edge verify` can then check them on a device.

    python -m toolkit.restamp MODEL.tflite|MODEL.onnx ... [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys

from converters.export import restamp
from edge_runtime.core.errors import FmnistEdgeError
from toolkit import data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    try:
        images, labels = data.load_split("test", args.data_dir)
        for path in args.models:
            restamp(path, images, labels)
            print(f"{path}: reference inputs and checksum added", file=sys.stderr)
    except FmnistEdgeError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
