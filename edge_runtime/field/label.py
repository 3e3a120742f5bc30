"""`fmnist-edge label DIR`: a page for labelling a folder of collected frames (`camera --collect`).

The frames not labelled yet, as thumbnails with what the model saw and what it guessed; one click or
one key per class (0-9), "none of these" (n) for an item no class fits, undo (u). Every label is
written to DIR/labels.csv at once, atomically (the whole table, written aside and renamed), so closing
the page or pulling the plug loses nothing. The standard library's HTTP server, as `camera --serve`
uses: nothing more to install on a Pi. It listens on 127.0.0.1 unless told otherwise.

A person can also name a class of their own (a hat, a scarf): typed once, it gets a key of its own and
is written as the frame's photo class, which `fmnist-edge adapt DIR --new-class NAME` teaches the
model as a class beyond the ten.

One folder, several writers: `camera --collect DIR` may add frames while the page labels them. Each
label is written under the folder's lock (`.labels.lock`) on the table as it is on disk then, changing
only that frame's row, so neither loses what the other wrote, and the page shows the frames collected
since it opened. A folder that cannot be written is refused at the start, in one line; a label that
cannot be written is an error on the page (the frame stays unlabelled there and on disk).

Routes: `/` the page, `/frames.json` the table (`?offset=&limit=` for a part of it), `/file/PATH` an
image the table names, served only if it is a regular file inside the folder (no link leads out of it)
and at most MAX_FILE_BYTES; `POST /label` {"path" or "index", "class_id" (null: none of these)} or
{"path" or "index", "class_name"} (a class of the user's), `POST /undo`. Nothing else: a request that is
not one of these, too big, too slow, from another site's page, or not strict JSON, is refused with a
status and one line.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import os
import signal
import stat
import threading
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote

from edge_runtime.core.contract import CLASS_NAMES
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.modelfile import json_depth
from edge_runtime.data import photos
from edge_runtime.web.http import GuardedHandler, GuardedServer, Refused

log = logging.getLogger(__name__)
PAGE = Path(__file__).resolve().parent / "web" / "label.html"
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
MAX_JSON_DEPTH = 2
"""How deep a POST body's JSON may nest (a label is one flat object)."""
MAX_FILE_BYTES = 8 << 20
"""The largest image served; only that much is ever read (a collected frame is some 30 KB)."""
UNDO_DEPTH = 1000
"""How many labels undo can take back (a script labelling for days does not grow the server without end)."""

NAME_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_")


def check_class_name(name: object) -> str:
    """A class of the user's: 1 to 40 letters, digits, spaces, - or _, and not one the table reserves."""
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 40 or not set(name) <= NAME_CHARACTERS:
        raise ValueError("a class name is 1 to 40 letters, digits, spaces, - or _")
    name = name.strip()
    reserved = {c.casefold() for c in (*CLASS_NAMES, photos.NONE_OF_THESE, photos.UNLABELLED)}
    if name.casefold() in reserved:
        raise ValueError(f"{name!r} is a Fashion-MNIST class or a reserved word; give it with its own key")
    return name


class NotServed(Exception):
    """A file the table names that the page will not serve: outside the folder, not a regular file, too large."""


def parse_json_body(body: bytes) -> dict:
    """A POST body as strict JSON: one flat object, UTF-8, numbers JSON allows (no NaN, Infinity or a float
    beyond range), no key twice, nesting at most MAX_JSON_DEPTH. Anything else is a ValueError line."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8 JSON") from None
    if json_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ValueError("the body nests too deep; send one flat JSON object")
    try:
        value = json.loads(text or "{}", parse_constant=_no_constant, parse_float=_finite_float,
                           object_pairs_hook=_object_once)
    except RecursionError:
        raise ValueError("the body nests too deep; send one flat JSON object") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise ValueError("send one JSON object")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _object_once(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) < len(keys):
        raise ValueError(f"the key {next(k for k in keys if keys.count(k) > 1)!r} is given twice")
    return dict(pairs)


def _whole(value: object, what: str) -> int:
    """An int that JSON gave, never a bool (true is not 1 here) or a float."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number, not {json.dumps(value)[:40]}")
    return value


def label_request(body: dict) -> dict:
    """The arguments of LabelBook.label from a /label body, checked: the frame by "path" or "index", and
    exactly one of "class_id" (0 to 9, or null: none of these) and "class_name" (a class of the user's)."""
    unknown = sorted(set(body) - {"index", "path", "class_id", "class_name"})
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}; send path (or index) and class_id or class_name")
    if body.get("index") is None and body.get("path") is None:
        raise ValueError("send the frame's path (or index)")
    if ("class_id" in body) == ("class_name" in body):
        raise ValueError("send one of class_id (null: none of these) and class_name")
    index = None if body.get("index") is None else _whole(body["index"], "index")
    path = body.get("path")
    if path is not None and not isinstance(path, str):
        raise ValueError("path must be a string")
    class_id = None if body.get("class_id") is None else _whole(body["class_id"], "class_id")
    if "class_name" in body and not isinstance(body["class_name"], str):
        raise ValueError("class_name must be a string")
    return {"index": index, "path": path, "class_id": class_id, "class_name": body.get("class_name")}


