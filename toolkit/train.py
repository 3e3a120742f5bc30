"""Train a zoo model on Fashion-MNIST and write the model, metrics and figures of the CLI contract.

With `photos`, the "tune" half of the real photos (edge_runtime.tools.photos), put through the camera's frame
preprocessing, is mixed into every batch, and the "held-out" half is scored at the end. A photo may
accept several classes (a long-sleeved top is a Pullover or a Shirt), so the loss is set-valued:
-log of the probability given to the accepted set, which for a Fashion-MNIST image is ordinary
cross-entropy. Photos of items no class fits (hats, shorts, skirts) are pulled towards a uniform
answer, so the model learns to be unsure of them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.core.contract import NUM_CLASSES
from edge_runtime.core.errors import FmnistEdgeError, first_line
from edge_runtime.core.files import atomic_path, write_json_atomic, write_text_atomic
from edge_runtime.tools import photos as photo_folder
from edge_runtime.tools.metrics import classification_report, confusion_matrix
from edge_runtime.tools.plots import plot_confusion, pyplot, save_figure
from toolkit import data
from toolkit.augment import AugmentConfig, augment_batch
from toolkit.models import DEFAULT_ARCH, FINE_TUNE, RECIPES, build_model, count_macs
from toolkit.tf import keras, tf

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    arch: str = DEFAULT_ARCH
    arch_params: dict = field(default_factory=dict)
    """Hyperparameters of the architecture (toolkit.models.build_model), e.g. {"dropout": 0.5}."""
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
    init: str | None = None
    """Start from this model.keras instead of fresh weights (fine-tuning; "bundled": the bundled
    model's Keras file, BUNDLED_KERAS)."""
    photos: str | None = None
    """The real-photos folder; its `photo_split` joins training, the photos it leaves are scored."""
    photo_batch: int = 16
    """Photos added to every batch of `batch_size` Fashion-MNIST images."""
    photo_split: str = "tune"
    """Which photos train (photo_folder.SCORED_AFTER says which are scored): "tune" or "held-out"
    (the other half is scored), "tune-a" (choose a recipe without touching held-out) or "all" (the shipped
    model once the recipe is chosen, or a fine-tune on every frame a user labelled)."""
    photo_exclude: tuple[str, ...] = ()
    """Photo classes left out of training (leave-class-out: a proxy for garment types no photo shows)."""
    photo_variants: int = 0
    """With more than 1: that many frames per photo, the photo and augmented copies made at full size
    before the camera's preprocessing (toolkit.photo_augment), in place of the photo preprocessed once."""
    photo_augment_params: dict = field(default_factory=dict)
    """Settings of the full-size photo augmentation that differ from PhotoAugmentConfig's defaults."""
    photo_augment_config: AugmentConfig = field(default_factory=lambda: AugmentConfig(
        shift=0.06, affine_prob=0.5, rotation_deg=8.0, zoom=0.08))
    ood_weight: float = 0.3
    """Weight of the pull towards a uniform answer for photos no class fits."""
    set_focus: float = 0.0
    """Share of the loss on photos accepting several classes that rewards the best accepted class
    alone (set_valued_loss), so such photos get one confident label rather than a split answer."""
    temperature: float = 1.0
    """Softmax temperature folded into the output layer after training (toolkit.calibrate): above 1
    the model is less sure of everything, so --min-score means what it says; no runtime change."""
    teachers: tuple[str, ...] = ()
    """Model files (model.keras, or an exported .tflite/.onnx run by the edge runtime) whose averaged
    answers the model also learns from (knowledge distillation)."""
    distill_weight: float = 0.7
    """Share of the loss that is the match to the teachers' softened answers (with `teachers`)."""
    distill_temperature: float = 4.0
    """Temperature that softens both the teachers' and the model's answers for that match."""

    @classmethod
    def from_recipe(cls, arch: str = DEFAULT_ARCH, erase: float | None = None, **settings) -> TrainConfig:
        """A configuration for `arch` (or, with `init`, a fine-tune: RECIPES[FINE_TUNE]) where its
        recipe (toolkit.models.RECIPES) fills every setting left None: the one place `train` and
        `tune` resolve a recipe. `erase` is the random erasing share of the default augmentation."""
        recipe = dict(RECIPES.get(FINE_TUNE if settings.get("init") else arch, {}))
        recipe_erase = recipe.pop("erase", 0.0)
        erase = erase if erase is not None else recipe_erase
        if recipe.pop("teacher_is_init", False):
            recipe["teachers"] = (settings["init"],)
        chosen = {k: v for k, v in settings.items() if v is not None and v != ()}
        return cls(arch=arch, augment_config=AugmentConfig(erase_prob=erase), **{**recipe, **chosen})


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
    """With --photos: how many tune photos trained, and the held-out half's score."""

    def metrics(self) -> dict:
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


def split_validation(images: np.ndarray, labels: np.ndarray, val_split: float, seed: int):
    """A seeded random validation split taken from the training set, never the test set; with
    `val_split` 0, everything trains and the validation split is empty."""
    if not 0.0 <= val_split < 1.0:
        raise FmnistEdgeError(f"--val-split must be at least 0 and below 1, not {val_split}")
    if val_split == 0:
        return (images, labels), (images[:0], labels[:0])
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = max(1, round(len(images) * val_split))
    if n_val >= len(images):
        raise FmnistEdgeError(f"{len(images)} images leave nothing to train on after a {val_split} validation split; "
                              "raise --limit")
    val, train = order[:n_val], order[n_val:]
    return (images[train], labels[train]), (images[val], labels[val])


class Targets:
    """The columns of a training target row. The loss and the accuracy read them by these names.

    ACCEPTED: the classes that count as right (one-hot for a Fashion-MNIST image, several for a
    photo of a long-sleeved top, none for a hat); OOD: 1 where no class fits; TEACHER: the
    teachers' probabilities, present only when distilling.
    """

    ACCEPTED = slice(0, NUM_CLASSES)
    OOD = NUM_CLASSES
    TEACHER = slice(NUM_CLASSES + 1, 2 * NUM_CLASSES + 1)
    WIDTH = NUM_CLASSES + 1
    """Columns without a teacher."""


def targets(labels: np.ndarray) -> np.ndarray:
    """float32 [N, Targets.WIDTH] rows for Fashion-MNIST class ids."""
    out = np.zeros((len(labels), Targets.WIDTH), np.float32)
    out[np.arange(len(labels)), labels.astype(np.int64)] = 1.0
    return out


def photo_targets(mask: np.ndarray) -> np.ndarray:
    """Target rows for photos: their accepted-class masks, flagged out-of-distribution where none is accepted."""
    return np.concatenate([mask, (mask.sum(axis=1, keepdims=True) == 0).astype(np.float32)], axis=1)


def with_teacher(rows: np.ndarray, teacher_probs: np.ndarray) -> np.ndarray:
    """Target rows with the teacher's answers in the Targets.TEACHER columns."""
    return np.concatenate([rows, teacher_probs], axis=1)


def set_valued_loss(ood_weight: float, distill_weight: float = 0.0, temperature: float = 1.0,
                    set_focus: float = 0.0):
    """The loss on Targets rows; with `distill_weight`, the rows also carry the teacher's
    probabilities (Targets.TEACHER) and that share of the loss is the temperature-scaled
    KL divergence from the softened teacher to the softened model (Hinton et al. 2015), except on
    rows no class fits (a hat), whose teacher answer would pull against the uniform one.
    With `set_focus`, that share of the loss on a row accepting several classes is -log of the
    best accepted class alone: the camera shows one class and --min-score judges its probability,
    so a shoe split 0.45/0.40 between Sneaker and Ankle boot is right but left "unsure"."""
    def loss(y_true, y_pred):
        p = tf.clip_by_value(y_pred, 1e-7, 1.0)
        accepted, ood = y_true[:, Targets.ACCEPTED], y_true[:, Targets.OOD]
        # The epsilon keeps log() finite on rows tf.where does not pick: their gradient still flows.
        in_distribution = -tf.math.log(tf.reduce_sum(p * accepted, axis=1) + 1e-7)
        if set_focus:
            best = -tf.math.log(tf.reduce_max(p * accepted, axis=1) + 1e-7)
            in_distribution = (1.0 - set_focus) * in_distribution + set_focus * best
        uniform = -tf.reduce_mean(tf.math.log(p), axis=1) * ood_weight
        hard = tf.where(ood > 0, uniform, in_distribution)
        if not distill_weight:
            return hard
        # Softmax outputs: log-probabilities are logits up to a per-row constant softmax ignores.
        teacher = tf.nn.softmax(tf.math.log(tf.clip_by_value(y_true[:, Targets.TEACHER], 1e-7, 1.0)) / temperature)
        student = tf.nn.log_softmax(tf.math.log(p) / temperature)
        kl = tf.reduce_sum(teacher * (tf.math.log(teacher + 1e-12) - student), axis=1)
        taught = (1.0 - distill_weight) * hard + distill_weight * temperature ** 2 * kl
        return tf.where(ood > 0, hard, taught)  # where no class fits, a teacher's answer teaches nothing

    return loss


def set_accuracy(y_true, y_pred):
    """Top-1 is an accepted class (out-of-distribution photos count as right: no class can be)."""
    hit = tf.reduce_sum(tf.one_hot(tf.argmax(y_pred, axis=1), NUM_CLASSES) * y_true[:, Targets.ACCEPTED], axis=1)
    return tf.where(y_true[:, Targets.OOD] > 0, tf.ones_like(hit), hit)


set_accuracy.__name__ = "accuracy"  # history keys stay "accuracy" and "val_accuracy"


def make_dataset(images: np.ndarray, target: np.ndarray, batch_size: int, seed: int,
                 augment: AugmentConfig | None, warmup_steps: int = 0,
                 photos: tuple[np.ndarray, np.ndarray] | None = None, photo_batch: int = 0,
                 photo_augment: AugmentConfig | None = None) -> tf.data.Dataset:
    """An endless shuffled, batched, augmented pipeline that keeps every core busy; with `photos`,
    every batch also carries `photo_batch` augmented photos."""
    ds = tf.data.Dataset.from_tensor_slices((images.astype(np.float32), target))
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size)
    if photos is not None:
        extra = tf.data.Dataset.from_tensor_slices((photos[0].astype(np.float32), photos[1]))
        extra = extra.shuffle(len(photos[0]), seed=seed + 1, reshuffle_each_iteration=True).repeat().batch(photo_batch)
        ds = tf.data.Dataset.zip(ds, extra)
    base = tf.constant([seed, 0], tf.int32)

    def _augment(step, batch):
        (x, y), extra_batch = (batch, None) if photos is None else batch
        step_seed = tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int32))
        if augment is not None:
            strength = tf.minimum(1.0, tf.cast(step + 1, tf.float32) / float(max(warmup_steps, 1)))
            x = augment_batch(x, step_seed, augment, strength)
        if extra_batch is not None:
            px, py = extra_batch
            if photo_augment is not None:
                px = augment_batch(px, tf.random.experimental.stateless_fold_in(step_seed, 1), photo_augment)
            x, y = tf.concat([x, px], axis=0), tf.concat([y, py], axis=0)
        return x, y

    if augment is not None or photos is not None:
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


