"""Real photos: the fixed tune/held-out split, set-valued labels and scores, and training with them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import run_cli_json

from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.data import photos
from edge_runtime.data.scoring import score_photos


@pytest.fixture
def small_folder(tmp_path):
    """Six photos in the real folder's layout, one of them out of distribution."""
    rows = [("t-shirt/a.jpg", "t-shirt", "0"), ("pants/b.jpg", "pants", "1"), ("longsleeve/c.jpg", "longsleeve", "2 6"),
            ("shoes/d.jpg", "shoes", "5 7 9"), ("hat/e.jpg", "hat", ""), ("dress/f.jpg", "dress", "3")]
    lines = ["path,photo_class,fashion_mnist_classes"]
    for i, (path, cls, accepted) in enumerate(rows):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        image = np.full((120, 90, 3), 220, np.uint8)
        cv2.rectangle(image, (20 + i, 15), (70, 100), (40, 60, 90), -1)
        cv2.imwrite(str(tmp_path / path), image)
        lines.append(f"{path},{cls},{accepted}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_split_is_fixed_and_disjoint(small_folder):
    everything = photos.load_photos(small_folder)
    tune, held = photos.load_photos(small_folder, "tune"), photos.load_photos(small_folder, "held-out")
    assert sorted(p.path for p in tune + held) == sorted(p.path for p in everything)
    assert not {p.path for p in tune} & {p.path for p in held}
    assert [p.split for p in everything] == [p.split for p in photos.load_photos(small_folder)]


def test_accepted_sets_and_mask(small_folder):
    everything = photos.load_photos(small_folder)
    assert [sorted(p.accepted) for p in everything] == [[0], [1], [2, 6], [5, 7, 9], [], [3]]
    mask = photos.accepted_mask(everything)
    assert mask.shape == (6, 10) and mask[3].tolist() == [0, 0, 0, 0, 0, 1, 0, 1, 0, 1]
    assert mask[4].sum() == 0


def test_score_counts_any_accepted_class(small_folder):
    everything = photos.load_photos(small_folder)
    probs = np.full((6, 10), 0.01, np.float32)
    for row, cls in enumerate([0, 3, 6, 9, 4, 3]):  # right, wrong, right (Shirt), right (Boot), OOD, right
        probs[row, cls] = 0.91
    result = score_photos(everything, probs)
    assert result.photos == 5 and result.accuracy == pytest.approx(0.8)
    assert result.ood_photos == 1 and result.ood_mean_confidence == pytest.approx(0.91)
    assert result.per_class["pants"] == 0.0 and result.per_class["longsleeve"] == 1.0


def test_prepare_runs_the_camera_preprocessing(small_folder):
    images = photos.prepare(photos.load_photos(small_folder))
    assert images.shape == (6, 28, 28, 1) and images.dtype == np.uint8
    assert images[:, 0, 0, 0].max() == 0 and images.max() > 100  # light items on black


def test_missing_labels_is_a_clear_error(tmp_path):
    with pytest.raises(FmnistEdgeError, match=r"no labels\.csv"):
        photos.load_photos(tmp_path)


@pytest.mark.train
def test_training_with_real_photos_scores_the_held_out_half(photos_dir, fmnist_dir, tmp_path):
    metrics = run_cli_json("train", "--limit", "600", "--epochs", "1", "--photos", str(photos_dir),
                           "--data-dir", str(fmnist_dir), "--out", str(tmp_path))
    tune = photos.load_photos(photos_dir, "tune")
    held = photos.load_photos(photos_dir, "held-out")
    assert metrics["photos"]["tune_photos"] == len(tune)
    scored = metrics["photos"]["held_out"]
    assert scored["photos"] == sum(1 for p in held if p.accepted)
    assert scored["ood_photos"] == sum(1 for p in held if not p.accepted)
    assert 0.2 < scored["accuracy"] <= 1.0  # one short epoch: far above the 1-in-10 of guessing


def test_crops_of_one_photo_share_a_split(tmp_path):
    """With a `source` column the split follows the source and the file's stem: the crops of one street
    photo (bag/0005.jpg, dress/0005.jpg) never fall on both sides, whatever their class."""
    lines = ["path,photo_class,fashion_mnist_classes,source"]
    for i in range(40):
        for cls, cid in (("bag", 8), ("dress", 3)):
            lines.append(f"street/{cls}/{i:04d}.jpg,street-{cls},{cid},clothing-co-parsing")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    every = photos.load_photos(tmp_path)
    split = {}
    for p in every:
        split.setdefault(p.path.stem, set()).add(p.split)
    assert all(len(s) == 1 for s in split.values()) and {p.split for p in every} == {"tune", "held-out"}
    assert {p.source for p in every} == {"clothing-co-parsing"}


def test_the_real_photos_halves_stay_what_every_figure_was_measured_on(photos_dir):
    every = photos.load_photos(photos_dir)
    assert (sum(p.split == "tune" for p in every), sum(p.split == "held-out" for p in every)) == (1483, 1585)
    assert {p.source for p in every} == {photos_dir.name}


def test_scores_per_source_and_per_fashion_mnist_class(small_folder):
    everything = photos.load_photos(small_folder)
    probs = np.full((6, 10), 0.01, np.float32)
    for row, cls in enumerate([0, 3, 6, 9, 4, 3]):  # right, wrong, right (Shirt), right (Boot), OOD, right
        probs[row, cls] = 0.91
    result = score_photos(everything, probs)
    assert result.per_source == {small_folder.name: {"photos": 5, "accuracy": 0.8}}
    # strict: only the photos of one class (the long-sleeved top and the shoes accept several)
    assert result.per_fmnist_class == {"T-shirt/top": {"photos": 1, "accuracy": 1.0},
                                       "Trouser": {"photos": 1, "accuracy": 0.0},
                                       "Dress": {"photos": 1, "accuracy": 1.0}}
