"""int8 TFLite -> TensorFlow Lite Micro: C++ source for a microcontroller, checked like every other file.

`export --int8 --micro` writes DIR/micro/: the model as a C array (model_data.h / .cc, the bytes as
`xxd -i` writes them, 16-byte aligned, with the class names, the input and output quantization and
the tensor arena size), an op resolver with exactly the operators the model uses, a minimal main.cc
that classifies one test image, and model.tflite, the bytes the array holds. The gate runs the model
through the TFLM interpreter (the `tflite-micro` package, the `[micro]` extra) on the test set and
compares it with LiteRT on the same inputs; the arena is measured by finding the smallest one in
which the model allocates and runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from converters.base import ExportError
from edge_runtime.core.micro import MicroModel

OPS = {
    "ADD": "AddAdd", "AVERAGE_POOL_2D": "AddAveragePool2D", "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize",
    "FULLY_CONNECTED": "AddFullyConnected", "HARD_SWISH": "AddHardSwish", "LOGISTIC": "AddLogistic",
    "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean", "MUL": "AddMul", "PAD": "AddPad", "QUANTIZE": "AddQuantize",
    "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape", "SOFTMAX": "AddSoftmax", "SUM": "AddSum",
    # What a Flatten with a free batch dimension becomes: the shape computed at run time.
    "SHAPE": "AddShape", "STRIDED_SLICE": "AddStridedSlice", "PACK": "AddPack",
}
"""TFLite builtin operators -> the MicroMutableOpResolver call that registers TFLM's kernel for it."""


def resolver_calls(model: MicroModel) -> list[str]:
    """The MicroMutableOpResolver calls for exactly the model's operators."""
    missing = sorted(set(model.ops) - set(OPS))
    if missing:
        raise ExportError(f"TensorFlow Lite Micro has no kernel registered here for {', '.join(missing)}")
    return [OPS[op] for op in sorted(model.ops)]


def write_sources(model: MicroModel, arena: int, sample: np.ndarray, sample_label: int, out: Path) -> None:
    """model_data.h/.cc, op_resolver.h, main.cc and model.tflite into the folder `out`."""
    from converters import micro_sources

    out.mkdir(parents=True)
    (out / "model.tflite").write_bytes(model.flatbuffer)
    (out / "model_data.h").write_text(micro_sources.header(model, arena))
    (out / "model_data.cc").write_text(micro_sources.model_data(model.flatbuffer))
    (out / "op_resolver.h").write_text(micro_sources.op_resolver(resolver_calls(model)))
    (out / "main.cc").write_text(micro_sources.main(sample, sample_label))


def install(tmp: Path, final: Path, passed: bool) -> Path:
    """Put the written folder in place: DIR/micro when it passed (replacing the old one only then), else
    DIR/micro.rejected for inspection."""
    dest = final if passed else final.with_name(final.name + ".rejected")
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
    if passed:
        shutil.rmtree(final.with_name(final.name + ".rejected"), ignore_errors=True)
    return dest
