"""Where an int8 file computes in float, read from the file itself, and which of its layers lose most to
int8, as the exporter measured them (`fmnist-edge info`).

What runs in float is the truth of the file: in a .tflite file, the operators whose output tensor is
float32 (QUANTIZE and DEQUANTIZE only convert); in an ONNX QDQ file, the arithmetic nodes whose output
no QuantizeLinear takes. What loses most is a measurement made at export (converters.quant_report): the
file's metadata carries the top three (`extra.quantization`), and quantization_report.json beside the
file, when it is there, has every layer.
"""

from __future__ import annotations

from pathlib import Path

from edge_runtime.core.backends import Backend
from edge_runtime.core.modelfile import bounded_json, printable
from edge_runtime.core.onnx_proto import OnnxModel

REPORT = "quantization_report.json"
MAX_REPORT_BYTES = 4 << 20
"""A report beside a file is read only up to this size (a tiny model's takes 5 KB, a zoo model's 20 KB)."""
MAX_REPORT_DEPTH = 8
"""How deep a report beside a file may nest (it nests 5 deep: models, a model, its layers, a layer)."""
TOP = 3
ONNX_ARITHMETIC = frozenset({
    "Add", "AveragePool", "BatchNormalization", "Clip", "Conv", "ConvTranspose", "Div", "Gemm",
    "GlobalAveragePool", "HardSigmoid", "HardSwish", "LeakyRelu", "MatMul", "MaxPool", "Mul", "Relu",
    "Sigmoid", "Softmax", "Sub", "Tanh"})
"""ONNX operators that compute on the values (not on shapes), which a QDQ file runs in int8 unless kept in float."""
TFLITE_CONVERTERS = frozenset({"QUANTIZE", "DEQUANTIZE"})


def tflite_float_ops(backend: Backend) -> list[dict]:
    """The operators of an int8 .tflite file that compute in float: {"name", "op"} each."""
    return [{"name": name, "op": op} for op, name, dtype in backend.op_outputs()
            if dtype == "float32" and op not in TFLITE_CONVERTERS]


def onnx_float_nodes(model: OnnxModel) -> list[dict]:
    """The arithmetic nodes of an ONNX QDQ file whose output is not quantized: {"name", "op"} each."""
    quantized = {inputs[0] for op, inputs, _ in model.nodes if op == "QuantizeLinear" and inputs}
    return [{"name": name or "?", "op": op} for (op, _, outputs), name in zip(model.nodes, model.names, strict=True)
            if op in ONNX_ARITHMETIC and not any(o in quantized for o in outputs)]


def _from_report(path: Path) -> dict | None:
    """This file's entry of quantization_report.json beside it, as the metadata's summary would hold it."""
    report = path.parent / REPORT
    try:
        if not report.is_file():
            return None
        with open(report, "rb") as f:
            doc = bounded_json(f.read(MAX_REPORT_BYTES + 1), MAX_REPORT_BYTES, MAX_REPORT_DEPTH)
        entry = next(m for m in doc["models"] if Path(m["path"]).name == path.name)
        return {"debug_images": entry.get("debug_images"), "sorted_by": doc.get("sorted_by"),
                "worst": entry["layers"][:TOP], "kept_float": entry.get("kept_float", []), "source": str(report)}
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return None  # no report for this file, or not one this reads: the metadata's summary stands


def quantization(path: Path, backend: Backend, model: OnnxModel | None, metadata: dict | None) -> dict | None:
    """For an int8 file: the layers it computes in float (from the file), and the layers that lose most,
    from its metadata or, failing that, the report beside it; None for other precisions."""
    if (metadata or {}).get("precision") != "int8" and backend.input.dtype not in ("int8", "uint8"):
        return None
    floats = onnx_float_nodes(model) if model is not None else tflite_float_ops(backend)
    said = (metadata or {}).get("extra", {}).get("quantization")
    summary = said if isinstance(said, dict) else _from_report(path)
    return {"float_in_file": floats, "measured": summary}


def _figure(row: dict, key: str) -> str:
    value = row.get(key)
    return f"{value:.3g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "?"


def format_lines(quant: dict | None) -> list[str]:
    """The `info` lines of `quantization`'s answer; anything the metadata says is shown escaped and cut short."""
    if quant is None:
        return []
    floats = quant["float_in_file"]
    shown = ", ".join(printable(f"{f['name']} ({f['op']})", 120) for f in floats[:20])
    lines = [f"  kept in float (read from the file): {shown if floats else 'none, every layer is int8'}"
             + (f" and {len(floats) - 20} more" if len(floats) > 20 else "")]
    measured = quant["measured"]
    if not isinstance(measured, dict) or not isinstance(measured.get("worst"), list):
        return [*lines, "  layers that lose most to int8: not recorded (exported before fmnist-edge measured them)"]
    key = measured.get("sorted_by") if isinstance(measured.get("sorted_by"), str) else "rmse_per_scale"
    worst = [r for r in measured["worst"][:TOP] if isinstance(r, dict)]
    said = "; ".join(printable(f"{r.get('layer') or r.get('name')} ({r.get('op')}) {key} {_figure(r, key)}", 160)
                     for r in worst)
    lines.append(f"  layers that lose most to int8 ({printable(key, 40)}, "
                 f"{printable(measured.get('debug_images'), 12)} test images): {said or 'none'}")
    kept = measured.get("kept_float")
    if isinstance(kept, list) and kept:
        lines.append(f"  asked to keep in float at export: {printable(', '.join(map(str, kept)), 400)}")
    return lines
