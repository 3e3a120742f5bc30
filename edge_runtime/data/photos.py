"""Folders of real photos with Fashion-MNIST labels (../shared/real-photos, or what `camera --collect`
writes): reading and writing their table, and a fixed split.

Each photo belongs to the "tune" half (which training may use) or the "held-out" half (which only
measures), decided by a hash of its path, so every tool and every run agrees on the split and no
result is reported on a photo that training saw. NumPy and OpenCV only.

labels.csv columns: path, photo_class, fashion_mnist_classes (space-separated acceptable class
ids; empty for items no Fashion-MNIST class fits: hats, shorts, skirts), and any others a tool adds
(`camera --collect` adds what the model said). Frames collected and not labelled yet have the photo
class "unlabelled"; readers skip them.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.camera.preprocess import preprocess_frame
from edge_runtime.core.contract import NUM_CLASSES
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.files import write_text_atomic
from edge_runtime.data.images import read_photo

SCORED_AFTER: dict[str, str | None] = {"tune": "held-out", "held-out": "tune", "all": None, "tune-a": "tune-b",
                                       "tune-b": "tune-a"}
"""The splits a run can train on (`train --photo-split`) and the photos scored after it: never one it trained on."""
SPLITS = tuple(SCORED_AFTER)
"""tune-a and tune-b halve the tune half by a second byte of the same hash, so a recipe can be
chosen on photos that are neither trained on nor held out (train on tune-a, compare on tune-b)."""
LABELS = "labels.csv"
COLUMNS = ("path", "photo_class", "fashion_mnist_classes")
UNLABELLED = "unlabelled"
"""The photo class of a collected frame nobody has labelled yet."""
NONE_OF_THESE = "none"
"""The photo class a labeller gives an item no Fashion-MNIST class fits (an out-of-distribution photo)."""


@dataclass(frozen=True)
class Photo:
    path: Path
    photo_class: str
    accepted: frozenset[int]
    """Fashion-MNIST classes that count as right; empty for out-of-distribution items."""
    source: str = ""
    """Where the photo came from: the table's `source` column, else the folder's name."""
    key: str = ""
    """What decides its split (split_key); photos with the same key are always in the same split."""
    mask: Path | None = None
    """A pixel mask of the item (255 = the item), where the table's `mask` column names one."""

    @property
    def split(self) -> str:
        return "tune" if self._digest[0] % 2 == 0 else "held-out"

    @property
    def tune_half(self) -> str | None:
        """"tune-a" or "tune-b" for a tune photo, None for a held-out one."""
        if self.split != "tune":
            return None
        return "tune-a" if self._digest[1] % 2 == 0 else "tune-b"

    def in_split(self, split: str) -> bool:
        return split == "all" or (self.tune_half if split in ("tune-a", "tune-b") else self.split) == split

    @property
    def _digest(self) -> bytes:
        return hashlib.sha256((self.key or f"{self.photo_class}/{self.path.name}").encode()).digest()


def split_key(row: dict[str, str]) -> str:
    """What a row's split is decided by: its `group` column where the table has one; else, where it has a
    `source` column, the source and the file's stem (the crops of one street photo share them, so they
    are never split apart, and a collected frame keeps its split when it is labelled); else its photo
    class and file name (../shared/real-photos, whose halves every earlier figure was measured on)."""
    if row.get("group"):
        return row["group"]
    name = Path(row["path"])
    if row.get("source"):
        return f"{row['source']}/{name.stem}"
    return f"{row['photo_class']}/{name.name}"


def read_rows(root: str | Path) -> list[dict[str, str]]:
    """Every row of ROOT/labels.csv as it is written (labelled or not), in file order."""
    table = Path(root) / LABELS
    if not table.is_file():
        raise FmnistEdgeError(f"{table}: no labels.csv; point at a photo folder (../shared/real-photos, or one "
                              "that camera --collect made)")
    try:
        with open(table, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FmnistEdgeError(f"{table}: unreadable ({exc}); fix or remove it") from None
    if rows and not set(COLUMNS) <= set(rows[0]):
        raise FmnistEdgeError(f"{table}: needs the columns {', '.join(COLUMNS)}")
    return rows


def write_rows(root: str | Path, rows: list[dict[str, str]]) -> None:
    """ROOT/labels.csv, atomically: the columns every folder has first, then any others the rows carry."""
    extra = [c for c in dict.fromkeys(k for row in rows for k in row) if c not in COLUMNS]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*COLUMNS, *extra], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(Path(root) / LABELS, buf.getvalue())


def load_photos(root: str | Path, split: str = "all", exclude: tuple[str, ...] = ()) -> list[Photo]:
    """The labelled photos of ROOT/labels.csv, in file order, restricted to `split`, without the photo
    classes in `exclude` (leave-class-out: how the model does on a kind of garment no photo showed it)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    root = Path(root)
    photos = [_photo(root, r) for r in read_rows(root) if r["photo_class"] != UNLABELLED]
    unknown = set(exclude) - {p.photo_class for p in photos}
    if unknown:
        raise FmnistEdgeError(f"{root / LABELS}: no photo class {', '.join(sorted(unknown))}; the classes are "
                              f"{', '.join(sorted({p.photo_class for p in photos}))}")
    return [p for p in photos if p.in_split(split) and p.photo_class not in exclude]


def load_folders(roots: Sequence[str | Path], split: str = "all", exclude: tuple[str, ...] = ()) -> list[Photo]:
    """load_photos over several folders, in order; each folder keeps its own split. A class to exclude
    must be in one of them."""
    if isinstance(roots, (str, Path)):
        roots = [roots]
    known = set()
    photos: list[Photo] = []
    for root in roots:
        every = load_photos(root)
        known |= {p.photo_class for p in every}
        photos += [p for p in every if p.in_split(split) and p.photo_class not in exclude]
    unknown = set(exclude) - known
    if unknown:
        raise FmnistEdgeError(f"{', '.join(map(str, roots))}: no photo class {', '.join(sorted(unknown))}; the "
                              f"classes are {', '.join(sorted(known))}")
    return photos


def _photo(root: Path, row: dict[str, str]) -> Photo:
    classes = (row["fashion_mnist_classes"] or "").split()
    if not all(c.isdigit() and int(c) < NUM_CLASSES for c in classes):
        raise FmnistEdgeError(f"{root / LABELS}: {row['path']}: fashion_mnist_classes must be class ids 0 to 9, "
                              f"not {row['fashion_mnist_classes']!r}")
    mask = row.get("mask") or None
    return Photo(root / row["path"], row["photo_class"], frozenset(int(c) for c in classes),
                 source=row.get("source") or root.name, key=split_key(row), mask=root / mask if mask else None)


def accepted_mask(photos: list[Photo]) -> np.ndarray:
    """float32 [N,10]: 1 where a class counts as right (all zeros for out-of-distribution photos)."""
    mask = np.zeros((len(photos), 10), np.float32)
    for i, photo in enumerate(photos):
        mask[i, sorted(photo.accepted)] = 1.0
    return mask


def prepare(photos: list[Photo]) -> np.ndarray:
    """uint8 [N,28,28,1]: each photo through the camera's frame preprocessing."""
    out = np.zeros((len(photos), 28, 28, 1), np.uint8)
    for i, photo in enumerate(photos):
        out[i] = preprocess_frame(read_photo(photo.path)).image
    return out
