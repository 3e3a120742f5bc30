"""Just enough of the protobuf wire format to read an ONNX file's nodes and tensors.

The edge install has onnxruntime but not the `onnx` package. ONNX Runtime hands over a file's
metadata_props (the backends read them from the session), but not its graph: `info` still wants
the operator counts and the scale and zero point a QDQ graph quantizes its input with, and the
load probe of an int8 file whose answer misses a sum of 1 by more than float rounding wants the
step its output is quantized in, so they parse the file themselves. Loading a file whose answer
is within float rounding never runs this parser. Field numbers are those of onnx/onnx.proto3.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.core.errors import FmnistEdgeError


class _Truncated(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Truncated
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Truncated


def parse_message(buf: bytes) -> dict[int, list]:
    """Field number -> values: ints for varints, bytes for length-delimited and fixed fields."""
    fields: dict[int, list] = {}
    for number, _, value in iter_fields(buf):
        fields.setdefault(number, []).append(value)
    return fields


def iter_fields(buf: bytes):
    """(field number, wire type, value) in the order the message holds them."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise _Truncated
            value, pos = buf[pos : pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise _Truncated
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise _Truncated  # groups (3, 4) are not used by ONNX; anything else is damage
        yield number, wire, value


def _text(fields: dict[int, list], number: int) -> str:
    return fields[number][0].decode("utf-8") if number in fields else ""


# TensorProto.DataType values for the element types a classifier's tensors use.
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64, 10: np.float16}


@dataclass
class OnnxModel:
    op_counts: Counter = field(default_factory=Counter)
    nodes: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    """(op_type, inputs, outputs) in graph order."""
    names: list[str] = field(default_factory=list)
    """Each node's name, in the order of `nodes`."""
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    opset: int = 0
    producer: str = ""


def _tensor(raw: bytes) -> tuple[str, np.ndarray | None]:
    t = parse_message(raw)
    name = _text(t, 8)
    dims = list(t.get(1, []))
    dtype = _DTYPES.get(t.get(2, [0])[0])
    if dtype is None:
        return name, None
    if 9 in t:  # raw_data, little-endian
        values = np.frombuffer(t[9][0], dtype=dtype)
    elif 4 in t and dtype is np.float32:  # float_data, packed
        values = np.frombuffer(b"".join(t[4]), dtype="<f4")
    elif 5 in t:  # int32_data: packed varints
        values = np.array(_packed_varints(b"".join(t[5])), dtype=dtype)
    else:
        return name, None
    return name, values.reshape(dims) if dims else values.reshape(())


def _packed_varints(buf: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        value, pos = _varint(buf, pos)
        out.append(struct.unpack("<i", struct.pack("<I", value & 0xFFFFFFFF))[0])
    return out


def read_model(path: str | Path) -> OnnxModel:
    """Parse an .onnx file; a damaged or truncated one is a one-line FmnistEdgeError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FmnistEdgeError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_model(path, data)


def parse_model(path: Path, data: bytes) -> OnnxModel:
    """Parse the bytes of an .onnx file; damaged or truncated ones are a one-line FmnistEdgeError."""
    try:
        model = parse_message(data)
        if 7 not in model:
            raise _Truncated
        out = OnnxModel(producer=_text(model, 2))
        for opset in model.get(8, []):
            op = parse_message(opset)
            if not _text(op, 1):  # the default domain
                out.opset = op.get(2, [0])[0]
        graph = parse_message(model[7][0])
        for raw in graph.get(1, []):
            node = parse_message(raw)
            op_type = _text(node, 4)
            out.op_counts[op_type] += 1
            out.nodes.append((op_type, [v.decode() for v in node.get(1, [])], [v.decode() for v in node.get(2, [])]))
            out.names.append(_text(node, 3))
        for raw in graph.get(5, []):
            name, value = _tensor(raw)
            if value is not None:
                out.initializers[name] = value
    except (_Truncated, UnicodeDecodeError, ValueError, IndexError):
        raise FmnistEdgeError(f"{path}: damaged or truncated ONNX file; export it again") from None
    return out


def output_step(model: OnnxModel, output: str) -> float | None:
    """The step between the values graph output `output` can take: the scale of the DequantizeLinear
    that makes it (a QDQ graph's quantized softmax), or None when a float operator makes it."""
    for op_type, inputs, outputs in model.nodes:
        if output in outputs:
            if op_type != "DequantizeLinear" or len(inputs) < 2:
                return None
            scale = model.initializers.get(inputs[1])
            if scale is None or scale.size != 1 or not np.isfinite(scale).all():
                return None
            return abs(float(scale.reshape(())))
    return None
