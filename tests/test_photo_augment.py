"""Full-size photo augmentation, the tune-a/tune-b halves, leave-class-out, set focus and temperature."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import run_cli, run_cli_json

from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.data import photos
from toolkit import photo_augment


def _photo(seed: int) -> np.ndarray:
    """A dark garment-like shape on a light, slightly graded background."""
    rng = np.random.default_rng(seed)
    image = np.full((200, 150, 3), 210, np.uint8) + rng.integers(0, 20, (200, 150, 3), dtype=np.uint8)
    cv2.rectangle(image, (40, 30), (110, 170), (50, 40, 120), -1)
    cv2.rectangle(image, (20, 30), (130, 70), (50, 40, 120), -1)
    return image


def test_bank_has_the_photo_first_then_seeded_variants():
    images = [_photo(0), _photo(1)]
    bank, partial = photo_augment.photo_bank(images, variants=4, seed=3)
    assert bank.shape == (8, 28, 28, 1) and bank.dtype == np.uint8
    from edge_runtime.camera.preprocess import preprocess_frame

    np.testing.assert_array_equal(bank[0], preprocess_frame(images[0]).image)  # variant 0: the photo as it is
    np.testing.assert_array_equal(bank[4], preprocess_frame(images[1]).image)
    assert not np.array_equal(bank[1], bank[0])  # the others are new frames
    np.testing.assert_array_equal(bank, photo_augment.photo_bank(images, variants=4, seed=3)[0])  # repeatable
    assert not partial.any()
    assert bank[:, 0, 0, 0].max() == 0 and bank.max() > 100  # still light items on black


def test_augmented_frame_keeps_the_photo_size_and_dtype():
    source = photo_augment.make_sources([_photo(0)])[0]
    assert source.mask is not None and 0.1 < source.mask.mean() < 0.8
    frame = photo_augment.augment_photo(source, np.random.default_rng(0), plates=[source.plate])
    assert frame.dtype == np.uint8 and frame.shape == source.image.shape


def test_cached_bank_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_EDGE_PHOTO_BANK", str(tmp_path / "cache"))
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.jpg")
        cv2.imwrite(str(paths[-1]), _photo(i))
    first = photo_augment.cached_photo_bank(paths, 3)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    np.testing.assert_array_equal(first[0], photo_augment.cached_photo_bank(paths, 3)[0])


def test_an_unreadable_photo_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_EDGE_PHOTO_BANK", str(tmp_path / "cache"))
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FmnistEdgeError, match=r"bad\.jpg: unreadable photo"):
        photo_augment.cached_photo_bank([tmp_path / "bad.jpg"], 2)


@pytest.fixture
def folder(tmp_path):
    lines = ["path,photo_class,fashion_mnist_classes"]
    for i in range(40):
        cls, accepted = [("t-shirt", "0"), ("outwear", "4"), ("hat", "")][i % 3]
        path = f"{cls}/{i}.jpg"
        (tmp_path / cls).mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / path), _photo(i))
        lines.append(f"{path},{cls},{accepted}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_tune_halves_split_the_tune_half(folder):
    tune = {p.path for p in photos.load_photos(folder, "tune")}
    a, b = ({p.path for p in photos.load_photos(folder, s)} for s in ("tune-a", "tune-b"))
    assert a and b and not a & b and a | b == tune


def test_leave_class_out(folder):
    kept = photos.load_photos(folder, "all", exclude=("outwear",))
    assert kept and all(p.photo_class != "outwear" for p in kept)
    with pytest.raises(FmnistEdgeError, match="no photo class coat"):
        photos.load_photos(folder, "all", exclude=("coat",))


@pytest.mark.train
def test_set_focus_rewards_the_best_accepted_class():
    from toolkit.tf import tf
    from toolkit.train.losses import photo_targets, set_valued_loss

    y = photo_targets(np.array([[0, 0, 0, 0, 0, 1, 0, 1, 0, 1]], np.float32))
    split = np.array([[0, 0, 0, 0, 0, 0.3, 0, 0.35, 0, 0.35]], np.float32)
    plain = set_valued_loss(0.3)(tf.constant(y), tf.constant(split)).numpy()
    focused = set_valued_loss(0.3, set_focus=0.5)(tf.constant(y), tf.constant(split)).numpy()
    np.testing.assert_allclose(plain, -np.log(1.0), atol=1e-5)  # the set is all the mass: no loss
    np.testing.assert_allclose(focused, 0.5 * -np.log(0.35), rtol=1e-4)  # unless one class must win


@pytest.mark.train
def test_folded_temperature_is_a_tempered_softmax():
    from toolkit.calibrate import fold_temperature, temper
    from toolkit.models import build_model

    model = build_model("edge")
    x = np.random.default_rng(0).integers(0, 255, (8, 28, 28, 1)).astype(np.float32)
    before = model.predict(x, verbose=0)
    fold_temperature(model, 1.7)
    np.testing.assert_allclose(model.predict(x, verbose=0), temper(before, 1.7), rtol=1e-3, atol=1e-6)


def test_partial_views_are_marked_and_keep_part_of_the_item():
    from dataclasses import replace

    images = [_photo(0), _photo(1)]
    cfg = replace(photo_augment.DEFAULT_PHOTO_AUGMENT, partial_prob=1.0)
    _, partial = photo_augment.photo_bank(images, variants=3, seed=0, cfg=cfg)
    assert partial.tolist() == [False, True, True, False, True, True]  # never the photo as it is
    source = photo_augment.make_sources([images[0]])[0]
    half = photo_augment.partial_source(source, np.random.default_rng(0))
    assert 0.2 * source.mask.sum() < half.mask.sum() < 0.7 * source.mask.sum()


@pytest.mark.train
def test_ensemble_with_mirrored_views_averages_both(tmp_path):
    from toolkit.ensemble import build_ensemble
    from toolkit.models import build_model

    member = build_model("edge")
    x = np.random.default_rng(1).integers(0, 255, (4, 28, 28, 1)).astype(np.float32)
    both = build_ensemble([member], flip=True).predict(x, verbose=0)
    expected = (member.predict(x, verbose=0) + member.predict(x[:, :, ::-1].copy(), verbose=0)) / 2
    np.testing.assert_allclose(both, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.train
def test_rows_no_class_fits_are_not_distilled():
    from toolkit.tf import tf
    from toolkit.train.losses import photo_targets, set_valued_loss, with_teacher

    teacher = np.full((2, 10), 0.01, np.float32)
    teacher[:, 3] = 0.91
    rows = with_teacher(photo_targets(np.array([[0, 0, 0, 1, 0, 0, 0, 0, 0, 0], [0] * 10], np.float32)), teacher)
    answer = tf.constant(np.full((2, 10), 0.1, np.float32))
    hard = set_valued_loss(1.0)(tf.constant(rows[:, :11]), answer).numpy()
    taught = set_valued_loss(1.0, distill_weight=0.5, temperature=2.0)(tf.constant(rows), answer).numpy()
    assert taught[0] > 0.5 * hard[0]  # a garment: half the label, half the teacher (who disagrees)
    assert taught[1] == pytest.approx(hard[1])  # a hat: the pull to "unsure" alone


@pytest.mark.train
def test_an_exported_file_teaches_through_the_edge_runtime():
    from edge_runtime import bundled_model_path, load_model
    from toolkit.train.teachers import load_teacher

    images = np.random.default_rng(2).integers(0, 256, (5, 28, 28, 1)).astype(np.float32)
    answers = load_teacher([str(bundled_model_path())])(images)
    np.testing.assert_allclose(answers, load_model().predict(images.astype(np.uint8)), atol=1e-6)
    assert answers.shape == (5, 10) and answers.dtype == np.float32


@pytest.mark.train
def test_training_on_every_photo_scores_none(folder, fmnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_EDGE_PHOTO_BANK", str(tmp_path / "bank"))
    metrics = run_cli_json("train", "--limit", "300", "--epochs", "1", "--photos", str(folder), "--photo-split",
                           "all", "--photo-exclude", "hat", "--photo-variants", "3", "--photo-augment",
                           "max_scale=1.0", "--data-dir", str(fmnist_dir), "--out", str(tmp_path / "run"))
    assert metrics["photos"]["tune_photos"] == 27 and metrics["photos"]["photo_frames"] == 81  # 40 less 13 hats
    assert metrics["photos"]["held_out"] is None and metrics["photos"]["scored_split"] is None


@pytest.mark.train
def test_an_unknown_photo_augment_setting_is_a_usage_error(tmp_path):
    proc = run_cli("train", "--photo-augment", "sharpness=2", "--out", str(tmp_path), check=False)
    assert proc.returncode == 2 and "no setting sharpness" in proc.stderr and "Traceback" not in proc.stderr
