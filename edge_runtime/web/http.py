"""The plumbing the toolkit's small web servers share (the camera's page, the labelling page): a
threading server that listens on HOST:PORT with one-line errors and takes clients that go away
quietly, and a handler base that logs at debug level and sends whole answers with their length."""

from __future__ import annotations

import json
import logging
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edge_runtime.core.errors import FmnistEdgeError, first_line
from edge_runtime.web.address import parse_host_port

log = logging.getLogger(__name__)


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
