"""Frame preprocessing on synthetic camera frames made from Fashion-MNIST test images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_runtime.camera.preprocess import PreparedFrame, preprocess_frame
from edge_runtime.core.errors import FmnistEdgeError
from toolkit.synthetic import render_frame as render


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


@pytest.fixture(scope="module")
def items(test_set):
    images, labels = test_set
    picks = [int(np.flatnonzero(labels == c)[0]) for c in range(10)]  # one of each class
    return images[picks]


def test_camera_frames_become_fashion_mnist_like(items):
    for i, item in enumerate(items):
        frame, true_box = render(item, seed=i)
        prepared = preprocess_frame(frame)
        assert isinstance(prepared, PreparedFrame)
        assert prepared.image.shape == (28, 28, 1) and prepared.image.dtype == np.uint8
        assert prepared.box is not None and iou(prepared.box, true_box) > 0.75, (i, prepared.box, true_box)
        out = prepared.image[..., 0].astype(float)
        # A light item on black: the corners are black, the item is bright.
        assert out[:2, :2].max() == 0 and out[-2:, -2:].max() == 0
        assert out.max() > 150
        assert correlation(out, item) > 0.8, (i, correlation(out, item))


def test_item_is_centred_with_its_longest_side_filling_the_frame(items):
    frame, _ = render(items[1], centre=(160, 300), item_side=200)  # trousers: tall and narrow
    out = preprocess_frame(frame).image[..., 0]
    ys, xs = np.nonzero(out > 30)
    assert ys.min() <= 1 and ys.max() >= 26  # the long side spans the frame
    assert abs((xs.min() + xs.max()) / 2 - 13.5) <= 1.5  # centred across
    assert xs.max() - xs.min() < 20  # the aspect ratio is kept, not stretched to a square


def test_background_inside_the_item_box_is_black():
    """An L-shaped item leaves a corner of its box empty: that paper must become 0, not inverted grey."""
    item = np.zeros((28, 28), np.uint8)
    item[:, :9] = 200  # the upright bar
    item[-9:, :] = 200  # the foot
    frame, _ = render(item, item_side=240)
    out = preprocess_frame(frame).image[..., 0]
    assert out[:, :7].mean() > 100 and out[-7:, :].mean() > 100  # the L is there, light
    assert out[3:16, 13:25].max() == 0  # the empty corner of its box is exactly black


def test_empty_paper_is_nothing_in_view():
    frame, _ = render(np.zeros((28, 28), np.uint8))
    prepared = preprocess_frame(frame)
    assert prepared.box is None and prepared.coverage == 0.0
    assert prepared.image.shape == (28, 28, 1)


def test_roi_limits_the_search_and_boxes_are_in_frame_coordinates(items):
    frame, true_box = render(items[7], centre=(450, 240), item_side=200)
    # A dark distractor on the left half, outside the region of interest.
    cv2.rectangle(frame, (40, 100), (220, 380), (20, 20, 20), -1)
    prepared = preprocess_frame(frame, roi=(300, 0, 340, 480))
    assert prepared.box is not None and iou(prepared.box, true_box) > 0.75
    assert prepared.box[0] >= 300


def test_roi_outside_the_frame_is_refused():
    with pytest.raises(FmnistEdgeError, match="lies outside the 640x480 frame"):
        preprocess_frame(np.zeros((480, 640, 3), np.uint8), roi=(700, 10, 50, 50))


@pytest.mark.parametrize("convert", [
    lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2GRAY),
    lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)[..., None],
    lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2BGRA),
    lambda f: f,
])
def test_grey_bgr_and_bgra_frames(items, convert):
    frame, true_box = render(items[0])
    prepared = preprocess_frame(convert(frame))
    assert prepared.box is not None and iou(prepared.box, true_box) > 0.75
    assert correlation(prepared.image, items[0]) > 0.8


@pytest.mark.parametrize("size", [(37, 53), (300, 101), (1080, 1920)])
def test_odd_sizes(items, size):
    h, w = size
    side = int(min(h, w) * 0.6)
    frame, _ = render(items[3], frame_size=size, item_side=side, centre=(w // 2, h // 2), blur=0.6, noise=2)
    prepared = preprocess_frame(frame)
    assert prepared.image.shape == (28, 28, 1)
    assert correlation(prepared.image, items[3]) > 0.7


def test_fashion_mnist_image_passes_through(test_set):
    """Re-centring the item's box may move it by a pixel or two; otherwise the image is unchanged."""
    images, _ = test_set
    for image in images[:100]:
        out = preprocess_frame(image[..., 0]).image[..., 0].astype(int)
        original = np.pad(image[..., 0].astype(int), 2)
        diffs = [np.abs(out - original[2 + dy : 30 + dy, 2 + dx : 30 + dx]).mean()
                 for dy in range(-2, 3) for dx in range(-2, 3)]
        assert min(diffs) < 3, min(diffs)


