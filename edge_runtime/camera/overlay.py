"""Drawing the result on the frame: label, score, top-3 bars, the model's input, FPS and latency."""

from __future__ import annotations

import cv2
import numpy as np

from edge_runtime.camera.smoothing import UNSURE, SmoothedLabel

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_GREEN, _AMBER, _WHITE, _BLACK = (60, 200, 60), (0, 170, 255), (255, 255, 255), (0, 0, 0)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color, thickness: int = 1) -> None:
    cv2.putText(img, text, org, _FONT, scale, _BLACK, thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, _FONT, scale, color, thickness, cv2.LINE_AA)


def draw(frame: np.ndarray, shown: SmoothedLabel, class_names: tuple[str, ...], model_input: np.ndarray,
         box: tuple[int, int, int, int] | None, fps: float, latency_ms: float) -> np.ndarray:
    """Annotate `frame` in place (BGR) and return it."""
    h, w = frame.shape[:2]
    unit = max(0.4, min(w, h) / 480)
    color = _AMBER if shown.label == UNSURE else _GREEN
    if box is not None:
        x, y, bw, bh = box
        cv2.rectangle(frame, (x, y), (x + bw, y + bh), color, max(1, int(2 * unit)))
    _text(frame, f"{shown.label} {shown.score:.2f}", (int(10 * unit), int(36 * unit)), 1.0 * unit, color, 2)
    _text(frame, f"{fps:5.1f} FPS  {latency_ms:5.2f} ms", (int(10 * unit), h - int(12 * unit)), 0.5 * unit, _WHITE)
    # Top-3 bars of the averaged probabilities.
    top = np.argsort(shown.probs)[::-1][:3]
    bar_w, bar_h = int(140 * unit), int(14 * unit)
    for row, cls in enumerate(top):
        y0 = int(50 * unit) + row * (bar_h + int(6 * unit))
        x0 = int(10 * unit)
        cv2.rectangle(frame, (x0, y0), (x0 + bar_w, y0 + bar_h), (60, 60, 60), -1)
        cv2.rectangle(frame, (x0, y0), (x0 + int(bar_w * float(shown.probs[cls])), y0 + bar_h), color, -1)
        _text(frame, f"{class_names[cls]} {shown.probs[cls]:.2f}", (x0 + bar_w + int(6 * unit), y0 + bar_h - 2),
              0.45 * unit, _WHITE)
    # What the model saw, so a user can tell a preprocessing miss from a model miss.
    side, margin = int(84 * unit), int(10 * unit)
    if h > side + 4 * margin and w > side + 2 * margin:
        thumb = cv2.resize(model_input.reshape(28, 28), (side, side), interpolation=cv2.INTER_NEAREST)
        frame[h - side - 3 * margin : h - 3 * margin, w - side - margin : w - margin] = thumb[..., None]
    return frame