def save_keras_model(model: keras.Model, path: Path) -> None:
    """The architecture and weights, without the training loss: any Keras loads the file as it is."""
    plain = keras.Model.from_config(model.get_config())  # the layers alone, not the compiled state
    plain.set_weights(model.get_weights())
    with atomic_path(path) as tmp:
        plain.save(tmp)


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
    """Test accuracy, cross-entropy loss and predicted classes."""
    probs = model.predict(images.astype(np.float32), batch_size=512, verbose=0)
    loss = float(keras.losses.sparse_categorical_crossentropy(labels, probs).numpy().mean())
    pred = probs.argmax(axis=1)
    return float((pred == labels).mean()), loss, pred


@dataclass
class PhotoSets:
    """A real-photos folder through the camera's preprocessing: one split trains (its photos, or
    with variants augmented full-size frames of them), the photos it leaves are scored."""

    tune_images: np.ndarray
    tune_targets: np.ndarray
    tune_photos: int
    held_out: list[photo_folder.Photo]
    held_out_images: np.ndarray

    @classmethod
    def load(cls, root: str, cfg: TrainConfig) -> PhotoSets:
        if cfg.photo_split not in photo_folder.SCORED_AFTER:
            raise FmnistEdgeError(f"photos can train on {', '.join(photo_folder.SCORED_AFTER)}, "
                                  f"not {cfg.photo_split}")
        tune = photo_folder.load_photos(root, cfg.photo_split, tuple(cfg.photo_exclude))
        scored_split = photo_folder.SCORED_AFTER[cfg.photo_split]
        held_out = photo_folder.load_photos(root, scored_split) if scored_split else []
        log.info("preprocessing %d %s and %d %s photos from %s", len(tune), cfg.photo_split, len(held_out),
                 scored_split or "scored", root)
        target = photo_targets(photo_folder.accepted_mask(tune))
        if cfg.photo_variants > 1:
            from toolkit.photo_augment import PhotoAugmentConfig, cached_photo_bank

            images, partial = cached_photo_bank([p.path for p in tune], cfg.photo_variants, cfg.seed,
                                                PhotoAugmentConfig(**cfg.photo_augment_params))
            target = np.repeat(target, cfg.photo_variants, axis=0)
            target[partial] = photo_targets(np.zeros((1, NUM_CLASSES), np.float32))  # part of an item: no class
        else:
            images = photo_folder.prepare(tune)
        return cls(images, target, len(tune), held_out,
                   photo_folder.prepare(held_out) if held_out else np.zeros((0, 28, 28, 1), np.uint8))

    def score(self, model: keras.Model) -> photo_folder.PhotoScore | None:
        if not self.held_out:
            return None
        probs = model.predict(self.held_out_images.astype(np.float32), batch_size=512, verbose=0)
        return photo_folder.score(self.held_out, probs)


