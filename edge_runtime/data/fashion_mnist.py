"""Find, verify, download and parse the Fashion-MNIST idx files. NumPy only, no TensorFlow.

Search order: an explicit directory (`--data-dir`), `$FMNIST_EDGE_DATA`, the Debian package's
directory, the user cache, then a download from the official mirror into the cache. Every file is
checked by the SHA-256 of its decompressed content, so the Debian package's re-compressed files
and upstream's files are both accepted.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.files import write_bytes_atomic

log = logging.getLogger(__name__)

SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
# The official mirror first; GitHub serves the same files.
MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
ENV_DATA = "FMNIST_EDGE_DATA"
ENV_MIRROR = "FMNIST_EDGE_MIRROR"  # overrides MIRRORS, e.g. a local mirror
FIX = "install it with `apt-get install dataset-fashion-mnist`, or pass --data-dir DIR"

_IDX_DTYPE = {0x08: np.uint8}


class DataError(FmnistEdgeError):
    pass


@dataclass(frozen=True)
class Dataset:
    """Where the dataset was found and how."""

    directory: Path
    source: str  # "--data-dir", "$FMNIST_EDGE_DATA", "debian", "cache" or "download"
    files: dict[str, Path]

    def to_dict(self) -> dict:
        return {"directory": str(self.directory), "source": self.source, "verified": True,
                "files": {name: str(path) for name, path in self.files.items()}}

    def format_text(self) -> str:
        return "\n".join([f"Fashion-MNIST in {self.directory} ({self.source}), all four files verified by SHA-256:",
                          *(f"  {path}" for path in self.files.values())])


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fmnist-edge"


def parse_idx(data: bytes, name: str = "idx file") -> np.ndarray:
    """Parse idx bytes (uint8 payloads only, as Fashion-MNIST has) into an array."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPE:
        raise DataError(f"{name}: not an idx file (wrong magic number); {FIX}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{name}: truncated idx header; {FIX}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) < expected:
        raise DataError(f"{name}: truncated, {len(data)} of {expected} bytes; {FIX}")
    if len(data) > expected:
        raise DataError(f"{name}: {len(data) - expected} unexpected trailing bytes; {FIX}")
    return np.frombuffer(data, dtype=np.uint8, count=expected - header, offset=header).reshape(shape)


def _read(path: Path) -> bytes:
    """Read a file, decompressing .gz; an unreadable file or damaged gzip data is a DataError naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror}); fix its permissions, or {FIX}") from None
    try:
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupted ({exc}); {FIX}") from None


def _find_files(directory: Path) -> dict[str, Path] | None:
    """The four files in `directory` (.gz or not), or None when any is missing."""
    found = {}
    for name in SHA256:
        for candidate in (directory / f"{name}.gz", directory / name):
            if candidate.is_file():
                found[name] = candidate
                break
            if candidate.exists():
                raise DataError(f"{candidate}: not a file (a directory?) where a Fashion-MNIST file belongs; "
                                "remove it, or pass --data-dir DIR")
        else:
            return None
    return found


def _writable_directory(directory: Path, source: str) -> None:
    """Refuse a download destination that cannot take the files, before anything is fetched, so an
    offline machine is told the real problem and not "could not download"."""
    where = f"{source} {directory}" if source.startswith(("$", "--")) else str(directory)
    if directory.exists() and not directory.is_dir():
        raise DataError(f"{where} is a file, not a directory; point it at a directory, or {FIX}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()
    except OSError as exc:
        raise DataError(f"cannot write the dataset into {where} ({exc.strerror}); pass --data-dir DIR or set "
                        f"{ENV_DATA} to a writable directory, or {FIX}") from None


def _verify(path: Path, name: str) -> bytes:
    data = _read(path)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[name]:
        raise DataError(f"{path}: corrupted or not the official file (SHA-256 {digest[:12]}... "
                        f"expected {SHA256[name][:12]}...); {FIX}")
    return data


def _progress(name: str, done: int, total: int | None) -> None:
    mb = done / 1e6
    text = f"{mb:6.1f}/{total / 1e6:.1f} MB" if total else f"{mb:6.1f} MB"
    sys.stderr.write(f"\rdownloading {name}: {text}")
    sys.stderr.flush()


def _download_one(name: str, dest: Path, mirrors: tuple[str, ...], timeout: float) -> None:
    errors = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{name}.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                chunks, done = [], 0
                while chunk := resp.read(1 << 16):
                    chunks.append(chunk)
                    done += len(chunk)
                    _progress(name, done, total)
            sys.stderr.write("\n")
        except (urllib.error.URLError, OSError) as exc:
            errors.append(f"{url}: {exc}")
            continue
        blob = b"".join(chunks)
        try:
            digest = hashlib.sha256(gzip.decompress(blob)).hexdigest()
        except (EOFError, OSError, zlib.error) as exc:
            errors.append(f"{url}: damaged download ({exc})")
            continue
        if digest != SHA256[name]:
            errors.append(f"{url}: SHA-256 mismatch")
            continue
        try:
            write_bytes_atomic(dest / f"{name}.gz", blob)
        except OSError as exc:
            raise DataError(f"cannot write {dest / (name + '.gz')} ({exc.strerror}); free some space or pass "
                            "--data-dir DIR") from None
        return
    raise DataError(f"could not download {name}.gz ({'; '.join(errors)}); {FIX}")


def download(dest: Path, timeout: float = 60.0) -> dict[str, Path]:
    """Download the four files into `dest`, each verified, then written atomically."""
    mirrors = (os.environ[ENV_MIRROR],) if os.environ.get(ENV_MIRROR) else MIRRORS
    for name in SHA256:
        if not (dest / f"{name}.gz").is_file():
            log.info("downloading %s.gz into %s", name, dest)
            _download_one(name, dest, mirrors, timeout)
    return {name: dest / f"{name}.gz" for name in SHA256}


def locate(data_dir: str | os.PathLike | None = None, allow_download: bool = True,
           verify: bool = True) -> Dataset:
    """Find the dataset (see the module docstring for the order); `verify` checks every file."""
    explicit = []
    if data_dir is not None:
        explicit.append((Path(data_dir), "--data-dir"))
    elif os.environ.get(ENV_DATA):
        explicit.append((Path(os.environ[ENV_DATA]), f"${ENV_DATA}"))
    candidates = explicit or [(DEBIAN_DIR, "debian"), (cache_dir(), "cache")]
    for directory, source in candidates:
        files = _find_files(directory) if directory.is_dir() else None
        if files is not None:
            if verify:
                for name, path in files.items():
                    _verify(path, name)
            return Dataset(directory, source, files)
    target, source = (explicit[0][0], explicit[0][1]) if explicit else (cache_dir(), "download")
    if not allow_download:
        where = ", ".join(str(d) for d, _ in candidates)
        raise DataError(f"Fashion-MNIST not found in {where}; {FIX}")
    _writable_directory(target, explicit[0][1] if explicit else "the cache")
    return Dataset(target, source, download(target))  # download() verified each file


def load_split(split: str, data_dir: str | os.PathLike | None = None, limit: int | None = None,
               allow_download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 [N,28,28,1] (raw 0..255, not normalised) and labels as uint8 [N]."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, not {split!r}")
    dataset = locate(data_dir, allow_download, verify=False)  # the two files are verified below
    images_name, labels_name = SPLITS[split]
    images = parse_idx(_verify(dataset.files[images_name], images_name), str(dataset.files[images_name]))
    labels = parse_idx(_verify(dataset.files[labels_name], labels_name), str(dataset.files[labels_name]))
    check_pair(images, labels, str(dataset.files[images_name]), str(dataset.files[labels_name]))
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images[..., np.newaxis], labels


def check_pair(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str) -> None:
    """Refuse an image file and a label file that do not belong together."""
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_name}: expected 28x28 images, got shape {images.shape}; {FIX}")
    if labels.ndim != 1:
        raise DataError(f"{labels_name}: expected a 1-D label file, got shape {labels.shape}; {FIX}")
    if len(images) != len(labels):
        raise DataError(f"{images_name} has {len(images)} images but {labels_name} has "
                        f"{len(labels)} labels; {FIX}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_name}: label {int(labels.max())} is not a Fashion-MNIST class; {FIX}")
