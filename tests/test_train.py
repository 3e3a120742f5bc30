"""Training: the augmentation ops, the validation split, and a short real run that writes every file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli_json

from toolkit.train.augment import augment_batch
from toolkit.train.config import AugmentConfig
from toolkit.tf import tf
from toolkit.train.pipeline import split_validation


def test_validation_split_is_seeded_and_disjoint():
    images = np.arange(100).reshape(100, 1, 1, 1).astype(np.uint8)
    labels = np.arange(100) % 10
    (tx, _), (vx, _) = split_validation(images, labels, 0.1, seed=3)
    _, (vx2, _) = split_validation(images, labels, 0.1, seed=3)
    assert len(vx) == 10 and len(tx) == 90
    assert not set(vx.ravel()) & set(tx.ravel())
    np.testing.assert_array_equal(vx, vx2)
    (tx, _), (vx, vy) = split_validation(images, labels, 0.0, seed=3)
    assert len(tx) == 100 and len(vx) == len(vy) == 0


def test_no_validation_split_trains_the_whole_schedule_on_everything(fmnist_dir, tmp_path):
    """--val-split 0: every image trains, nothing can stop the run early, the last weights are kept."""
    metrics = run_cli_json("train", "--arch", "edge", "--limit", "300", "--epochs", "2", "--patience", "1",
                           "--val-split", "0", "--data-dir", str(fmnist_dir), "--out", str(tmp_path))
    assert metrics["train_images"] == 300 and metrics["val_images"] == 0
    assert metrics["epochs_run"] == metrics["best_epoch"] == 2 and metrics["val_accuracy"] is None
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["loss"]) == 2 and not any(key.startswith("val_") for key in history)
    assert (tmp_path / "curves.png").stat().st_size > 0


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
    from edge_runtime.data import fashion_mnist as data
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


def _softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.exp((logits - logits.max(axis=1, keepdims=True)) / temperature)
    return z / z.sum(axis=1, keepdims=True)


def test_distillation_loss_is_the_scaled_kl_divergence_to_the_softened_teacher():
    from toolkit.train.losses import set_valued_loss, targets

    rng = np.random.default_rng(0)
    student_logits, teacher_logits = rng.normal(size=(6, 10)), rng.normal(size=(6, 10)) * 2
    student, teacher = _softmax(student_logits), _softmax(teacher_logits)
    y_true = np.concatenate([targets(np.arange(6)), teacher], axis=1).astype(np.float32)
    hard = set_valued_loss(0.3)(tf.constant(y_true[:, :11]), tf.constant(student, tf.float32)).numpy()
    np.testing.assert_allclose(hard, -np.log(student[np.arange(6), np.arange(6)]), rtol=1e-4)

    got = set_valued_loss(0.3, 0.7, 4.0)(tf.constant(y_true), tf.constant(student, tf.float32)).numpy()
    soft_t, soft_s = _softmax(teacher_logits, 4.0), _softmax(student_logits, 4.0)
    kl = (soft_t * np.log(soft_t / soft_s)).sum(axis=1)
    np.testing.assert_allclose(got, 0.3 * hard + 0.7 * 16.0 * kl, rtol=1e-4)
    # A model that already answers as the teacher does pays only the hard part.
    same = set_valued_loss(0.3, 0.7, 4.0)(tf.constant(y_true), tf.constant(teacher, tf.float32)).numpy()
    hard_same = set_valued_loss(0.3)(tf.constant(y_true[:, :11]), tf.constant(teacher, tf.float32)).numpy()
    np.testing.assert_allclose(same, 0.3 * hard_same, rtol=1e-4, atol=1e-6)


def _constant_teacher(path, answer: int, outputs: int = 10):
    """A 'model' that gives class `answer` nearly all its probability, whatever the image."""
    from toolkit.tf import keras

    inputs = keras.Input((28, 28, 1))
    dense = keras.layers.Dense(outputs, activation="softmax", kernel_initializer="zeros",
                               bias_initializer=keras.initializers.Constant(np.eye(outputs)[answer % outputs] * 8))
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    model.save(path)
    return path


def test_student_learns_the_teachers_answers(fmnist_dir, tmp_path):
    """Distilling only (weight 1) from a teacher that always says Dress: the student says Dress too,
    although every label says otherwise; the teacher's answers really reach the loss."""
    from edge_runtime.data import fashion_mnist as data
    from toolkit.tf import keras

    teacher = _constant_teacher(tmp_path / "teacher.keras", answer=3)
    metrics = run_cli_json("train", "--arch", "edge", "--limit", "400", "--epochs", "3", "--seed", "1",
                           "--teacher", str(teacher), "--distill-weight", "1", "--data-dir", str(fmnist_dir),
                           "--out", str(tmp_path / "student"))
    assert metrics["config"]["teachers"] == [str(teacher)]
    student = keras.models.load_model(tmp_path / "student" / "model.keras", compile=False)
    images, _ = data.load_split("test", fmnist_dir, limit=500)
    said = student.predict(images.astype(np.float32), batch_size=500, verbose=0).argmax(axis=1)
    assert (said == 3).mean() > 0.9
    assert metrics["test_accuracy"] < 0.2  # Dress is a tenth of the test set


