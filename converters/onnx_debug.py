"""Per-layer error of an ONNX QDQ int8 model (ONNX Runtime's qdq_loss_debug, then each layer alone).

Both models run the debug images with every activation saved (`modify_model_output_intermediate_tensors`,
`collect_activations`); `create_activation_matching` pairs each int8 activation with its float twin,
which gives `sqnr_db`, the signal-to-quantization-noise ratio of the float model against the int8 model
at this layer's output, everything before it included. (The pair ONNX Runtime calls pre- and post-QDQ
is not used: where the quantizer folded a Relu into its Conv, "pre" is the output before the Relu.)
The row's main figures are the layer's own loss, as TFLite's NumericVerify measures it: the float
model's part that makes this output (cut out with onnx.utils.Extractor) run on the int8 model's own
dequantized inputs, against the int8 output. Where that part cannot be cut out alone (its input is
computed, like a shape), the row measures the output's rounding only (`"measure": "output rounding"`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from converters import quant_report

POST_SUFFIXES = ("_DequantizeLinear_Output", "_QuantizeLinear_Input")


class _Batch:
    """One run of every image at once (ONNX Runtime's CalibrationDataReader protocol)."""

    def __init__(self, images: np.ndarray, input_name: str):
        self._feeds = [{input_name: images.astype(np.float32)}]

    def get_next(self):
        return self._feeds.pop() if self._feeds else None

    def __iter__(self):
        return iter(self._feeds)


def _activations(model, tmp: Path, name: str, images: np.ndarray, input_name: str) -> dict[str, np.ndarray]:
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as qd

    onnx.save(model, tmp / f"{name}.onnx")
    qd.modify_model_output_intermediate_tensors(str(tmp / f"{name}.onnx"), str(tmp / f"{name}.saved.onnx"))
    return qd.collect_activations(str(tmp / f"{name}.saved.onnx"), _Batch(images, input_name))


def _shapes(model) -> dict[str, list[int]]:
    """Tensor shapes of the (shape-inferred) float model, an unknown batch as -1."""
    infos = [*model.graph.value_info, *model.graph.input, *model.graph.output]
    return {vi.name: [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
            for vi in infos}


def _qdq_graph(qdq) -> tuple[dict, dict, dict]:
    """(producer of each tensor, consumers of each tensor, initializer values) of the QDQ model."""
    from onnx import numpy_helper

    producer, consumers = {}, {}
    for node in qdq.graph.node:
        for o in node.output:
            producer[o] = node
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    inits = {t.name: numpy_helper.to_array(t) for t in qdq.graph.initializer}
    return producer, consumers, inits


def layer_rows(fp32, qdq, images: np.ndarray, input_name: str, layer_names: list[str]) -> list[dict]:
    """One report row per quantized node of `qdq` (the int8 file's graph; `fp32` is the pre-processed
    float graph it was quantized from), worst first."""
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as qd

    fp32 = onnx.shape_inference.infer_shapes(fp32)
    with tempfile.TemporaryDirectory(prefix="fmnist-edge-qdq-") as tmp:
        q_act = {k: np.concatenate(v) for k, v in _activations(qdq, Path(tmp), "q", images, input_name).items()}
        f_act = {k: np.concatenate(v) for k, v in _activations(fp32, Path(tmp), "f", images, input_name).items()}
    matched = qd.create_activation_matching({k: [v] for k, v in q_act.items()}, {k: [v] for k, v in f_act.items()})
    producer, consumers, inits = _qdq_graph(qdq)
    quantized = [(node, out) for node in qdq.graph.node if node.op_type not in ("QuantizeLinear", "DequantizeLinear")
                 for out in node.output[:1] if any(c.op_type == "QuantizeLinear" for c in consumers.get(out, []))]
    layer_of = quant_report.keras_layers([n.name for n, _ in quantized], layer_names)
    twins = _Twins(fp32, q_act, producer, inits, len(images))
    rows = []
    for node, out in quantized:
        q = next(c for c in consumers[out] if c.op_type == "QuantizeLinear")
        post = next(c.output[0] for c in consumers.get(q.output[0], []) if c.op_type == "DequantizeLinear")
        key = next((out[: -len(s)] for s in POST_SUFFIXES if out.endswith(s)), out)
        scale, zero = float(inits[q.input[1]].ravel()[0]), int(inits[q.input[2]].ravel()[0])
        sqnr = {}
        if "float" in matched.get(key, {}):
            pair = matched[key]
            sqnr = {"sqnr_db": qd.compute_signal_to_quantization_noice_ratio(pair["float"], pair["post_qdq"])}
        twin = twins.run(node, key)
        measure = "layer" if twin is not None else "output rounding"
        reference = twin if twin is not None else q_act[out]
        rows.append(quant_report.row(node.name, layer_of[node.name], node.op_type, reference, q_act[post], scale,
                                     zero, **sqnr) | {"measure": measure})
    return quant_report.worst_first(rows)


class _Twins:
    """Each quantized node's float twin: the float model's part from the node's activations in to its
    output, run on the int8 model's dequantized activations."""

    def __init__(self, fp32, q_act: dict, producer: dict, inits: dict, batch: int):
        import onnx.utils

        self.batch = batch
        self.extractor = onnx.utils.Extractor(fp32)
        self.shapes = _shapes(self.extractor.model)
        self.float_tensors = {o for n in fp32.graph.node for o in n.output} | {i.name for i in fp32.graph.input}
        self.q_act, self.producer, self.inits = q_act, producer, inits

    def _feeds(self, node) -> dict[str, np.ndarray] | None:
        """{float tensor: the int8 model's dequantized value}, or None if an input is not a dequantized activation."""
        feeds = {}
        for name in node.input:
            dq = self.producer.get(name)
            if name in self.inits or not name:
                continue
            if dq is None or dq.op_type != "DequantizeLinear":
                return None
            if dq.input[0] in self.inits:  # a weight: the twin uses the float one
                continue
            q = self.producer.get(dq.input[0])
            source = q.input[0] if q is not None and q.op_type == "QuantizeLinear" else dq.input[0]
            shape = self._shape(source)
            if source not in self.float_tensors or name not in self.q_act or shape is None:
                return None
            feeds[source] = self.q_act[name].reshape(shape)
        return feeds or None

    def _shape(self, tensor: str) -> list[int] | None:
        """The tensor's shape for the debug batch (the batch first), or None where it is not known."""
        shape = list(self.shapes.get(tensor, []))
        if not shape:
            return None
        shape[0] = self.batch if shape[0] <= 0 else shape[0]
        return shape if sum(d <= 0 for d in shape) <= 1 else None

    def run(self, node, output: str) -> np.ndarray | None:
        import onnxruntime as ort

        feeds = self._feeds(node)
        if feeds is None or output not in self.float_tensors:
            return None
        try:
            part = self.extractor.extract_model(list(feeds), [output])
            session = ort.InferenceSession(part.SerializeToString(), providers=["CPUExecutionProvider"])
            return session.run(None, feeds)[0]
        except Exception:  # a part that cannot stand alone: measured by its rounding
            return None
