"""`camera --collect DIR`: keep frames for a person to label (`fmnist-edge label DIR`) and a model to learn
from (`train --photos DIR --photo-split all`).

DIR becomes a photo folder in the format of ../shared/real-photos: labels.csv (path, photo_class,
fashion_mnist_classes, and what the model said: predicted, class_id, score, model_input, box, frame,
time, source) with the photo class "unlabelled" until someone labels it; frames/NNNNNN.jpg (the
frame, longest side 256 px) and frames/NNNNNN.png (the 28x28 image the model saw).

What is kept (`--collect-when`): `unsure` (the default) keeps frames where an item is in view and the
frame's own best probability is below `--min-score`, at most one per item in view (an item is new when
the view was empty, or when its box hardly overlaps the last frame's: someone swapped the shirt for a
coat); `all` keeps frames with an item in view; `every:N` every Nth frame. Never more than one per `--collect-interval`
seconds, never more than `--collect-max` in the folder, so a day of running cannot fill an SD card. The
camera's web page can also ask for the current frame (its "save frame" button).

Files are written by a background thread (an SD card's fsync can take tens of milliseconds; the camera
does not wait for it), each image first and atomically, then labels.csv rewritten atomically: a power
cut leaves a readable folder. Each frame is added under the folder's lock (`.labels.lock`, as the labelling
page takes it): the table on disk is read again and only the new row added, so `fmnist-edge label DIR` can
label the same folder while the camera collects into it, and neither loses what the other wrote.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.camera.pipeline import FrameResult
from edge_runtime.camera.preprocess import working_copy
from edge_runtime.camera.sinks.base import Reply, Sink, StreamInfo
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.files import locked, stale_temps_in, write_bytes_atomic
from edge_runtime.data import photos

log = logging.getLogger(__name__)

LONGEST_SIDE = 256
NEW_ITEM_OVERLAP = 0.3
"""Intersection over union below which an item's box is another item's (a hand-held camera's drift
keeps one item's boxes far above it)."""
NEW_ITEM_CHANGE = 20.0
"""Mean absolute difference (0..255) between two frames' 28x28 model inputs above which they show
different items, also where one was put down where the other lay. Measured on the synthetic video:
one item's frames differ by 17 at most, different items' by 25 at least; a spurious "new item" costs one
more kept frame, a missed one a lost frame, so the bound leans low."""
PENDING = 8
"""Frames waiting for the writer; more are skipped (and counted), never waited for."""


def parse_when(value: str) -> tuple[str, int]:
    """`unsure`, `all` or `every:N` -> (mode, N)."""
    mode, _, n = value.partition(":")
    if mode in ("unsure", "all") and not n:
        return mode, 0
    if mode == "every" and n.isascii() and n.isdigit() and int(n) >= 1:  # "²".isdigit() is True
        return mode, int(n)
    raise FmnistEdgeError(f"--collect-when {value!r}: give unsure, all or every:N (N >= 1)")


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two x, y, w, h boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _jpeg(image: np.ndarray) -> bytes:
    small, _ = working_copy(image, LONGEST_SIDE)
    return cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


class CollectorSink(Sink):
    def __init__(self, folder: str, when: str = "unsure", max_frames: int = 500, interval: float = 0.5,
                 min_score: float = 0.6):
        self.folder = Path(folder)
        self.min_score = min_score
        self.mode, self.every = parse_when(when)
        self.max_frames, self.interval = max_frames, interval
        self.saved = self.skipped = 0
        self._claimed = 0
        """Frames in the folder or on their way to it: what --collect-max bounds."""
        self._pending: queue.Queue = queue.Queue(PENDING)
        self._asked = threading.Event()
        self._episode_saved = False
        self._last_box: tuple[int, int, int, int] | None = None
        self._last_seen: np.ndarray | None = None
        self._last_save = -float("inf")
        self._source = ""
        self._names: tuple[str, ...] = ()

    def start(self, stream: StreamInfo) -> None:
        try:
            (self.folder / "frames").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FmnistEdgeError(f"--collect {self.folder}: cannot make the folder ({exc.strerror})") from None
        if self.max_frames > photos.MAX_ROWS:
            raise FmnistEdgeError(f"--collect-max {self.max_frames}: a photo folder holds at most {photos.MAX_ROWS}")
        self._table = photos.Table(self.folder, missing_ok=True)  # a folder collected before: add to it
        self._claimed = len(self._table.rows)
        with locked(self.folder / photos.LOCK):  # every frame is written under it: these are a killed writer's
            for stale in stale_temps_in(self.folder / "frames"):
                stale.unlink(missing_ok=True)
        self._source = stream.source.translate({10: " ", 13: " ", 0: " "})  # one row per line in the table
        self._names = stream.class_names
        stream.outlets.route("POST", "/save", self._save_route)  # the camera page's Save frame button
        stream.outlets.state.append(lambda: {"collected": self.saved})
        self._writer = threading.Thread(target=self._write_loop, name="collect", daemon=True)
        self._writer.start()

    def ask(self) -> None:
        """Keep the next frame whatever the rule (the web page's button)."""
        self._asked.set()

    def _save_route(self) -> Reply:
        self.ask()
        return Reply(b'{"saving": true}', "application/json", 202)

    @property
    def full(self) -> bool:
        return self._claimed >= self.max_frames

    def _new_item(self, box: tuple[int, int, int, int] | None, seen: np.ndarray) -> bool:
        """Did another item come into view: after an empty view, elsewhere, or looking different?"""
        last, last_seen = self._last_box, self._last_seen
        self._last_box, self._last_seen = box, seen
        if box is None:
            return False
        if last is None:
            return True
        change = float(np.abs(seen.astype(np.int16) - last_seen).mean())
        return overlap(box, last) < NEW_ITEM_OVERLAP or change > NEW_ITEM_CHANGE

    def _wanted(self, result: FrameResult) -> bool:
        if self._new_item(result.prepared.box, result.prepared.image):
            self._episode_saved = False
        if self._asked.is_set():
            self._asked.clear()
            return True
        if time.monotonic() - self._last_save < self.interval:
            return False
        if self.mode == "every":
            return result.frame.index % self.every == 0
        if self.mode == "all":
            return result.found
        return result.found and result.score < self.min_score and not self._episode_saved

    def consume(self, result: FrameResult) -> None:
        if self.full or not self._wanted(result):
            return
        try:
            self._pending.put_nowait(result)
        except queue.Full:
            self.skipped += 1
            return
        self._claimed += 1
        self._episode_saved = True
        self._last_save = time.monotonic()

    def _row(self, result: FrameResult, name: str) -> dict[str, str]:
        return {"path": f"frames/{name}.jpg", "photo_class": photos.UNLABELLED, "fashion_mnist_classes": "",
                "predicted": self._names[result.class_id], "class_id": str(result.class_id),
                "score": f"{result.score:.4f}", "model_input": f"frames/{name}.png",
                "box": " ".join(map(str, result.prepared.box)) if result.found else "",
                "frame": str(result.frame.index), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "source": self._source}

    def _write(self, result: FrameResult) -> None:
        jpeg = _jpeg(result.frame.image)
        png = cv2.imencode(".png", result.prepared.image[..., 0])[1].tobytes()
        count = self._table.update(lambda rows: self._add(rows, result, jpeg, png))
        if count is None:
            return
        self.saved += 1
        if count == self.max_frames:
            log.warning("collected %d frames in %s, as many as --collect-max allows; label them with "
                        "`fmnist-edge label %s`", count, self.folder, self.folder)

    def _add(self, rows: list[dict[str, str]], result: FrameResult, jpeg: bytes, png: bytes) -> int | None:
        """Under the folder's lock, on the table as it is on disk: the frame's two images under a name nobody
        has (never overwrite what is there), then its row. None if the folder is full (another writer)."""
        if len(rows) >= self.max_frames:
            return None
        taken = {name for row in rows for name in (row["path"], row.get("model_input", ""))}
        number = len(rows)
        while any(f"frames/{number:06d}{ext}" in taken or (self.folder / "frames" / f"{number:06d}{ext}").exists()
                  for ext in (".jpg", ".png")):
            number += 1
        name = f"{number:06d}"
        write_bytes_atomic(self.folder / "frames" / f"{name}.jpg", jpeg)
        write_bytes_atomic(self.folder / "frames" / f"{name}.png", png)
        rows.append(self._row(result, name))
        return len(rows)

    def _write_loop(self) -> None:
        while (result := self._pending.get()) is not None:
            try:
                self._write(result)
            except FmnistEdgeError as exc:  # a full card, a folder gone: say it once, keep the camera going
                log.warning("--collect: %s; collecting stopped", exc)
                self.max_frames = 0
            finally:
                self._pending.task_done()

    def stop(self, summary) -> None:
        try:
            self._pending.put(None, timeout=30)  # after every frame already waiting
        except queue.Full:
            log.warning("--collect: the writer did not finish in 30 s; frames may be missing")
        self._writer.join(timeout=30)
        if self.saved or self.skipped:
            log.info("collected %d frames into %s%s", self.saved, self.folder,
                     f" ({self.skipped} skipped: the writer was busy)" if self.skipped else "")
