"""The frame preprocessing as it was before it was made cheaper (issue 25), kept as the reference that
benchmarks/camera_pipeline.py times the current one against and tests/test_preprocess.py compares its
answers with. Not used by the toolkit; the current one is edge_runtime/camera/preprocess.py.

Frame preprocessing: turn a camera frame into what the model was trained on.

Fashion-MNIST was made from studio photos: the item trimmed from its white background, its longest
side resized to 28 px, centred, and the intensities negated, so a light item sits on pure black.
A camera sees a (usually darker) item on an ordinary, lighter background, off-centre, at any size.
This module does the same steps on a real frame, on a small copy so it stays fast:

1. model the background from the frame's border strips (a bilinear "Coons patch" of the four
   strips, so a lighting gradient across the paper is background too);
2. mark pixels far from that background (Otsu threshold), clean the mask (closing, opening, the
   largest component, holes filled), then refine it with colour histograms of item and background
   and a prior that the item is nearer the centre than the border;
3. crop the item's box, keep its aspect ratio, fit its longest side to 28 px, centre it;
4. make it Fashion-MNIST-like: inverted grey inside the mask (grey as it is when the background is
   dark), exactly 0 outside.

Measured on the 3,068 real photos in ../shared/real-photos with a seed-b model trained on
Fashion-MNIST only: resizing and inverting 4%, centre crop and inversion 10.5%, this 59% (see
docs/real-photos.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge_runtime.core.contract import PREPROCESSING_VERSION
from edge_runtime.core.errors import FmnistEdgeError

__all__ = ["PREPROCESSING_VERSION", "PreparedFrame", "PreprocessOptions", "preprocess_frame"]


@dataclass(frozen=True)
class PreprocessOptions:
    work_side: int = 128
    """Longest side, in pixels, of the copy the item is searched on."""
    border: int = 3
    """Width, in pixels of that copy, of the border strips that model the background."""
    min_contrast: float = 24.0
    """Colour distance (0..441) from the background that the item must reach somewhere; below it
    the frame is empty."""
    min_coverage: float = 0.01
    """Smallest share of the searched area an item may cover; smaller finds are noise."""
    refine_iterations: int = 2
    """Rounds of colour-histogram refinement of the mask (0: the thresholded mask as it is)."""
    dark_background: float = 20.0
    """Border grey level below which the frame is taken as Fashion-MNIST polarity already (a light
    item on black, as Fashion-MNIST files are) and not inverted. Real backgrounds are rarely this dark."""


DEFAULT_OPTIONS = PreprocessOptions()


@dataclass
class PreparedFrame:
    image: np.ndarray
    """uint8 [28,28,1]: a light item on black, centred, longest side 28 px (Fashion-MNIST polarity)."""
    box: tuple[int, int, int, int] | None
    """x, y, w, h of the item in the input frame's pixels; None when nothing was found."""
    coverage: float
    """Share of the searched area the item covers (0 when nothing was found)."""


