"""`camera --reuse-still`: a frame that shows what the last preprocessed frame showed gets its result.

A camera in a corner looks at the same scene for seconds at a time, and each of those frames costs a
full preprocessing (about 0.7 ms here, several times that on a Pi core) to find the same item again.
This gate compares a nearest-pixel sample of each frame (at most 160 px a side: every 4th pixel of a
640x480 frame, about 0.03 ms with the comparison) with the sample of the frame last preprocessed, and
reuses that frame's result while the two are the same scene:

- fewer than `share` of the sampled values (each channel of each sampled pixel) moved by more than
  `level` grey levels (sensor noise of a few levels never does; an item coming, going or moving does);
- for at most `max_age` frames in a row (half a second at 30 fps), so a change the sample misses is
  seen within that;
- the same frame size.

The camera's per-frame step (camera.pipeline.FrameStep) then also gives the model's answer to that result
again instead of running the model on the same input.

The comparison is always with the frame that was preprocessed, not the previous one, so a slow drift
adds up and is seen. What it costs: on a hand-held camera (the benchmark's video drifts 2 px a frame)
about a quarter of the frames are reused and the model's answer differs from a fresh preprocessing on
about 1 frame in 100; on a still camera most frames are reused. Measured in
docs/experiments/cheaper-preprocessing.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge_runtime.camera.preprocess import PreparedFrame, preprocess_frame


@dataclass(frozen=True)
class StillOptions:
    sample_side: int = 160
    """Longest side, in pixels, of the nearest-pixel sample compared."""
    level: int = 32
    """Grey levels a sampled value must move by to count as changed."""
    share: float = 0.005
    """The scene is the same while fewer than this share of the sampled values changed."""
    max_age: int = 15
    """Frames in a row a result is reused at most before the next frame is preprocessed anyway."""


def sample(image: np.ndarray, side: int) -> np.ndarray:
    """Every n-th pixel of the frame, its longest side at most `side` (cheap: no averaging)."""
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_NEAREST)


def changed_share(a: np.ndarray, b: np.ndarray, level: int) -> float:
    """Share of the values of two same-shape uint8 images that differ by more than `level`."""
    diff = cv2.absdiff(a, b).reshape(a.shape[0], -1)
    return cv2.countNonZero(cv2.compare(diff, level, cv2.CMP_GT)) / diff.size


class StillScene:
    """Preprocesses a frame, or gives the result of the frame last preprocessed when the scene is the same."""

    def __init__(self, prepare: Callable[..., PreparedFrame] = preprocess_frame, opts: StillOptions = StillOptions()):
        self.prepare = prepare
        self.opts = opts
        self._sample: np.ndarray | None = None
        self._shape: tuple[int, ...] = ()
        self._result: PreparedFrame | None = None
        self._age = 0

    def __call__(self, image: np.ndarray, roi: tuple[int, int, int, int] | None = None) -> tuple[PreparedFrame, bool]:
        """(the frame's result, whether it was reused)."""
        comparable = (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.size and image.ndim in (2, 3)
                      and (image.ndim == 2 or image.shape[2] in (1, 3, 4)))
        now = sample(image, self.opts.sample_side) if comparable else None  # else preprocessing says what is wrong
        if (now is not None and self._sample is not None and self._result is not None and self._age < self.opts.max_age
                and image.shape == self._shape and changed_share(now, self._sample, self.opts.level) < self.opts.share):
            self._age += 1
            return self._result, True
        result = self.prepare(image, roi)
        self._sample, self._shape, self._result, self._age = now, getattr(image, "shape", ()), result, 0
        return result, False
