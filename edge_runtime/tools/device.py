"""What machine a benchmark ran on, and whether it stayed cool and unthrottled while it ran.

Raspberry Pi boards are read through `/proc/device-tree/model` and `vcgencmd` (firmware
temperature and throttling flags); elsewhere through `/proc/cpuinfo`, cpufreq and thermal zones.
Anything the machine does not expose is None, never guessed.
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# vcgencmd get_throttled bits: now (0-3) and since boot (16-19).
_THROTTLE_NOW = {0: "under-voltage", 1: "ARM frequency capped", 2: "throttled", 3: "soft temperature limit"}
_THROTTLE_SINCE_BOOT_SHIFT = 16


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def _vcgencmd(*args: str) -> str | None:
    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu_model() -> str:
    info = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in info.splitlines():
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def temperature_c() -> float | None:
    """SoC temperature: vcgencmd on a Pi, else the hottest CPU-like thermal zone."""
    out = _vcgencmd("measure_temp")  # temp=48.3'C
    if out and "=" in out:
        try:
            return float(out.split("=")[1].split("'")[0])
        except ValueError:
            pass
    temps = []
    for zone in glob.glob("/sys/class/thermal/thermal_zone*"):
        raw = _read(f"{zone}/temp")
        if raw and raw.isascii() and raw.lstrip("-").isdigit():
            temps.append(int(raw) / 1000.0)
    return max(temps) if temps else None


def throttling() -> dict | None:
    """The Pi firmware's throttling flags now and since boot; None where there is no vcgencmd."""
    out = _vcgencmd("get_throttled")  # throttled=0x50000
    if not out or "=" not in out:
        return None
    bits = int(out.split("=")[1], 16)
    now = [name for bit, name in _THROTTLE_NOW.items() if bits & (1 << bit)]
    since = [name for bit, name in _THROTTLE_NOW.items() if bits & (1 << (bit + _THROTTLE_SINCE_BOOT_SHIFT))]
    return {"raw": hex(bits), "now": now, "since_boot": since}


def cpu_freq_mhz() -> float | None:
    raw = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    return int(raw) / 1000.0 if raw and raw.isascii() and raw.isdigit() else None


def snapshot() -> dict:
    """Temperature, frequency and throttling at one moment (taken before and after a run)."""
    return {"temperature_c": temperature_c(), "cpu_freq_mhz": cpu_freq_mhz(), "throttling": throttling()}


def _versions() -> dict:
    found = {}
    for dist in ("ai-edge-litert", "tflite-runtime", "onnxruntime", "numpy", "opencv-python-headless",
                 "opencv-python", "fmnist-edge"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def _os_name() -> str:
    release = _read("/etc/os-release") or ""
    for line in release.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.platform()


def describe() -> dict:
    """The static facts of the machine."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    max_freq = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    return {
        "board": _read("/proc/device-tree/model"),
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "cpu_max_mhz": int(max_freq) / 1000.0 if max_freq and max_freq.isascii() and max_freq.isdigit() else None,
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "versions": _versions(),
    }


def throttled_during(before: dict, after: dict) -> bool | None:
    """True if the firmware reported throttling or capping at either end of a run; None if unknown."""
    flags = [s["throttling"] for s in (before, after) if s.get("throttling") is not None]
    if not flags:
        return None
    newly = set(after["throttling"]["since_boot"]) - set(before["throttling"]["since_boot"]) \
        if before.get("throttling") and after.get("throttling") else set()
    return bool(newly or any(f["now"] for f in flags))
