"""Fuzzing the model files through every edge command: seeded byte flips, truncations and metadata
mutations of both bundled formats (and of the same files without their checksum, as files exported before
fmnist-edge wrote one would be), and hostile files behind a valid checksum: references that inflate to
gigabytes (or lie about their size), references and metadata crafted by seeded mutations of their members,
types, shapes and values, JSON nested 100,000 deep (tests/hostile_files.py). Each command must give one error
line or a correct answer; never an exception that escapes, a hang, or a memory blow-up (the worker runs under
a 3 GB address-space limit and reports its peak resident memory: a reader that inflates what a file claims
fails here)."""

from __future__ import annotations

import base64
import json
import resource
import subprocess
import sys
from pathlib import Path

import cv2
import hostile_files as hostile
import numpy as np
import pytest
from flip_sweep import unsealed  # the file as one exported before checksums

from edge_runtime.core.backends import open_backend
from edge_runtime.core.classifier import BUNDLED
from edge_runtime.core.metadata import TFLITE_MEMBER, TFLITE_REFERENCES
from edge_runtime.core.modelfile import (
    ONNX_CHECKSUM_KEY,
    ONNX_REFERENCES_KEY,
    PLACEHOLDER,
    seal,
    tflite_flatbuffer,
    tflite_pack,
)
from toolkit.synthetic import render_frame, write_video

pytestmark = pytest.mark.heavy  # hundreds of hostile files: minutes under emulation (Makefile, ARM64_FULL)

SEED = 20261122
ADDRESS_SPACE = 3 << 30
PEAK_RSS_MB = 1024


def flipped(data: bytes, positions) -> bytes:
    out = bytearray(data)
    for p in positions:
        out[p] ^= 0xFF
    return bytes(out)


def metadata_mutations(path: Path) -> dict[str, bytes]:
    """Re-sealed files whose metadata was changed: the checksum passes, the schema must not (or must not matter)."""
    with open_backend(path) as backend:
        meta = backend.metadata.to_dict()
        references = backend.references_blob
    variants = {"nine-classes": {**meta, "class_names": meta["class_names"][:9]},
                "precision-int4": {**meta, "precision": "int4"}, "input-null": {**meta, "input": None},
                "unknown-field": {**meta, "colour": "blue"}}
    if path.suffix == ".tflite":
        flat = tflite_flatbuffer(path.read_bytes())
        return {name: tflite_pack(flat, {TFLITE_MEMBER: json.dumps(raw).encode(), TFLITE_REFERENCES: references})
                for name, raw in variants.items()}
    try:
        import onnx
    except ImportError:  # a base install (a device) has no onnx package to rewrite the file with
        return {}
    out = {}
    for name, raw in variants.items():
        model = onnx.load_from_string(path.read_bytes())
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, {**{f"fmnist_edge.{k}": json.dumps(v) for k, v in raw.items()},
                                            ONNX_REFERENCES_KEY: base64.b64encode(references).decode(),
                                            ONNX_CHECKSUM_KEY: PLACEHOLDER.decode()})
        out[name] = seal(model.SerializeToString(), ".onnx")
    return out


