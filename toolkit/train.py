"""Train a zoo model on Fashion-MNIST and write the model, metrics and figures of the CLI contract."""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.errors import FmnistEdgeError
from edge_runtime.fsutil import atomic_path, write_json_atomic, write_text_atomic
from edge_runtime.metrics import classification_report, confusion_matrix
from edge_runtime.plots import plot_confusion, pyplot, save_figure
from toolkit import data
from toolkit.augment import AugmentConfig, augment_batch
from toolkit.models import DEFAULT_ARCH, build_model, count_macs
from toolkit.tf import keras, tf

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    arch: str = DEFAULT_ARCH
    epochs: int = 40
    """Most epochs; early stopping usually ends the run sooner."""
    batch_size: int = 64
    lr: float = 2e-3
    """Peak learning rate of Adam; it decays along a cosine to 1% over `epochs`."""
    augment: bool = True
    augment_config: AugmentConfig = field(default_factory=AugmentConfig)
    augment_warmup_epochs: float = 3.0
    """Epochs over which augmentation strength ramps from none to full."""
    val_split: float = 0.1
    patience: int = 6
    """Epochs without a better validation loss before stopping; the best weights are kept."""
    limit: int | None = None
    seed: int = 0
    data_dir: str | None = None
    out: str = "runs/train"


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
    val_accuracy: float
    train_images: int
    val_images: int
    out: str
    config: dict

    def metrics(self) -> dict:
        """metrics.json: the contract's keys and the rest of the run's facts."""
        return asdict(self)


def split_validation(images: np.ndarray, labels: np.ndarray, val_split: float, seed: int):
    """A seeded random validation split taken from the training set, never the test set."""
    if not 0.0 < val_split < 1.0:
        raise FmnistEdgeError(f"--val-split must be between 0 and 1, not {val_split}")
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = max(1, round(len(images) * val_split))
    if n_val >= len(images):
        raise FmnistEdgeError(f"{len(images)} images leave nothing to train on after a {val_split} validation split; "
                              "raise --limit")
    val, train = order[:n_val], order[n_val:]
    return (images[train], labels[train]), (images[val], labels[val])


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                 augment: AugmentConfig | None, warmup_steps: int = 0) -> tf.data.Dataset:
    """An endless shuffled, batched (and augmented) pipeline that keeps every core busy."""
    ds = tf.data.Dataset.from_tensor_slices((images.astype(np.float32), labels.astype(np.int32)))
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size)
    if augment is not None:
        base = tf.constant([seed, 0], tf.int32)

        def _augment(step, batch):
            x, y = batch
            step_seed = tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int32))
            strength = tf.minimum(1.0, tf.cast(step + 1, tf.float32) / float(max(warmup_steps, 1)))
            return augment_batch(x, step_seed, augment, strength), y

        ds = ds.enumerate().map(_augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


class _StderrProgress(keras.callbacks.Callback):
    """One line per epoch on stderr, so stdout stays free for --json."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if isinstance(v, (int, float)))
        print(f"epoch {epoch + 1}/{self.epochs} {time.perf_counter() - self.start:.1f}s {parts}",
              file=sys.stderr, flush=True)


def fit(model: keras.Model, train_xy, val_xy, cfg: TrainConfig, callbacks=()) -> keras.callbacks.History:
    """Compile and fit with Adam, a cosine schedule and early stopping that keeps the best weights."""
    steps = math.ceil(len(train_xy[0]) / cfg.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(cfg.lr, decay_steps=steps * cfg.epochs, alpha=0.01)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    train_ds = make_dataset(*train_xy, cfg.batch_size, cfg.seed, cfg.augment_config if cfg.augment else None,
                            warmup_steps=round(cfg.augment_warmup_epochs * steps))
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)
    with contextlib.redirect_stdout(sys.stderr):
        return model.fit(train_ds, steps_per_epoch=steps, epochs=cfg.epochs,
                         validation_data=(val_xy[0].astype(np.float32), val_xy[1]), validation_batch_size=256,
                         callbacks=[stop, _StderrProgress(cfg.epochs), *callbacks], shuffle=False, verbose=0)


def plot_curves(history: dict, path: Path, title: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, history[key], label=f"train {key}")
        ax.plot(epochs, history[f"val_{key}"], label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    save_figure(fig, path)


def save_keras_model(model: keras.Model, path: Path) -> None:
    with atomic_path(path) as tmp:
        model.save(tmp)


def write_outputs(model: keras.Model, history: dict, report: TrainReport, test_labels: np.ndarray,
                  test_pred: np.ndarray, out: Path) -> None:
    """Everything train writes, each file atomically; the model last, when all else worked."""
    confusion = confusion_matrix(test_labels, test_pred)
    write_json_atomic(out / "history.json", history)
    plot_curves(history, out / "curves.png", f"{report.arch}: test accuracy {report.test_accuracy:.4f}")
    plot_confusion(confusion, out / "confusion.png", f"{report.arch} on the test set")
    write_text_atomic(out / "classification_report.txt", classification_report(confusion))
    write_json_atomic(out / "metrics.json", report.metrics())
    save_keras_model(model, out / "model.keras")


def evaluate_keras(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Test loss, accuracy and predicted classes."""
    probs = model.predict(images.astype(np.float32), batch_size=512, verbose=0)
    loss = float(keras.losses.sparse_categorical_crossentropy(labels, probs).numpy().mean())
    pred = probs.argmax(axis=1)
    return float((pred == labels).mean()), loss, pred


def train(cfg: TrainConfig) -> TrainReport:
    """Train `cfg.arch` and write the contract's files into `cfg.out`."""
    out = Path(cfg.out)
    keras.utils.set_random_seed(cfg.seed)
    images, labels = data.load_split("train", cfg.data_dir, limit=cfg.limit)
    test_images, test_labels = data.load_split("test", cfg.data_dir)
    train_xy, val_xy = split_validation(images, labels, cfg.val_split, cfg.seed)
    model = build_model(cfg.arch)
    log.info("training %s on %d images, validating on %d", cfg.arch, len(train_xy[0]), len(val_xy[0]))
    start = time.perf_counter()
    history = fit(model, train_xy, val_xy, cfg)
    seconds = time.perf_counter() - start
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    best = int(np.argmin(hist["val_loss"]))
    accuracy, loss, pred = evaluate_keras(model, test_images, test_labels)
    config = asdict(cfg)
    report = TrainReport(
        arch=cfg.arch, test_accuracy=accuracy, test_loss=loss, epochs_run=len(hist["loss"]),
        train_seconds=round(seconds, 1), params=int(model.count_params()), macs=count_macs(model),
        best_epoch=best + 1, val_accuracy=hist["val_accuracy"][best], train_images=len(train_xy[0]),
        val_images=len(val_xy[0]), out=str(out), config=config)
    write_outputs(model, hist, report, test_labels, pred, out)
    return report
