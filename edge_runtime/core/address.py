"""HOST:PORT on the command line (`--serve`, `tune --oracle`, `--mqtt`)."""

from __future__ import annotations

from edge_runtime.core.errors import FmnistEdgeError


def parse_host_port(value: str, flag: str, default_host: str | None = "127.0.0.1") -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT, and where there is a default host also :PORT or PORT.

    The default is 127.0.0.1 (this machine only): serving to the network is asked for, not assumed.
    """
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or (default_host or "")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        example = "127.0.0.1:8080 or 0.0.0.0:8080" if default_host else "10.0.0.5:8000"
        raise FmnistEdgeError(f"{flag} {value!r}: give HOST:PORT, e.g. {example}")
    return host, int(port)
