"""What each exported file says about itself (the model contract's metadata)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from edge_runtime._version import __version__
from edge_runtime.core.backends import TensorSpec
from edge_runtime.core.contract import CLASS_NAMES, PREPROCESSING_VERSION
from edge_runtime.core.metadata import ModelMetadata


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(fmt: str, precision: str, arch: str, source_sha256: str, input_spec: TensorSpec,
          calibration_samples: int | None, test_accuracy: float, extra: dict | None = None) -> ModelMetadata:
    """The metadata of one exported file, from facts measured during the export."""
    return ModelMetadata(
        class_names=list(CLASS_NAMES),
        input={
            "shape": [None, 28, 28, 1],
            "layout": "NHWC",
            "pixels": "raw 0..255 grey, a light item on a black background (Fashion-MNIST polarity)",
            "file_dtype": input_spec.dtype,
            "file_scale": input_spec.scale,
            "file_zero_point": input_spec.zero_point,
        },
        precision=precision,
        format=fmt,
        preprocessing=PREPROCESSING_VERSION,
        toolkit_version=__version__,
        source_sha256=source_sha256,
        calibration_samples=calibration_samples if precision == "int8" else None,
        test_accuracy=round(test_accuracy, 6),
        arch=arch,
        extra=dict(extra or {}),
    )
