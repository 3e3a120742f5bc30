"""The import rules of DESIGN.md: the edge side never loads TensorFlow or the training side."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
needs_source = pytest.mark.skipif(not (ROOT / "edge_runtime").is_dir(),
                                  reason="reads the source tree, which is not beside these tests (an installed "
                                         "wheel is under test: make test-arm64)")


def imported_modules(package: str) -> dict[str, set[str]]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@needs_source
def test_edge_runtime_imports_neither_tensorflow_nor_the_training_side():
    forbidden = {"tensorflow", "keras", "tf2onnx", "toolkit", "converters"}
    offenders = {f: sorted(n & forbidden) for f, n in imported_modules("edge_runtime").items() if n & forbidden}
    assert not offenders


@needs_source
def test_cli_module_imports_nothing_heavy_at_top_level():
    tree = ast.parse((ROOT / "toolkit" / "cli.py").read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module)
    assert top <= {"__future__", "contextlib", "json", "logging", "pathlib", "sys", "click",
                   "edge_runtime._version", "edge_runtime.core.errors"}, top


def modules_after(code: str) -> set[str]:
    script = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_edge_runtime_leaves_tensorflow_out():
    loaded = modules_after("import edge_runtime")
    assert "tensorflow" not in loaded and "keras" not in loaded


def test_import_converters_leaves_tensorflow_out():
    """Checking export flags (`--format onnx --fp16`) must not cost a TensorFlow import."""
    loaded = modules_after("import converters.export, converters.tflite, converters.onnx, converters.validate")
    assert "tensorflow" not in loaded and "keras" not in loaded


@needs_source
def test_converters_never_import_the_training_side():
    offenders = {f: sorted(n & {"toolkit"}) for f, n in imported_modules("converters").items() if "toolkit" in n}
    assert not offenders


@needs_source
def test_the_tree_shows_the_edge_runtimes_parts():
    """The edge runtime's parts (DESIGN.md's layout) are its sub-packages, and nothing else lives at its top."""
    package = ROOT / "edge_runtime"
    assert {p.name for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"} == {
        "core", "data", "camera", "field", "tools", "report", "web"}
    assert {p.name for p in package.glob("*.py")} == {"__init__.py", "_version.py"}


def test_loading_an_onnx_model_does_not_run_the_protobuf_parser():
    code = ("from edge_runtime import load_model, bundled_model_path\n"
            "load_model(bundled_model_path('onnx')).close()")
    assert "edge_runtime.core.onnx_proto" not in modules_after(code)


@pytest.mark.parametrize("args", [["--help"], ["data", "--help"], ["train", "--help"]])
def test_cli_help_leaves_tensorflow_out(args):
    code = ("from toolkit.cli import cli\n"
            f"try:\n    cli({args!r}, prog_name='fmnist-edge')\nexcept SystemExit:\n    pass")
    assert "tensorflow" not in modules_after(code)
