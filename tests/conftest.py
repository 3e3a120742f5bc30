"""Shared fixtures: the real dataset (Debian package) and a CLI runner in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def fmnist_dir() -> Path:
    """The Debian dataset directory; `make test` installs the package."""
    if not (DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.fail("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist (make test does it)")
    return DEBIAN_DIR


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, check: bool = True,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `fmnist-edge ARGS` as users do, in a fresh interpreter."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli", *args], capture_output=True, text=True, check=False,
                          env=full_env, timeout=timeout, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"fmnist-edge {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def run_cli_json(*args: str, **kwargs) -> dict:
    proc = run_cli(*args, "--json", **kwargs)
    return json.loads(proc.stdout)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one error line of a failed command (logs may precede it; no traceback may)."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    return errors[0]
