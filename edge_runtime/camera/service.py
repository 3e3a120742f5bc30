"""`fmnist-edge camera ... --systemd-unit`: the systemd unit that runs this camera command as a service,
for a board in a corner that must keep classifying for weeks: started at boot, restarted when it
fails or hangs (Type=notify with a watchdog: the camera pings it only while frames are classified,
camera.sinks.watchdog), its output in the journal (`journalctl -u fmnist-edge -f`), its memory capped.
"""

from __future__ import annotations

import getpass
import shlex
import sys
from pathlib import Path

from edge_runtime.camera.sources import kind_of
from edge_runtime.core.errors import FmnistEdgeError

PATH_OPTIONS = ("--model", "--record", "--collect")
MEMORY_MAX = "512M"
"""The camera's resident memory stays near 90 MB; a process past this is restarted, not the board."""
WATCHDOG_SEC = 30
"""A camera that classified no frame for this long is restarted (a live source's own reopening waits
10 s per try, so a short unplugging is ridden out; a longer one ends in a restart, which reopens it too)."""


def _absolute(option: str, value: str) -> str:
    """Paths as the service will see them (it runs elsewhere than this shell)."""
    if option in PATH_OPTIONS or (option == "--source" and kind_of(value) == "file"):
        return str(Path(value).expanduser().resolve())
    return value


def _one_line(option: str, value: str) -> str:
    """A value a unit can hold: no newline or other control character (each would start a line of its own)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise FmnistEdgeError(f"{option} {value!r}: a control character (a newline?) cannot go into a systemd unit: "
                              "give the value without it")
    return value


def _quote(word: str) -> str:
    """A word of ExecStart: shell-like quoting, and systemd's own % and $ doubled."""
    return shlex.quote(word).replace("%", "%%").replace("$", "$$")


def executable() -> list[str]:
    """How to start fmnist-edge from this installation (the venv's console script, or its Python)."""
    script = Path(sys.executable).with_name("fmnist-edge")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "toolkit.cli"]


def systemd_unit(options: list[tuple[str, str | None]]) -> str:
    """The unit for `camera` with these (option, value) pairs (value None for a flag)."""
    if ("--headless", None) not in options:
        raise FmnistEdgeError("a service has no display: add --headless (and --serve 0.0.0.0:8080 to watch it "
                              "from a browser)")
    words = [*executable(), "camera"]
    for option, value in options:
        words += [option] if value is None else [option, _absolute(option, _one_line(option, value))]
    user = getpass.getuser()
    account = f"User={user}\nSupplementaryGroups=video\n" if user != "root" else "# runs as root: put User=NAME here\n"
    source = next((v for o, v in options if o == "--source"), "0").replace("%", "%%")
    return f"""# fmnist-edge camera as a service. Install it with:
#   sudo cp fmnist-edge.service /etc/systemd/system/ && sudo systemctl daemon-reload
#   sudo systemctl enable --now fmnist-edge && journalctl -u fmnist-edge -f
[Unit]
Description=fmnist-edge camera ({source})
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=notify
NotifyAccess=main
WatchdogSec={WATCHDOG_SEC}
TimeoutStartSec=120
{account}WorkingDirectory={Path.home() if user != "root" else "/"}
ExecStart={" ".join(_quote(w) for w in words)}
Restart=on-failure
RestartSec=5
Environment=PYTHONUNBUFFERED=1
StandardOutput=journal
StandardError=journal
MemoryMax={MEMORY_MAX}
KillSignal=SIGTERM
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
"""

