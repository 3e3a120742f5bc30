"""The data a run trains on: the validation split and the tf.data pipeline that mixes, augments and
batches Fashion-MNIST images and real-photo frames."""

from __future__ import annotations

import numpy as np

from edge_runtime.core.errors import FmnistEdgeError
from toolkit.train.augment import augment_batch
from toolkit.train.config import AugmentConfig
from toolkit.tf import tf


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
