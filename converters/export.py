"""Export a Keras model to every asked-for format and precision, each file gated and self-describing.

For each target: convert, write to a temporary file, run it through the edge runtime on the test
set and compare with Keras (converters.validate), embed the metadata with the accuracy just
measured, confirm the final bytes give the same answers, and only then rename it into place.
A file that fails the gate is kept beside the others as `model_<precision>.rejected.<ext>` for
inspection; it never replaces a good model.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from converters import metadata as meta
from converters import onnx as onnx_conv
from converters import onnx_debug, quant_report, references
from converters import tflite as tflite_conv
from converters.base import ExportedModel, ExportError, Target
from converters.tf import quiet_conversion
from converters.validate import GateError, GateLimits, Reference, check
from edge_runtime.core.backends import open_backend, predict_file
from edge_runtime.core.errors import first_line
from edge_runtime.core.files import temp_beside, write_json_atomic
from edge_runtime.core.metadata import ModelMetadata, onnx_metadata_props, tflite_with_metadata
from edge_runtime.core.modelfile import ONNX_CHECKSUM_KEY, ONNX_REFERENCES_KEY, PLACEHOLDER, seal
from edge_runtime.core.references import References
from edge_runtime.report.tables import text_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Format:
    precisions: tuple[str, ...]
    made_from: Target | None = None
    """Another target whose file this one is made from (micro: the int8 TFLite file), not from Keras."""
    flag: str = ""
    """The export flag that asks for it, where `--format` does not (micro: --micro)."""


FORMATS = {"tflite": Format(tflite_conv.PRECISIONS), "onnx": Format(onnx_conv.PRECISIONS),
           "micro": Format(("int8",), made_from=Target("tflite", "int8"), flag="--micro")}
"""Every export format, its precisions, and what it is made from."""
FORMAT_CHOICES = (*(f for f, spec in FORMATS.items() if not spec.flag), "all")
"""What `export --format` takes."""


def plan(fmt: str = "all", int8: bool = False, fp16: bool = False, dynamic: bool = False,
         micro: bool = False) -> list[Target]:
    """fp32 for each format, plus each precision asked for where the format has it; micro last, after
    the file it is made from."""
    formats = [f for f in FORMATS if not FORMATS[f].flag] if fmt == "all" else [fmt]
    asked = ["fp32"] + [p for p, on in (("fp16", fp16), ("dynamic", dynamic), ("int8", int8)) if on]
    for precision in asked:
        if not any(precision in FORMATS[f].precisions for f in formats):
            raise ExportError(f"{fmt} export has no {precision} precision; use --format tflite for it")
    targets = [Target(f, p) for f in formats for p in asked if p in FORMATS[f].precisions]
    if micro:
        source = FORMATS["micro"].made_from
        if source not in targets:
            raise ExportError("--micro is made from the int8 TFLite file: add --int8, with --format tflite or all")
        targets.append(Target("micro", "int8"))
    return targets


def calibration_set(images: np.ndarray, labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """`n` training images drawn evenly across the ten classes (seeded)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    picked = [idx[i] for i in range(-(-n // len(classes))) for idx in per_class if i < len(idx)]
    return images[np.sort(np.array(picked[:n], dtype=np.int64))]


@dataclass
class ExportReport:
    source: str
    source_sha256: str
    arch: str
    keras_accuracy: float
    calibration_samples: int
    test_images: int
    models: list[ExportedModel]
    photo_frames: int | None = None
    """With --calib-photos: the folder's frames, which calibrate int8 and give each row's photo agreement."""
    quantization_report: str | None = None
    """DIR/quantization_report.json, where int8 files were measured layer by layer."""

    def to_dict(self) -> dict:
        return asdict(self)

    def format_text(self) -> str:
        photos = self.photo_frames is not None
        rows = [[Path(r.path).name, f"{r.size_bytes / 1e6:.2f}MB", f"{r.accuracy:.4f}", f"{r.top1_agreement:.4f}",
                 *([f"{r.photo_top1_agreement:.4f}" if r.photo_top1_agreement is not None else "-"] if photos else []),
                 f"{r.max_abs_diff:.2e}", "pass" if r.passed else "FAIL: " + "; ".join(r.failures)]
                for r in self.models]
        headers = ["file", "size", "accuracy", "agreement", *([f"photos ({self.photo_frames})"] if photos else []),
                   "max diff", "gate"]
        return text_table(headers, rows, "lrrr" + ("r" if photos else "") + "rl")


class _Converter:
    """Builds each target's bytes, converting the ONNX fp32 graph once for all ONNX precisions; for int8,
    also measures where it loses (converters.quant_report), keeping the `keep_float` layers in float."""

    def __init__(self, model, calibration: np.ndarray, debug_images: np.ndarray, keep_float: tuple[str, ...] = ()):
        self.model = model
        self.calibration = calibration
        self.debug_images = debug_images
        self.keep_float = keep_float
        self.layer_names = [layer.name for layer in model.layers]
        self.layers: dict[Target, quant_report.LayerReport] = {}
        """Each int8 target's per-layer report (missing where measuring failed)."""
        self._onnx_fp32 = None

    def __call__(self, target: Target) -> Callable[..., bytes]:
        """A renderer: (metadata, references) -> the file's bytes; (None, None) gives the bare model."""
        if target.format == "tflite":
            flat = self._tflite_int8() if target.precision == "int8" else None
            flat = flat or tflite_conv.convert(self.model, target.precision, self.calibration)
            return lambda m, refs: flat if m is None else tflite_with_metadata(flat, m, refs.to_bytes())
        if self._onnx_fp32 is None:
            self._onnx_fp32 = onnx_conv.to_onnx(self.model)
        if target.precision == "int8":
            proto = self._onnx_int8()
        else:
            proto = self._onnx_fp32 if target.precision == "fp32" else \
                onnx_conv.quantize(self._onnx_fp32, target.precision, self.calibration)
        return lambda m, refs: onnx_bytes(proto, m, refs)

    def _measured(self, target: Target, rows: list[dict]) -> None:
        self.layers[target] = quant_report.LayerReport("", target.format, rows, list(self.keep_float),
                                                       len(self.debug_images))

    def _tflite_int8(self) -> bytes | None:
        """With --keep-float, the debugger's selectively quantized flatbuffer; else None (`convert` makes it)."""
        target = Target("tflite", "int8")
        try:
            flat, rows = tflite_conv.debug_int8(self.model, self.calibration, self.debug_images, self.keep_float)
        except ExportError:
            raise
        except Exception as exc:  # the experimental debugger fails in its own ways
            if self.keep_float:
                raise ExportError(f"--keep-float: TensorFlow's QuantizationDebugger failed ({first_line(exc)}); "
                                  "export without --keep-float") from None
            log.warning("quantization report: TensorFlow's QuantizationDebugger failed (%s); %s is exported "
                        "without its per-layer report", first_line(exc), target.filename)
            return None
        self._measured(target, rows)
        return flat

    def _onnx_int8(self):
        """The QDQ int8 graph (the --keep-float layers' nodes excluded) and its per-layer report."""
        pre = onnx_conv.preprocess(self._onnx_fp32)
        exclude = ()
        if self.keep_float:
            layer_of = quant_report.keras_layers([n.name for n in pre.graph.node], self.layer_names)
            exclude = tuple(quant_report.nodes_of(self.keep_float, layer_of, "ONNX"))
        proto = onnx_conv.quantize(self._onnx_fp32, "int8", self.calibration, exclude)
        try:
            with quiet_conversion():
                rows = onnx_debug.layer_rows(pre, proto, self.debug_images, onnx_conv.INPUT_NAME, self.layer_names)
        except Exception as exc:  # a failed measurement must not cost the file
            log.warning("quantization report: measuring the ONNX int8 layers failed (%s); model_int8.onnx is "
                        "exported without its per-layer report", first_line(exc))
            return proto
        self._measured(Target("onnx", "int8"), rows)
        return proto


def onnx_bytes(proto, metadata: ModelMetadata | None, refs: References | None) -> bytes:
    """The serialized model; with metadata, also the references and, last, the checksum of its bytes."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    if metadata is None:
        return copy.SerializeToString()
    if len(copy.training_info) or len(copy.functions):
        raise ExportError("the ONNX model has training_info or functions, which protobuf writes after the "
                          "checksum entry; cannot seal it")
    props = {**onnx_metadata_props(metadata), ONNX_REFERENCES_KEY: base64.b64encode(refs.to_bytes()).decode(),
             ONNX_CHECKSUM_KEY: PLACEHOLDER.decode()}  # last: protobuf keeps the order
    onnx.helper.set_model_props(copy, props)
    return seal(copy.SerializeToString(), ".onnx")


def _install(target: Target, out: Path, render: Callable, ref: Reference, arch: str, source_sha: str,
             n_calib: int, limits: GateLimits, extra: dict | None = None, photos: Reference | None = None
             ) -> ExportedModel:
    """Gate one file and put it in place; `extra` goes into its metadata, `photos` (frames and Keras's answers
    on them) gives its photo agreement."""
    final = out / target.filename
    rejected = final.with_name(f"model_{target.precision}.rejected.{target.format}")
    tmp = temp_beside(final)
    try:
        tmp.write_bytes(render(None, None))
        probs = predict_file(tmp, ref.images)
        row = check(final, target, probs, ref, limits)
        if photos is not None:
            row.photo_top1_agreement = float((predict_file(tmp, photos.images).argmax(1)
                                              == photos.probs.argmax(1)).mean())
        with open_backend(tmp) as backend:
            info = meta.build(target.format, target.precision, arch, source_sha, backend.input, n_calib,
                              row.accuracy, extra)
            refs = references.build(ref.images, ref.labels, probs, backend, limits.rule(target.precision))
        tmp.write_bytes(render(info, refs))
        if not np.array_equal(predict_file(tmp, ref.images), probs):  # also checks the checksum
            raise ExportError(f"{final}: embedding the metadata changed the model's answers")
        row.size_bytes = tmp.stat().st_size
        # A file that fails the gate is kept for inspection, never where a good model is.
        dest = final if row.passed else rejected
        os.replace(tmp, dest)
        row.path = str(dest)
        if row.passed:
            rejected.unlink(missing_ok=True)
        return row
    finally:
        tmp.unlink(missing_ok=True)


def micro_export(source: Path, out: Path, images: np.ndarray, labels: np.ndarray,
                 limits: GateLimits | None = None) -> ExportedModel:
    """OUT/micro from an int8 TFLite file, gated against LiteRT on the same test images."""
    from converters import micro
    from edge_runtime.core import micro as tflm

    limits = limits or GateLimits()
    model = tflm.read_int8(source)
    micro.resolver_calls(model)  # an operator TFLM lacks fails here, before the long run
    arena = tflm.example_arena(tflm.measure_arena(model))
    litert = predict_file(source, images)
    tflm_probs = tflm.tflm_predict(model, images, arena)
    row = check(out / "micro", Target("micro", "int8"), tflm_probs, Reference(images, labels, litert), limits,
                size_bytes=len(model.flatbuffer))
    row.arena_bytes = arena
    right = np.flatnonzero((tflm_probs.argmax(1) == labels) & (litert.argmax(1) == labels))
    sample = int(right[0]) if len(right) else 0
    tmp = Path(tempfile.mkdtemp(prefix=".micro.", dir=out))
    try:
        micro.write_sources(model, arena, images[sample], int(labels[sample]), tmp / "micro")
        row.path = str(micro.install(tmp / "micro", out / "micro", row.passed))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return row


def _made_from(target: Target, rows: list[ExportedModel], out: Path, ref: Reference,
               limits: GateLimits) -> ExportedModel:
    """A target made from another exported file (micro from the int8 TFLite file), if that one passed."""
    source = FORMATS[target.format].made_from
    row = next(r for r in rows if (r.format, r.precision) == (source.format, source.precision))
    if not row.passed:
        return ExportedModel(path=str(out / target.filename), format=target.format, precision=target.precision,
                             size_bytes=0, accuracy=0.0, top1_agreement=0.0, max_abs_diff=0.0, passed=False,
                             failures=[f"not made: the {source.precision} {source.format} file it is made from "
                                       "failed its gate"])
    return micro_export(out / source.filename, out, ref.images, ref.labels, limits)


def export(model, keras_path: str | Path, out: str | Path, targets: list[Target], calibration: np.ndarray,
           test_images: np.ndarray, test_labels: np.ndarray, limits: GateLimits | None = None,
           keep_float: tuple[str, ...] = (), photos: np.ndarray | None = None) -> ExportReport:
    """Export, gate and install every target of a loaded Keras `model` (read from `keras_path`, whose
    SHA-256 the files carry); raise GateError listing every failure after trying all. int8 files also get
    their per-layer report (DIR/quantization_report.json), with the `keep_float` layers left in float;
    `photos` (uint8 frames) give each file's top-1 agreement with Keras on them."""
    keras_path, out, limits = Path(keras_path), Path(out), limits or GateLimits()
    quant_report.check_keep_float(keep_float, [layer.name for layer in model.layers
                                               if type(layer).__name__ != "InputLayer"], model.name)
    source_sha = meta.sha256_file(keras_path)
    ref = Reference(test_images, test_labels, model.predict(test_images.astype(np.float32), batch_size=1000, verbose=0))
    on_photos = None if photos is None else \
        Reference(photos, np.zeros(len(photos), np.int64), model.predict(photos.astype(np.float32), verbose=0))
    convert = _Converter(model, calibration, test_images[:quant_report.DEBUG_IMAGES], keep_float)
    rows: list[ExportedModel] = []
    for target in targets:
        log.info("exporting %s %s", target.format, target.precision)
        if FORMATS[target.format].made_from is not None:
            rows.append(_made_from(target, rows, out, ref, limits))
            continue
        render = convert(target)
        layers = convert.layers.get(target)
        rows.append(_install(target, out, render, ref, model.name, source_sha, len(calibration), limits,
                             {"quantization": layers.summary()} if layers else None, on_photos))
        if layers:
            layers.path = rows[-1].path
    report = ExportReport(str(keras_path), source_sha, model.name, ref.accuracy, len(calibration),
                          len(test_images), rows, photo_frames=None if photos is None else len(photos))
    if convert.layers:
        report.quantization_report = str(quant_report.write(out, list(convert.layers.values()),
                                                            len(convert.debug_images)))
    write_json_atomic(out / "export_report.json", report.to_dict())
    if not all(r.passed for r in rows):
        raise GateError(report)
    return report


__all__ = ["FORMATS", "ExportReport", "calibration_set", "export", "onnx_bytes", "plan"]
