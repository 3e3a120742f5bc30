"""The export gate: every exported file, run through the edge runtime users run, against Keras.

Thresholds, on the same test images for both:
- fp32: largest absolute difference in probabilities <= 1e-4 on the first 1,000 images;
- fp16 and dynamic: top-1 agreement >= 99.5%;
- int8: top-1 agreement >= 98.5% and a test accuracy drop <= 0.5 percentage points;
- micro (the int8 file through TensorFlow Lite Micro, against LiteRT): agreement >= 99.5% and a drop
  <= 0.1 points.
Every failed check is collected, so a user sees all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converters.base import ExportedModel, Target
from edge_runtime.core.errors import FmnistEdgeError


@dataclass(frozen=True)
class GateLimits:
    fp32_max_abs_diff: float = 1e-4
    diff_images: int = 1000
    """How many test images the fp32 difference is measured on."""
    min_agreement: dict = field(default_factory=lambda: {"fp16": 0.995, "dynamic": 0.995, "int8": 0.985,
                                                         "micro": 0.995})
    max_accuracy_drop: dict = field(default_factory=lambda: {"int8": 0.005, "micro": 0.001})
    """Largest loss of test accuracy against the reference, as a fraction (0.005 = 0.5 pp). The reference is
    Keras, but for "micro" (TFLM), the int8 TFLite file through LiteRT on the same inputs."""

    def rule(self, precision: str) -> dict:
        """What a file of this precision may differ by: what the gate checks, written into the file so a
        device can apply the same rule to its own answers (tools.verify)."""
        return {"precision": precision, "min_agreement": self.min_agreement.get(precision),
                "max_accuracy_drop": self.max_accuracy_drop.get(precision),
                "max_abs_diff": self.fp32_max_abs_diff if precision == "fp32" else None}


@dataclass
class Reference:
    """The Keras model's answers on the test set, computed once for every file."""

    images: np.ndarray
    labels: np.ndarray
    probs: np.ndarray

    @property
    def accuracy(self) -> float:
        return float((self.probs.argmax(axis=1) == self.labels).mean())


class GateError(FmnistEdgeError):
    """Raised with every failed check of every file, in one line; `report` has every row."""

    def __init__(self, report):
        failed = [r for r in report.models if not r.passed]
        super().__init__("export gate failed: " + "; ".join(f"{r.path}: {', '.join(r.failures)}" for r in failed))
        self.report = report


def check(path: Path, target: Target, probs: np.ndarray, ref: Reference,
          limits: GateLimits = GateLimits(), size_bytes: int = 0) -> ExportedModel:
    """Compare a file's probabilities on the test set with the reference's (Keras's; LiteRT's for micro)
    under the target's gate rule; `passed` only if every check holds."""
    gate = target.gate
    accuracy = float((probs.argmax(axis=1) == ref.labels).mean())
    agreement = float((probs.argmax(axis=1) == ref.probs.argmax(axis=1)).mean())
    n = min(limits.diff_images, len(probs))
    max_diff = float(np.abs(probs[:n] - ref.probs[:n]).max())
    failures = []
    if gate == "fp32" and not max_diff <= limits.fp32_max_abs_diff:
        failures.append(f"max abs difference {max_diff:.2e} > {limits.fp32_max_abs_diff:.0e}")
    floor = limits.min_agreement.get(gate)
    if floor is not None and not agreement >= floor:
        failures.append(f"top-1 agreement {agreement:.4f} < {floor}")
    drop_limit = limits.max_accuracy_drop.get(gate)
    drop = ref.accuracy - accuracy
    if drop_limit is not None and not drop <= drop_limit + 1e-12:
        failures.append(f"accuracy drop {100 * drop:.2f} pp > {100 * drop_limit:.1f} pp")
    return ExportedModel(path=str(path), format=target.format, precision=target.precision, size_bytes=size_bytes,
                         accuracy=accuracy, top1_agreement=agreement, max_abs_diff=max_diff,
                         passed=not failures, failures=failures)