def mutations(path: Path, rng: np.random.Generator) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, kind): damage to a "sealed" file and "metadata" changes must give one line or the
    original's answers; "old" files (no checksum to catch a changed weight) may answer otherwise."""
    data, suffix = path.read_bytes(), path.suffix
    old = unsealed(data, suffix)
    found = {f"flip-{p}": (flipped(data, [p]), "sealed") for p in rng.choice(len(data), 8, replace=False)}
    found |= {f"cut-{n}": (data[:n], "sealed") for n in (1, len(data) // 10, len(data) // 2, len(data) - 1)}
    found |= {f"old-flip-{p}": (flipped(old, [p]), "old") for p in rng.choice(len(old), 12, replace=False)}
    found |= {f"old-tail-flip-{p}": (flipped(old, [p]), "old") for p in len(old) - 1 - rng.choice(600, 6, False)}
    found |= {f"meta-{k}": (v, "metadata") for k, v in metadata_mutations(path).items()}
    found |= {f"hostile-{k}": (v, "hostile") for k, v in hostile_mutations(path, rng).items()}
    return found


def hostile_mutations(path: Path, rng: np.random.Generator) -> dict[str, bytes]:
    """Re-sealed files (a valid checksum) whose references or metadata a hostile tester crafted: bombs,
    100,000-deep JSON, and seeded mutations of the references' members and the metadata's fields."""
    source = hostile.take_apart(path)
    deep = "[" * 100_000 + "]" * 100_000
    found = {"refs-inflate-1g": hostile.sealed(source, refs=hostile.inflating_npz(1 << 30)),
             "refs-inflate-4g": hostile.sealed(source, refs=hostile.inflating_npz(4_000_000_000)),
             "refs-inflate-1g-claims-1k": hostile.sealed(source, refs=hostile.inflating_npz(1 << 30, claimed=1024)),
             "meta-extra-900-deep": _with_extra(source, hostile.nested(900)),
             "meta-extra-100000-deep": _with_extra(source, deep)}
    for i in range(10):
        found[f"refs-mutated-{i}"] = hostile.sealed(source, refs=hostile.references(source, **_mutated_member(source,
                                                                                                            rng)))
    for i in range(8):
        key, value = _mutated_field(source, rng)
        found[f"meta-mutated-{i}-{key}"] = hostile.sealed(source, metadata={**source.metadata, key: value})
    return found


def _with_extra(source: hostile.Source, text: str) -> bytes:
    if source.suffix == ".tflite":
        return hostile.sealed(source, metadata=hostile.with_raw(source.metadata, "extra", text))
    return hostile.sealed(source, props={"fmnist_edge.extra": text})


def _mutated_member(source: hostile.Source, rng: np.random.Generator) -> dict:
    """One reference member changed in a way the exporter never writes: type, shape, values, or gone."""
    name = str(rng.choice(sorted(source.references)))
    value = source.references[name]
    changes = [lambda v: v.astype(str), lambda v: v.astype(object), lambda v: v.astype(np.float64),
               lambda v: v.reshape(-1), lambda v: v[:0], lambda v: np.repeat(v, 80, axis=0) if v.ndim else v,
               lambda v: np.full(v.shape, np.nan), lambda v: np.full(v.shape, -np.inf), lambda v: None,
               lambda v: np.array("{" * 5000 + "}" * 5000), lambda v: np.array('{"min_agreement": "all"}')]
    change = changes[rng.integers(len(changes))]
    try:
        return {name: change(value)}
    except (IndexError, ValueError):  # the rule (0-d text) cannot be sliced or read as a number
        return {name: value.reshape(1)}


def _mutated_field(source: hostile.Source, rng: np.random.Generator) -> tuple[str, object]:
    """One metadata field given a value a hostile file would try."""
    key = str(rng.choice(sorted(source.metadata)))
    values = [-1, 10**4000, -1e308, "x" * 100_000, "\x1b[2J\x1b[31mowned", ["a"] * 10_000, [None] * 12,
              {"shape": [-5, 28, 28, 1]}, {"file_zero_point": 10**30}, [[[[[[[[[[[]]]]]]]]]]], {"a": "\u202e" * 50}]
    return key, values[rng.integers(len(values))]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, test_set) -> tuple[Path, Path]:
    images, _ = test_set
    folder = tmp_path_factory.mktemp("fuzz-inputs")
    image = folder / "item.png"
    cv2.imwrite(str(image), render_frame(images[0, ..., 0], (240, 320), 160, (160, 120))[0])
    video = folder / "items.avi"
    write_video(video, images[:1, ..., 0], frames_per_item=4, size=(120, 160))
    return image, video


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_fuzzed_model_files_through_every_command(fmt, inputs, tmp_path):
    image, video = inputs
    source = BUNDLED[fmt]
    cases = mutations(source, np.random.default_rng(SEED))
    paths = {}
    for name, (data, _) in cases.items():
        paths[name] = tmp_path / f"{name}{source.suffix}"
        paths[name].write_bytes(data)
    report_file = tmp_path / "report.json"
    worker = Path(__file__).with_name("fuzz_worker.py")
    proc = subprocess.run([sys.executable, str(worker), str(report_file), str(image), str(video), str(source),
                           *map(str, paths.values())], capture_output=True, text=True, timeout=1800,
                          preexec_fn=limit_memory, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert report["peak_rss_kb"] < PEAK_RSS_MB * 1024, report["peak_rss_kb"]
    original = {r["command"]: r for r in report["runs"] if r["model"] == str(source)}
    assert all(r["exit"] == 0 for r in original.values()), original
    kinds = {str(paths[name]): kind for name, (_, kind) in cases.items()}
    problems = [problem for r in report["runs"] if r["model"] != str(source)
                for problem in _judge(r, kinds[r["model"]], original[r["command"]])]
    assert not problems, "\n".join(problems[:20])


def _judge(run: dict, kind: str, original: dict) -> list[str]:
    where = f"{Path(run['model']).name} {run['command']}"
    if run.get("hung"):
        return [f"{where}: no answer within a minute"]
    if run["escaped"]:
        return [f"{where}: {run['escaped']}"]
    lines = run["stderr"].strip().splitlines()
    if "Traceback" in run["stderr"]:
        return [f"{where}: a traceback"]
    if run["exit"] == 1:
        errors = [line for line in lines if line.startswith("Error: ")]
        return [] if len(errors) == 1 and lines[-1] == errors[0] else [f"{where}: not one error line: {lines}"]
    if run["exit"] != 0:
        return [f"{where}: exit {run['exit']}"]
    if kind in ("sealed", "metadata", "hostile") and run["command"] in ("predict", "evaluate") and \
            _answers(run) != _answers(original):
        return [f"{where}: answers differ from the original's"]
    return []


def _answers(run: dict):
    out = json.loads(run["stdout"])
    if "predictions" in out:
        return [p.get("class_id") for p in out["predictions"]]
    return [m["accuracy"] for m in out["models"]]
