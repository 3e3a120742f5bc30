"""Where int8 loses accuracy: per-layer error of each int8 file, DIR/quantization_report.json and .md.

Each row is one quantized operator of the file, named as the file names it (a TFLite output tensor,
an ONNX node), with the Keras layer it was made from, its error figures over the debug images, and
the scale and zero point of its int8 output. Rows are sorted by `rmse_per_scale`, the error in units
of the layer's own int8 step (about 0.29 is rounding alone; much more is a layer int8 serves badly):
TFLite's QuantizationDebugger and the ONNX measurement (converters.onnx_debug) both run each quantized
operator on the int8 model's own inputs and compare its int8 output with the same operator in float,
so the figure says what that layer loses, not what it inherits.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from converters.base import ExportError
from edge_runtime.core.files import write_json_atomic, write_text_atomic
from edge_runtime.report.tables import markdown_table

DEBUG_IMAGES = 200
"""Test images the per-layer errors are measured on: enough for stable figures, a few seconds per file."""
SORTED_BY = "rmse_per_scale"
TOP = 3
REPORT_JSON = "quantization_report.json"
REPORT_MD = "quantization_report.md"


@dataclass
class LayerReport:
    """One int8 file's rows, worst first."""

    path: str
    format: str
    layers: list[dict]
    kept_float: list[str] = field(default_factory=list)
    """The Keras layers asked to stay in float (--keep-float)."""
    debug_images: int = 0

    def summary(self) -> dict:
        """What the file's metadata carries (`extra.quantization`): a device may get the file alone."""
        worst = [{k: r[k] for k in ("layer", "name", "op", SORTED_BY)} for r in self.layers[:TOP]]
        return {"debug_images": self.debug_images, "sorted_by": SORTED_BY, "worst": worst,
                "kept_float": list(self.kept_float)}


def row(name: str, layer: str | None, op: str, float_values, int8_values, scale: float, zero_point: int,
        **extra: float) -> dict:
    """A report row from the float and the dequantized int8 values of one operator's output."""
    import numpy as np

    diff = np.asarray(int8_values, np.float64).ravel() - np.asarray(float_values, np.float64).ravel()
    return stats_row(name, layer, op, float(np.sqrt(np.mean(diff**2))) if diff.size else 0.0,
                     float(diff.mean()) if diff.size else 0.0, float(np.abs(diff).max()) if diff.size else 0.0,
                     scale, zero_point, **extra)


def stats_row(name: str, layer: str | None, op: str, rmse: float, mean_error: float, max_abs_error: float,
              scale: float, zero_point: int, **extra: float) -> dict:
    """A report row from one operator's error statistics (the TFLite debugger gives them as they are)."""
    return finite({"name": name, "layer": layer, "op": op, "rmse": rmse, "mean_error": mean_error,
                   "max_abs_error": max_abs_error, SORTED_BY: rmse / scale if scale > 0 else 0.0,
                   "range": 255.0 * scale, **extra, "scale": float(scale), "zero_point": int(zero_point)})


def finite(values: dict) -> dict:
    """A row whose figures are all finite numbers (JSON has no NaN), or one line saying which is not."""
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ExportError(f"per-layer error of {values.get('name')}: {key} is {value}")
    return values


def worst_first(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: -r[SORTED_BY])


def _scope_candidates(scope: str, layer_names: list[str]) -> list[str]:
    """The Keras layers a graph scope may stand for: TensorFlow makes scope names unique by adding
    `_1`, `_2` (layer conv2d traces as conv2d_1, and layer conv2d_1 then as conv2d_1_2)."""
    return [n for n in layer_names if scope == n or re.fullmatch(re.escape(n) + r"(_\d+)+", scope)]


def keras_layers(names: list[str], layer_names: list[str]) -> dict[str, str | None]:
    """The Keras layer of each operator name (graph order, `model/layer/op`, several joined by ';' when
    TFLite fused them); None for one outside any layer. Scopes are matched in graph order to the first
    layer not taken yet, which is unambiguous for the zoo's models however TensorFlow renamed them."""
    taken: dict[str, str] = {}
    found: dict[str, str | None] = {}
    for name in names:
        parts = name.split(";")[0].split("/")
        scope = parts[1] if len(parts) >= 3 else None
        if scope is not None and scope not in taken:
            candidates = _scope_candidates(scope, layer_names)
            free = [c for c in candidates if c not in taken.values()]
            if free or candidates:
                taken[scope] = (free or candidates)[0]
        found[name] = taken.get(scope) if scope else None
    return found


def check_keep_float(asked: tuple[str, ...], layer_names: list[str], model_name: str) -> None:
    """Refuse a --keep-float name that is no layer of the model, naming the layers there are."""
    unknown = [n for n in asked if n not in layer_names]
    if unknown:
        raise ExportError(f"--keep-float {unknown[0]}: {model_name} has no such layer; its layers are "
                          f"{', '.join(layer_names)}")


def nodes_of(asked: tuple[str, ...], layer_of: dict[str, str | None], fmt: str) -> list[str]:
    """The operator names of the asked layers in one format's graph; a layer with none is one line."""
    nodes = [name for name, layer in layer_of.items() if layer in asked]
    missing = [a for a in asked if a not in layer_of.values()]
    if missing:
        known = sorted({v for v in layer_of.values() if v})
        raise ExportError(f"--keep-float {missing[0]}: the layer has no quantized operator in the {fmt} graph; "
                          f"the layers that do are {', '.join(known)}")
    return nodes


def write(out: Path, reports: list[LayerReport], debug_images: int) -> Path:
    """DIR/quantization_report.json and DIR/quantization_report.md, each written atomically."""
    doc = {"debug_images": debug_images, "sorted_by": SORTED_BY,
           "models": [{"path": r.path, "format": r.format, "debug_images": r.debug_images,
                       "kept_float": r.kept_float, "layers": r.layers} for r in reports]}
    write_json_atomic(out / REPORT_JSON, doc)
    write_text_atomic(out / REPORT_MD, markdown(reports, debug_images))
    return out / REPORT_JSON


def markdown(reports: list[LayerReport], debug_images: int) -> str:
    lines = ["# Where int8 loses accuracy", "",
             f"Per-layer error of each int8 file on {debug_images} test images, the layers that lose most first. "
             f"`{SORTED_BY}`: RMSE of the layer's int8 output against the same layer in float, run on the same "
             "int8 inputs, in units of its int8 step (rounding alone gives about 0.29). Keep the worst in float "
             "with `fmnist-edge export MODEL.keras --int8 --keep-float LAYER`.", ""]
    for r in reports:
        kept = f" (kept in float: {', '.join(r.kept_float)})" if r.kept_float else ""
        lines += [f"## {Path(r.path).name}{kept}", ""]
        rows = [[i + 1, x["layer"] or "-", x["op"], f"{x[SORTED_BY]:.3f}", f"{x['rmse']:.3g}",
                 f"{x['max_abs_error']:.3g}", f"{x['scale']:.3g}", x["zero_point"], f"`{x['name']}`"]
                for i, x in enumerate(r.layers)]
        lines += [markdown_table(["#", "layer", "op", SORTED_BY, "rmse", "max abs error", "scale", "zero point",
                                  "name in the file"], rows, "rllrrrrrl"), ""]
    return "\n".join(lines)
