"""Edge backends on real golden files: both runtimes, every precision, batch 1 and 32."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest
from conftest import ALL_FILES

from edge_runtime import load_model
from edge_runtime.core.backends import open_backend
from edge_runtime.core.backends.base import Backend, TensorSpec, sum_tolerance
from edge_runtime.core.backends.litert import _input_mapper, _output_mapper
from edge_runtime.core.errors import FmnistEdgeError

GOLDEN_MACHINE = "x86_64"
"""Where tests/golden was made."""


@pytest.mark.parametrize("name", ALL_FILES)
@pytest.mark.parametrize("batch", [1, 32])
def test_predict_any_batch(golden, test_set, name, batch):
    out, _ = golden
    images, _ = test_set
    with open_backend(out / name, threads=1) as backend:
        probs = backend.predict(images[:batch])
        again = backend.predict(images[:batch])
        single = np.concatenate([backend.predict(images[i : i + 1]) for i in range(batch)])
    assert probs.shape == (batch, 10) and probs.dtype == np.float32
    np.testing.assert_array_equal(probs, again)
    if name == "model_dynamic.onnx":
        # Dynamic quantization picks activation scales from the whole batch: close, not equal.
        np.testing.assert_allclose(probs, single, atol=0.02)
    else:
        np.testing.assert_allclose(probs, single, atol=1e-5)  # the batch size does not change the answer
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)
    assert (probs >= 0).all()


@pytest.mark.parametrize("name", ALL_FILES)
def test_backend_accuracy_matches_export_report(golden, test_set, name):
    out, report = golden
    images, labels = test_set
    row = next(r for r in report["models"] if r["path"].endswith(name))
    with open_backend(out / name) as backend:  # batches of 500 as the gate (dynamic int8 depends on the batch)
        pred = np.concatenate([backend.predict(images[i : i + 500]) for i in range(0, 10000, 500)]).argmax(1)
    # Exactly what the exporter measured on the kind of CPU that made the files; elsewhere (LiteRT's int8
    # kernels round differently on ARM) within what the gate allows an int8 file to lose.
    same_cpu = platform.machine() == GOLDEN_MACHINE
    assert (pred == labels).mean() == pytest.approx(row["accuracy"], abs=1e-9 if same_cpu else 0.005)


def test_runtimes_are_named(golden):
    out, _ = golden
    with open_backend(out / "model_int8.tflite") as t, open_backend(out / "model_int8.onnx") as o:
        assert t.name in ("litert", "tflite_runtime") and t.version
        assert o.name == "onnxruntime" and o.version


@pytest.mark.parametrize("bad, message", [
    (np.zeros((1, 28, 28, 1), np.float32), "must be a uint8 array"),
    (np.zeros((28, 28, 1), np.uint8), r"must have shape \[N,28,28,1\]"),
    (np.zeros((1, 32, 32, 1), np.uint8), r"must have shape \[N,28,28,1\]"),
    (np.zeros((0, 28, 28, 1), np.uint8), r"must have shape \[N,28,28,1\]"),
])
def test_wrong_input_refused(golden, bad, message):
    out, _ = golden
    with open_backend(out / "model_int8.tflite") as backend, pytest.raises(ValueError, match=message):
        backend.predict(bad)


def test_input_quantization_matches_the_formula():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    for spec in (TensorSpec("x", (), "int8", 1.0, -128), TensorSpec("x", (), "int8", 0.5, 3),
                 TensorSpec("x", (), "uint8", 2.0, 10), TensorSpec("x", (), "uint8", 1.0, 0)):
        info = np.iinfo(spec.dtype)
        expected = np.clip(np.round(pixels / spec.scale + spec.zero_point), info.min, info.max).astype(spec.dtype)
        got = _input_mapper(spec)(pixels)
        assert got.dtype == np.dtype(spec.dtype)
        np.testing.assert_array_equal(got, expected)
    assert _input_mapper(TensorSpec("x", (), "float32"))(pixels).dtype == np.float32


def test_output_dequantization_matches_the_formula():
    spec = TensorSpec("y", (), "int8", 1 / 256, -128)
    codes = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    np.testing.assert_allclose(_output_mapper(spec)(codes), (codes.astype(np.float32) + 128) / 256)


def test_load_model_reads_metadata(golden):
    out, _ = golden
    with load_model(out / "model_int8.onnx") as model:
        assert model.metadata.precision == "int8" and model.class_names[5] == "Sandal"
        top = model.classify(np.zeros((2, 28, 28, 1), np.uint8))
        assert len(top) == 2 and top[0].label == model.class_names[top[0].class_id]


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(FmnistEdgeError, match="no such model file"):
        open_backend(tmp_path / "nope.tflite")
    (tmp_path / "m.h5").write_bytes(b"x")
    with pytest.raises(FmnistEdgeError, match=r"expected \.tflite or \.onnx"):
        open_backend(tmp_path / "m.h5")


def test_load_model_warns_about_a_different_preprocessing(golden, tmp_path, caplog):
    from edge_runtime.core.metadata import ModelMetadata, tflite_with_metadata

    out, _ = golden
    with open_backend(out / "model_int8.tflite") as backend:
        meta = backend.metadata
    flat = (out / "model_int8.tflite").read_bytes()
    flat = flat[: flat.rfind(b"PK\x05\x06")]  # drop the appended archive's end record...
    flat = flat[: flat.find(b"PK\x03\x04")]  # ...and the archive itself: the bare flatbuffer
    other = ModelMetadata.from_dict({**meta.to_dict(), "preprocessing": "fmnist-edge-frame/0"})
    path = tmp_path / "old.tflite"
    path.write_bytes(tflite_with_metadata(flat, other))
    with caplog.at_level("WARNING"):
        load_model(path).close()
    assert "made for frame preprocessing fmnist-edge-frame/0" in caplog.text


class _Answers(Backend):
    """A backend whose answer to any image is `answer`, its output quantized in `step`s (or float)."""

    name, version, threads, metadata, checksum, references_blob = "fake", "0", None, None, "missing", None

    def __init__(self, answer, step):
        self.path, self._answer = Path("answers.tflite"), np.asarray([answer], np.float32)
        self.input = TensorSpec("in", (None, 28, 28, 1), "uint8")
        self.output = TensorSpec("out", (None, len(answer)), "int8" if step else "float32", step,
                                 -128 if step else None)

    def predict(self, images):
        return np.repeat(self._answer, len(images), axis=0)

    def close(self):
        pass


@pytest.mark.parametrize(("miss", "step", "loads"), [
    (0.0117, 1 / 256, True),     # the demo's seed-b file (issue 20): 0.98828
    (0.0195, 1 / 256, True),     # every one of ten outputs half a step off
    (0.0234, 1 / 256, True),     # ... and one step more for an integer softmax kernel
    (0.0240, 1 / 256, False),    # beyond what ten 1/256 steps allow
    (0.0117, None, False),       # a float output is held to 0.01
    (0.0099, None, True),
])
def test_probe_bounds_the_sum_by_the_outputs_own_quantization(miss, step, loads):
    answer = np.full(10, (1 - miss) / 10)
    backend = _Answers(answer, step)
    if loads:
        backend.probe()
    else:
        with pytest.raises(FmnistEdgeError, match=rf"not a set of probabilities \(it misses a sum of 1 by {miss:.4f}"):
            backend.probe()


def test_probe_bound_grows_with_the_number_of_classes():
    """Twelve classes at 1/256 may miss by 12 half steps and one more (0.0273); ten may not."""
    assert sum_tolerance(1 / 256, 12) == pytest.approx(12 / 512 + 1 / 256)
    _Answers(np.full(12, (1 - 0.027) / 12), 1 / 256).probe()
    with pytest.raises(FmnistEdgeError):
        _Answers(np.full(10, (1 - 0.027) / 10), 1 / 256).probe()


def test_probe_refuses_non_finite_answers():
    with pytest.raises(FmnistEdgeError, match="misses a sum of 1 by nan"):
        _Answers(np.array([np.nan] + [0.1] * 9), 1 / 256).probe()