def given_class(class_id: int | None, class_name: str | None) -> tuple[str, str]:
    """(photo_class, fashion_mnist_classes) for a Fashion-MNIST class, none (both None), or a class of the user's."""
    if class_name is not None:
        return check_class_name(class_name), ""
    if class_id is None:
        return photos.NONE_OF_THESE, ""
    if not 0 <= class_id < len(CLASS_NAMES):
        raise ValueError(f"no class {class_id}; the classes are 0 to {len(CLASS_NAMES) - 1}")
    return CLASS_NAMES[class_id], str(class_id)


class LabelBook:
    """The folder's table as it is on disk, the labels given on this page and their undo history. Each label
    is one read-change-write of the table on disk under the folder's lock (photos.Table.update)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.root = self.folder.resolve()
        self._lock = threading.RLock()
        self._history: collections.deque[tuple[str, str, str]] = collections.deque(maxlen=UNDO_DEPTH)
        self._page: bytes | None = None
        self._table = photos.Table(self.folder)
        self._set()
        seen: set[str] = set()
        twice = next((row["path"] for row in self.rows if row["path"] in seen or seen.add(row["path"])), None)
        if twice is not None:
            raise FmnistEdgeError(f"{self.folder / photos.LABELS}: the path {twice!r} is on two rows; the page "
                                  "labels a frame by its path: keep one row")

    def _set(self) -> None:
        self.rows, self._page = self._table.rows, None
        self.files = {name for row in self.rows for name in (row["path"], row.get("model_input") or "") if name}
        """The only files the page may fetch: those the table names."""

    def refresh(self) -> None:
        """The table as it is on disk now (the camera may have added frames, another page labelled some)."""
        with self._lock:
            if self._table.reload():
                self._set()

    def user_classes(self) -> list[str]:
        """The classes of the user's that the table already holds (beyond Fashion-MNIST's ten)."""
        reserved = {*CLASS_NAMES, photos.NONE_OF_THESE, photos.UNLABELLED}
        return sorted({r["photo_class"] for r in self.rows if r["photo_class"] not in reserved
                       and not r["fashion_mnist_classes"]})

    def table(self, offset: int = 0, limit: int | None = None) -> bytes:
        """/frames.json: the classes and the frames (from `offset`, at most `limit`), with the total."""
        with self._lock:
            self.refresh()
            if self._page is not None and offset == 0 and limit is None:
                return self._page
            end = len(self.rows) if limit is None else offset + limit
            page = json.dumps({
                "class_names": list(CLASS_NAMES), "user_classes": self.user_classes(),
                "none": photos.NONE_OF_THESE, "unlabelled": photos.UNLABELLED, "total": len(self.rows),
                "offset": offset,
                "frames": [{"index": i, "path": r["path"], "model_input": r.get("model_input", ""),
                            "predicted": r.get("predicted", ""), "score": r.get("score", ""),
                            "photo_class": r["photo_class"]} for i, r in enumerate(self.rows[offset:end], offset)],
            }).encode()
            if offset == 0 and limit is None:
                self._page = page
            return page

    def label(self, index: int | None = None, class_id: int | None = None, class_name: str | None = None,
              path: str | None = None) -> dict:
        """Give a frame (by its path, or its index in the table) a Fashion-MNIST class, none (class_id
        None), or a class of the user's; written at once, or an error and nothing changed."""
        photo_class, classes = given_class(class_id, class_name)
        with self._lock:
            if path is None:
                self.refresh()
                if index is None or not 0 <= index < len(self.rows):
                    raise ValueError(f"no frame {index}")
                path = self.rows[index]["path"]
            old, at = self._write(path, photo_class, classes)
            self._history.append((path, *old))
            return {"index": at, "path": path, "photo_class": photo_class, "frames": len(self.rows)}

    def undo(self) -> dict:
        """Take back the last label given on this page (kept to try again if it cannot be written)."""
        with self._lock:
            if not self._history:
                return {"index": None}
            path, photo_class, classes = self._history[-1]
            try:
                _, at = self._write(path, photo_class, classes)
            except LookupError:
                self._history.pop()  # the frame left the table: nothing to take back
                raise
            self._history.pop()
            return {"index": at, "path": path, "photo_class": photo_class, "frames": len(self.rows)}

    def _write(self, path: str, photo_class: str, classes: str) -> tuple[tuple[str, str], int]:
        """Set one row of the table on disk, under the lock: (its old photo class and classes, its index)."""
        def change(rows: list[dict[str, str]]) -> tuple[tuple[str, str], int]:
            at = next((i for i, row in enumerate(rows) if row["path"] == path), None)
            if at is None:
                raise LookupError(f"{path!r} is not in labels.csv (any more); reload the page")
            old = rows[at]["photo_class"], rows[at]["fashion_mnist_classes"]
            rows[at]["photo_class"], rows[at]["fashion_mnist_classes"] = photo_class, classes
            return old, at

        try:
            return self._table.update(change)
        finally:
            self._set()  # the rows on disk (changed or not), which the table now holds

    def image(self, name: str) -> tuple[bytes, str]:
        """The bytes and type of an image the table names: LookupError if it names none such, NotServed if it
        is not a regular file inside the folder (a link out of it, a device) or larger than MAX_FILE_BYTES."""
        kind = IMAGE_TYPES.get(PurePosixPath(name).suffix.lower())
        if kind is not None and name not in self.files:
            self.refresh()  # a frame collected since
        if kind is None or name not in self.files:
            raise LookupError(name)
        try:
            target = (self.folder / name).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):  # missing, a loop of links, a NUL
            raise LookupError(name) from None
        if not target.is_relative_to(self.root):
            raise NotServed(f"{name} leads out of the folder; not served")
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
        try:
            with open(os.open(target, flags), "rb") as f:
                info = os.fstat(f.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise NotServed(f"{name} is not a regular file; not served")
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError:
            raise LookupError(name) from None
        if len(data) > MAX_FILE_BYTES:
            raise NotServed(f"{name} is larger than {MAX_FILE_BYTES >> 20} MB; not served")
        return data, kind

    def reread(self) -> None:
        """The table on disk, whatever this page believed (what the exit line counts); kept if unreadable."""
        with contextlib.suppress(FmnistEdgeError):
            self.refresh()


class _Handler(GuardedHandler):
    """The page, the table, the images it names; POST /label and /undo (web.http guards the rest)."""

    cross_site_post = "a page of another site may not label here"

    @property
    def book(self) -> LabelBook:
        return self.server.book

    def _get(self) -> None:
        path, _, query = self.path.partition("?")
        if path.startswith("/file/"):
            self._file(unquote(path[len("/file/"):]))
        elif path in ("/", "/index.html"):
            self._send(PAGE.read_bytes(), "text/html; charset=utf-8")
        elif path == "/frames.json":
            offset, limit = _part(query)
            try:
                self._send(self.book.table(offset, limit), "application/json")
            except FmnistEdgeError as exc:  # the table on disk went bad while the page was open
                raise Refused(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc)) from None
        else:
            self._not_found()

    def _file(self, name: str) -> None:
        try:
            data, kind = self.book.image(name)
        except LookupError:
            self._not_found()
            return
        except NotServed as exc:
            raise Refused(HTTPStatus.FORBIDDEN, str(exc)) from None
        except FmnistEdgeError as exc:  # the table on disk went bad while the page was open
            raise Refused(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc)) from None
        self._send(data, kind)

    def _post(self) -> None:
        route = self.path.partition("?")[0]
        if route not in ("/label", "/undo"):
            raise Refused(HTTPStatus.NOT_FOUND, "not found; POST /label or /undo")
        try:
            body = parse_json_body(self._body())
            if route == "/undo":
                if body:
                    raise ValueError("/undo takes no fields")
                self._json(self.book.undo())
            else:
                self._json(self.book.label(**label_request(body)))
        except (ValueError, TypeError) as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, str(exc)) from None
        except LookupError as exc:
            raise Refused(HTTPStatus.CONFLICT, str(exc)) from None
        except FmnistEdgeError as exc:  # labels.csv could not be written: the page says so
            raise Refused(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc)) from None