def test_bad_frames_are_refused():
    with pytest.raises(FmnistEdgeError, match="non-empty uint8 image"):
        preprocess_frame(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(FmnistEdgeError, match="grey, BGR or BGRA"):
        preprocess_frame(np.zeros((10, 10, 2), np.uint8))


def test_deterministic(items):
    frame, _ = render(items[5])
    a, b = preprocess_frame(frame), preprocess_frame(frame)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.box == b.box


def _reference():
    """The preprocessing as it was before it was made cheaper (benchmarks/reference_preprocess.py)."""
    import importlib.util
    import sys
    from pathlib import Path

    if "reference_preprocess" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_preprocess.py"
        spec = importlib.util.spec_from_file_location("reference_preprocess", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["reference_preprocess"]


def _frames(test_set):
    """Camera-like frames of every class at several sizes and places, grey, BGRA and light-on-black ones,
    a region of interest, and empty paper."""
    images, labels = test_set
    for c in range(10):
        for k, (size, side) in enumerate([((480, 640), 260), ((480, 640), 340), ((720, 1280), 420), ((300, 101), 70)]):
            item = images[np.flatnonzero(labels == c)[k]][..., 0]
            h, w = size
            centre = (w // 2 + 7 * (k - 1), h // 2 - 5 * k)
            frame, _ = render(item, frame_size=size, item_side=side, centre=centre, seed=c * 10 + k)
            yield frame, None
    frame, _ = render(images[0][..., 0])
    yield cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), None
    yield cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA), (100, 50, 400, 400)
    yield cv2.resize(images[1][..., 0], (640, 480)), None  # a light item on black, as Fashion-MNIST is
    yield render(np.zeros((28, 28), np.uint8))[0], None


def test_same_answers_as_the_reference_preprocessing(test_set):
    """Made cheaper, not different: the image, box and coverage the reference gives, frame for frame."""
    reference = _reference()
    for i, (frame, roi) in enumerate(_frames(test_set)):
        now, then = preprocess_frame(frame, roi), reference.preprocess_frame(frame, roi)
        np.testing.assert_array_equal(now.image, then.image, err_msg=f"frame {i}")
        assert now.box == then.box and now.coverage == pytest.approx(then.coverage), i


def test_refinement_that_grows_out_of_the_items_box_is_done_on_the_whole_frame():
    """Refinement works on the item's box and a margin; an item that is more than the first mask found
    (here a strip of the item's colour reaching the frame's edge) is refined on the whole frame, as the
    reference does."""
    from edge_runtime.camera import preprocess

    img = np.full((96, 128, 3), (200, 190, 180), np.uint8)
    img[30:66, 20:120] = (40, 60, 150)  # the item, in one colour, out to near the right edge
    first = np.zeros((96, 128), np.uint8)
    first[36:60, 28:52] = 1  # what the threshold found: only the item's left part
    refined = preprocess._refine(img, first, 2)
    then = _reference()._refine(img, first.astype(bool), 2)
    np.testing.assert_array_equal(refined.astype(bool), then)
    assert refined[:, 100:].any()  # it did grow past the box and its margin


@pytest.mark.parametrize("shape", [(1, 640), (640, 1), (9, 2000), (2000, 9), (5, 7)])
def test_a_box_never_leaves_the_frame(shape):
    """A frame so thin its working copy rounds to one pixel across: the box is still inside it."""
    frame = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    frame[shape[0] // 3 : 2 * shape[0] // 3 + 1, shape[1] // 3 : 2 * shape[1] // 3 + 1] = 0
    box = preprocess_frame(frame).box
    assert box is not None  # this noise holds an item: the test checks a box, not its absence
    x, y, w, h = box
    assert 0 <= x and 0 <= y and w >= 1 and h >= 1 and x + w <= shape[1] and y + h <= shape[0], box
