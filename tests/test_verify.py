"""verify and the checksum: every exported file checks its own bytes on load, and carries reference inputs
with the answers the exporter's machine computed; a device that computes the same passes, a damaged file,
an old file and a device that computes something else are each told so. No TensorFlow: golden files."""

from __future__ import annotations

import json
import platform
import shutil

import numpy as np
import pytest
from conftest import error_line, run_cli
from flip_sweep import unsealed

from edge_runtime.core.backends import open_backend
from edge_runtime.core.classifier import BUNDLED
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.metadata import tflite_with_metadata
from edge_runtime.core.modelfile import MARKERS, checksum_state, seal, tflite_flatbuffer
from edge_runtime.core.references import BOUNDARY, REST, References
from edge_runtime.tools.verify import NO_REFERENCES, verify_backend

VERIFY_KEYS = {"path", "images", "top1_agreement", "max_abs_diff", "passed"}


def verify_json(*args: str, check: bool = True) -> tuple[dict, object]:
    proc = run_cli("verify", *args, "--json", check=check)
    return json.loads(proc.stdout), proc


def test_bundled_models_pass():
    report, _ = verify_json()
    assert [m["path"] for m in report["models"]] == [str(BUNDLED["tflite"]), str(BUNDLED["onnx"])]
    for m in report["models"]:
        assert VERIFY_KEYS <= set(m) and m["passed"] is True and m["checksum"] == "ok"
        assert m["images"] == 64 and m["estimated_test_agreement"] >= 0.985


