"""TFLite files through LiteRT (`ai_edge_litert`), or `tflite_runtime` where that is installed."""

from __future__ import annotations

from collections import Counter
from importlib import metadata as distributions
from pathlib import Path

import numpy as np

from edge_runtime.core.backends.base import (
    Backend,
    TensorSpec,
    check_images,
    check_tensor_memory,
    classifier_io,
    inference_error,
    load_error,
)
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.metadata import TFLITE_LIMITS, TFLITE_REFERENCES, parse_metadata, tflite_metadata
from edge_runtime.core.modelfile import check_sealed, read_checked, tflite_members
from edge_runtime.core.quiet import quiet_native_stderr


def interpreter_module():
    """(module, runtime name, version) of the TFLite interpreter that is installed. Never TensorFlow."""
    try:
        from ai_edge_litert import interpreter

        return interpreter, "litert", distributions.version("ai-edge-litert")
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter

        return interpreter, "tflite_runtime", distributions.version("tflite-runtime")
    except ImportError:
        raise FmnistEdgeError("no TFLite interpreter installed: pip install ai-edge-litert") from None


def _spec(detail: dict) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    shape = tuple(None if d < 0 else int(d) for d in detail.get("shape_signature", detail["shape"]))
    quantized = scale != 0.0
    return TensorSpec(detail["name"], shape, np.dtype(detail["dtype"]).name,
                      float(scale) if quantized else None, int(zero_point) if quantized else None)


_XOR_128 = np.arange(256, dtype=np.uint8) ^ 0x80


def _input_mapper(spec: TensorSpec):
    """uint8 pixels -> the input tensor's values, as cheap as the file's quantization allows."""
    pixels = np.arange(256, dtype=np.float64)
    if spec.scale is None:
        if spec.dtype == "uint8":
            return lambda x: x
        return lambda x: x.astype(spec.dtype)
    info = np.iinfo(spec.dtype)
    table = np.clip(np.round(pixels / spec.scale + spec.zero_point), info.min, info.max).astype(spec.dtype)
    if spec.dtype == "uint8" and np.array_equal(table, np.arange(256)):
        return lambda x: x
    if spec.dtype == "int8" and np.array_equal(table.view(np.uint8), _XOR_128):
        # scale 1, zero point -128 (raw pixels calibrated over 0..255): flipping the top bit is the quantization.
        return lambda x: np.bitwise_xor(x, 0x80).view(np.int8)
    return lambda x: table[x]


def _output_mapper(spec: TensorSpec):
    """The output tensor -> float32 probabilities; a 256-entry table for 8-bit outputs."""
    if spec.scale is None:
        return lambda y: y.astype(np.float32, copy=False)
    codes = np.arange(256, dtype=np.uint8).view(spec.dtype).astype(np.float32)
    table = (codes - np.float32(spec.zero_point)) * np.float32(spec.scale)
    return lambda y: table[y.view(np.uint8)]


class LiteRTBackend(Backend):
    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        module, self.name, self.version = interpreter_module()
        self.threads = threads
        self._data, self.checksum = read_checked(self.path)  # the runtime gets the very bytes that were checked
        self._plain_interp = None
        members = tflite_members(self.path, self._data, TFLITE_LIMITS)
        self.metadata = parse_metadata(self.path, tflite_metadata(self.path, members))
        self.references_blob = members.get(TFLITE_REFERENCES)
        check_sealed(self.path, self.checksum, self.references_blob)
        try:
            self._open(module, threads)
        except FmnistEdgeError:
            raise
        except Exception as exc:  # a damaged flatbuffer fails in LiteRT's own ways: names, shapes, kernels
            raise load_error(self.path, "TFLite", exc) from None

    def _open(self, module, threads: int | None) -> None:
        with quiet_native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            self._interp = module.Interpreter(model_content=self._data, num_threads=threads)
            check_tensor_memory(self.path, [_tensor_bytes(t) for t in self._interp.get_tensor_details()])
            self._interp.allocate_tensors()
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        self.input, self.output = classifier_io(self.path, inputs, outputs, _spec)
        self._in_index, self._out_index = inputs[0]["index"], outputs[0]["index"]
        self._batch = int(inputs[0]["shape"][0])
        self._to_input = _input_mapper(self.input)
        self._from_output = _output_mapper(self.output)
        self.probe()

    def _resize(self, batch: int) -> None:
        self._interp.resize_tensor_input(self._in_index, [batch, 28, 28, 1])
        self._interp.allocate_tensors()
        self._batch = batch

    def predict(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images)
        try:
            if len(images) != self._batch:
                self._resize(len(images))
            self._interp.set_tensor(self._in_index, self._to_input(images))
            self._interp.invoke()
        except RuntimeError as exc:
            raise inference_error(self.path, exc) from None
        return self._from_output(self._interp.get_tensor(self._out_index))

    def op_counts(self) -> Counter:
        """Operators of the file as written (before any delegate takes them over)."""
        return Counter(op["op_name"] for op in self._plain()._get_ops_details())

    def op_outputs(self) -> list[tuple[str, str, str]]:
        """(operator, name of its first output tensor, that tensor's dtype) of each operator of the file as
        written, in order: which operators compute in int8 and which in float."""
        plain = self._plain()
        tensors = {t["index"]: t for t in plain.get_tensor_details()}
        found = []
        for op in plain._get_ops_details():
            tensor = tensors.get(int(op["outputs"][0])) if len(op["outputs"]) else None
            if tensor is not None:
                found.append((op["op_name"], tensor["name"], np.dtype(tensor["dtype"]).name))
        return found

    def _plain(self):
        """An interpreter of the file without delegates, which lists its operators as written (made once:
        `info` asks for the counts and for the outputs)."""
        if self._plain_interp is None:
            module, _, _ = interpreter_module()
            self._plain_interp = module.Interpreter(
                model_content=self._data,
                experimental_op_resolver_type=module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        return self._plain_interp

    def close(self) -> None:
        self._interp = self._plain_interp = None


def _tensor_bytes(detail: dict) -> int:
    return int(np.prod(detail["shape"], dtype=np.int64)) * np.dtype(detail["dtype"]).itemsize
