"""`fmnist-edge verify`: does this device compute what the exporter's machine computed for this file?

With nothing but the model file: its checksum says the bytes are the exporter's; its reference
inputs (core.references) run through the backend here and are compared with the answers stored
beside them. The agreement on each stratum (images near a decision boundary, and the rest) is
weighted by the share of the test set it stands for, and the estimate is judged by the rule the
export gate applied to this precision: a device whose int8 kernels round differently (LiteRT on ARM
changes the answer on a few images in ten thousand, all near a boundary) passes, a device or a file
that computes something else does not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.core.backends import Backend, open_backend
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.references import BOUNDARY, REST, References, this_machine
from edge_runtime.report.tables import text_table

NO_REFERENCES = ("no reference inputs: exported before fmnist-edge stored them; export it again to check it "
                 "on a device")


@dataclass
class Verification:
    path: str
    images: int
    """Reference images run (0 for a file without them)."""
    top1_agreement: float | None
    """On the reference images, which over-represent the hardest test images (see estimated_test_agreement)."""
    max_abs_diff: float | None
    """Largest difference between a probability here and the exporter's, over the reference images."""
    passed: bool
    precision: str = ""
    checksum: str = ""
    estimated_test_agreement: float | None = None
    """What the agreement on each stratum means for the whole test set."""
    estimated_accuracy_change: float | None = None
    changed_near_boundary: int = 0
    changed_elsewhere: int = 0
    machine: str = ""
    reference_machine: str = ""
    runtime: str = ""
    reference_runtime: str = ""
    failures: list[str] = field(default_factory=list)


def _stratum_rates(refs: References, same: np.ndarray, right_here: np.ndarray,
                   right_there: np.ndarray) -> tuple[float, float]:
    """(estimated test-set agreement, estimated accuracy change), each stratum weighted by its share."""
    agreement = change = 0.0
    for stratum in (REST, BOUNDARY):
        rows = refs.stratum == stratum
        if rows.any():
            agreement += refs.weights[stratum] * same[rows].mean()
            change += refs.weights[stratum] * (right_here[rows].mean() - right_there[rows].mean())
    return float(agreement), float(change)


def _judge(result: Verification, rule: dict) -> list[str]:
    """Every way the result breaks the rule (References.from_bytes refuses a rule that checks nothing)."""
    failures = []
    if result.checksum != "ok":
        failures.append("the file carries no checksum of its bytes")
    if not np.isfinite(result.max_abs_diff):
        failures.append("its answers here are not finite numbers")
    floor, drop, diff = rule.get("min_agreement"), rule.get("max_accuracy_drop"), rule.get("max_abs_diff")
    if floor is not None and not result.estimated_test_agreement >= floor:
        failures.append(f"estimated top-1 agreement {result.estimated_test_agreement:.4f} < {floor}")
    if drop is not None and not -result.estimated_accuracy_change <= drop + 1e-12:
        failures.append(f"estimated accuracy drop {-100 * result.estimated_accuracy_change:.2f} pp > "
                        f"{100 * drop:.1f} pp")
    if diff is not None and not result.max_abs_diff <= diff:
        failures.append(f"max abs difference {result.max_abs_diff:.2e} > {diff:.0e}")
    return failures


def verify_backend(backend: Backend) -> Verification:
    runtime = f"{backend.name} {backend.version}"
    precision = backend.metadata.precision if backend.metadata else ""
    base = {"path": str(backend.path), "precision": precision, "checksum": backend.checksum,
            "machine": this_machine(), "runtime": runtime}
    if backend.references_blob is None:
        return Verification(images=0, top1_agreement=None, max_abs_diff=None, passed=False,
                            failures=[NO_REFERENCES], **base)
    refs = References.from_bytes(backend.path, backend.references_blob, classes=backend.output.shape[1])
    probs = backend.predict_batches(refs.images)
    if probs.shape != refs.probs.shape:
        raise FmnistEdgeError(f"{backend.path}: its reference answers name {refs.probs.shape[1]} classes, the model "
                              f"{probs.shape[1]}; the file is damaged: export (or adapt) it again")
    here, there = probs.argmax(axis=1), refs.probs.argmax(axis=1)
    same = here == there
    agreement, change = _stratum_rates(refs, same, here == refs.labels, there == refs.labels)
    result = Verification(
        images=len(refs.images), top1_agreement=float(same.mean()),
        max_abs_diff=float(np.abs(probs - refs.probs).max()), passed=False, estimated_test_agreement=agreement,
        estimated_accuracy_change=change, changed_near_boundary=int((~same & (refs.stratum == BOUNDARY)).sum()),
        changed_elsewhere=int((~same & (refs.stratum == REST)).sum()),
        reference_machine=refs.rule.get("machine", ""), reference_runtime=refs.rule.get("runtime", ""), **base)
    result.failures = _judge(result, refs.rule)
    result.passed = not result.failures
    return result


def verify_file(path: str | Path, threads: int | None = None) -> Verification:
    with open_backend(path, threads) as backend:
        return verify_backend(backend)


@dataclass
class VerifyReport:
    models: list[Verification]

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.models)

    def to_dict(self) -> dict:
        return {"models": [asdict(m) for m in self.models]}

    def failure_line(self) -> str:
        return "verify failed: " + "; ".join(f"{m.path}: {', '.join(m.failures)}" for m in self.models
                                              if not m.passed)

    def format_text(self) -> str:
        def cell(value, fmt):
            return "-" if value is None else format(value, fmt)

        rows = [[m.path, m.precision, m.runtime, m.images, cell(m.top1_agreement, ".4f"),
                 cell(m.estimated_test_agreement, ".4f"), cell(m.max_abs_diff, ".2e"), m.checksum,
                 "pass" if m.passed else "FAIL: " + "; ".join(m.failures)] for m in self.models]
        machines = sorted({f"{m.reference_machine} ({m.reference_runtime})" for m in self.models if m.images})
        head = f"this machine: {this_machine()}; answers stored by: {', '.join(machines) or 'none'}"
        return head + "\n" + text_table(["model", "precision", "runtime", "images", "agreement", "estimated",
                                         "max diff", "checksum", "verdict"], rows, "lllrrrrll")


def verify(paths: list[str | Path], threads: int | None = None) -> VerifyReport:
    return VerifyReport([verify_file(p, threads) for p in paths])