def _to_bgr(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.size == 0:
        raise FmnistEdgeError("a frame must be a non-empty uint8 image (grey, BGR or BGRA)")
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return cv2.cvtColor(frame[:, :, 0], cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise FmnistEdgeError(f"a frame must be grey, BGR or BGRA, not shape {frame.shape}")


MIN_ROI = 2
"""The smallest region of interest, in pixels each way, that an item can be searched in."""


def _crop_roi(frame: np.ndarray, roi: tuple[int, int, int, int] | None) -> tuple[np.ndarray, int, int]:
    if roi is None:
        return frame, 0, 0
    x, y, w, h = roi
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(fw, x + w), min(fh, y + h)
    if x1 <= x0 or y1 <= y0:
        raise FmnistEdgeError(f"--roi {x},{y},{w},{h} lies outside the {fw}x{fh} frame")
    if x1 - x0 < MIN_ROI or y1 - y0 < MIN_ROI:
        raise FmnistEdgeError(f"--roi {x},{y},{w},{h} leaves {x1 - x0}x{y1 - y0} px of the {fw}x{fh} frame; "
                              f"give a region of at least {MIN_ROI}x{MIN_ROI} px")
    return frame[y0:y1, x0:x1], x0, y0


def working_copy(frame: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """A copy whose longest side is at most `side` (never enlarged), and its scale: what the item
    search looks at (PreprocessOptions.work_side). Public for the training photo augmentation,
    which cuts items out with the same mask."""
    h, w = frame.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale == 1.0:
        return frame, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if scale < 0.5:  # area averaging is slow on big frames: go most of the way with bilinear
        frame = cv2.resize(frame, (2 * size[0], 2 * size[1]), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), scale


def _background(img: np.ndarray, border: int, coarse: int = 4) -> np.ndarray:
    """float32 [H,W,3]: the four border strips blended across the frame (a Coons patch).

    The patch is smooth, so it is built on a grid `coarse` times smaller and resized up: a tenth of
    the time, the same background to within a grey level.
    """
    h, w = img.shape[:2]
    hc, wc = max(2, -(-h // coarse)), max(2, -(-w // coarse))

    def strip(pixels: np.ndarray, length: int) -> np.ndarray:  # [B,L,3] -> [length,3]
        line = np.sort(pixels, axis=0)[pixels.shape[0] // 2]  # median across the strip's width
        return cv2.resize(line[None].astype(np.float32), (length, 1), interpolation=cv2.INTER_AREA)[0]

    top, bottom = strip(img[:border], wc), strip(img[-border:], wc)
    left, right = strip(img[:, :border].swapaxes(0, 1), hc), strip(img[:, -border:].swapaxes(0, 1), hc)
    u = np.linspace(0, 1, wc, dtype=np.float32)[None, :, None]
    v = np.linspace(0, 1, hc, dtype=np.float32)[:, None, None]
    corners = ((1 - u) * (1 - v) * (top[0] + left[0]) / 2 + u * (1 - v) * (top[-1] + right[0]) / 2
               + (1 - u) * v * (bottom[0] + left[-1]) / 2 + u * v * (bottom[-1] + right[-1]) / 2)
    patch = (1 - v) * top[None] + v * bottom[None] + (1 - u) * left[:, None] + u * right[:, None] - corners
    return cv2.resize(patch, (w, h), interpolation=cv2.INTER_LINEAR)


def _distance(img: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Euclidean colour distance of each pixel from the background."""
    diff = img.astype(np.float32) - background
    return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))


_CLOSE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_OPEN = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))


def _clean(mask: np.ndarray) -> np.ndarray | None:
    """Close gaps, drop specks, keep the largest region with its holes filled."""
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, _CLOSE)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, _OPEN)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    filled = np.zeros_like(m)
    # Drawing the largest outer contour filled keeps that region and fills its holes in one step.
    cv2.drawContours(filled, [max(contours, key=cv2.contourArea)], -1, 1, thickness=cv2.FILLED)
    return filled > 0


def _centre_prior(h: int, w: int, edge: float = 0.3, centre: float = 0.7) -> np.ndarray:
    """P(item) falling from `centre` in the middle of the frame to `edge` at its border."""
    yy = np.abs(np.linspace(-1, 1, h, dtype=np.float32))[:, None]
    xx = np.abs(np.linspace(-1, 1, w, dtype=np.float32))[None, :]
    return centre + (edge - centre) * np.maximum(yy, xx) ** 2


def _refine(img: np.ndarray, mask: np.ndarray, iterations: int, bins: int = 8) -> np.ndarray:
    """Re-label pixels by colour histograms of the current item and background (a cheap GrabCut)."""
    q = img.astype(np.int32) * bins // 256
    code = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    prior = _centre_prior(*mask.shape)
    odds_prior = prior / (1 - prior)
    for _ in range(iterations):
        fg = np.bincount(code[mask], minlength=bins**3).astype(np.float32) + 0.5
        bg = np.bincount(code[~mask], minlength=bins**3).astype(np.float32) + 0.5
        odds = ((fg / fg.sum()) / (bg / bg.sum()))[code] * odds_prior  # P(item | colour) / P(background | colour)
        posterior = cv2.GaussianBlur(odds / (1 + odds), (5, 5), 0)
        refined = _clean(posterior > 0.5)
        if refined is None:
            break
        mask = refined
    return mask


def find_item(img: np.ndarray, opts: PreprocessOptions = DEFAULT_OPTIONS) -> np.ndarray | None:
    """Boolean mask of the item in a small BGR image, or None when the frame looks empty."""
    blurred = cv2.GaussianBlur(img, (3, 3), 0)
    distance = _distance(blurred, _background(blurred, opts.border))
    if np.percentile(distance[::3, ::3], 99) < opts.min_contrast:  # a sample is enough for "is anything here"
        return None
    d8 = np.clip(distance * 2, 0, 255).astype(np.uint8)
    _, mask = cv2.threshold(d8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = _clean(mask > 0)
    if mask is None:
        return None
    if opts.refine_iterations:
        mask = _refine(img, mask, opts.refine_iterations)
    if mask.mean() < opts.min_coverage:
        return None
    return mask


def find_light_item(grey: np.ndarray, opts: PreprocessOptions = DEFAULT_OPTIONS) -> np.ndarray | None:
    """The item of a frame that is Fashion-MNIST-like already: everything clearly above the black.

    All of it, not the largest part: on a clean black background a bag's handle is the bag's.
    """
    if grey.max() < opts.min_contrast:
        return None
    mask = cv2.morphologyEx((grey > opts.dark_background / 2).astype(np.uint8), cv2.MORPH_CLOSE, _CLOSE) > 0
    return mask if mask.mean() >= opts.min_coverage else None


def _fit_28(intensity: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked intensities scaled so the longest side is 28 px, centred on black."""
    h, w = mask.shape
    scale = 28.0 / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    item = cv2.resize(intensity * mask, (nw, nh), interpolation=interp)
    out = np.zeros((28, 28), np.float32)
    y0, x0 = (28 - nh) // 2, (28 - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = item
    return np.clip(out, 0, 255).astype(np.uint8)


def preprocess_frame(frame: np.ndarray, roi: tuple[int, int, int, int] | None = None,
                     opts: PreprocessOptions = DEFAULT_OPTIONS) -> PreparedFrame:
    """A camera frame (BGR, BGRA or grey, any size; what cv2 gives) -> a Fashion-MNIST-like 28x28 image."""
    bgr, x_off, y_off = _crop_roi(_to_bgr(frame), roi)
    small, scale = working_copy(bgr, opts.work_side)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
    light_on_dark = np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])) < opts.dark_background
    mask = find_light_item(grey, opts) if light_on_dark else find_item(small, opts)
    found = mask is not None
    if not found:
        mask = np.ones(grey.shape, bool)  # classify the whole view; the caller knows nothing was found
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    intensity = grey if light_on_dark else 255.0 - grey
    image = _fit_28(intensity[y0:y1, x0:x1], mask[y0:y1, x0:x1].astype(np.float32))
    box = None
    if found:
        box = (x_off + int(x0 / scale), y_off + int(y0 / scale),
               max(1, round((x1 - x0) / scale)), max(1, round((y1 - y0) / scale)))
    return PreparedFrame(image[..., np.newaxis], box, float(mask.mean()) if found else 0.0)
