"""Classification metrics in NumPy: the same numbers for training and for the edge runtime."""

from __future__ import annotations

import itertools

import numpy as np

from edge_runtime.core.contract import CLASS_NAMES, NUM_CLASSES


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Counts [true, predicted]."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    return np.bincount(labels * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class; NaN where the class has no examples."""
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(confusion) / support


def classification_report(confusion: np.ndarray, class_names: tuple[str, ...] = CLASS_NAMES) -> str:
    """Precision, recall, F1 and support per class, with accuracy and averages, as text."""
    tp = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    width = max(len(n) for n in class_names) + 2
    lines = [f"{'':<{width}}{'precision':>10}{'recall':>10}{'f1-score':>10}{'support':>10}", ""]
    for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True):
        lines.append(f"{name:<{width}}{p:>10.4f}{r:>10.4f}{f:>10.4f}{s:>10d}")
    total = int(support.sum())
    accuracy = tp.sum() / total if total else 0.0
    weights = support / total if total else np.zeros_like(precision)
    lines += [
        "",
        f"{'accuracy':<{width}}{'':>10}{'':>10}{accuracy:>10.4f}{total:>10d}",
        f"{'macro avg':<{width}}{precision.mean():>10.4f}{recall.mean():>10.4f}{f1.mean():>10.4f}{total:>10d}",
        (f"{'weighted avg':<{width}}{(precision * weights).sum():>10.4f}{(recall * weights).sum():>10.4f}"
         f"{(f1 * weights).sum():>10.4f}{total:>10d}"),
    ]
    return "\n".join(lines) + "\n"


def reliability(conf: np.ndarray, right: np.ndarray, bins: int = 10) -> tuple[list[dict], float]:
    """Calibration: per confidence bin (of `bins` equal ones) the answers, their mean confidence and
    accuracy; and the expected calibration error (ECE), the answers' share-weighted gap between the two."""
    rows, ece = [], 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    for lo, hi in itertools.pairwise(edges):
        pick = (conf >= lo) & ((conf < hi) if hi < 1 else (conf <= hi))
        if not pick.any():
            continue
        acc, mean = float(right[pick].mean()), float(conf[pick].mean())
        rows.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": int(pick.sum()), "confidence": round(mean, 4),
                     "accuracy": round(acc, 4)})
        ece += pick.mean() * abs(acc - mean)
    return rows, round(float(ece), 4)
