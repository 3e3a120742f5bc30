"""Camera-like frames and videos made from Fashion-MNIST images, for tests, demos and benchmarks.

Each item is drawn as a camera would see it: a darker, coloured item on lighter paper with a
lighting gradient and texture, off-centre, scaled up, blurred and noisy. Videos hold each item
for a few frames, with a little hand-held drift, so the camera loop has something real to track.

    python -m toolkit.synthetic --out sample.mp4 [--items 40] [--frames-per-item 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.camera.video import AtomicVideoWriter


def render_frame(item: np.ndarray, frame_size: tuple[int, int] = (480, 640), item_side: int = 240,
                 centre: tuple[int, int] = (380, 200), seed: int = 0, blur: float = 1.2,
                 noise: float = 4.0) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """A BGR frame (height, width = frame_size) showing `item` (a 28x28 Fashion-MNIST image), and the
    item's true box (x, y, w, h), None for an empty item."""
    rng = np.random.default_rng(seed)
    cv2.setRNGSeed(int(rng.integers(1 << 31)))  # OpenCV's Gaussian noise: four times numpy's speed, as seeded
    h, w = frame_size
    gradient = np.linspace(0, 25, w, dtype=np.float32)[None, :] + np.linspace(0, 15, h, dtype=np.float32)[:, None]
    paper = 200 + gradient + cv2.randn(np.empty((h, w), np.float32), 0.0, 2.0)
    frame = cv2.merge([paper * 0.92, paper * 0.97, paper])
    big = cv2.resize(item.reshape(28, 28), (item_side, item_side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    x0, y0 = centre[0] - item_side // 2, centre[1] - item_side // 2
    # Only the part of the item inside the frame is drawn.
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x0 + item_side), min(h, y0 + item_side)
    crop = big[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    alpha = np.clip(crop / 40.0, 0, 1)[..., None]  # the item covers the paper where Fashion-MNIST is lit
    cloth = (255 - crop)[..., None] * np.array([0.55, 0.6, 0.7], np.float32)  # darker and coloured
    frame[fy0:fy1, fx0:fx1] = frame[fy0:fy1, fx0:fx1] * (1 - alpha) + cloth * alpha
    sensor = cv2.randn(np.empty(frame.shape, np.float32), (0.0,) * 3, (noise,) * 3)  # each channel its own noise
    frame = cv2.GaussianBlur(frame, (0, 0), blur) + sensor
    ys, xs = np.nonzero(crop > 40)
    box = (fx0 + xs.min(), fy0 + ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) if len(xs) else None
    return np.clip(frame, 0, 255).astype(np.uint8), box


def write_video(path: str | Path, items: np.ndarray, frames_per_item: int = 8, size: tuple[int, int] = (480, 640),
                fps: float = 30.0, seed: int = 0, hand_held: bool = True) -> list[int]:
    """Write an .mp4 (or .avi) of `items` as a camera sees them; returns each frame's item index. A hand-held
    camera drifts 2 px a frame across and 1 down; otherwise (a camera on a stand) only the sensor noise changes."""
    h, w = size
    rng = np.random.default_rng(seed)
    writer = AtomicVideoWriter(path, fps, (w, h))
    which = []
    try:
        for index, item in enumerate(items):
            side = int(min(h, w) * rng.uniform(0.45, 0.75))
            cx = int(rng.uniform(side / 2 + 10, w - side / 2 - 10))
            cy = int(rng.uniform(side / 2 + 10, h - side / 2 - 10))
            for k in range(frames_per_item):
                centre = (cx + 2 * k, cy + k) if hand_held else (cx, cy)
                frame, _ = render_frame(item, size, side, centre, seed=seed * 100_003 + index * 101 + k)
                writer.write(frame)
                which.append(index)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return which


def main() -> None:
    from edge_runtime.data import fashion_mnist as data

    parser = argparse.ArgumentParser(description="Write a camera-like video of Fashion-MNIST test images.")
    parser.add_argument("--out", required=True, help="the .mp4 or .avi to write")
    parser.add_argument("--items", type=int, default=40, help="how many test images (the first N)")
    parser.add_argument("--frames-per-item", type=int, default=8)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    images, labels = data.load_split("test", args.data_dir, limit=args.items)
    write_video(args.out, images[..., 0], args.frames_per_item, (args.height, args.width))
    Path(args.out).with_suffix(".labels.txt").write_text(
        "".join(f"{int(labels[i])}\n" for i in range(len(images)) for _ in range(args.frames_per_item)))
    print(f"wrote {args.out}: {len(images) * args.frames_per_item} frames; true classes in "
          f"{Path(args.out).with_suffix('.labels.txt')}")


if __name__ == "__main__":
    main()