def _part(query: str) -> tuple[int, int | None]:
    """/frames.json?offset=N&limit=M: which frames to send (all, by default)."""
    try:
        fields = parse_qs(query, max_num_fields=4)
    except ValueError:
        raise Refused(HTTPStatus.BAD_REQUEST, "at most offset and limit") from None
    values = []
    for key, default in (("offset", 0), ("limit", None)):
        given = fields.get(key, [])
        if len(given) > 1 or any(not (v.isascii() and v.isdigit() and len(v) <= 9) for v in given):
            raise Refused(HTTPStatus.BAD_REQUEST, f"{key} must be one whole number")
        values.append(int(given[0]) if given else default)
    return values[0], values[1]


class _Server(GuardedServer):
    book: LabelBook
    name = "label page"


class LabelServer:
    def __init__(self, folder: str | Path, address: str = "127.0.0.1:8081"):
        self.book = LabelBook(folder)
        self._httpd = _Server.listen(address, _Handler)
        self._httpd.book = self.book
        self.host, self.port = self._httpd.server_address[:2]
        self._stop = threading.Event()
        self._served = False

    def serve_forever(self) -> None:
        """Serve until Ctrl-C or close(); either ends it as a return. The requests are served by a thread of
        their own and, on the main thread, Ctrl-C only sets a flag: a KeyboardInterrupt that lands while the
        main thread runs a finalizer is dropped by Python, and the page would not stop (seen once in tests)."""
        loop = threading.Thread(target=self._httpd.serve_forever, name="label-http", daemon=True)
        self._served = True
        loop.start()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, lambda signum, frame: self._stop.set())
        try:
            while loop.is_alive() and not self._stop.wait(0.5):
                pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            self._httpd.shutdown()

    def close(self) -> None:
        """Stop serving; the book then holds the table on disk (what the exit line counts)."""
        self._stop.set()
        if self._served:  # shutdown() waits for a loop that never started
            self._httpd.shutdown()
        self._httpd.server_close()
        self.book.reread()
