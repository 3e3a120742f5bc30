"""Keras -> TFLite at fp32, fp16, dynamic-range int8 weights, or full integer int8."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from converters import tf as tf_loader
from converters.base import ExportError
from converters.tf import quiet_conversion
from edge_runtime.core.errors import first_line

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")


def _representative(images: np.ndarray):
    def gen() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[np.newaxis].astype(np.float32)]

    return gen


def _converter(model, precision: str, calibration: np.ndarray | None):
    """A TFLiteConverter of `model` set up for `precision`."""
    tf, _ = tf_loader.load()
    with quiet_conversion():
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise ExportError("int8 export needs calibration images; raise --calib-samples")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Integer in and out: the runtime maps raw pixels with the file's own scale and zero point.
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif precision != "fp32":
        raise ExportError(f"TFLite has no precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return converter


def convert(model, precision: str, calibration: np.ndarray | None = None) -> bytes:
    """The flatbuffer of a Keras `model` at `precision`; int8 needs calibration images (uint8 [N,28,28,1])."""
    converter = _converter(model, precision, calibration)
    try:
        with quiet_conversion():
            return converter.convert()
    except Exception as exc:  # the converter raises many types; the user needs the first line
        raise ExportError(f"TFLite {precision} conversion failed: {first_line(exc)}") from None


def debug_int8(model, calibration: np.ndarray, debug_images: np.ndarray, keep_float: tuple[str, ...] = ()
               ) -> tuple[bytes | None, list[dict]]:
    """TensorFlow's QuantizationDebugger on the int8 conversion: (the flatbuffer with the layers in
    `keep_float` left in float, None when none is asked for, as `convert` makes it then; every quantized
    operator's statistics over `debug_images`, as report rows, worst first)."""
    from converters import quant_report

    tf, _ = tf_loader.load()
    options = tf.lite.experimental.QuantizationDebugOptions
    layer_names = [layer.name for layer in model.layers]
    with quiet_conversion():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=_converter(model, "int8", calibration), debug_dataset=_representative(debug_images),
            debug_options=options(fully_quantize=True))  # int8 in and out, as `convert` makes the file
        rows = _layer_rows(tf, debugger, layer_names)
        if not keep_float:
            return None, rows
        layer_of = {r["name"]: r["layer"] for r in rows}
        nodes = quant_report.nodes_of(keep_float, layer_of, "TFLite")
        debugger.options = options(fully_quantize=True, denylisted_nodes=nodes)  # same calibration, requantized
        rows = _layer_rows(tf, debugger, layer_names)
        return debugger.get_nondebug_quantized_model(), rows


def _layer_rows(tf, debugger, layer_names: list[str]) -> list[dict]:
    """The debugger's per-layer statistics (layer_statistics_dump) as report rows, named as the file names
    the operator's output tensor."""
    import csv
    import io

    from converters import quant_report

    debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    stats = list(csv.DictReader(io.StringIO(dump.getvalue())))
    final = tf.lite.Interpreter(model_content=debugger.get_nondebug_quantized_model())
    names = {t["name"] for t in final.get_tensor_details()}
    # The dump drops a digit the debug model appended to each name; the real name is one of the two.
    named = [(s, next((n for n in (s["tensor_name"], s["tensor_name"] + "0", s["tensor_name"] + "1")
                       if n in names), None)) for s in stats]
    layer_of = quant_report.keras_layers([n for _, n in named if n], layer_names)
    rows = []
    for s, name in named:
        if name is None:
            continue
        rows.append(quant_report.stats_row(
            name, layer_of[name], s["op_name"], float(np.sqrt(float(s["mean_squared_error"]))),
            float(s["mean_error"]), float(s["max_abs_error"]), float(s["scale"]), int(float(s["zero_point"])),
            stddev=float(s["stddev"])))
    return quant_report.worst_first(rows)

