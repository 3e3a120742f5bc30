"""Keras -> ONNX (tf2onnx), checked with onnx.checker; int8 QDQ and dynamic with ONNX Runtime."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from converters import tf as tf_loader
from converters.base import ExportError
from converters.tf import quiet_conversion
from edge_runtime.core.errors import first_line

PRECISIONS = ("fp32", "dynamic", "int8")
OPSET = 17
INPUT_NAME = "pixels"


def to_onnx(model):
    """The fp32 ModelProto of a Keras model. `from_keras` is broken with Keras 3, so go through a tf.function."""
    import onnx
    import tf2onnx

    tf, _ = tf_loader.load()
    signature = [tf.TensorSpec([None, 28, 28, 1], tf.float32, name=INPUT_NAME)]
    function = tf.function(lambda pixels: model(pixels, training=False))
    try:
        with quiet_conversion():
            proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=OPSET)
    except Exception as exc:
        raise ExportError(f"ONNX conversion failed: {first_line(exc)}") from None
    onnx.checker.check_model(proto, full_check=True)
    return proto


class _Calibration:
    """ONNX Runtime's CalibrationDataReader over uint8 images, one image per call."""

    def __init__(self, images: np.ndarray, input_name: str):
        self._iter = iter(images.astype(np.float32))
        self._name = input_name

    def get_next(self):
        image = next(self._iter, None)
        return None if image is None else {self._name: image[np.newaxis]}


def quantize(proto, precision: str, calibration: np.ndarray | None = None, exclude: tuple[str, ...] = ()):
    """A quantized copy of the fp32 ModelProto: static QDQ int8 or dynamic int8 weights; the nodes named in
    `exclude` (names of the pre-processed graph, `preprocess`) stay in float."""
    import onnx
    from onnxruntime import quantization as q

    if precision == "int8" and (calibration is None or len(calibration) == 0):
        raise ExportError("int8 export needs calibration images; raise --calib-samples")
    with tempfile.TemporaryDirectory(prefix="fmnist-edge-onnx-") as tmp:
        src, pre, dst = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "q.onnx")
        onnx.save(proto, src)
        with quiet_conversion():
            _quantize_file(q, precision, calibration, pre, src, dst, list(exclude))
        out = onnx.load(str(dst))
    onnx.checker.check_model(out, full_check=True)
    return out


def preprocess(proto):
    """The fp32 graph as quantization sees it (ONNX Runtime's pre-processing): the node names
    `quantize(exclude=...)` takes, and the float twin of each quantized node."""
    import onnx
    from onnxruntime import quantization as q

    with tempfile.TemporaryDirectory(prefix="fmnist-edge-onnx-") as tmp:
        onnx.save(proto, Path(tmp, "fp32.onnx"))
        with quiet_conversion():
            q.quant_pre_process(str(Path(tmp, "fp32.onnx")), str(Path(tmp, "pre.onnx")), skip_symbolic_shape=True)
        return onnx.load(str(Path(tmp, "pre.onnx")))


def _quantize_file(q, precision: str, calibration: np.ndarray | None, pre: Path, src: Path, dst: Path,
                   exclude: list[str]) -> None:
    """ONNX Runtime's quantization tools, file to file."""
    # Symbolic shape inference needs sympy; the graph's shapes are static apart from the batch.
    q.quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    if precision == "int8":
        q.quantize_static(str(pre), str(dst), _Calibration(calibration, INPUT_NAME),
                          quant_format=q.QuantFormat.QDQ, per_channel=True,
                          activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                          calibrate_method=q.CalibrationMethod.MinMax, nodes_to_exclude=exclude)
    elif precision == "dynamic":
        q.quantize_dynamic(str(pre), str(dst), weight_type=q.QuantType.QInt8, per_channel=True)
    else:
        raise ExportError(f"ONNX has no precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
