"""Augment real photos at full size, BEFORE the camera's frame preprocessing.

Training used to see each tune photo preprocessed once to 28x28 and then only lightly jittered, so
the model never saw what the preprocessing does to the same item in another room, light or camera:
a mask that leaks into a patterned background, a crop that cuts a sleeve, a grey level that flips
with the background's colour. Here every variant of a photo is a new frame made from the original:

1. the item is cut out with the preprocessing's own mask (edge_runtime.camera.preprocess.find_item) and,
   in a share of the variants, pasted on another background: a flat or graded colour with paper or
   fabric texture, or another photo's background with its item painted out;
2. geometry: scale (down: the item small in the frame; up: part of it cut off by the frame edge),
   shift, a small rotation and a perspective tilt, as a hand-held camera frames an item;
3. light and colour: exposure, contrast, gamma, white balance, saturation, the item's hue, a light
   gradient across the frame and a soft shadow;
4. the camera: blur, sensor noise, JPEG compression.

Then the frame goes through edge_runtime.camera.preprocess.preprocess_frame exactly as `predict` and
`camera` do, so training sees the preprocessing's successes and failures alike. The variants are
made once per run into a bank cached on disk (NumPy and OpenCV, one photo after another, seeded), which
toolkit.train mixes into the batches in place of the once-preprocessed photos.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.camera.preprocess import DEFAULT_OPTIONS, find_item, preprocess_frame, working_copy
from edge_runtime.core.errors import first_line
from edge_runtime.core.files import atomic_path
from edge_runtime.data.images import read_mask, read_photo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhotoAugmentConfig:
    background_prob: float = 0.5
    """Share of variants whose item is pasted on a new background."""
    other_photo_background: float = 0.5
    """Of those, the share that gets another photo's background (the rest: a synthetic one)."""
    min_scale: float = 0.6
    """Smallest scale of the item in the frame (the item further away)."""
    max_scale: float = 1.25
    """Largest scale (above 1 part of the item may leave the frame: a partial view)."""
    shift: float = 0.12
    """Largest shift of the item, as a fraction of the frame side."""
    rotation_deg: float = 10.0
    perspective: float = 0.06
    """Largest displacement of each frame corner, as a fraction of the side (a tilted camera)."""
    exposure: float = 0.35
    """Largest relative change of brightness either way."""
    contrast: float = 0.3
    gamma: tuple[float, float] = (0.7, 1.45)
    white_balance: float = 0.15
    """Largest relative change of each colour channel's gain."""
    saturation: tuple[float, float] = (0.4, 1.4)
    hue_prob: float = 0.4
    """Share of variants whose item alone changes hue (the same garment in another colour)."""
    gradient: float = 0.35
    """Largest light fall-off across the frame (0.35: one side up to 35% darker)."""
    shadow_prob: float = 0.25
    blur_prob: float = 0.3
    blur_sigma: float = 1.0
    """Largest Gaussian blur, in pixels of the 128-px working copy."""
    noise_std: float = 5.0
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (25, 90)
    own_masks: bool = True
    """Cut the item out with the photo's own mask where its folder has one (the street crops' masks),
    rather than with the mask the preprocessing finds."""
    partial_prob: float = 0.0
    """Share of variants that show only the top or the bottom part (35-60% of its height) of the
    item, the rest painted out, labelled as no class: half a garment is not a garment (the top of
    trousers looks like shorts, the bottom of a dress like a skirt), so the camera should be unsure."""


DEFAULT_PHOTO_AUGMENT = PhotoAugmentConfig()


@dataclass
class Source:
    """One photo ready to augment: the image, the item's mask at full size, a background plate."""
    image: np.ndarray
    mask: np.ndarray | None
    """float32 [H,W] 0..1 (feathered), None where the preprocessing found no item."""
    plate: np.ndarray
    """The photo with its item painted out: a background for other photos' items."""


