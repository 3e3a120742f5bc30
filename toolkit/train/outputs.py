"""What a run writes (the CLI contract's files) and reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_runtime.core.files import write_json_atomic, write_text_atomic
from edge_runtime.report.metrics import classification_report, confusion_matrix
from edge_runtime.report.plots import plot_confusion, pyplot, save_figure
from toolkit.keras_io import save_keras_model
from toolkit.tf import keras


@dataclass
class TrainReport:
    arch: str
    test_accuracy: float
    test_loss: float
    epochs_run: int
    train_seconds: float
    params: int
    macs: int
    best_epoch: int
    val_accuracy: float | None
    """None when --val-split 0 left no validation split."""
    train_images: int
    val_images: int
    out: str
    config: dict
    photos: dict | None = None
    """With --photos: how many photos trained, and the score of those the training split left."""

    def to_dict(self) -> dict:
        """metrics.json: the contract's keys and the rest of the run's facts."""
        return asdict(self)

    def format_text(self) -> str:
        lines = [f"{self.arch}: test accuracy {self.test_accuracy:.4f}, loss {self.test_loss:.4f}, "
                 f"{self.epochs_run} epochs (best {self.best_epoch}) in {self.train_seconds:.0f} s, "
                 f"{self.params:,} parameters, {self.macs:,} MACs/image"]
        if self.photos:
            held, trained = self.photos["held_out"], f"trained on {self.photos['tune_photos']} photos"
            lines.append(f"{self.photos['scored_split']} real photos: {held['accuracy']:.4f} of {held['photos']} "
                         f"right ({trained})" if held else f"real photos: {trained}, none left to score")
        lines.append(f"wrote {self.out}/model.keras and its report")
        return "\n".join(lines)


def evaluate_keras(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Test accuracy, cross-entropy loss and predicted classes."""
    probs = model.predict(images.astype(np.float32), batch_size=512, verbose=0)
    loss = float(keras.losses.sparse_categorical_crossentropy(labels, probs).numpy().mean())
    pred = probs.argmax(axis=1)
    return float((pred == labels).mean()), loss, pred


def plot_curves(history: dict, path: Path, title: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, history[key], label=f"train {key}")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    save_figure(fig, path)


def write_outputs(model: keras.Model, history: dict, report: TrainReport, test_labels: np.ndarray,
                  test_pred: np.ndarray, out: Path) -> None:
    """Everything train writes, each file atomically; the model last, when all else worked."""
    confusion = confusion_matrix(test_labels, test_pred)
    write_json_atomic(out / "history.json", history)
    plot_curves(history, out / "curves.png", f"{report.arch}: test accuracy {report.test_accuracy:.4f}")
    plot_confusion(confusion, out / "confusion.png", f"{report.arch} on the test set")
    write_text_atomic(out / "classification_report.txt", classification_report(confusion))
    write_json_atomic(out / "metrics.json", report.to_dict())
    save_keras_model(model, out / "model.keras")