def load_teacher(paths: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
    """images -> the mean of these models' probabilities (an ensemble teacher). A .tflite or .onnx
    file (an exported model, e.g. the bundled one) answers through the edge runtime."""
    teachers = [_exported_teacher(path) if Path(path).suffix in (".tflite", ".onnx") else _keras_teacher(path)
                for path in paths]

    def predict(images: np.ndarray) -> np.ndarray:
        return np.mean([answer(images) for answer in teachers], axis=0).astype(np.float32)

    return predict


def _keras_teacher(path: str) -> Callable[[np.ndarray], np.ndarray]:
    path = keras_file(path)
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise FmnistEdgeError(f"--teacher {path}: not a loadable Keras model ({first_line(exc)}); "
                              "give a model.keras that train wrote, or an exported .tflite/.onnx file") from None
    if tuple(model.input_shape[1:]) != (28, 28, 1) or tuple(model.output_shape[1:]) != (10,):
        raise FmnistEdgeError(f"--teacher {path}: takes {model.input_shape} and answers {model.output_shape}; "
                              "a teacher must map 28x28x1 images to 10 class probabilities")
    return lambda images: model.predict(images.astype(np.float32), batch_size=512, verbose=0)


def _exported_teacher(path: str) -> Callable[[np.ndarray], np.ndarray]:
    """An exported file's answers, through the edge runtime (raw 0..255 pixels, like the Keras models)."""
    from edge_runtime import load_model

    try:
        model = load_model(path)
    except FmnistEdgeError as exc:
        raise FmnistEdgeError(f"--teacher {path}: {first_line(exc)}") from None

    return lambda images: model.backend.predict_batches(np.clip(np.rint(images), 0, 255).astype(np.uint8))


BUNDLED_KERAS = Path(__file__).resolve().parent / "bundled" / "model.keras"
"""The Keras file the bundled int8 models were exported from: where `train --init bundled` starts."""


def keras_file(name: str) -> Path:
    """A model.keras path as --init and --teacher take it: "bundled" is BUNDLED_KERAS."""
    return BUNDLED_KERAS if name == "bundled" else Path(name)


def initial_model(cfg: TrainConfig) -> keras.Model:
    if cfg.init is None:
        return build_model(cfg.arch, **cfg.arch_params)
    path = keras_file(cfg.init)
    if not path.is_file():
        raise FmnistEdgeError(f"--init {cfg.init}: no such file {path}; reinstall fmnist-edge[train] for the bundled "
                              "model's Keras file, or give a model.keras that train wrote")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise FmnistEdgeError(f"--init {cfg.init}: not a loadable Keras model ({first_line(exc)})") from None


def best_epoch(history: dict) -> tuple[int, float | None]:
    """The 0-based epoch whose weights were kept, and its validation accuracy: the lowest validation
    loss, or without a validation split the last epoch (the run is the whole schedule)."""
    if "val_loss" in history:
        best = int(np.argmin(history["val_loss"]))
        return best, history["val_accuracy"][best]
    return len(history["loss"]) - 1, None


def train(cfg: TrainConfig) -> TrainReport:
    """Train `cfg.arch` (or fine-tune `cfg.init`) and write the contract's files into `cfg.out`."""
    out = Path(cfg.out)
    keras.utils.set_random_seed(cfg.seed)
    # A model to fine-tune is read first: unreadable, it is named as --init, not as the teacher it also is.
    model = initial_model(cfg) if cfg.init else None
    teacher = None
    if cfg.teachers:  # before the data: a bad teacher fails in a second, not after loading everything
        log.info("distilling from %s", ", ".join(cfg.teachers))
        teacher = load_teacher(cfg.teachers)
    images, labels = data.load_split("train", cfg.data_dir, limit=cfg.limit)
    test_images, test_labels = data.load_split("test", cfg.data_dir)
    train_xy, val_xy = split_validation(images, labels, cfg.val_split, cfg.seed)
    photos = PhotoSets.load(cfg.photos, cfg) if cfg.photos else None
    if model is None:
        model = initial_model(cfg)
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
    photo_report = None
    if photos is not None:
        scored = photos.score(model)
        photo_report = {"folder": cfg.photos, "tune_photos": photos.tune_photos,
                        "photo_frames": len(photos.tune_images),
                        "scored_split": photo_folder.SCORED_AFTER[cfg.photo_split],
                        "held_out": asdict(scored) if scored else None}
    report = TrainReport(
        arch=model.name, test_accuracy=accuracy, test_loss=loss, epochs_run=len(hist["loss"]),
        train_seconds=round(seconds, 1), params=int(model.count_params()), macs=count_macs(model),
        best_epoch=best + 1, val_accuracy=val_accuracy, train_images=len(train_xy[0]),
        val_images=len(val_xy[0]), out=str(out), config=asdict(cfg), photos=photo_report)
    write_outputs(model, hist, report, test_labels, pred, out)
    return report
