"""HOST:PORT on the command line (`--serve`, `tune --oracle`, `--mqtt`)."""

from __future__ import annotations

import ipaddress
import re

from edge_runtime.core.errors import FmnistEdgeError

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")


def _is_host(host: str) -> bool:
    """An IPv4 or IPv6 address, or a DNS name of ASCII letters, digits and hyphens."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return len(host) <= 253 and _HOSTNAME.fullmatch(host) is not None


def parse_host_port(value: str, flag: str, default_host: str | None = "127.0.0.1") -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT, and where there is a default host also :PORT or PORT.

    The default is 127.0.0.1 (this machine only): serving to the network is asked for, not assumed.
    """
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or (default_host or "")
    example = "127.0.0.1:8080 or 0.0.0.0:8080" if default_host else "10.0.0.5:8000"
    if not host or not port.isascii() or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise FmnistEdgeError(f"{flag} {value!r}: give HOST:PORT, e.g. {example}")
    if not _is_host(host):
        raise FmnistEdgeError(f"{flag} {value!r}: {host!r} is not a host name or IP address; give HOST:PORT, "
                              f"e.g. {example}")
    return host, int(port)
