"""`camera --serve`: the annotated frames as an MJPEG stream and the current label, over HTTP.

For a board without a screen: open http://HOST:PORT/ in a browser on the same network. Routes:
`/` the page, `/stream.mjpg` the stream, `/frame.jpg` the latest frame, `/state.json` the label, and
whatever routes the other sinks offer through the run's Outlets (`/metrics` from the metrics sink,
`POST /save` from --collect). Frames are JPEG-encoded only while someone is watching.

The server is the labelling page's (`web.http.GuardedServer`): a Host that is not this server's on a
loopback address, a POST from another site's page (`/save` would keep a frame), a body over 4 KB, a slow
or idle client, a 33rd connection, another method: each refused with a status and one line. A stream
viewer is bound by its writes (10 s each), not by the 30 s a request may take.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from edge_runtime.web.http import GuardedHandler, GuardedServer, Refused

log = logging.getLogger(__name__)
BOUNDARY = "fmnist-edge-frame"


class FrameServer:
    """Holds the newest annotated frame and state; HTTP handler threads wait on it."""

    def __init__(self, address: str, jpeg_quality: int = 80, routes: dict | None = None,
                 extra_state: Callable[[], dict] | None = None):
        self.routes: dict[tuple[str, str], Callable] = routes if routes is not None else {}
        """(method, path) -> a handler returning a sinks.base.Reply: the routes other sinks offer, read
        on each request (a sink that starts after the server still gets its routes served)."""
        self.extra_state = extra_state
        """Fields /state.json adds to the published state, asked for when it is requested (not on every frame)."""
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._state = {"label": "waiting", "score": 0.0, "frame": -1, "fps": 0.0, "latency_ms": 0.0}
        self._viewers = 0
        self._snapshots_wanted = 0
        self._closed = False
        self._quality = jpeg_quality
        self._httpd = _Server.listen(address, _Handler)
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
            state = dict(self._state)
        return {**state, **self.extra_state()} if self.extra_state is not None else state

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


class _Server(GuardedServer):
    frames: FrameServer
    name = "camera page"


class _Handler(GuardedHandler):
    """The routes: the page, the state, one frame, the stream, and those other sinks offer."""

    server: _Server
    cross_site_post = "a page of another site may not post to the camera"
    routes: ClassVar[dict[str, str]] = {"/": "_page", "/index.html": "_page", "/state.json": "_state",
                                        "/frame.jpg": "_frame", "/stream.mjpg": "_stream"}

    @property
    def frames(self) -> FrameServer:
        return self.server.frames

    def _offered(self, method: str) -> bool:
        """Answer from a route another sink offers; False when there is none for this request."""
        handler = self.frames.routes.get((method, self.path.split("?")[0]))
        if handler is None:
            return False
        reply = handler()
        self._send(reply.body, reply.content_type, HTTPStatus(reply.status))
        return True

    def _post(self) -> None:
        self._body(required=False)  # none is asked for; a big or slow one is refused all the same
        if not self._offered("POST"):
            raise Refused(HTTPStatus.NOT_FOUND, "not found")

    def _get(self) -> None:
        route = self.routes.get(self.path.split("?")[0])
        if route is not None:
            getattr(self, route)()
        elif not self._offered("GET"):
            self._not_found()

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

    def _stream(self) -> None:
        self.long_lived()
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
        except (ConnectionError, TimeoutError):
            pass  # the viewer went away, or stopped reading for SOCKET_SECONDS
        finally:
            self.frames.viewer(-1)
