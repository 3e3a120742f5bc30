"""Train a zoo model (or fine-tune a trained one) on Fashion-MNIST and real photos, and write the
model, metrics and figures of the CLI contract."""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edge_runtime.data import fashion_mnist
from edge_runtime.data import photos as photo_folder
from toolkit.keras_io import load_keras_model
from toolkit.models import build_model, count_macs
from toolkit.tf import keras
from toolkit.train.config import TrainConfig, model_file
from toolkit.train.losses import only_where_right, set_accuracy, set_valued_loss, targets, with_teacher
from toolkit.train.outputs import TrainReport, evaluate_keras, write_outputs
from toolkit.train.photos import PhotoSets
from toolkit.train.pipeline import make_dataset, split_validation
from toolkit.train.teachers import load_teacher

log = logging.getLogger(__name__)


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


def fit(model: keras.Model, train_xy, val_xy, cfg: TrainConfig, callbacks=(),
        photos: tuple[np.ndarray, np.ndarray] | None = None, initial_epoch: int = 0,
        teacher: Callable[[np.ndarray], np.ndarray] | None = None) -> keras.callbacks.History:
    """Compile and fit with Adam, a cosine schedule and early stopping that keeps the best weights;
    with an empty validation split, for exactly cfg.epochs, keeping the last weights.

    Labels are class ids; `photos` are (images, photo_targets) mixed into every batch. With
    `teacher` (images -> probabilities), its answers on the un-augmented images join every target
    and the loss distils them (cfg.distill_weight, cfg.distill_temperature).
    """
    def taught(rows: np.ndarray, images: np.ndarray) -> np.ndarray:
        return rows if teacher is None else with_teacher(rows, teacher(images))

    steps = math.ceil(len(train_xy[0]) / cfg.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(cfg.lr, decay_steps=steps * cfg.epochs, alpha=0.01)
    loss = set_valued_loss(cfg.ood_weight, cfg.distill_weight if teacher else 0.0, cfg.distill_temperature,
                           cfg.set_focus)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=[set_accuracy])
    if photos is not None:
        photos = (photos[0], taught(photos[1], photos[0]))
        if teacher is not None and cfg.distill_photos == "right":
            photos = (photos[0], only_where_right(photos[1]))
    train_ds = make_dataset(train_xy[0], taught(targets(train_xy[1]), train_xy[0]), cfg.batch_size, cfg.seed,
                            cfg.augment_config if cfg.augment else None,
                            warmup_steps=round(cfg.augment_warmup_epochs * steps), photos=photos,
                            photo_batch=cfg.photo_batch, photo_augment=cfg.photo_augment_config)
    validation, watch = None, []
    if len(val_xy[0]):
        validation = (val_xy[0].astype(np.float32), taught(targets(val_xy[1]), val_xy[0]))
        watch = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)]
    with contextlib.redirect_stdout(sys.stderr):
        return model.fit(train_ds, steps_per_epoch=steps, epochs=cfg.epochs, initial_epoch=initial_epoch,
                         validation_data=validation, validation_batch_size=256,
                         callbacks=[*watch, _StderrProgress(cfg.epochs), *callbacks], shuffle=False, verbose=0)


def initial_model(cfg: TrainConfig) -> keras.Model:
    """A fresh model of the recipe's architecture, or the model --init names."""
    if cfg.init is None:
        return build_model(cfg.arch, **cfg.arch_params)
    return load_keras_model(model_file(cfg.init), "--init",
                            "give a model.keras that train wrote (bundled: reinstall fmnist-edge[train])")


def best_epoch(history: dict) -> tuple[int, float | None]:
    """The 0-based epoch whose weights were kept, and its validation accuracy: the lowest validation
    loss, or without a validation split the last epoch (the run is the whole schedule)."""
    if "val_loss" in history:
        best = int(np.argmin(history["val_loss"]))
        return best, history["val_accuracy"][best]
    return len(history["loss"]) - 1, None


def _photo_report(cfg: TrainConfig, photos: PhotoSets, model: keras.Model) -> dict:
    scored = photos.score(model)
    return {"folders": list(cfg.photos), "tune_photos": photos.tune_photos, "photo_frames": len(photos.tune_images),
            "scored_split": photo_folder.SCORED_AFTER[cfg.photo_split], "held_out": asdict(scored) if scored else None}


def train(cfg: TrainConfig) -> TrainReport:
    """Train `cfg.arch` (or fine-tune `cfg.init`) and write the contract's files into `cfg.out`."""
    keras.utils.set_random_seed(cfg.seed)
    # A model to fine-tune is read first: unreadable, it is named as --init, not as the teacher it also is.
    model = initial_model(cfg) if cfg.init else None
    teacher = None
    if cfg.teachers:  # before the data: a bad teacher fails in a second, not after loading everything
        log.info("distilling from %s", ", ".join(cfg.teachers))
        teacher = load_teacher(cfg.teachers)
    images, labels = fashion_mnist.load_split("train", cfg.data_dir, limit=cfg.limit)
    test_images, test_labels = fashion_mnist.load_split("test", cfg.data_dir)
    train_xy, val_xy = split_validation(images, labels, cfg.val_split, cfg.seed)
    photos = PhotoSets.load(cfg.photos, cfg) if cfg.photos else None
    model = model if model is not None else initial_model(cfg)
    log.info("training %s on %d images%s, validating on %d", model.name, len(train_xy[0]),
             f" and {len(photos.tune_images)} photos" if photos else "", len(val_xy[0]))
    start = time.perf_counter()
    history = fit(model, train_xy, val_xy, cfg, teacher=teacher,
                  photos=(photos.tune_images, photos.tune_targets) if photos else None)
    seconds = time.perf_counter() - start
    if cfg.temperature != 1.0:
        from toolkit.calibrate import fold_temperature

        fold_temperature(model, cfg.temperature)
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    best, val_accuracy = best_epoch(hist)
    accuracy, loss, pred = evaluate_keras(model, test_images, test_labels)
    report = TrainReport(
        arch=model.name, test_accuracy=accuracy, test_loss=loss, epochs_run=len(hist["loss"]),
        train_seconds=round(seconds, 1), params=int(model.count_params()), macs=count_macs(model),
        best_epoch=best + 1, val_accuracy=val_accuracy, train_images=len(train_xy[0]),
        val_images=len(val_xy[0]), out=str(cfg.out), config=asdict(cfg),
        photos=_photo_report(cfg, photos, model) if photos else None)
    write_outputs(model, hist, report, test_labels, pred, Path(cfg.out))
    return report
