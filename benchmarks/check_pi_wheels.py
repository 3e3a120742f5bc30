"""Check that every base dependency of fmnist-edge installs from binary wheels on a Raspberry Pi.

For Raspberry Pi OS 64-bit Bookworm (Python 3.11, glibc 2.36) and Trixie (Python 3.13, glibc 2.41),
ask pip to resolve the base install (dependencies read from pyproject.toml, with everything they
pull in) for linux/aarch64 with `--only-binary=:all:`, and print the wheel chosen for each package.
A dependency without an aarch64 wheel fails the resolution and the script exits 1.

    python benchmarks/check_pi_wheels.py [--markdown]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {  # name: (python version, glibc minor version)
    "Bookworm, Python 3.11": ("3.11", 36),
    "Trixie, Python 3.13": ("3.13", 41),
}


def base_dependencies() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def platform_args(glibc_minor: int) -> list[str]:
    """Every manylinux tag a system with this glibc accepts (pip matches tags exactly)."""
    tags = ["manylinux2014_aarch64", "linux_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in range(17, glibc_minor + 1)]
    return [arg for tag in tags for arg in ("--platform", tag)]


def resolve(python: str, glibc_minor: int, requirements: list[str]) -> tuple[bool, list[str], str]:
    """(ok, wheel file names, pip's last error line)."""
    with tempfile.TemporaryDirectory(prefix="pi-wheels-") as dest:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--implementation", "cp",
               "--python-version", python, *platform_args(glibc_minor), "--dest", dest, *requirements]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = sorted(p.name for p in Path(dest).glob("*.whl"))
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    return proc.returncode == 0, wheels, errors[-1] if errors else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    requirements = base_dependencies()
    results = {name: resolve(py, glibc, requirements) for name, (py, glibc) in TARGETS.items()}
    packages = sorted({w.split("-")[0].lower() for _, wheels, _ in results.values() for w in wheels})
    if args.markdown:
        print("| package | " + " | ".join(results) + " |")
        print("|---|" + "---|" * len(results))
        for pkg in packages:
            cells = [next((w for w in wheels if w.split("-")[0].lower() == pkg), "-")
                     for _, wheels, _ in results.values()]
            print(f"| {pkg} | " + " | ".join(f"`{c}`" if c != "-" else c for c in cells) + " |")
    else:
        for name, (ok, wheels, error) in results.items():
            print(f"{name}: {'all binary wheels' if ok else 'FAILED: ' + error}")
            for wheel in wheels:
                print(f"  {wheel}")
    failed = [name for name, (ok, _, _) in results.items() if not ok]
    if failed:
        print(f"no aarch64 wheel for some dependency on: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
