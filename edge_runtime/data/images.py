"""Image files as the camera's preprocessing takes them: any format OpenCV reads, grey, colour or with
alpha, 8 or 16 bits; a file that cannot be read is None (or one line), never a traceback."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge_runtime.core.errors import FmnistEdgeError

READ_ERRORS = {False: "no such file", True: "not an image OpenCV can read"}
"""Why an image could not be read, by whether the path exists."""


def read_image(path: str | Path) -> np.ndarray | None:
    """Any image file OpenCV reads, as 8-bit pixels (grey, BGR or BGRA as on disk); None if unreadable."""
    if not Path(path).is_file():
        return None
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is not None and image.dtype != np.uint8:  # 16-bit PNGs and the like
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
    return image


def read_photo(path: str | Path) -> np.ndarray:
    """A photo file as a BGR image; a missing or damaged one is one FmnistEdgeError line."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FmnistEdgeError(f"{path}: unreadable photo")
    return image


def read_mask(path: str | Path) -> np.ndarray:
    """A photo's item mask (grey, 255 = the item); a missing or damaged one is one FmnistEdgeError line."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FmnistEdgeError(f"{path}: unreadable mask")
    return mask