def test_golden_files_pass_in_every_precision(golden):
    out, report = golden
    paths = [str(out / row["path"]) for row in report["models"]]
    result, _ = verify_json(*paths)
    assert [m["passed"] for m in result["models"]] == [True] * len(paths)
    assert {m["precision"] for m in result["models"]} == {"fp32", "fp16", "dynamic", "int8"}


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_int8.onnx"])
def test_a_changed_byte_is_one_line(golden, tmp_path, name):
    data = bytearray((golden[0] / name).read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the weights
    damaged = tmp_path / name
    damaged.write_bytes(bytes(data))
    line = error_line(run_cli("verify", str(damaged), check=False))
    assert str(damaged) in line and "damaged" in line and "SHA-256" in line


def test_an_old_file_is_told_so(golden, tmp_path):
    source = golden[0] / "model_int8.tflite"
    with open_backend(source) as backend:
        meta = backend.metadata
    old = tmp_path / "old.tflite"
    old.write_bytes(tflite_with_metadata(source.read_bytes(), meta))  # metadata, no references
    report, proc = verify_json(str(old), check=False)
    assert report["models"][0]["passed"] is False and report["models"][0]["failures"] == [NO_REFERENCES]
    assert error_line(proc) == f"Error: verify failed: {old}: {NO_REFERENCES}"


def references_of(path) -> tuple[object, References]:
    backend = open_backend(path)
    return backend, References.from_bytes(path, backend.references_blob)


def answering(backend, probs: np.ndarray):
    """The backend, answering `probs` on the reference images: a device that computes them."""
    backend.predict_batches = lambda images, batch=500: probs
    return backend


def swap_top_two(probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The runner-up wins on these rows (by one int8 step: near a boundary the two are often equal)."""
    out = probs.copy()
    for r in rows:
        first = int(out[r].argmax())
        runner_up = int(np.argsort(np.where(np.arange(10) == first, -1, out[r]))[-1])
        out[r, runner_up] = out[r, first] + 1 / 256
    return out


def test_changes_near_the_boundary_pass_changes_elsewhere_fail(golden):
    backend, refs = references_of(golden[0] / "model_int8.tflite")
    boundary, rest = np.flatnonzero(refs.stratum == BOUNDARY), np.flatnonzero(refs.stratum == REST)
    # As LiteRT on ARM: a few of the hardest images change their answer.
    arm_like = verify_backend(answering(backend, swap_top_two(refs.probs, boundary[:4])))
    assert arm_like.passed and arm_like.changed_near_boundary == 4 and arm_like.changed_elsewhere == 0
    assert arm_like.top1_agreement == pytest.approx(60 / 64)
    assert arm_like.estimated_test_agreement == pytest.approx(1 - refs.weights[BOUNDARY] * 4 / len(boundary))
    # Something else: confident answers change too.
    other = verify_backend(answering(backend, swap_top_two(refs.probs, rest[:2])))
    assert not other.passed and other.changed_elsewhere == 2
    assert any(f.startswith("estimated top-1 agreement") for f in other.failures)


def test_fp32_files_must_match_to_the_gates_tolerance(golden):
    backend, refs = references_of(golden[0] / "model_fp32.tflite")
    close = verify_backend(answering(backend, refs.probs + 5e-5))
    assert close.passed and close.max_abs_diff == pytest.approx(5e-5, rel=1e-3)
    off = verify_backend(answering(backend, refs.probs + 1e-3))
    assert not off.passed and off.failures == ["max abs difference 1.00e-03 > 1e-04"]


def test_references_are_stratified(golden):
    from converters.references import BOUNDARY_SHARE, select

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=1000).astype(np.float32)
    labels = rng.integers(0, 10, 1000)
    indices, stratum, weights = select(probs, labels, per_stratum=16)
    top2 = np.sort(probs, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    cutoff = np.sort(margin)[round(BOUNDARY_SHARE * 1000) - 1]
    assert (margin[indices[stratum == BOUNDARY]] <= cutoff).all()
    assert (margin[indices[stratum == REST]] > cutoff).all()
    assert len(set(indices)) == 32 and weights.sum() == pytest.approx(1) and weights[BOUNDARY] == BOUNDARY_SHARE


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_int8.onnx"])
def test_every_byte_of_the_file_is_covered(golden, name):
    data = (golden[0] / name).read_bytes()
    assert checksum_state(golden[0] / name, data) == "ok"
    before_marker = len(data) - 64 - len(MARKERS[golden[0].joinpath(name).suffix]) - 1
    # The start, the weights, the metadata just before the marker, the first and the last digit.
    for position in (0, len(data) // 2, before_marker, len(data) - 64, len(data) - 1):
        flipped = bytearray(data)
        flipped[position] ^= 0x01
        with pytest.raises(FmnistEdgeError, match="damaged"):
            checksum_state(golden[0] / name, bytes(flipped))


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_int8.onnx"])
def test_a_damaged_marker_is_refused_at_load(golden, tmp_path, name):
    """A flip in the marker before the digits: the file no longer says it is sealed, but it carries
    reference inputs, which only sealed files do: damaged, one line, and verify exits 1."""
    data = bytearray((golden[0] / name).read_bytes())
    data[-67] ^= 0x01  # a character of "sha256", the marker's last word in both formats
    path = tmp_path / name
    path.write_bytes(bytes(data))
    assert checksum_state(path, bytes(data)) == "missing"
    with pytest.raises(FmnistEdgeError, match="reference inputs but not the checksum"):
        open_backend(path)
    proc = run_cli("verify", str(path), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "damaged" in error_line(proc)


def test_a_file_without_references_or_checksum_loads_and_verify_refuses_it(golden, tmp_path):
    """What fmnist-edge wrote before checksums: metadata, no references, no checksum. It loads; verify
    cannot check it."""
    path = tmp_path / "old.tflite"
    path.write_bytes(unsealed((golden[0] / "model_int8.tflite").read_bytes(), ".tflite"))
    with open_backend(path) as backend:
        assert backend.checksum == "missing" and backend.metadata is not None
    report, proc = verify_json(str(path), check=False)
    assert report["models"][0]["failures"] == [NO_REFERENCES] and proc.returncode == 1


def test_sealing_needs_the_placeholder():
    with pytest.raises(ValueError, match="placeholder"):
        seal(b"no trailer here", ".tflite")


def test_restamping_keeps_the_model_bytes(golden, tmp_path):
    """The TFLite flatbuffer the runtime reads stays byte for byte through metadata and references."""
    path = tmp_path / "m.tflite"
    shutil.copy(golden[0] / "model_int8.tflite", path)
    with open_backend(path) as backend:
        meta, blob = backend.metadata, backend.references_blob
    path.write_bytes(tflite_with_metadata(path.read_bytes(), meta, blob))
    assert tflite_flatbuffer(path.read_bytes()) == tflite_flatbuffer((golden[0] / "model_int8.tflite").read_bytes())
    report, _ = verify_json(str(path))
    assert report["models"][0]["passed"] is True


def test_bench_reports_verify_in_its_device_block(golden):
    path = str(golden[0] / "model_int8.tflite")
    report = json.loads(run_cli("bench", path, "--runs", "10", "--warmup", "1", "--json").stdout)
    (verified,) = report["device"]["verify"]
    assert verified["model"] == path and verified["passed"] is True and verified["failures"] == []
    assert verified["top1_agreement"] == verified["estimated_test_agreement"] == 1.0
    # Bit for bit on the kind of CPU that made the golden files; elsewhere LiteRT's int8 kernels may round
    # an output one step (1/256) differently (seen on arm64).
    assert verified["max_abs_diff"] == 0.0 if platform.machine() == "x86_64" else verified["max_abs_diff"] <= 1 / 64
