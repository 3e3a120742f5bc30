"""Training: the augmentation ops, the validation split, and a short real run that writes every file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli_json

from toolkit.augment import AugmentConfig, augment_batch
from toolkit.tf import tf
from toolkit.train import split_validation


def test_validation_split_is_seeded_and_disjoint():
    images = np.arange(100).reshape(100, 1, 1, 1).astype(np.uint8)
    labels = np.arange(100) % 10
    (tx, _), (vx, _) = split_validation(images, labels, 0.1, seed=3)
    _, (vx2, _) = split_validation(images, labels, 0.1, seed=3)
    assert len(vx) == 10 and len(tx) == 90
    assert not set(vx.ravel()) & set(tx.ravel())
    np.testing.assert_array_equal(vx, vx2)


def test_augmentation_is_seeded_and_keeps_shape_and_range():
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, (16, 28, 28, 1)).astype(np.float32))
    a = augment_batch(images, tf.constant([1, 2]), AugmentConfig()).numpy()
    b = augment_batch(images, tf.constant([1, 2]), AugmentConfig()).numpy()
    c = augment_batch(images, tf.constant([1, 3]), AugmentConfig()).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (16, 28, 28, 1) and a.min() >= 0 and a.max() <= 255


def test_augmentation_never_flips_vertically():
    # A bright top half: any vertical flip would put most of the light in the bottom half.
    image = np.zeros((64, 28, 28, 1), np.float32)
    image[:, 2:12, 6:22] = 200.0
    quiet = AugmentConfig(gain=0.0, blur_prob=0.0, noise_std=0.0)
    out = augment_batch(tf.constant(image), tf.constant([5, 5]), quiet).numpy()
    top, bottom = out[:, :14].sum(axis=(1, 2, 3)), out[:, 14:].sum(axis=(1, 2, 3))
    assert (top > 4 * bottom).all()


def test_identity_augmentation_is_exact():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (4, 28, 28, 1)).astype(np.float32)
    none = AugmentConfig(shift=0, rotation_deg=0, zoom=0, flip=False, gain=0, blur_prob=0, noise_std=0)
    out = augment_batch(tf.constant(images), tf.constant([0, 0]), none).numpy()
    np.testing.assert_allclose(out, images, atol=1e-3)


def test_random_erasing_blanks_one_rectangle_in_a_share_of_images():
    images = np.full((400, 28, 28, 1), 200.0, np.float32)
    only_erase = AugmentConfig(shift=0, rotation_deg=0, zoom=0, flip=False, gain=0, blur_prob=0, noise_std=0,
                               erase_prob=0.5, erase_area=(0.02, 0.15))
    out = augment_batch(tf.constant(images), tf.constant([4, 2]), only_erase).numpy()
    erased = out == 0
    share = erased.mean(axis=(1, 2, 3))
    picked = share > 0
    assert 0.4 < picked.mean() < 0.6
    assert share.max() <= 0.15 + 2 * 28 / 784  # at most the largest area, give or take a pixel row/column
    assert set(np.unique(out)) <= {0.0, 200.0}  # erased to background, the rest untouched
    for image in erased[picked][:50, :, :, 0]:  # one axis-aligned rectangle: its bounding box is all erased
        rows, cols = np.nonzero(image.any(axis=1))[0], np.nonzero(image.any(axis=0))[0]
        assert image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()
    again = augment_batch(tf.constant(images), tf.constant([4, 2]), only_erase).numpy()
    np.testing.assert_array_equal(out, again)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, fmnist_dir):
    """One epoch on 400 real images: the end-to-end training run of the suite."""
    out = tmp_path_factory.mktemp("train")
    metrics = run_cli_json("train", "--limit", "400", "--epochs", "1", "--seed", "7",
                           "--data-dir", str(fmnist_dir), "--out", str(out))
    return out, metrics


def test_short_run_writes_every_file(short_run):
    out, metrics = short_run
    for name in ("model.keras", "metrics.json", "history.json", "curves.png", "confusion.png",
                 "classification_report.txt"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*tmp*")), "temporary files left behind"
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == metrics
    for key in ("arch", "test_accuracy", "test_loss", "epochs_run", "train_seconds", "params", "macs"):
        assert key in metrics
    assert metrics["arch"] == "seed-b" and metrics["epochs_run"] == 1
    assert metrics["train_images"] == 360 and metrics["val_images"] == 40
    assert 0.2 < metrics["test_accuracy"] <= 1.0  # 400 images, one epoch: well above chance (0.1)
    history = json.loads((out / "history.json").read_text())
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    report = (out / "classification_report.txt").read_text()
    assert "Ankle boot" in report and "precision" in report and "10000" in report


def test_saved_model_reproduces_reported_accuracy(short_run, fmnist_dir):
    from toolkit import data
    from toolkit.tf import keras

    out, metrics = short_run
    model = keras.models.load_model(out / "model.keras")
    images, labels = data.load_split("test", fmnist_dir)
    pred = model.predict(images.astype(np.float32), batch_size=1000, verbose=0).argmax(axis=1)
    assert (pred == labels).mean() == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_seeded_runs_repeat(short_run, fmnist_dir, tmp_path):
    _, first = short_run
    again = run_cli_json("train", "--limit", "400", "--epochs", "1", "--seed", "7",
                         "--data-dir", str(fmnist_dir), "--out", str(tmp_path))
    assert again["test_accuracy"] == first["test_accuracy"]
    assert again["test_loss"] == pytest.approx(first["test_loss"], rel=1e-5)
