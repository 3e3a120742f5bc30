"""What `fmnist-edge info` shows about a model file: tensors, quantization, operators, metadata."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_runtime.core.backends import Backend, TensorSpec, open_backend
from edge_runtime.core.modelfile import printable
from edge_runtime.core.onnx_proto import OnnxModel, read_model
from edge_runtime.tools import layers


@dataclass
class ModelInfo:
    path: str
    format: str
    size_bytes: int
    backend: str
    backend_version: str
    inputs: list[dict]
    outputs: list[dict]
    op_counts: dict[str, int]
    metadata: dict | None
    """None for a file exported without fmnist-edge's metadata."""
    micro: dict | None = None
    """For a full-integer int8 .tflite file: what a microcontroller needs, flash and the tensor arena."""
    quantization: dict | None = None
    """For an int8 file: "float_in_file", the layers it computes in float (read from the file), and
    "measured", the layers that lose most to int8 as the exporter measured them (tools.layers)."""

    def format_text(self) -> str:
        return _format_text(self)

    def to_dict(self) -> dict:
        return asdict(self)


def _tensor(spec: TensorSpec, quantized_by: dict | None = None) -> dict:
    out = {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype,
           "scale": spec.scale, "zero_point": spec.zero_point}
    if quantized_by:
        out["quantized_inside"] = quantized_by
    return out


def _qdq_params(model: OnnxModel, start: str, op: str, forward: bool) -> dict | None:
    """Scale and zero point of the first QuantizeLinear after the input (or the last
    DequantizeLinear before the output) of a QDQ graph, following the data path."""
    frontier, seen = [start], set()
    while frontier:
        name = frontier.pop(0)
        if name in seen:
            continue
        seen.add(name)
        for op_type, inputs, outputs in model.nodes:
            linked = name in inputs if forward else name in outputs
            if not linked:
                continue
            if op_type == op:
                scale, zero = (model.initializers.get(n) for n in inputs[1:3])
                if scale is not None and scale.size == 1:
                    zp = int(zero.item()) if zero is not None else 0
                    return {"tensor": inputs[0], "scale": float(scale.item()), "zero_point": zp,
                            "dtype": np.dtype(zero.dtype).name if zero is not None else "uint8"}
            frontier.extend(outputs if forward else inputs[:1])
    return None


def _onnx_details(backend: Backend, model: OnnxModel) -> tuple[list[dict], list[dict], Counter]:
    into = _qdq_params(model, backend.input.name, "QuantizeLinear", forward=True)
    out_of = _qdq_params(model, backend.output.name, "DequantizeLinear", forward=False)
    return [_tensor(backend.input, into)], [_tensor(backend.output, out_of)], model.op_counts


def _micro(path: Path) -> dict:
    """Flash (the flatbuffer) and the tensor arena, measured with TFLM's interpreter where it is installed."""
    from edge_runtime.core.errors import FmnistEdgeError
    from edge_runtime.core import micro

    model = micro.read_int8(path)
    try:
        return micro.footprint(model)
    except FmnistEdgeError as exc:
        return {"flash_bytes": len(model.flatbuffer), "arena_bytes": None, "arena_measured_bytes": None,
                "note": str(exc)}


def describe(path: str | Path) -> ModelInfo:
    """Load the file with its edge backend and describe it; damaged files raise FmnistEdgeError."""
    path = Path(path)
    with open_backend(path) as backend:
        onnx = read_model(path) if path.suffix.lower() == ".onnx" else None
        if onnx is not None:
            inputs, outputs, ops = _onnx_details(backend, onnx)
        else:
            inputs, outputs, ops = [_tensor(backend.input)], [_tensor(backend.output)], backend.op_counts()
        meta = backend.metadata.to_dict() if backend.metadata else None
        micro = _micro(path) if path.suffix.lower() == ".tflite" and backend.input.dtype == "int8" else None
        quant = layers.quantization(path, backend, onnx, meta)
        return ModelInfo(path=str(path), format=path.suffix.lower().lstrip("."), size_bytes=path.stat().st_size,
                         micro=micro, quantization=quant,
                         backend=backend.name, backend_version=backend.version, inputs=inputs, outputs=outputs,
                         op_counts=dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))), metadata=meta)


def _format_text(info: ModelInfo) -> str:
    """The human-readable form of `info` (ModelInfo.format_text)."""
    lines = [f"{info.path}: {info.format}, {info.size_bytes:,} bytes, {info.backend} {info.backend_version}"]
    for kind, tensors in (("input", info.inputs), ("output", info.outputs)):
        for t in tensors:
            quant = f", scale {t['scale']:.6g}, zero point {t['zero_point']}" if t["scale"] is not None else ""
            lines.append(f"  {kind} {t['name']}: {t['dtype']} {t['shape']}{quant}")
            inside = t.get("quantized_inside")
            if inside:
                lines.append(f"    quantized inside to {inside['dtype']}: scale {inside['scale']:.6g}, "
                             f"zero point {inside['zero_point']}")
    lines.append("  operators: " + ", ".join(f"{op} x{n}" for op, n in info.op_counts.items()))
    if info.micro:
        m = info.micro
        arena = (f"tensor arena {m['arena_measured_bytes']:,} B measured with TFLM ({m['arena_bytes']:,} B with the "
                 "example's margin)") if m["arena_bytes"] else f"tensor arena not measured: {m['note']}"
        lines.append(f"  microcontroller: flash {m['flash_bytes']:,} B, {arena}")
    meta = info.metadata
    if meta is None:
        lines.append("  metadata: none (not exported by fmnist-edge)")
    else:
        acc = f"{meta['test_accuracy']:.4f}" if meta.get("test_accuracy") is not None else "not measured"
        lines += [
            f"  model: {meta.get('arch') or '?'}, {meta['precision']}, test accuracy at export {acc}",
            f"  classes: {', '.join(meta['class_names'])}",
            f"  input: {meta['input'].get('pixels', '')}",
            f"  preprocessing {meta['preprocessing']}, toolkit {meta['toolkit_version']}, "
            f"calibration images {meta.get('calibration_samples')}",
            f"  source Keras model SHA-256 {meta['source_sha256']}",
        ]
        lines += _adapted_lines(meta.get("extra", {}).get("adapted"))
    lines += layers.format_lines(info.quantization)
    return "\n".join(lines)


def _adapted_lines(adapted) -> list[str]:
    """What an adapted model was adapted from, on how many frames, when (field.adapt's provenance)."""
    if not isinstance(adapted, dict):
        return []
    # `extra` is free-form: whatever it holds is shown escaped and cut short, never as a terminal's commands.
    new = adapted.get("new_classes")
    new = printable(", ".join(map(str, new)), 400) if isinstance(new, list) and new else "none"
    said = {key: printable(adapted.get(key), 80) for key in ("from", "frames", "time", "from_sha256")}
    return [f"  adapted on this device from {said['from']} on {said['frames']} labelled frames at "
            f"{said['time']} (new classes: {new}); its source SHA-256 {said['from_sha256']}"]
