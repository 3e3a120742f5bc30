"""The docs say what the code does: the CLI reference is the commands' own help, every shell command in
README.md and docs/ names commands, flags, modules and make targets that exist, the fast ones run as
written, and the site builds with no broken link."""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
needs_source = pytest.mark.skipif(not (ROOT / "docs").is_dir(), reason="reads the docs beside the source tree")
RUN_AS_WRITTEN = {"recipes", "info", "verify"}
"""Commands fast enough to run here exactly as the docs write them (when every path they name exists)."""


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def shell_lines(path: Path) -> list[str]:
    """The commands of a file's ```sh blocks, continuation lines joined, comments and prompts dropped."""
    lines, block, joined = [], False, ""
    for raw in path.read_text().splitlines():
        if raw.startswith("```"):
            block = raw.strip() in ("```sh", "```bash", "```shell") if not block else False
            continue
        if not block:
            continue
        text = joined + raw.split(" #")[0].strip() if not raw.lstrip().startswith("#") else joined
        if text.endswith("\\"):
            joined = text[:-1] + " "
            continue
        joined = ""
        if text.strip():
            lines.append(text.strip().removeprefix("$ "))
    return lines


def commands(prefix: str) -> list[tuple[Path, list[str]]]:
    """Every `prefix ...` segment of every documented shell line, as words."""
    found = []
    for path in doc_files():
        for line in shell_lines(path):
            for segment in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
                words = segment.split()
                while words and (("=" in words[0] and not words[0].startswith("-")) or words[0] in ("sudo", "time")):
                    words = words[1:]  # VAR=value and sudo before the command
                if words and words[0].endswith(prefix):
                    found.append((path, words))
    return found


def options_of(command) -> set[str]:
    names = set()
    for param in command.params:
        names |= {o.split("=")[0] for o in (*param.opts, *param.secondary_opts)}
    return names


@needs_source
def test_the_cli_reference_is_the_commands_own_help():
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli_reference", "--check"], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr


@needs_source
def test_every_documented_command_and_flag_exists():
    from toolkit.cli import cli

    wrong = []
    for path, words in commands("fmnist-edge"):
        name = next((w for w in words[1:] if not w.startswith("-")), None)
        if name is None:
            continue
        command = cli.commands.get(name)
        if command is None:
            wrong.append(f"{path.name}: no command {name!r}: {' '.join(words)}")
            continue
        known = options_of(command) | options_of(cli) | {"--help"}
        wrong += [f"{path.name}: {name} has no {flag}: {' '.join(words)}" for flag in
                  (w.split("=")[0] for w in words if w.startswith("--")) if flag not in known]
    assert wrong == []


@needs_source
def test_every_documented_module_and_make_target_exists():
    wrong = []
    for path, words in commands("python"):
        if len(words) > 2 and words[1] == "-m" and importlib.util.find_spec(words[2]) is None:
            wrong.append(f"{path.name}: no module {words[2]}")
        elif len(words) > 1 and words[1].endswith(".py") and not (ROOT / words[1]).is_file():
            wrong.append(f"{path.name}: no script {words[1]}")
    targets = set(re.findall(r"^([a-z0-9-]+):", (ROOT / "Makefile").read_text(), re.M))
    for path, words in commands("make"):
        wrong += [f"{path.name}: no make target {w}" for w in words[1:] if "=" not in w and w not in targets]
    assert wrong == []


@needs_source
def test_the_fast_documented_commands_run_as_written():
    ran = 0
    for path, words in commands("fmnist-edge"):
        args = words[1:]
        if not args or args[0] not in RUN_AS_WRITTEN:
            continue
        paths = [a for a in args[1:] if not a.startswith("-")]
        if any(not (ROOT / a).exists() for a in paths if args[0] != "recipes"):
            continue  # a file of the reader's (model_int8.tflite): nothing to run it on here
        proc = run_cli(*shlex.split(" ".join(args)), cwd=ROOT, check=False)
        assert proc.returncode == 0, (path.name, " ".join(words), proc.stderr[-2000:])
        ran += 1
    assert ran >= 3


@needs_source
@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason="mkdocs is part of the dev extras: pip install 'fmnist-edge[dev]'")
def test_the_site_builds_strictly(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    proc = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
