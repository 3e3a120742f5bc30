"""The metadata every exported model carries: writing it into a file, and reading it back.

TFLite files carry `metadata.json` (and `references.npz`) in a zip archive appended to the
flatbuffer (the interpreter ignores trailing bytes; zip readers find the archive from the end).
ONNX files carry each field as a `metadata_props` entry, prefixed `fmnist_edge.`, values
JSON-encoded; ONNX Runtime hands them over from the session it opened, so the file is parsed once.
Both end with a checksum of their own bytes (core.modelfile).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from edge_runtime.core.contract import CLASS_NAMES, MAX_CLASSES, NUM_CLASSES
from edge_runtime.core.errors import FmnistEdgeError, first_line
from edge_runtime.core.modelfile import bounded_json, printable, tflite_flatbuffer, tflite_pack
from edge_runtime.core.references import MAX_REFERENCES_BYTES

TFLITE_MEMBER = "metadata.json"
TFLITE_REFERENCES = "references.npz"
ONNX_PREFIX = "fmnist_edge."
MAX_METADATA_BYTES = 64 << 10
"""metadata.json takes 1-5 KB (64 class names and an adapted model's provenance included)."""
MAX_EXTRA_DEPTH = 8
"""Levels of nesting in `extra`, itself the first (an adapted model's provenance takes three)."""
MAX_EXTRA_BYTES = 32 << 10
TFLITE_LIMITS = {TFLITE_MEMBER: MAX_METADATA_BYTES, TFLITE_REFERENCES: MAX_REFERENCES_BYTES}
"""The archive members a .tflite file's runtime reads, and the most bytes each may declare."""


@dataclass
class ModelMetadata:
    """What a model file says about itself; the runtime reads it, nothing is hand-copied."""

    class_names: list[str]
    input: dict = field(default_factory=dict)
    """Shape, dtype and value range of what callers pass: raw 0..255 pixels, light item on black."""
    precision: str = "fp32"
    format: str = ""
    preprocessing: str = ""
    """Version of the frame preprocessing the model expects (edge_runtime.core.contract)."""
    toolkit_version: str = ""
    source_sha256: str = ""
    """SHA-256 of the Keras model file the export was made from."""
    calibration_samples: int | None = None
    test_accuracy: float | None = None
    """Accuracy on the Fashion-MNIST test set, measured through the edge runtime at export."""
    arch: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> ModelMetadata:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def tflite_with_metadata(model: bytes, meta: ModelMetadata, references: bytes | None = None) -> bytes:
    """The flatbuffer (any archive `model` carried is replaced) with metadata.json and, when given,
    references.npz appended as a zip archive, sealed with the file's checksum."""
    members = {TFLITE_MEMBER: json.dumps(meta.to_dict(), indent=1, sort_keys=True).encode()}
    if references is not None:
        members[TFLITE_REFERENCES] = references
    return tflite_pack(tflite_flatbuffer(model), members)


def onnx_metadata_props(meta: ModelMetadata) -> dict[str, str]:
    """The metadata as ONNX metadata_props entries."""
    return {ONNX_PREFIX + k: json.dumps(v) for k, v in meta.to_dict().items()}


def _unreadable(path: Path, exc: Exception) -> FmnistEdgeError:
    return FmnistEdgeError(f"{path}: unreadable metadata ({printable(first_line(exc, 120))}); export it again")


def tflite_metadata(path: Path, members: dict[str, bytes]) -> dict | None:
    """The decoded metadata.json of a .tflite file's archive, or None when it has none; its size and
    nesting are bounded before it is decoded (the document, then `extra` within it, MAX_EXTRA_DEPTH deep)."""
    if TFLITE_MEMBER not in members:
        return None
    try:
        return bounded_json(members[TFLITE_MEMBER], MAX_METADATA_BYTES, 1 + MAX_EXTRA_DEPTH)
    except ValueError as exc:
        raise _unreadable(path, exc) from None


def onnx_metadata(path: Path, props: dict[str, str]) -> dict | None:
    """The fmnist-edge entries of an ONNX file's metadata_props, decoded; None when it has none."""
    raw = {k[len(ONNX_PREFIX):]: v for k, v in props.items() if k.startswith(ONNX_PREFIX)}
    if not raw:
        return None
    if "extra" not in raw:
        raise FmnistEdgeError(f"{path}: damaged: its metadata stops before `extra`, the entry every export writes "
                              "last (cut short); copy the file again, or export it again")
    try:
        if sum(len(k) + len(v) for k, v in raw.items()) > MAX_METADATA_BYTES:
            raise ValueError(f"its entries take more than the {MAX_METADATA_BYTES:,} bytes metadata needs")
        return {k: bounded_json(v, MAX_METADATA_BYTES, MAX_EXTRA_DEPTH) for k, v in raw.items()}
    except ValueError as exc:
        raise _unreadable(path, exc) from None


def onnx_duplicate_key(data: bytes, keys) -> str | None:
    """A key of fmnist-edge's that an ONNX file's metadata_props holds twice, or None: ONNX Runtime shows one
    of the two values (`keys` are those it shows), another reader may show the other, so such a file is
    refused. Each entry's key is found by its serialized bytes (field 1, its length, the key, then field 2's
    tag): no protobuf parser runs on a load."""
    for key in sorted(k.encode() for k in keys if k.startswith("fmnist_edge")):
        if len(key) < 128 and data.count(b"\x0a" + bytes([len(key)]) + key + b"\x12") > 1:
            return printable(key.decode(), 60)
    return None


PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
_TEXT_FIELDS = ("format", "preprocessing", "toolkit_version", "source_sha256", "arch")
MAX_TEXT = 200
"""Characters in a text field: they are printed on terminals and drawn on frames."""
MAX_NAME = 64


def _is_text(value, limit: int = MAX_TEXT) -> bool:
    """Text a terminal or a frame can show as it is: no control characters (ANSI escapes, bidi overrides)."""
    return isinstance(value, str) and len(value) <= limit and value.isprintable()


def _is_number(value, low: float, high: float) -> bool:
    """A number from low to high (NaN and infinities fail the comparison; a huge int is compared exactly)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _names_problem(names) -> str | None:
    if not isinstance(names, list) or not NUM_CLASSES <= len(names) <= MAX_CLASSES or \
            not all(_is_text(n, MAX_NAME) and n.strip() for n in names):
        return (f"class_names must be {NUM_CLASSES} names (up to {MAX_CLASSES} for a model adapted with classes "
                f"of its own), each printable text of at most {MAX_NAME} characters")
    if len(names) > NUM_CLASSES and (tuple(names[:NUM_CLASSES]) != CLASS_NAMES or len(set(names)) != len(names)):
        return "a model with classes of its own names Fashion-MNIST's ten first, in order, and no name twice"
    return None


def _input_problem(spec) -> str | None:
    """The input spec: any field it has holds what the exporter writes there (shape [None,28,28,1])."""
    if not isinstance(spec, dict):
        return "input must be an object"
    shape = spec.get("shape", [None, 28, 28, 1])
    if not isinstance(shape, list) or len(shape) != 4 or shape[1:] != [28, 28, 1] or \
            not (shape[0] is None or (_is_number(shape[0], 1, 1 << 16) and isinstance(shape[0], int))):
        return "input shape must be [N, 28, 28, 1]"
    if spec.get("file_scale") is not None and not _is_number(spec["file_scale"], 1e-12, 1e6):
        return "input file_scale must be a positive number"
    zero = spec.get("file_zero_point")
    if zero is not None and not (isinstance(zero, int) and _is_number(zero, -128, 255)):
        return "input file_zero_point must be an integer from -128 to 255"
    if not all(_is_text(spec.get(k, "")) for k in ("layout", "pixels", "file_dtype")):
        return f"input layout, pixels and file_dtype must be printable text of at most {MAX_TEXT} characters"
    return None


def _scalars_problem(raw: dict) -> str | None:
    if raw.get("precision", "fp32") not in PRECISIONS:
        return f"precision must be one of {', '.join(PRECISIONS)}"
    for name in _TEXT_FIELDS:
        if not _is_text(raw.get(name, "")):
            return f"{name} must be printable text of at most {MAX_TEXT} characters"
    samples, accuracy = raw.get("calibration_samples"), raw.get("test_accuracy")
    if samples is not None and not (isinstance(samples, int) and _is_number(samples, 0, 1 << 40)):
        return "calibration_samples must be a count"
    if accuracy is not None and not _is_number(accuracy, 0, 1):
        return "test_accuracy must be a number from 0 to 1"
    return None


def _extra_problem(extra) -> str | None:
    """`extra` is free-form: an object, bounded (tflite_metadata and onnx_metadata bound its depth)."""
    if not isinstance(extra, dict):
        return "extra must be an object"
    if len(json.dumps(extra)) > MAX_EXTRA_BYTES:
        return f"extra takes more than {MAX_EXTRA_BYTES:,} bytes"
    return None


def _schema_problem(raw) -> str | None:
    """What is wrong with decoded metadata, or None: the schema every reader can rely on."""
    if not isinstance(raw, dict):
        return f"expected an object, found {type(raw).__name__}"
    return (_names_problem(raw.get("class_names")) or _input_problem(raw.get("input", {}))
            or _scalars_problem(raw) or _extra_problem(raw.get("extra", {})))


def parse_metadata(path: Path, raw: dict | None) -> ModelMetadata | None:
    """The ModelMetadata of decoded metadata (None stays None), validated against its schema: a file
    whose metadata does not fit is one line, not an exception three calls later."""
    if raw is None:
        return None
    problem = _schema_problem(raw)
    if problem:
        raise FmnistEdgeError(f"{path}: invalid metadata ({problem}); export it again")
    return ModelMetadata.from_dict(raw)
