"""Choosing the reference inputs an exported file carries (edge_runtime.core.references).

Half of them are the test images nearest a decision boundary, by the file's own margin between
its two most likely classes: where another CPU's rounding changes an answer first, so a device
that computes differently shows it. The other half are drawn from the rest of the test set, where
a device that computes something else (a damaged runtime, different weights) shows it.
"""

from __future__ import annotations

import numpy as np

from edge_runtime.core.backends import Backend
from edge_runtime.core.references import BOUNDARY, REST, References, this_machine

BOUNDARY_SHARE = 0.02
"""The boundary stratum: this share of the test set with the smallest margins."""
PER_STRATUM = 32
"""Images drawn from each stratum: 64 images take about 25 KB in a file."""


def select(probs: np.ndarray, labels: np.ndarray, per_stratum: int = PER_STRATUM,
           boundary_share: float = BOUNDARY_SHARE, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices, stratum of each, weights [rest, boundary]) of a stratified sample of the test set."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    order = np.argsort(top2[:, 1] - top2[:, 0], kind="stable")  # smallest margin first
    n_boundary = max(per_stratum, round(boundary_share * len(probs)))
    boundary, rest = order[:n_boundary], order[n_boundary:]
    rng = np.random.default_rng(seed)
    picked_b = np.sort(rng.choice(boundary, min(per_stratum, len(boundary)), replace=False))
    picked_r = np.sort(rng.choice(rest, min(per_stratum, len(rest)), replace=False)) if len(rest) else rest
    indices = np.concatenate([picked_b, picked_r])
    stratum = np.concatenate([np.full(len(picked_b), BOUNDARY), np.full(len(picked_r), REST)]).astype(np.uint8)
    weights = np.array([len(rest), n_boundary], np.float64) / len(probs)
    return indices, stratum, weights


def build(images: np.ndarray, labels: np.ndarray, probs: np.ndarray, backend: Backend, rule: dict) -> References:
    """The references of a file whose answers on the test set (`images`) are `probs`."""
    indices, stratum, weights = select(probs, labels)
    return References(images[indices], probs[indices].astype(np.float32), labels[indices], stratum, weights,
                      {**rule, "machine": this_machine(), "runtime": f"{backend.name} {backend.version}"})