def item_mask(image: np.ndarray) -> np.ndarray | None:
    """The preprocessing's item mask for a BGR photo, at the photo's size and feathered; None if none."""
    small, _ = working_copy(image, DEFAULT_OPTIONS.work_side)
    mask = find_item(small, DEFAULT_OPTIONS)
    if mask is None or mask.mean() > 0.92:
        return None
    h, w = image.shape[:2]
    full = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(full, (5, 5), 0)


def background_plate(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The photo with the item painted out (inpainted on a small copy, so it stays fast)."""
    h, w = image.shape[:2]
    if mask is None:
        return image.copy()
    side = 64
    s = side / max(h, w)
    small = cv2.resize(image, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)
    hole = cv2.resize((mask > 0.2).astype(np.uint8), small.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    hole = cv2.dilate(hole, np.ones((5, 5), np.uint8))
    filled = cv2.inpaint(small, hole, 5, cv2.INPAINT_TELEA)
    return cv2.resize(filled, (w, h), interpolation=cv2.INTER_CUBIC)


def given_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """A photo's own item mask (uint8, 255 = the item; a street crop's) at `size` (w, h), feathered as
    item_mask's; None when it marks nothing."""
    full = cv2.resize((mask > 127).astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(full, (5, 5), 0) if full.max() > 0.5 else None


def make_sources(images: list[np.ndarray], masks: list[np.ndarray | None] | None = None) -> list[Source]:
    """Each photo at the preprocessing's working size (DEFAULT_OPTIONS.work_side: what it looks at
    anyway), with its item's mask (its own where `masks` has one, else the preprocessing's) and
    background plate."""
    sources = []
    for i, photo in enumerate(images):
        image, _ = working_copy(photo, DEFAULT_OPTIONS.work_side)
        own = masks[i] if masks is not None else None
        mask = given_mask(own, image.shape[1::-1]) if own is not None else item_mask(image)
        sources.append(Source(image, mask, background_plate(image, mask)))
    return sources


def synthetic_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A floor, table, bed sheet or wall: a colour, a light gradient, low-frequency blotches, texture."""
    if rng.random() < 0.5:  # pale (paper, sheets, tiles) or anything at all
        base = rng.uniform(150, 255, 3)
    else:
        base = rng.uniform(0, 255, 3)
    if rng.random() < 0.5:  # mostly grey-ish, as walls and floors are
        base = base.mean() + (base - base.mean()) * rng.uniform(0.0, 0.5)
    bg = np.broadcast_to(base, (h, w, 3)).astype(np.float32).copy()
    coarse = rng.normal(0, rng.uniform(2, 18), (rng.integers(2, 6), rng.integers(2, 6), 1))
    bg += cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    kind = rng.random()
    if kind < 0.25:  # wood grain or stripes
        period = rng.uniform(4, 30)
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period * 2 * np.pi
        wobble = rng.uniform(0, 3) * np.sin(yy / rng.uniform(10, 60))
        bg += (rng.uniform(4, 25) * np.sin(phase + wobble))[..., None] * rng.uniform(0.6, 1.0, 3)
    elif kind < 0.4:  # a checked or tiled pattern
        cell = int(rng.integers(6, 40))
        yy, xx = np.mgrid[0:h, 0:w]
        check = ((yy // cell + xx // cell) % 2).astype(np.float32) * 2 - 1
        bg += (rng.uniform(5, 30) * check)[..., None] * rng.uniform(0.5, 1.0, 3)
    elif kind < 0.6:  # fabric or carpet grain
        grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), rng.uniform(0.6, 2.0))
        bg += (grain * rng.uniform(5, 25))[..., None]
    return np.clip(bg, 0, 255)


def _warp(rng: np.random.Generator, cfg: PhotoAugmentConfig, h: int, w: int, strength: float = 1.0) -> np.ndarray:
    """A 3x3 homography: scale, rotation, shift and a perspective tilt about the frame's centre."""
    scale = np.exp(rng.uniform(np.log(cfg.min_scale), np.log(cfg.max_scale)) * strength)
    angle = np.deg2rad(rng.uniform(-1, 1) * cfg.rotation_deg * strength)
    cx, cy = w / 2, h / 2
    dx, dy = rng.uniform(-1, 1, 2) * cfg.shift * strength * np.array([w, h])
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    affine = np.array([[cos, -sin, cx - cos * cx + sin * cy + dx],
                       [sin, cos, cy - sin * cx - cos * cy + dy], [0, 0, 1]])
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-1, 1, (4, 2)).astype(np.float32) * cfg.perspective * strength * np.float32([w, h])
    return cv2.getPerspectiveTransform(src, dst) @ affine


