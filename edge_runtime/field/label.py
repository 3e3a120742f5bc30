"""`fmnist-edge label DIR`: a page for labelling a folder of collected frames (`camera --collect`).

The frames not labelled yet, as thumbnails with what the model saw and what it guessed; one click or
one key per class (0-9), "none of these" (n) for an item no class fits, undo (u). Every label is
written to DIR/labels.csv at once, atomically (the whole table, written aside and renamed), so closing
the page or pulling the plug loses nothing. The standard library's HTTP server, as `camera --serve`
uses: nothing more to install on a Pi. It listens on 127.0.0.1 unless told otherwise.

A person can also name a class of their own (a hat, a scarf): typed once, it gets a key of its own and
is written as the frame's photo class, which `fmnist-edge adapt DIR --new-class NAME` teaches the
model as a class beyond the ten.

Routes: `/` the page, `/frames.json` the table, `/file/PATH` an image the table names (nothing else is
served), `POST /label` {"index", "class_id" (null: none of these)} or {"index", "class_name"} (a class of
the user's), `POST /undo`.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from pathlib import Path
from typing import ClassVar

from edge_runtime.web.http import PageHandler, QuietHTTPServer
from edge_runtime.core.contract import CLASS_NAMES
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.data import photos

log = logging.getLogger(__name__)
PAGE = Path(__file__).resolve().parent / "web" / "label.html"
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


NAME_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_")


def check_class_name(name: object) -> str:
    """A class of the user's: 1 to 40 letters, digits, spaces, - or _, and not one the table reserves."""
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 40 or not set(name) <= NAME_CHARACTERS:
        raise ValueError("a class name is 1 to 40 letters, digits, spaces, - or _")
    name = name.strip()
    if name in CLASS_NAMES or name.lower() in (photos.NONE_OF_THESE, photos.UNLABELLED):
        raise ValueError(f"{name!r} is a Fashion-MNIST class or a reserved word; give it with its own key")
    return name


class LabelBook:
    """The folder's table, the labels given and their undo history; every change written at once."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.rows = photos.read_rows(self.folder)
        self._history: list[tuple[int, str, str]] = []
        self._lock = threading.Lock()
        self.files = {name for row in self.rows for name in (row["path"], row.get("model_input") or "") if name}
        """The only files the page may fetch: those the table names."""

    def user_classes(self) -> list[str]:
        """The classes of the user's that the table already holds (beyond Fashion-MNIST's ten)."""
        reserved = {*CLASS_NAMES, photos.NONE_OF_THESE, photos.UNLABELLED}
        return sorted({r["photo_class"] for r in self.rows if r["photo_class"] not in reserved
                       and not r["fashion_mnist_classes"]})

    def table(self) -> dict:
        with self._lock:
            return {"class_names": list(CLASS_NAMES), "user_classes": self.user_classes(),
                    "none": photos.NONE_OF_THESE, "unlabelled": photos.UNLABELLED,
                    "frames": [{"index": i, "path": r["path"], "model_input": r.get("model_input", ""),
                                "predicted": r.get("predicted", ""), "score": r.get("score", ""),
                                "photo_class": r["photo_class"]} for i, r in enumerate(self.rows)]}

    def label(self, index: int, class_id: int | None, class_name: str | None = None) -> dict:
        """Give frame `index` a Fashion-MNIST class, none (class_id None), or a class of the user's."""
        if not 0 <= index < len(self.rows) or not (class_id is None or 0 <= class_id < len(CLASS_NAMES)):
            raise ValueError(f"no frame {index} or no class {class_id}")
        if class_name is not None:
            class_name = check_class_name(class_name)
        with self._lock:
            row = self.rows[index]
            self._history.append((index, row["photo_class"], row["fashion_mnist_classes"]))
            if class_name is not None:
                row["photo_class"], row["fashion_mnist_classes"] = class_name, ""
            else:
                row["photo_class"] = photos.NONE_OF_THESE if class_id is None else CLASS_NAMES[class_id]
                row["fashion_mnist_classes"] = "" if class_id is None else str(class_id)
            photos.write_rows(self.folder, self.rows)
            return {"index": index, "photo_class": row["photo_class"]}

    def undo(self) -> dict:
        """Take back the last label given on this page."""
        with self._lock:
            if not self._history:
                return {"index": None}
            index, photo_class, classes = self._history.pop()
            self.rows[index]["photo_class"], self.rows[index]["fashion_mnist_classes"] = photo_class, classes
            photos.write_rows(self.folder, self.rows)
            return {"index": index, "photo_class": photo_class}


class _Handler(PageHandler):
    get_routes: ClassVar[dict[str, str]] = {"/": "_page", "/index.html": "_page", "/frames.json": "_table"}

    @property
    def book(self) -> LabelBook:
        return self.server.book

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.startswith("/file/"):
            self._file(path[len("/file/"):])
        elif path in self.get_routes:
            getattr(self, self.get_routes[path])()
        else:
            self._not_found()

    def _page(self) -> None:
        self._send(PAGE.read_bytes(), "text/html; charset=utf-8")

    def _table(self) -> None:
        self._json(self.book.table())

    def _file(self, name: str) -> None:
        from urllib.parse import unquote

        name = unquote(name)
        kind = IMAGE_TYPES.get(Path(name).suffix.lower())
        if name not in self.book.files or kind is None:  # only what the table lists: no way out of the folder
            self._not_found()
            return
        try:
            self._send((self.book.folder / name).read_bytes(), kind)
        except OSError:
            self._not_found()

    def do_POST(self):
        path = self.path.split("?")[0]
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(min(length, 4096)) or b"{}")
            if path == "/label":
                self._json(self.book.label(int(body["index"]), body.get("class_id"), body.get("class_name")))
            elif path == "/undo":
                self._json(self.book.undo())
            else:
                self._not_found()
        except (ValueError, KeyError, TypeError) as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        except FmnistEdgeError as exc:  # labels.csv could not be written: the page says so
            self._json({"error": str(exc)}, HTTPStatus.INTERNAL_SERVER_ERROR)


class LabelServer:
    def __init__(self, folder: str | Path, address: str = "127.0.0.1:8081"):
        self.book = LabelBook(folder)
        self._httpd = QuietHTTPServer.listen(address, _Handler)
        self._httpd.book = self.book
        self.host, self.port = self._httpd.server_address[:2]

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