def test_bad_teacher_is_a_one_line_error(fmnist_dir, tmp_path):
    from conftest import run_cli

    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    wrong = _constant_teacher(tmp_path / "eleven.keras", answer=0, outputs=11)
    for path, words in ((junk, "not a loadable Keras model"), (wrong, "10 class probabilities")):
        proc = run_cli("train", "--limit", "100", "--epochs", "1", "--teacher", str(path), "--data-dir",
                       str(fmnist_dir), "--out", str(tmp_path / "out"), check=False)
        assert proc.returncode != 0
        last = proc.stderr.strip().splitlines()[-1]
        assert words in last and str(path) in last and "Traceback" not in proc.stderr
        assert not (tmp_path / "out" / "model.keras").exists()


def test_a_bad_model_to_fine_tune_is_named_as_init(fmnist_dir, tmp_path):
    """With --init the model is also the teacher; its error names the flag the user gave."""
    from conftest import error_line, run_cli

    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    proc = run_cli("train", "--init", str(junk), "--limit", "100", "--epochs", "1", "--data-dir", str(fmnist_dir),
                   "--out", str(tmp_path / "out"), check=False)
    assert error_line(proc).startswith(f"Error: --init {junk}: not a loadable Keras model")


def test_fine_tune_recipe_fills_what_flags_leave():
    from toolkit.train import TrainConfig

    tuned = TrainConfig.from_recipe(init="bundled", teachers=())
    assert (tuned.epochs, tuned.lr, tuned.val_split, tuned.photo_batch, tuned.photo_variants, tuned.set_focus,
            tuned.ood_weight) == (2, 5e-4, 0.0, 4, 16, 0.5, 1.0)
    assert tuned.photo_augment_params == {"max_scale": 1.0, "shift": 0.08} and tuned.augment_config.erase_prob == 0.5
    # the starting model teaches: learning without forgetting
    assert (tuned.teachers, tuned.distill_weight, tuned.distill_temperature) == (("bundled",), 0.5, 2.0)
    chosen = TrainConfig.from_recipe(init="x.keras", epochs=3, lr=1e-3, photo_variants=0, teachers=("t.keras",))
    assert (chosen.epochs, chosen.lr, chosen.photo_variants, chosen.teachers) == (3, 1e-3, 0, ("t.keras",))
    fresh = TrainConfig.from_recipe("edge", teachers=())
    assert (fresh.epochs, fresh.lr, fresh.val_split, fresh.photo_variants, fresh.teachers) == (80, 2e-3, 0.1, 0, ())


def test_bundled_keras_file_is_what_the_bundled_models_were_exported_from(fmnist_dir):
    from edge_runtime import load_model
    from edge_runtime.data import fashion_mnist as data
    from toolkit.tf import keras
    from toolkit.train.config import MODEL_NAMES

    images, _ = data.load_split("test", fmnist_dir, limit=1000)
    keras_top = keras.models.load_model(MODEL_NAMES["bundled"], compile=False).predict(
        images.astype(np.float32), verbose=0).argmax(axis=1)
    assert (load_model().predict(images).argmax(axis=1) == keras_top).mean() >= 0.99  # int8 against float


def test_fine_tune_from_the_bundled_model_on_a_labelled_folder(fmnist_dir, tmp_path, monkeypatch):
    """A collected folder's labelled frames (camera --collect, then label), every one trained on."""
    import cv2

    from edge_runtime.data import photos

    monkeypatch.setenv("FMNIST_EDGE_PHOTO_BANK", str(tmp_path / "bank"))
    folder = tmp_path / "collected"
    folder.mkdir()
    rows = []
    for i in range(12):
        frame = np.full((96, 96, 3), 200, np.uint8)
        cv2.rectangle(frame, (30 + i % 3, 20), (66, 80), (40, 40, 40), -1)
        cv2.imwrite(str(folder / f"{i}.jpg"), frame)
        rows.append({"path": f"{i}.jpg", "photo_class": "coat" if i < 10 else photos.UNLABELLED,
                     "fashion_mnist_classes": "4" if i < 10 else ""})
    photos.write_rows(folder, rows)
    metrics = run_cli_json("train", "--init", "bundled", "--photos", str(folder), "--photo-split", "all",
                           "--photo-variants", "2", "--epochs", "1", "--limit", "300", "--data-dir", str(fmnist_dir),
                           "--out", str(tmp_path / "tuned"))
    assert metrics["config"]["init"] == "bundled" and metrics["config"]["lr"] == 5e-4
    assert metrics["config"]["teachers"] == ["bundled"]
    assert metrics["photos"]["tune_photos"] == 10 and metrics["photos"]["held_out"] is None  # unlabelled skipped
    assert metrics["test_accuracy"] > 0.85  # it started from the bundled model: 300 images alone reach ~0.6
