"""The plumbing the toolkit's small web servers share (the camera's page, the labelling page).

`QuietHTTPServer` and `PageHandler`: a threading server that listens on HOST:PORT with one-line errors
and takes clients that go away quietly; a handler that logs at debug level and sends whole answers with
their length. `GuardedServer` and `GuardedHandler` add what a page on a network needs against hostile
clients: at most MAX_CONNECTIONS at once (more are closed, never queued), SOCKET_SECONDS per read or
write and REQUEST_SECONDS per connection (slowloris), bounded POST bodies, a Host that names this
server (DNS rebinding) and a POST's Origin that is this server (another site's form or fetch), the
standard library's own refusals as one line, and security headers on every answer.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from edge_runtime.core.errors import FmnistEdgeError, first_line
from edge_runtime.web.address import parse_host_port

log = logging.getLogger(__name__)

MAX_BODY = 4096
"""The largest POST body taken: the pages post a few dozen bytes."""
SOCKET_SECONDS = 10.0
"""How long one read or write on a client's connection may wait."""
REQUEST_SECONDS = 30.0
"""How long one connection may last, however slowly its bytes trickle in (slowloris); a stream the
handler marks long-lived (`GuardedHandler.long_lived`) is then bound by SOCKET_SECONDS per write only."""
MAX_CONNECTIONS = 32
"""Connections served at once; more are closed at once, never queued."""
SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"),  # an image is never run as a page
                    ("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                                "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"))


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


class Refused(Exception):
    """A request answered with `status` and one line saying why."""

    def __init__(self, status: HTTPStatus, reason: str):
        super().__init__(reason)
        self.status = status


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class GuardedServer(QuietHTTPServer):
    """At most MAX_CONNECTIONS at once, a thread each; more are closed at once. `name` is the page's,
    for log lines."""

    name = "web page"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.loopback = is_loopback(self.server_address[0])

    def accepts_host(self, host: str) -> bool:
        """Whether a Host header names this server. On a loopback address only loopback names do (a site's
        name pointed at 127.0.0.1 does not); on the network, any name it is reached by."""
        if not self.loopback:
            return True
        try:
            name = urlsplit("//" + host.strip()).hostname or ""
        except ValueError:
            return False
        return name == "localhost" or name.endswith(".localhost") or is_loopback(name)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            log.debug("%s: %d connections already; %s closed", self.name, MAX_CONNECTIONS, client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class GuardedHandler(PageHandler):
    """A handler whose every request gets an answer: its own (`_get`, `_post`, which subclasses write), or
    a status and one line (JSON {"error"} to a POST, text otherwise); never a traceback, never a hang."""

    server: GuardedServer
    server_version, sys_version = "fmnist-edge", ""  # no Python version for a prober to look up
    cross_site_post = "a page of another site may not post here"
    """The line a POST from another site's page is refused with."""

    def setup(self) -> None:
        self.timeout = SOCKET_SECONDS  # each read and write (StreamRequestHandler applies it)
        super().setup()
        self._deadline = threading.Timer(REQUEST_SECONDS, self._expire)
        self._deadline.daemon = True
        self._deadline.start()

    def _expire(self) -> None:
        """The whole connection took too long: cut it, wherever its thread waits."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def long_lived(self) -> None:
        """This answer is a stream (an MJPEG view): the request is read, so no deadline on the connection;
        each write is still bound by SOCKET_SECONDS (a viewer that stops reading is let go)."""
        self._deadline.cancel()
        self.close_connection = True

    def finish(self) -> None:
        self._deadline.cancel()
        super().finish()

    def end_headers(self) -> None:
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        super().end_headers()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (a request line or header too long, a malformed request, an
        unknown method) as one line of text, not its HTML page."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        if self.request_version == "HTTP/0.9":  # a request line that could not be read: answer in HTTP/1.0
            self.request_version = "HTTP/1.0"
        self._reason(code, message or phrase)

    def _reason(self, status: int, reason: str, allow: str | None = None) -> None:
        """An error answer: one line, JSON ({"error"}) to a POST (what the pages read), text otherwise."""
        line = " ".join(str(reason).split())[:300]
        as_json = self.command == "POST"
        body = (json.dumps({"error": line}) if as_json else line).encode() + b"\n"
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if as_json else "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _other_method(self) -> None:
        self._reason(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not served here; GET and POST only",
                     allow="GET, POST")

    do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _other_method

    def _get(self) -> None:
        self._not_found()

    def _post(self) -> None:
        raise Refused(HTTPStatus.NOT_FOUND, "not found")

    def _answer(self, route) -> None:
        try:
            self._check_origin()
            route()
        except Refused as exc:
            self._reason(exc.status, str(exc))
        except (ConnectionError, TimeoutError):
            raise  # the client went away or stalled: nobody to answer (the server logs it at debug level)
        except Exception as exc:  # a defect: one warning line, and the client still gets an answer
            log.warning("%s: %s %s: %s", self.server.name, self.command, self.path[:80], first_line(exc))
            self._reason(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {first_line(exc)}")

    def _check_origin(self) -> None:
        """A page of another site may neither read this one (a name pointed at 127.0.0.1: DNS rebinding)
        nor post to it (a form or fetch from elsewhere): its Host, and a POST's Origin, must be this server."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:
            raise Refused(HTTPStatus.BAD_REQUEST, "more than one Host header")
        if hosts and not self.server.accepts_host(hosts[0]):
            raise Refused(HTTPStatus.MISDIRECTED_REQUEST, f"Host {hosts[0][:60]!r} is not this server; open "
                                                          f"http://127.0.0.1:{self.server.server_address[1]}/")
        origin = self.headers.get("Origin")
        if self.command == "POST" and origin is not None:
            try:
                same = bool(hosts) and urlsplit(origin).netloc.lower() == hosts[0].strip().lower()
            except ValueError:
                same = False
            if not same:
                raise Refused(HTTPStatus.FORBIDDEN, self.cross_site_post)

    def _body(self, required: bool = True) -> bytes:
        """A POST's body: a Content-Length (required unless `required` is False, then none means empty),
        at most MAX_BODY, read within SOCKET_SECONDS."""
        if self.headers.get("Transfer-Encoding"):
            raise Refused(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not chunked")
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not lengths:
            if required:
                raise Refused(HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length")
            return b""
        value = lengths.pop()
        if lengths or not (value.isascii() and value.isdigit()):
            raise Refused(HTTPStatus.BAD_REQUEST, f"Content-Length {value[:20]!r} is not one length in bytes")
        if len(value) > 9 or int(value) > MAX_BODY:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a body of at most {MAX_BODY} bytes")
        try:
            body = self.rfile.read(int(value))
        except TimeoutError:
            raise Refused(HTTPStatus.REQUEST_TIMEOUT, "the body did not come in time") from None
        if len(body) < int(value):
            raise Refused(HTTPStatus.BAD_REQUEST, "the body ended before its Content-Length")
        return body
