"""Folders of real photos with Fashion-MNIST labels (../shared/real-photos, or what `camera --collect`
writes): reading and writing their table, and a fixed split.

Each photo belongs to the "tune" half (which training may use) or the "held-out" half (which only
measures), decided by a hash of its path, so every tool and every run agrees on the split and no
result is reported on a photo that training saw. NumPy and OpenCV only.

labels.csv columns: path, photo_class, fashion_mnist_classes (space-separated acceptable class
ids; empty for items no Fashion-MNIST class fits: hats, shorts, skirts), and any others a tool adds
(`camera --collect` adds what the model said). Frames collected and not labelled yet have the photo
class "unlabelled"; readers skip them.

A folder holds its own files: every path and mask a labelled row names must lie inside it, after links are
followed (no `../`, no absolute path, no link to a file elsewhere), so that copying, sharing or training on
a folder reads nothing else; a row that points outside is refused in one line. Each photo (with its mask)
is named by one row only. The files themselves are read through edge_runtime.data.images, which refuses a
missing, damaged or oversized one in one line before decoding it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from edge_runtime.camera.preprocess import preprocess_frame
from edge_runtime.core.contract import NUM_CLASSES
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.files import locked, stale_temps, temp_beside, write_bytes_atomic
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
MAX_ROWS = 50_000
"""The most rows a table may hold; a larger one is refused in one line (split the folder). A writer rewrites
the whole table for each change (a label, a collected frame): at this bound that is about 150 ms of one
laptop core and 90 MB held by the labelling page; at 500 rows (--collect-max's default), 2 ms."""
MAX_TABLE_BYTES = 64 << 20
"""A table file larger than this is refused before it is read (a runaway file, labels.csv linked to a device)."""
LOCK = ".labels.lock"
"""The lock file beside labels.csv that every writer of the table holds while it reads, changes and writes it."""
T = TypeVar("T")


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
    """Every row of ROOT/labels.csv as it is written (labelled or not), in file order. Read strictly, so that
    what a writer writes back is what it read: a quote left open, a row with more fields than the header, a
    field over several lines or a NUL byte is refused with its line number, never guessed around; so is a
    table of more than MAX_ROWS rows or MAX_TABLE_BYTES bytes."""
    table = Path(root) / LABELS
    return _parse_table(table, _read_table(table))


def _read_table(table: Path) -> bytes:
    if not table.exists() and not table.is_symlink():
        raise FmnistEdgeError(f"{table}: no labels.csv; point at a photo folder (../shared/real-photos, or one "
                              "that camera --collect made)")
    try:  # O_NONBLOCK: a FIFO in its place is refused, not waited on
        with open(table, "rb", opener=lambda p, flags: os.open(p, flags | getattr(os, "O_NONBLOCK", 0))) as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise FmnistEdgeError(f"{table}: not a regular file; labels.csv must be a CSV file")
            data = f.read(MAX_TABLE_BYTES + 1)
    except OSError as exc:
        raise FmnistEdgeError(f"{table}: unreadable ({exc.strerror}); fix or remove it") from None
    if len(data) > MAX_TABLE_BYTES:
        raise FmnistEdgeError(f"{table}: larger than {MAX_TABLE_BYTES >> 20} MB; a photo folder's table holds at "
                              f"most {MAX_ROWS} rows: split the folder in several")
    return data


def _parse_table(table: Path, data: bytes) -> list[dict[str, str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FmnistEdgeError(f"{table}: line {line} is not UTF-8; save the table as UTF-8") from None
    if (nul := text.find("\0")) >= 0:
        line = text.count("\n", 0, nul) + 1
        raise FmnistEdgeError(f"{table}: line {line} holds a NUL byte; the file is damaged: fix that line")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    line = 1  # where the record being read starts
    try:
        for record in reader:
            if not record:
                pass  # a blank line
            elif reader.line_num > line:
                raise FmnistEdgeError(f"{table}: line {line}: a quoted field runs over {reader.line_num - line + 1}"
                                      " lines (a quote left open?); fix that line")
            elif header is None:
                header = _table_header(table, line, record)
            elif len(record) > len(header):
                raise FmnistEdgeError(f"{table}: line {line}: {len(record)} fields, the header names "
                                      f"{len(header)}; quote a value that holds a comma")
            elif len(rows) == MAX_ROWS:
                raise FmnistEdgeError(f"{table}: more than {MAX_ROWS} rows; a photo folder holds at most "
                                      f"{MAX_ROWS}: split it in several")
            else:
                rows.append(dict(zip(header, record + [""] * (len(header) - len(record)), strict=True)))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise FmnistEdgeError(f"{table}: line {line}: {exc} (a quote left open?); fix that line") from None
    return rows


def _table_header(table: Path, line: int, names: list[str]) -> list[str]:
    if not set(COLUMNS) <= set(names):
        raise FmnistEdgeError(f"{table}: needs the columns {', '.join(COLUMNS)}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise FmnistEdgeError(f"{table}: line {line}: the column {twice[0]!r} is named twice; keep one")
    return names


def write_rows(root: str | Path, rows: list[dict[str, str]]) -> None:
    """ROOT/labels.csv, atomically: the columns every folder has first, then any others the rows carry."""
    write_bytes_atomic(Path(root) / LABELS, _table_bytes(Path(root) / LABELS, rows))


def _table_bytes(table: Path, rows: list[dict[str, str]]) -> bytes:
    """The CSV text of `rows`, if read_rows would read it back as it is: no value over several lines or with
    a NUL byte, no more than MAX_ROWS rows (a writer never writes a table it could not read)."""
    if len(rows) > MAX_ROWS:
        raise FmnistEdgeError(f"{table}: more than {MAX_ROWS} rows; a photo folder holds at most {MAX_ROWS}")
    names = [*COLUMNS, *(c for c in dict.fromkeys(k for row in rows for k in row) if c not in COLUMNS)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([row.get(name, "") for name in names] for row in rows)
    text = buf.getvalue()
    if text.count("\n") != len(rows) + 1 or "\r" in text or "\0" in text:
        bad = next(r for r in rows if any(c in str(v) for v in r.values() for c in "\r\n\0"))
        raise FmnistEdgeError(f"{table}: {bad.get('path')!r}: a value with a line break or a NUL byte; the "
                              "table keeps one row per line")
    return text.encode("utf-8")


class Table:
    """ROOT/labels.csv as one of its writers holds it (the labelling page, camera --collect), while others
    may write it too. Every writer changes the table the same way (`update`): under the folder's lock
    (LOCK), on the table as it is on disk then, only its own change (a label, new rows), written back
    atomically; so no writer loses what another wrote. The rows are parsed again only when the file's
    bytes differ from those this writer last read or wrote."""

    def __init__(self, root: str | Path, missing_ok: bool = False):
        """Claim ROOT for writing: one line if it cannot take a table (read-only, labels.csv a link), and,
        under the lock (no writer is then between writing a temporary table and renaming it), the
        temporary tables a killed writer left are removed. No table is `[]` rows if `missing_ok`."""
        self.root = Path(root)
        self.path = self.root / LABELS
        self.rows: list[dict[str, str]] = []
        self._data: bytes | None = None
        self._missing_ok = missing_ok
        if not missing_ok and not self._exists():
            read_rows(self.root)  # the line that says there is no table
        with self._locked():
            for stale in stale_temps(self.path):
                stale.unlink(missing_ok=True)
            try:
                temp_beside(self.path).unlink()
            except OSError as exc:
                raise FmnistEdgeError(f"{self.root}: cannot write there ({exc.strerror}); labels are written to "
                                      "its labels.csv: make the folder writable, or work on a copy") from None
            self.reload()

    def _exists(self) -> bool:
        return self.path.exists() or self.path.is_symlink()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.path.is_symlink():
            raise FmnistEdgeError(f"{self.path} is a symbolic link; writing the table would replace the link, "
                                  "not what it points to: copy the file in its place (cp --remove-destination)")
        with locked(self.root / LOCK):
            yield

    def reload(self) -> bool:
        """Read the table on disk again if it changed since this writer last saw it; True if it did."""
        data = _read_table(self.path) if self._exists() or not self._missing_ok else b""
        if data == self._data:
            return False
        self.rows, self._data = _parse_table(self.path, data), data
        return True

    def update(self, change: Callable[[list[dict[str, str]]], T]) -> T:
        """Under the lock: the table on disk, `change`d (it edits the rows in place and returns what the
        caller wants back), written atomically. If `change` or the write fails, the file is as it was."""
        with self._locked():
            self.reload()
            try:
                result = change(self.rows)
                data = _table_bytes(self.path, self.rows)
                self._write(data)
            except BaseException:
                self._data = None  # the rows may hold a change the file does not: back to what is on disk
                with contextlib.suppress(FmnistEdgeError):
                    self.reload()
                raise
            self._data = data
        return result

    def _write(self, data: bytes) -> None:
        write_bytes_atomic(self.path, data, "nothing was saved: make the folder writable (or free some space) "
                                            "and try again")


def load_photos(root: str | Path, split: str = "all", exclude: tuple[str, ...] = ()) -> list[Photo]:
    """The labelled photos of ROOT/labels.csv, in file order, restricted to `split`, without the photo
    classes in `exclude` (leave-class-out: how the model does on a kind of garment no photo showed it)."""
    return load_folders([root], split, exclude)


def load_folders(roots: Sequence[str | Path], split: str = "all", exclude: tuple[str, ...] = ()) -> list[Photo]:
    """load_photos over several folders, in order; each folder keeps its own split. A class to exclude
    must be in one of them. A photo listed twice (in one folder or two) is refused: it would count twice."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    if isinstance(roots, (str, Path)):
        roots = [roots]
    seen: dict[tuple[str, str | None], str] = {}
    photos = [photo for root in roots for photo in _labelled(Path(root), seen)]
    known = {p.photo_class for p in photos}
    unknown = set(exclude) - known
    if unknown:
        where = Path(roots[0]) / LABELS if len(roots) == 1 else ", ".join(map(str, roots))
        raise FmnistEdgeError(f"{where}: no photo class {', '.join(sorted(unknown))}; the classes are "
                              f"{', '.join(sorted(known))}")
    return [p for p in photos if p.in_split(split) and p.photo_class not in exclude]


def _labelled(root: Path, seen: dict[tuple[str, str | None], str]) -> list[Photo]:
    """The labelled rows of ROOT/labels.csv as Photos, in file order; `seen` (real file and mask -> the row
    that named them) refuses a photo named twice, here or in a folder read before."""
    folder, table = _Folder(root), root / LABELS
    photos = []
    for n, row in enumerate(read_rows(root), start=1):
        if row["photo_class"] == UNLABELLED:
            continue
        where = f"{table}: row {n} ({row['path']!r})"
        photo, real = _photo(folder, row, where)
        if real in seen:
            raise FmnistEdgeError(f"{where}: the same photo{' and mask' if real[1] else ''} as {seen[real]}; keep "
                                  "one row per photo (for several items in one photo, one row per item's mask)")
        seen[real] = where
        photos.append(photo)
    return photos


def _photo(folder: _Folder, row: dict[str, str], where: str) -> tuple[Photo, tuple[str, str | None]]:
    """A labelled row as a Photo, and the real files it names (photo, mask), which must lie in the folder."""
    if not row["photo_class"].strip():
        raise FmnistEdgeError(f"{where}: no photo_class; name the item's class, or write {UNLABELLED} to skip "
                              "the row")
    classes = row["fashion_mnist_classes"].split()
    if not all(c.isascii() and c.isdigit() and int(c) < NUM_CLASSES for c in classes):  # not "²"
        raise FmnistEdgeError(f"{where}: fashion_mnist_classes must be class ids 0 to {NUM_CLASSES - 1}, "
                              f"not {row['fashion_mnist_classes'][:40]!r}")
    root, mask = folder.root, row.get("mask") or None
    real = folder.inside(row["path"], "path", where), folder.inside(mask, "mask", where) if mask else None
    return Photo(root / row["path"], row["photo_class"], frozenset(int(c) for c in classes),
                 source=row.get("source") or root.name, key=split_key(row),
                 mask=root / mask if mask else None), real


class _Folder:
    """A photo folder, and where the files its rows name really are. A folder holds its own files, so that
    sharing, copying or training on it reads nothing else: a row naming a file outside it (through `../`,
    an absolute path, or a link to a file elsewhere) is refused in one line."""

    def __init__(self, root: Path):
        self.root = root
        self.real = os.path.join(os.path.realpath(root), "")  # with a final separator
        self._dirs: dict[str, str] = {}

    def inside(self, name: str, column: str, where: str) -> str:
        """The real path of the file `name` (a row's path or mask) names; one line unless it is in the folder."""
        if not name.strip():
            raise FmnistEdgeError(f"{where}: an empty {column}; name a file relative to {self.root}")
        try:
            real = self._real(os.path.join(self.root, name))
        except (OSError, RuntimeError, ValueError) as exc:  # a link loop, a name the system refuses
            raise FmnistEdgeError(f"{where}: the {column} {name[:80]!r} cannot be followed ({exc}); fix it") from None
        if not real.startswith(self.real):  # nor the folder itself: it has no final separator
            raise FmnistEdgeError(f"{where}: the {column} {name[:80]!r} leads outside the photo folder (to {real}); "
                                  f"a photo folder holds its own files: copy the file into {self.root} and name it "
                                  "relative to the folder")
        return real

    def _real(self, path: str) -> str:
        """os.path.realpath, each directory resolved and listed once (thousands of rows share a few): a file
        is followed only where its directory lists it as a link, not looked up one by one."""
        head, base = os.path.split(path)
        if base in ("", ".", ".."):
            return os.path.realpath(path)
        if head not in self._dirs:
            real_head = os.path.realpath(head)
            self._dirs[head] = real_head, _links_in(real_head)
        real_head, links = self._dirs[head]
        path = os.path.join(real_head, base)
        return os.path.realpath(path) if base in links else path


def _links_in(directory: str) -> frozenset[str]:
    """The names of the symbolic links in `directory` (none where it is missing or not a directory)."""
    try:
        with os.scandir(directory) as entries:
            return frozenset(e.name for e in entries if e.is_symlink())
    except OSError:
        return frozenset()


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


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
"""What a folder without labels.csv is read for: image files by these suffixes, directly in it."""


def folder_frames(root: str | Path) -> np.ndarray:
    """uint8 [N,28,28,1]: the frames of a photo folder, in order, each image through the camera's frame
    preprocessing: every row of its labels.csv, labelled or not (what `camera --collect` keeps), or,
    without a table, the image files directly in it; an unreadable image is skipped. A missing folder, or
    one with no readable image, is one FmnistEdgeError line."""
    root = Path(root)
    if not root.is_dir():
        raise FmnistEdgeError(f"{root}: no such folder; give a photo folder (one that camera --collect made, or "
                              "a folder of images)")
    if (root / LABELS).exists():
        folder = _Folder(root)
        paths = [Path(folder.inside(row["path"], "path", f"{root / LABELS}: row {n} ({row['path']!r})"))
                 for n, row in enumerate(read_rows(root), start=1)]
    else:
        paths = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    frames, skipped = [], 0
    for path in paths:
        try:
            frames.append(preprocess_frame(read_photo(path)).image)
        except FmnistEdgeError:
            skipped += 1
    if not frames:
        raise FmnistEdgeError(f"{root}: no readable image ({len(paths)} listed, {skipped} unreadable); give a "
                              "photo folder with labels.csv, or a folder of .jpg or .png images")
    return np.stack(frames).astype(np.uint8)
