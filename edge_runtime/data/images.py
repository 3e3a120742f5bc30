"""Image files as the camera's preprocessing takes them: any format OpenCV reads, grey, colour or with
alpha, 8 or 16 bits, of at most image_size.max_pixels() pixels, which the file's header must show before
anything is decoded. A file that cannot be read is None (read_image) or one FmnistEdgeError line naming
the file and the problem (read_photo, read_mask), never a traceback or a decode that eats the memory."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.core.errors import FmnistEdgeError, first_line
from edge_runtime.core.image_size import (BYTES_PER_PIXEL, MAX_PIXELS_ENV, header_size, jpeg_truncated, max_pixels,
                                          over_limit)

log = logging.getLogger(__name__)

READ_ERRORS = {False: "no such file", True: "not an image OpenCV can read"}
"""Why an image could not be read, by whether the path exists."""


FIXES = {"photo": "fix or remove its row in labels.csv", "mask": "fix or clear the mask in its labels.csv row"}
"""What to do about an unreadable file, by what it is; an image given by hand: check the file."""


class ImageTooLarge(FmnistEdgeError):
    """An image file over the pixel limit (or a file over the size any image within it takes)."""


def read_image(path: str | Path) -> np.ndarray | None:
    """Any image file OpenCV reads, as 8-bit pixels (grey, BGR or BGRA as on disk); None if unreadable
    (and a warning when it is over the size limit)."""
    return read_image_or_why(path)[0]


def read_image_or_why(path: str | Path) -> tuple[np.ndarray | None, str]:
    """(the image as read_image reads it, "") or (None, why not: no such file, over the pixel limit as its
    header says, or not an image OpenCV can read)."""
    try:
        image = decode_file(path, cv2.IMREAD_UNCHANGED, "image")
    except ImageTooLarge as exc:
        log.warning("%s", exc)
        return None, str(exc).removeprefix(f"{path}: ")
    except FmnistEdgeError:
        return None, READ_ERRORS[Path(path).exists()]
    if image.dtype != np.uint8:  # 16-bit PNGs and the like
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
    return image, ""


def read_photo(path: str | Path) -> np.ndarray:
    """A photo file as a BGR image; a missing, damaged or oversized one is one FmnistEdgeError line."""
    return decode_file(path, cv2.IMREAD_COLOR, "photo")


def read_mask(path: str | Path, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A photo's item mask (grey, 255 = the item); a missing, damaged or oversized one is one FmnistEdgeError
    line, and so is one whose size is not `shape`'s (its photo's) where given."""
    mask = decode_file(path, cv2.IMREAD_GRAYSCALE, "mask")
    if shape is not None and mask.shape[:2] != tuple(shape[:2]):
        raise FmnistEdgeError(f"{path}: a {mask.shape[1]}x{mask.shape[0]} mask for a {shape[1]}x{shape[0]} "
                              "photo; a mask must be its photo's size, pixel for pixel: fix it or remove it from "
                              "its labels.csv row")
    return mask


def decode_file(path: str | Path, flags: int, what: str = "image") -> np.ndarray:
    """The image file at `path` decoded with OpenCV `flags`, once its header shows a size within the limit.
    A missing, empty, damaged, truncated or oversized file is one FmnistEdgeError line naming it (`what`
    it is, and the fix); over the limit it is an ImageTooLarge."""
    raw = _file_bytes(Path(path), what)
    try:
        size = header_size(raw)
    except ValueError as exc:
        raise _unreadable(path, what, str(exc)) from None
    if problem := over_limit(size):
        raise ImageTooLarge(f"{path}: {problem}; downscale the {what} (the model sees 28x28), or raise the limit")
    if jpeg_truncated(raw):
        raise _unreadable(path, what, "a JPEG cut short: no end marker")
    try:
        image = cv2.imdecode(np.frombuffer(raw, np.uint8), flags)
    except cv2.error as exc:  # OpenCV's own limits (OPENCV_IO_MAX_IMAGE_PIXELS), for formats not sized above
        if "CV_IO_MAX_IMAGE" in str(exc):
            raise ImageTooLarge(f"{path}: over OpenCV's size limit (OPENCV_IO_MAX_IMAGE_PIXELS, which fmnist-edge "
                                f"sets to {MAX_PIXELS_ENV}); downscale the {what}") from None
        raise _unreadable(path, what, first_line(exc)) from None
    if image is None:
        raise _unreadable(path, what, READ_ERRORS[True])
    return image


def _file_bytes(path: Path, what: str) -> bytes:
    """The file's bytes, refusing before reading a missing path, a folder, a device, an empty file or one larger
    than any image within the pixel limit takes."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            problem = "a folder, not a file" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        elif info.st_size == 0:
            problem = "an empty file"
        elif info.st_size > max_pixels() * BYTES_PER_PIXEL:
            raise ImageTooLarge(f"{path}: {info.st_size >> 20} MB, more than any image within the limit of "
                                f"{max_pixels():,} pixels ({MAX_PIXELS_ENV}) takes; downscale the {what}")
        else:
            return path.read_bytes()
    except FileNotFoundError:
        problem = READ_ERRORS[False]
    except (OSError, ValueError) as exc:  # a permission, a name too long, a NUL byte in it
        problem = getattr(exc, "strerror", None) or first_line(exc)
    raise _unreadable(path, what, problem)


def _unreadable(path: str | Path, what: str, problem: str) -> FmnistEdgeError:
    return FmnistEdgeError(f"{path}: unreadable {what} ({problem}); {FIXES.get(what, 'check the file')}")
