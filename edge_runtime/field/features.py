"""A model's features: the tensors its last layer reads, from an ONNX file fmnist-edge exported or
adapted, and the network up to them in ONNX Runtime (field.adapt fits a new last layer on them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.core.backends import open_backend
from edge_runtime.core.classifier import BUNDLED
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.metadata import ModelMetadata
from edge_runtime.core.modelfile import read_checked
from edge_runtime.core.onnx_proto import OnnxModel, parse_model
from edge_runtime.core.onnx_write import features_only
from edge_runtime.core.references import References


@dataclass
class Base:
    """The starting model: its bytes, where its features are, its last layer, what it says of itself."""

    path: Path
    data: bytes
    features: list[str]
    """The tensors the head reads, joined: the input of the last dense layer and, before it, the input of
    the one before (the pooled convolution features: what tells a hat from a skirt best)."""
    weights: np.ndarray
    """float32 [features, classes]: the head's weights, 0 for the earlier features it did not read."""
    bias: np.ndarray
    metadata: ModelMetadata
    references: References


def load_base(path: str | Path | None) -> Base:
    """An ONNX model file fmnist-edge exported (or adapted) whose last layer is a Gemm (dense)."""
    path = Path(path) if path else BUNDLED["onnx"]
    if path.suffix.lower() != ".onnx":
        raise FmnistEdgeError(f"--model {path}: adapt writes an ONNX file and starts from one; give the .onnx "
                              "file that export wrote beside it (the bundled one by default)")
    with open_backend(path) as backend:
        if backend.metadata is None or backend.references_blob is None:
            raise FmnistEdgeError(f"--model {path}: carries no fmnist-edge metadata or reference inputs; export it "
                                  "with fmnist-edge")
        metadata, references = backend.metadata, References.from_bytes(path, backend.references_blob)
    data, _ = read_checked(path)
    graph = parse_model(path, data)
    gemms = [n for n in graph.nodes if n[0] == "Gemm"]
    if not gemms or len(gemms[-1][1]) < 3:
        raise FmnistEdgeError(f"--model {path}: its last layer is not a dense layer adapt can fit again")
    head = gemms[-1]
    weights, bias = _value(graph, head[1][1]), _value(graph, head[1][2])
    if weights is None or bias is None or weights.ndim != 2 or bias.shape != (weights.shape[1],):
        raise FmnistEdgeError(f"--model {path}: cannot read its last layer's weights")
    features = _joined(graph, head[1][0])  # an adapted model's head reads its features joined already
    if len(features) == 1 and len(gemms) > 1:
        earlier = _value(graph, gemms[-2][1][1])
        if earlier is not None and earlier.ndim == 2 and earlier.shape[0] <= 2048:
            features.append(gemms[-2][1][0])
            weights = np.concatenate([weights, np.zeros((earlier.shape[0], weights.shape[1]), np.float32)])
    return Base(path, data, features, weights.astype(np.float32), bias.astype(np.float32), metadata, references)


def _joined(graph: OnnxModel, name: str) -> list[str]:
    """The tensors a Concat joins into `name`, or [name]."""
    for op, inputs, outputs in graph.nodes:
        if outputs and outputs[0] == name and op == "Concat":
            return list(inputs)
    return [name]


def _value(graph: OnnxModel, name: str) -> np.ndarray | None:
    """An initializer, or a DequantizeLinear of one (int8 weights, int32 bias), as float32."""
    if name in graph.initializers:
        return graph.initializers[name].astype(np.float32)
    for op, inputs, outputs in graph.nodes:
        if outputs and outputs[0] == name and op == "DequantizeLinear" and len(inputs) == 3:
            q, scale, zero = (graph.initializers.get(i) for i in inputs)
            if q is not None and scale is not None and zero is not None:
                return (q.astype(np.float32) - zero.astype(np.float32)) * scale.astype(np.float32)
    return None


class Featurizer:
    """The base network up to its last layer, in ONNX Runtime: images -> features."""

    def __init__(self, base: Base):
        import onnxruntime as ort

        from edge_runtime.core.backends.onnxrt import session_options

        outputs = [(name, f"features_{i}") for i, name in enumerate(base.features)]
        self._session = ort.InferenceSession(features_only(base.data, outputs), session_options(None),
                                             providers=["CPUExecutionProvider"])
        self._input, self.width = self._session.get_inputs()[0].name, base.weights.shape[0]

    def __call__(self, images: np.ndarray, batch: int = 500) -> np.ndarray:
        """float32 [N, features]: the base's feature tensors, joined."""
        out = [np.concatenate(self._session.run(None, {self._input: images[i:i + batch].astype(np.float32)}), axis=1)
               for i in range(0, len(images), batch)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.width), np.float32)
