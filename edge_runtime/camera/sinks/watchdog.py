"""systemd's watchdog (the unit `--systemd-unit` writes is `Type=notify` with `WatchdogSec=`): the camera
says READY=1 after its first classified frame and WATCHDOG=1 only while frames keep being classified,
through the socket systemd names in $NOTIFY_SOCKET (sd_notify's protocol: one datagram per message, a
leading "@" for Linux's abstract namespace). A camera whose source or inference hangs stops pinging,
and systemd restarts it, as it restarts one that exits. Without $NOTIFY_SOCKET (not under systemd)
this sink is not attached.
"""

from __future__ import annotations

import logging
import os
import socket

from edge_runtime.camera.pipeline import FrameResult, clock
from edge_runtime.camera.sinks.base import Sink, StreamInfo

log = logging.getLogger(__name__)


def notify(address: str, message: str) -> bool:
    """Send one sd_notify message; False (logged once by the caller) when the socket is gone."""
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), target)
        return True
    except OSError:
        return False


class WatchdogSink(Sink):
    def __init__(self, address: str, interval: float | None):
        self.address = address
        self.every = interval / 2 if interval else None
        """Seconds between pings: half systemd's WatchdogSec (None: no watchdog, only READY=1)."""
        self.ready = False
        self._last_ping = 0.0
        self._failed = False

    @classmethod
    def from_options(cls, opts) -> WatchdogSink | None:
        address = os.environ.get("NOTIFY_SOCKET")
        if not address:
            return None
        usec = os.environ.get("WATCHDOG_USEC", "")
        interval = int(usec) / 1e6 if usec.isascii() and usec.isdigit() and int(usec) > 0 else None
        return cls(address, interval)

    def start(self, stream: StreamInfo) -> None:
        self._send(f"STATUS=opening {stream.source}")

    def consume(self, result: FrameResult) -> None:
        now = clock()
        if not self.ready:
            self._send("READY=1\nSTATUS=classifying")
            self.ready, self._last_ping = True, now
        elif self.every is not None and now - self._last_ping >= self.every:
            self._send("WATCHDOG=1")
            self._last_ping = now

    def stop(self, summary) -> None:
        self._send("STOPPING=1")

    def _send(self, message: str) -> bool:
        sent = notify(self.address, message)
        if not sent and not self._failed:
            log.warning("systemd's notify socket %s does not answer; the watchdog cannot be told", self.address)
            self._failed = True
        return sent
