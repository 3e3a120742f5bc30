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


def convert(model, precision: str, calibration: np.ndarray | None = None) -> bytes:
    """The flatbuffer of a Keras `model` at `precision`; int8 needs calibration images (uint8 [N,28,28,1])."""
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
    try:
        with quiet_conversion():
            return converter.convert()
    except Exception as exc:  # the converter raises many types; the user needs the first line
        raise ExportError(f"TFLite {precision} conversion failed: {first_line(exc)}") from None