def _hue_shift(image: np.ndarray, weight: np.ndarray, shift: float, saturation: float) -> np.ndarray:
    hsv = cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + shift) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 255)
    changed = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    return image + (changed - image) * weight[..., None]


def augment_photo(source: Source, rng: np.random.Generator, cfg: PhotoAugmentConfig = DEFAULT_PHOTO_AUGMENT,
                  plates: list[np.ndarray] | None = None) -> np.ndarray:
    """One new uint8 BGR frame of the same item: placed, lit, then seen by a camera."""
    return _through_camera(_lit(_placed(source, rng, cfg, plates), rng, cfg), rng, cfg)


def _placed(source: Source, rng: np.random.Generator, cfg: PhotoAugmentConfig,
            plates: list[np.ndarray] | None) -> np.ndarray:
    """The item moved on its own background (painted out), another photo's or a made one; float32."""
    image = source.image.astype(np.float32)
    h, w = image.shape[:2]
    mask = source.mask
    if mask is None:  # no item found: the whole frame moved a little, its border reflected
        return cv2.warpPerspective(image, _warp(rng, cfg, h, w, 0.3), (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < cfg.hue_prob:  # the same garment in another colour
        image = _hue_shift(image, mask, rng.uniform(0, 180), rng.uniform(0.5, 1.5))
    if rng.random() >= cfg.background_prob:
        bg = source.plate.astype(np.float32)
    elif plates and rng.random() < cfg.other_photo_background:
        plate = plates[rng.integers(len(plates))]
        if rng.random() < 0.5:
            plate = plate[:, ::-1]
        bg = cv2.resize(plate, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    else:
        bg = synthetic_background(rng, h, w)
    homography = _warp(rng, cfg, h, w)
    item = cv2.warpPerspective(image, homography, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    alpha = cv2.warpPerspective(mask, homography, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
    return item * alpha + bg * (1 - alpha)


def _lit(frame: np.ndarray, rng: np.random.Generator, cfg: PhotoAugmentConfig) -> np.ndarray:
    """Exposure, contrast, white balance, saturation, a light gradient, a shadow, gamma; float32."""
    h, w = frame.shape[:2]
    frame = frame.astype(np.float32) * np.float32(1 + rng.uniform(-1, 1) * cfg.exposure)
    mean = frame.mean()
    frame = (frame - mean) * np.float32(1 + rng.uniform(-1, 1) * cfg.contrast) + mean
    frame = frame * (1 + rng.uniform(-1, 1, 3) * cfg.white_balance).astype(np.float32)
    grey = frame.mean(axis=2, keepdims=True)
    frame = grey + (frame - grey) * np.float32(rng.uniform(*cfg.saturation))
    if cfg.gradient:
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = ((xx / w - 0.5) * np.cos(angle) + (yy / h - 0.5) * np.sin(angle)) + 0.5
        frame = frame * (1 - np.float32(rng.uniform(0, cfg.gradient)) * ramp)[..., None]
    if rng.random() < cfg.shadow_prob:
        pts = (rng.uniform(0, 1, (int(rng.integers(3, 6)), 2)) * [w, h]).astype(np.int32)
        shade = np.zeros((h, w), np.float32)
        cv2.fillPoly(shade, [cv2.convexHull(pts)], 1.0)
        shade = cv2.GaussianBlur(shade, (0, 0), max(h, w) / 25)
        frame = frame * (1 - np.float32(rng.uniform(0.2, 0.5)) * shade)[..., None]
    gamma = (255.0 * (np.arange(256) / 255.0) ** rng.uniform(*cfg.gamma)).astype(np.uint8)
    return cv2.LUT(np.clip(frame, 0, 255).astype(np.uint8), gamma).astype(np.float32)


def _through_camera(frame: np.ndarray, rng: np.random.Generator, cfg: PhotoAugmentConfig) -> np.ndarray:
    """Blur, sensor noise and JPEG; uint8."""
    if rng.random() < cfg.blur_prob:
        frame = cv2.GaussianBlur(frame, (0, 0), rng.uniform(0.3, cfg.blur_sigma))
    frame += rng.standard_normal(frame.shape, dtype=np.float32) * rng.uniform(0, cfg.noise_std)
    out = np.clip(frame, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg_prob:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*cfg.jpeg_quality))])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else out
    return out


def partial_source(source: Source, rng: np.random.Generator) -> Source:
    """The same photo with only the top or the bottom 35-60% of the item left, the rest painted out."""
    ys = np.nonzero(source.mask.max(axis=1) > 0.5)[0]
    y0, y1 = ys.min(), ys.max() + 1
    cut = round((y1 - y0) * rng.uniform(0.35, 0.6))
    band = np.zeros_like(source.mask)
    if rng.random() < 0.5:
        band[y0 : y0 + cut] = 1.0
    else:
        band[y1 - cut : y1] = 1.0
    mask = source.mask * cv2.GaussianBlur(band, (5, 5), 0)
    image = source.image * mask[..., None] + source.plate * (1 - mask[..., None])
    return Source(np.clip(image, 0, 255).astype(np.uint8), mask, source.plate)


def photo_bank(images: Sequence[np.ndarray], variants: int, seed: int = 0,
               cfg: PhotoAugmentConfig = DEFAULT_PHOTO_AUGMENT,
               masks: Sequence[np.ndarray | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [len(images) * variants, 28, 28, 1], bool [len(images) * variants]): `variants` frames
    of each photo, each through the camera's preprocessing, and which of them are partial views
    (cfg.partial_prob; no class fits those). Photo i's are rows i*variants .. (i+1)*variants-1, the
    first of them the photo as it is and the rest augmented. `masks` are the photos' own item masks
    where they have one (street crops: the item cut out exactly, not as the preprocessing finds it).
    Each photo is taken once, in order (image i, then mask i), and only its working copy is kept: a
    sequence that reads its files as it is indexed (cached_photo_bank's) never holds two full-size photos."""
    start = time.perf_counter()
    out = np.zeros((len(images) * variants, 28, 28, 1), np.uint8)
    partial = np.zeros(len(images) * variants, bool)
    sources = []
    for i, image in enumerate(images):
        sources += make_sources([image], None if masks is None else [masks[i]])
        if variants:
            out[i * variants] = preprocess_frame(image).image  # variant 0: the photo as it is
    plates = [s.plate for s in sources if s.mask is not None]
    for i, source in enumerate(sources):
        for v in range(1, variants):
            pick = np.random.default_rng([seed, i, v, 1])  # its own stream: the other variants stay as they were
            row = i * variants + v
            partial[row] = source.mask is not None and pick.random() < cfg.partial_prob
            shown = partial_source(source, pick) if partial[row] else source
            out[row] = preprocess_frame(augment_photo(shown, np.random.default_rng([seed, i, v]), cfg, plates)).image
    log.info("made %d augmented photo frames (%d per photo, %d partial views) in %.0f s", len(out), variants,
             partial.sum(), time.perf_counter() - start)
    return out, partial


class PhotoFiles(Sequence):
    """Photo files (or, with `masks_of`, their own item masks), read as they are indexed, each checked as
    every photo is (images.read_photo, read_mask: one line for a missing, damaged or oversized file); a mask
    must be the size of the photo `masks_of` read last under its index."""

    def __init__(self, paths: Sequence, masks_of: PhotoFiles | None = None):
        self.paths, self.masks_of, self.shapes = list(paths), masks_of, {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        path = self.paths[i]
        if self.masks_of is None:
            image = read_photo(path)
            self.shapes = {i: image.shape}  # the one a mask is checked against next
            return image
        return None if path is None else read_mask(path, self.masks_of.shapes.get(i))


BANK_ENV = "FMNIST_EDGE_PHOTO_BANK"
"""Where cached_photo_bank keeps its banks, instead of ~/.cache/fmnist-edge/photo-bank."""


def cached_photo_bank(paths: list, variants: int, seed: int = 0, cfg: PhotoAugmentConfig = DEFAULT_PHOTO_AUGMENT,
                      mask_paths: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """photo_bank() of the photo files (and their own item masks, where `mask_paths` names one), kept in
    ~/.cache/fmnist-edge/photo-bank (or $FMNIST_EDGE_PHOTO_BANK) under a key of everything that makes
    it: the files' names, sizes and modification times, `variants`, `seed`, `cfg` and the source of this
    module and of the preprocessing. A cache that cannot be read is made again, one that cannot be written
    is skipped, each with a warning: the run goes on without it."""
    mask_paths = mask_paths if mask_paths and cfg.own_masks else [None] * len(paths)
    cached = _bank_folder() / f"{_bank_key(paths, mask_paths, variants, seed, cfg)}.npz"
    rows = len(paths) * variants
    try:
        with np.load(cached) as stored:
            frames, partial = stored["frames"], stored["partial"]
        if frames.shape == (rows, 28, 28, 1) and frames.dtype == np.uint8 and partial.shape == (rows,):
            log.info("augmented photo frames from %s", cached)
            return frames, partial.astype(bool)
        log.warning("%s: not the photo bank it is named after; making it again", cached)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("%s: unreadable (%s); making the photo bank again", cached, first_line(exc))
    photos = PhotoFiles(paths)
    masks = PhotoFiles(mask_paths, masks_of=photos)
    frames, partial = photo_bank(photos, variants, seed, cfg, masks if any(m is not None for m in mask_paths) else None)
    try:
        with atomic_path(cached) as tmp:  # two runs making the same bank: each file whole
            np.savez(tmp, frames=frames, partial=partial)
    except OSError as exc:
        log.warning("cannot keep the photo bank in %s (%s); the next run makes it again: set %s to a writable "
                    "folder", cached.parent, exc.strerror or first_line(exc), BANK_ENV)
    return frames, partial


def _bank_folder() -> Path:
    return Path(os.environ.get(BANK_ENV) or Path.home() / ".cache" / "fmnist-edge" / "photo-bank")


def _bank_key(paths: list, mask_paths: list, variants: int, seed: int, cfg: PhotoAugmentConfig) -> str:
    from edge_runtime.camera import preprocess

    key = hashlib.sha256()
    for path, mask in zip(paths, mask_paths, strict=True):
        key.update(f"{_stamp(path, read_photo)}\n".encode())
        if mask is not None:
            key.update(f"mask {_stamp(mask, read_mask)}\n".encode())
    key.update(f"{variants}:{seed}:{cfg!r}".encode())
    for module in (__file__, preprocess.__file__):
        key.update(Path(module).read_bytes())
    return key.hexdigest()[:24]


def _stamp(path, read) -> str:
    """The file's name, size and modification time; a file that is not there is the line its reader gives."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        read(path)  # raises the one line that names the problem
        raise
    return f"{path}:{info.st_size}:{info.st_mtime_ns}"
