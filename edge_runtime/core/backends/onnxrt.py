"""ONNX files through ONNX Runtime's CPU provider."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from edge_runtime.core.backends.base import (
    Backend,
    TensorSpec,
    check_images,
    classifier_io,
    inference_error,
    load_error,
)
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.metadata import onnx_duplicate_key, onnx_metadata, parse_metadata
from edge_runtime.core.modelfile import ONNX_REFERENCES_KEY, check_sealed, read_checked
from edge_runtime.core.references import MAX_REFERENCES_BASE64

_ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
              "tensor(float16)": "float16"}


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorSpec(arg.name, shape, _ORT_TYPES.get(arg.type, arg.type))


def session_options(threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = threads
    # Spinning threads would steal the core the camera needs between frames.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def _base64(path: Path, text: str | None) -> bytes | None:
    if text is None:
        return None
    if len(text) > MAX_REFERENCES_BASE64:  # measured before decoding: the decoded bytes would be 3/4 of it
        raise FmnistEdgeError(f"{path}: damaged reference inputs ({len(text):,} characters of base64, more than the "
                              f"{MAX_REFERENCES_BASE64:,} references can take); copy the file again, or export it "
                              "again")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise FmnistEdgeError(f"{path}: damaged reference inputs (not base64); copy the file again, or export it "
                              "again") from None


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        self.version = ort.__version__
        self.threads = threads
        data, self.checksum = read_checked(self.path)  # the runtime gets the very bytes that were checked
        self._data = data  # output_step reads the graph from them
        try:
            self._open(ort, data, threads)
        except FmnistEdgeError:
            raise
        except Exception as exc:  # ORT raises its own exception types for every kind of damage
            raise load_error(self.path, "ONNX", exc) from None

    def _open(self, ort, data: bytes, threads: int | None) -> None:
        self._session = ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
        self.input, self.output = classifier_io(self.path, self._session.get_inputs(), self._session.get_outputs(),
                                                _spec)
        props = self._session.get_modelmeta().custom_metadata_map
        twice = onnx_duplicate_key(data, props)
        if twice:
            raise FmnistEdgeError(f"{self.path}: damaged metadata ({twice} twice in metadata_props); export it again")
        self.metadata = parse_metadata(self.path, onnx_metadata(self.path, props))
        self.references_blob = _base64(self.path, props.get(ONNX_REFERENCES_KEY))
        check_sealed(self.path, self.checksum, self.references_blob)
        self._in_dtype = np.dtype(self.input.dtype)
        self._out_names = [self.output.name]
        self.probe()

    def output_step(self) -> float | None:
        """ONNX Runtime declares a QDQ graph's output as float: its step is the scale of the
        DequantizeLinear that makes it, read from the graph (only when the probe needs it)."""
        if self.output.dtype != "float32":
            return None
        from edge_runtime.core.onnx_proto import output_step, parse_model

        return output_step(parse_model(self.path, self._data), self.output.name)

    def predict(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images)
        feed = images if self._in_dtype == np.uint8 else images.astype(self._in_dtype)
        try:
            out = self._session.run(self._out_names, {self.input.name: feed})[0]
        except Exception as exc:  # ORT's own types (Fail, InvalidArgument, RuntimeException)
            raise inference_error(self.path, exc) from None
        return out.astype(np.float32, copy=False)

    def close(self) -> None:
        self._session = None
        self._data = b""
