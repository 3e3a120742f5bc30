"""Atomic file writes: a half-written file never replaces a good one."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # not a POSIX system: the lock is a no-op there (the toolkit runs on Linux boards)
    fcntl = None

from edge_runtime.core.errors import FmnistEdgeError


def temp_beside(path: str | os.PathLike) -> Path:
    """A new empty hidden file in `path`'s directory, with the same suffix (some writers need it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the final file gets the usual mode
    return Path(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); rename it into place on success.

    The temporary file is removed if the block raises, so `path` keeps its old content.
    """
    tmp_path = temp_beside(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes, fix: str = "pick another place") -> None:
    """Write `data` to `path` atomically; a place that cannot take it is one FmnistEdgeError line, ending
    with `fix` (what the user should do)."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise FmnistEdgeError(f"cannot write {path} ({exc.strerror}); {fix}") from None


def check_writable(path: str | os.PathLike) -> None:
    """Refuse, before any work, an output file whose place cannot take it (a missing permission, a
    directory in the way, a file where a directory belongs)."""
    path = Path(path)
    if path.is_dir():
        raise FmnistEdgeError(f"cannot write {path}: it is a directory; give a file name")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise FmnistEdgeError(f"cannot write {path}: {existing} is a file, not a directory; pick another place")
    try:
        temp_beside(path).unlink()
    except OSError as exc:
        raise FmnistEdgeError(f"cannot write {path} ({exc.strerror}); pick another place") from None


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


@contextlib.contextmanager
def locked(path: str | os.PathLike, timeout: float = 10.0) -> Iterator[None]:
    """Hold an exclusive lock (fcntl.flock) on the file `path`, made if missing, for the block: how two
    writers of one file (two processes, or two threads) take turns. A lock held by another for more than
    `timeout` seconds, or a lock file that cannot be made (a read-only folder) or is not a regular file
    (a symbolic link is not followed), is one FmnistEdgeError line."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0), 0o666 & ~_umask())
    except OSError as exc:
        raise FmnistEdgeError(f"cannot write {path} ({exc.strerror}); the folder must be writable") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FmnistEdgeError(f"{path} is not a regular file; remove it")
        deadline = time.monotonic() + timeout
        while fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise FmnistEdgeError(f"{path}: another writer has held it for {timeout:g} s; is a "
                                          "process stuck on this folder?") from None
                time.sleep(0.005)
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


def stale_temps(path: str | os.PathLike) -> list[Path]:
    """The temporary files atomic_path left beside `path` (a writer killed between writing and renaming).
    Only the caller knows whether any is still being written: remove them while holding the lock that
    every writer of `path` holds for its whole write."""
    path = Path(path)
    return _temps(path.parent, f".{glob.escape(path.name)}.*.tmp{glob.escape(path.suffix)}")


def stale_temps_in(directory: str | os.PathLike) -> list[Path]:
    """stale_temps for every file with a suffix in `directory` (the frames a collector writes there)."""
    return _temps(Path(directory), ".*.tmp.*")


def _temps(directory: Path, pattern: str) -> list[Path]:
    """The files temp_beside names (`.NAME.RANDOM.tmpSUFFIX`) in `directory` that match `pattern`."""
    return sorted(p for p in directory.glob(pattern) if p.is_symlink() or p.is_file())
