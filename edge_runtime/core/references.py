"""Reference inputs a model file carries, with the answers the exporter's machine computed for them,
so that a device can check on its own that it computes the same (tools.verify).

The images are a stratified sample of the Fashion-MNIST test set: some of the images nearest a
decision boundary (where a runtime that rounds differently changes its answer first) and some of
the rest. `weights` says what share of the test set each stratum stands for, so the agreement on
the sample turns into an estimate for the whole test set, which the gate's rule (`rule`) judges.
"""

from __future__ import annotations

import io
import json
import platform
from dataclasses import dataclass

import numpy as np

from edge_runtime.core.contract import MAX_CLASSES, NUM_CLASSES
from edge_runtime.core.errors import FmnistEdgeError

BOUNDARY, REST = 1, 0


@dataclass
class References:
    images: np.ndarray
    """uint8 [N,28,28,1]."""
    probs: np.ndarray
    """float32 [N,classes]: the file's answers on the exporter's machine."""
    labels: np.ndarray
    """uint8 [N]: the true classes."""
    stratum: np.ndarray
    """uint8 [N]: BOUNDARY or REST."""
    weights: np.ndarray
    """float64 [2]: the share of the test set that REST and BOUNDARY stand for."""
    rule: dict
    """What the gate allowed this precision ("min_agreement", "max_accuracy_drop", "max_abs_diff"; None
    where it checks nothing), and where the answers were computed ("machine", "runtime")."""

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, images=self.images[..., 0], probs=self.probs.astype(np.float32),
                            labels=self.labels.astype(np.uint8), stratum=self.stratum.astype(np.uint8),
                            weights=self.weights.astype(np.float64), rule=np.array(json.dumps(self.rule)))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, path, blob: bytes) -> References:
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                refs = cls(npz["images"][..., np.newaxis], npz["probs"], npz["labels"], npz["stratum"],
                           npz["weights"], json.loads(str(npz["rule"])))
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise FmnistEdgeError(f"{path}: damaged reference inputs ({exc}); copy the file again, or export "
                                  "it again") from None
        n = len(refs.images)
        if (refs.images.shape != (n, 28, 28, 1) or refs.images.dtype != np.uint8 or refs.probs.ndim != 2
                or len(refs.probs) != n or not NUM_CLASSES <= refs.probs.shape[1] <= MAX_CLASSES
                or refs.labels.shape != (n,) or refs.stratum.shape != (n,) or refs.weights.shape != (2,) or n == 0
                or not isinstance(refs.rule, dict)):
            raise FmnistEdgeError(f"{path}: damaged reference inputs (unexpected shapes); copy the file again, "
                                  "or export it again")
        return refs


def this_machine() -> str:
    return platform.machine()
