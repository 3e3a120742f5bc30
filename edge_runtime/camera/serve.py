"""`camera --serve`: the annotated frames as an MJPEG stream and the current label, over HTTP.

For a board without a screen: open http://HOST:PORT/ in a browser on the same network. Routes:
`/` the page, `/stream.mjpg` the stream, `/frame.jpg` the latest frame, `/state.json` the label,
`/metrics` Prometheus' metrics of the run, and with `--collect` `POST /save` keeps the current frame.
Frames are JPEG-encoded only while someone is watching.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from edge_runtime.core.address import parse_host_port
from edge_runtime.core.errors import FmnistEdgeError, first_line

log = logging.getLogger(__name__)
BOUNDARY = "fmnist-edge-frame"


class QuietHTTPServer(ThreadingHTTPServer):
    """A client that goes away mid-request (a closed tab, a reset connection) is normal on a network:
    logged at debug level, not a traceback per client. Anything else is one warning line."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("client %s went away: %s", client_address, exc)
        else:
            log.warning("error serving %s: %s", client_address, first_line(exc) if exc else "unknown")

    @classmethod
    def listen(cls, address: str, handler: type[BaseHTTPRequestHandler]) -> QuietHTTPServer:
        """A server bound to HOST:PORT (`--serve`); a port that cannot be had is one FmnistEdgeError line."""
        host, port = parse_host_port(address, "--serve")
        try:
            return cls((host, port), handler)
        except OSError as exc:
            raise FmnistEdgeError(f"--serve {address}: cannot listen ({exc.strerror}); pick another port") from None


class FrameServer:
    """Holds the newest annotated frame and state; HTTP handler threads wait on it."""

    def __init__(self, address: str, jpeg_quality: int = 80, metrics: Callable[[], bytes] | None = None,
                 on_save: Callable[[], None] | None = None):
        self.metrics = metrics
        """Prometheus' text format of the run, served on /metrics (404 when None)."""
        self.on_save = on_save
        """Keep the current frame (camera --collect): POST /save; 404 when None."""
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._state = {"label": "waiting", "score": 0.0, "frame": -1, "fps": 0.0, "latency_ms": 0.0}
        self._viewers = 0
        self._snapshots_wanted = 0
        self._closed = False
        self._quality = jpeg_quality
        self._httpd = QuietHTTPServer.listen(address, _Handler)
        self._httpd.frames = self  # the handler's way back to the frames
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="serve", daemon=True)
        self._thread.start()
        log.info("serving the camera on http://%s:%d/", self.host, self.port)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def wants_picture(self) -> bool:
        """Does anyone need the next annotated frame (a stream viewer, a snapshot, or no frame yet)?"""
        return self._viewers > 0 or self._snapshots_wanted > 0 or self._jpeg is None

    def publish(self, frame: np.ndarray | None, state: dict) -> None:
        """New state, and the frame JPEG-encoded when somebody wants it."""
        jpeg = None
        if frame is not None and self.wants_picture:
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
            jpeg = buf.tobytes() if ok else None
        with self._cond:
            self._state = state
            if jpeg is not None:
                self._jpeg = jpeg
                self._seq += 1
            self._cond.notify_all()

    def next_jpeg(self, after: int, timeout: float = 5.0) -> tuple[int, bytes | None]:
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._jpeg is not None and self._seq > after), timeout)
            return self._seq, (None if self._closed else self._jpeg)

    def state(self) -> dict:
        with self._cond:
            return dict(self._state)

    def snapshot(self, timeout: float = 2.0) -> bytes | None:
        """A frame drawn after this call (the latest one if none comes within `timeout`)."""
        with self._cond:
            self._snapshots_wanted += 1
            seq = self._seq
            self._cond.wait_for(lambda: self._closed or self._seq > seq, timeout)
            self._snapshots_wanted -= 1
            return self._jpeg

    def viewer(self, delta: int) -> None:
        with self._cond:
            self._viewers += delta

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()


PAGE = Path(__file__).resolve().parent / "web" / "index.html"


class PageHandler(BaseHTTPRequestHandler):
    """What the toolkit's small web servers share: requests logged at debug level, whole answers sent
    with their length and never cached."""

    def log_message(self, fmt, *args):
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(json.dumps(obj).encode(), "application/json", status)

    def _not_found(self) -> None:
        self._send(b"not found\n", "text/plain", HTTPStatus.NOT_FOUND)


class _Handler(PageHandler):
    """The routes: the page, the state, one frame, the stream."""

    routes: ClassVar[dict[str, str]] = {"/": "_page", "/index.html": "_page", "/state.json": "_state",
                                        "/frame.jpg": "_frame", "/stream.mjpg": "_stream", "/metrics": "_metrics"}

    @property
    def frames(self) -> FrameServer:
        return self.server.frames

    def do_POST(self):
        if self.path.split("?")[0] != "/save" or self.frames.on_save is None:
            self._not_found()
            return
        self.frames.on_save()
        self._json({"saving": True}, HTTPStatus.ACCEPTED)

    def do_GET(self):
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            self._not_found()
        else:
            getattr(self, route)()

    def _page(self) -> None:
        self._send(PAGE.read_bytes(), "text/html; charset=utf-8")

    def _state(self) -> None:
        self._json(self.frames.state())

    def _frame(self) -> None:
        jpeg = self.frames.snapshot()
        if jpeg is None:
            self._send(b"no frame yet\n", "text/plain", HTTPStatus.SERVICE_UNAVAILABLE)
        else:
            self._send(jpeg, "image/jpeg")

    def _metrics(self) -> None:
        if self.frames.metrics is None:
            self._not_found()
        else:
            self._send(self.frames.metrics(), "text/plain; version=0.0.4; charset=utf-8")

    def _stream(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.frames.viewer(+1)
        seq = 0
        try:
            while True:
                seq, jpeg = self.frames.next_jpeg(seq)
                if jpeg is None:
                    if self.frames.closed:
                        return
                    continue
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                 f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the viewer went away
        finally:
            self.frames.viewer(-1)
