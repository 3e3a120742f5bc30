"""Writing ONNX files on a device that has ONNX Runtime but not the `onnx` package: enough of the
protobuf wire format to give a model a new classifier head (field.adapt) and new metadata.

The file's body (every node up to the features the head reads) is kept byte for byte; the old head's
nodes, the initializers only they used and the graph's output are dropped, and the new head (a float
Gemm and a Softmax) and output are appended. Field numbers are those of onnx/onnx.proto3.
"""

from __future__ import annotations

import numpy as np

from edge_runtime.core.onnx_proto import iter_fields, parse_message

# ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto fields used here.
MODEL_GRAPH, MODEL_PROPS = 7, 14
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_OUTPUT, GRAPH_VALUE_INFO = 1, 5, 12, 13
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP = 1, 2, 3, 4
FLOAT = 1


def varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, value: bytes | int | str) -> bytes:
    """One field: a varint for an int, length-delimited for bytes and text."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def encode(number: int, wire: int, value) -> bytes:
    """A field as iter_fields gave it, back to its bytes."""
    if wire == 0:
        return varint(number << 3) + varint(value)
    if wire == 2:
        return varint(number << 3 | 2) + varint(len(value)) + value
    return varint(number << 3 | wire) + value


def tensor(name: str, array: np.ndarray) -> bytes:
    """A float32 TensorProto (dims, data_type, name, raw_data little-endian)."""
    array = np.ascontiguousarray(array, dtype="<f4")
    return b"".join(field(1, int(d)) for d in array.shape) + field(2, FLOAT) + field(8, name) + \
        field(9, array.tobytes())


def node(op_type: str, inputs: list[str], outputs: list[str], name: str, ints: dict[str, int] | None = None) -> bytes:
    """A NodeProto; `ints` are its integer attributes (AttributeProto name, type INT, i)."""
    attributes = b"".join(field(5, field(1, k) + field(20, 2) + field(3, v)) for k, v in (ints or {}).items())
    return b"".join(field(NODE_INPUT, i) for i in inputs) + b"".join(field(NODE_OUTPUT, o) for o in outputs) + \
        field(NODE_NAME, name) + field(NODE_OP, op_type) + attributes


def value_info(name: str, dims: list[int | str]) -> bytes:
    """A float tensor's ValueInfoProto; a str dimension is symbolic (the batch)."""
    shape = b"".join(field(1, field(2, d) if isinstance(d, str) else field(1, d)) for d in dims)
    tensor_type = field(1, FLOAT) + field(2, shape)
    return field(1, name) + field(2, field(1, tensor_type))


def metadata_entry(key: str, value: str) -> bytes:
    return field(1, key) + field(2, value)


def _names(raw_node: bytes, number: int) -> list[str]:
    return [v.decode() for v in parse_message(raw_node).get(number, [])]


def _cut(model: bytes, features: str) -> tuple[bytes, list[bytes]]:
    """The graph's nodes up to the one that makes `features` (encoded), and its other fields but the
    output, the value_info and the initializers only the dropped nodes read."""
    graph_raw = next(v for n, _, v in iter_fields(model) if n == MODEL_GRAPH)
    kept, used = [], set()
    for number, wire, value in iter_fields(graph_raw):
        if number == GRAPH_NODE:
            kept.append(encode(number, wire, value))
            used.update(_names(value, NODE_INPUT))
            if features in _names(value, NODE_OUTPUT):
                break
    else:
        raise ValueError(f"no node makes {features!r}")
    rest = []
    for number, wire, value in iter_fields(graph_raw):
        if number in (GRAPH_NODE, GRAPH_OUTPUT, GRAPH_VALUE_INFO):
            continue
        if number == GRAPH_INITIALIZER and parse_message(value).get(8, [b""])[0].decode() not in used:
            continue  # only the old head read it
        rest.append(encode(number, wire, value))
    return b"".join(kept), rest


def _model(model: bytes, graph: bytes, props: dict[str, str] | None) -> bytes:
    fields = [encode(n, w, v) for n, w, v in iter_fields(model)
              if n != MODEL_GRAPH and not (props is not None and n == MODEL_PROPS)]
    meta = b"".join(field(MODEL_PROPS, metadata_entry(k, v)) for k, v in (props or {}).items())
    return b"".join(fields) + field(MODEL_GRAPH, graph) + meta


def features_only(model: bytes, features: list[tuple[str, int | str]]) -> bytes:
    """`model` cut after the first of `features` (name, width or a name for it), which become its outputs
    ([batch, width] float each): the later tensor first in the graph, the earlier ones made on the way."""
    body, rest = _cut(model, features[0][0])
    outputs = b"".join(field(GRAPH_OUTPUT, value_info(name, ["batch", width])) for name, width in features)
    return _model(model, body + b"".join(rest) + outputs, {})


def new_head(model: bytes, features: list[str], weights: np.ndarray, bias: np.ndarray, output: str,
             props: dict[str, str]) -> bytes:
    """`model` with its classifier replaced: softmax(concat(features) @ weights + bias) as the one output
    `output` ([batch, classes] float), and `props` as its whole metadata_props, in their order (the
    checksum entry last, for core.modelfile.seal). The graph is cut after features[0]."""
    body, rest = _cut(model, features[0])
    w_name, b_name, logits = f"{output}_head_weights", f"{output}_head_bias", f"{output}_logits"
    joined = features[0]
    head = b""
    if len(features) > 1:
        joined = f"{output}_features"
        head = field(GRAPH_NODE, node("Concat", list(features), [joined], f"{output}_concat", {"axis": 1}))
    head += field(GRAPH_NODE, node("Gemm", [joined, w_name, b_name], [logits], f"{output}_head")) + \
        field(GRAPH_NODE, node("Softmax", [logits], [output], f"{output}_softmax"))
    inits = field(GRAPH_INITIALIZER, tensor(w_name, weights)) + field(GRAPH_INITIALIZER, tensor(b_name, bias))
    out = field(GRAPH_OUTPUT, value_info(output, ["batch", int(weights.shape[1])]))
    return _model(model, body + head + b"".join(rest) + inits + out, props)
