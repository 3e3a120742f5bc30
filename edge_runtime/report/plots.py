"""Figures shared by training and evaluation. matplotlib is optional on the edge install."""

from __future__ import annotations

import os

import numpy as np

from edge_runtime.core.contract import CLASS_NAMES
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.files import atomic_path


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or a one-line error naming the fix."""
    try:
        import matplotlib
    except ImportError:
        raise FmnistEdgeError("plots need matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=str(path).rsplit(".", 1)[-1])
    pyplot().close(fig)


def plot_confusion(confusion: np.ndarray, path: str | os.PathLike, title: str = "Confusion matrix") -> None:
    plot_confusions([(title, confusion)], path)


def plot_confusions(matrices: list[tuple[str, np.ndarray]], path: str | os.PathLike) -> None:
    """One panel per (title, matrix): row-normalised colours with the counts written in each cell."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(matrices), figsize=(8 * len(matrices), 7), squeeze=False)
    for ax, (title, confusion) in zip(axes[0], matrices, strict=True):
        _confusion_panel(ax, confusion, title)
    save_figure(fig, path)


def _confusion_panel(ax, confusion: np.ndarray, title: str) -> None:
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape, float), where=rows > 0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(CLASS_NAMES))
    ax.set_xticks(ticks, CLASS_NAMES, rotation=45, ha="right")
    ax.set_yticks(ticks, CLASS_NAMES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in ticks:
        for j in ticks:
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black")
