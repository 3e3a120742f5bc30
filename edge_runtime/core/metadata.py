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
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.modelfile import tflite_flatbuffer, tflite_pack

TFLITE_MEMBER = "metadata.json"
TFLITE_REFERENCES = "references.npz"
ONNX_PREFIX = "fmnist_edge."


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
    return FmnistEdgeError(f"{path}: unreadable metadata ({exc}); re-export the model")


def tflite_metadata(path: Path, members: dict[str, bytes]) -> dict | None:
    """The decoded metadata.json of a .tflite file's archive, or None when it has none."""
    if TFLITE_MEMBER not in members:
        return None
    try:
        return json.loads(members[TFLITE_MEMBER])
    except ValueError as exc:
        raise _unreadable(path, exc) from None


def onnx_metadata(path: Path, props: dict[str, str]) -> dict | None:
    """The fmnist-edge entries of an ONNX file's metadata_props, decoded; None when it has none."""
    raw = {k[len(ONNX_PREFIX):]: v for k, v in props.items() if k.startswith(ONNX_PREFIX)}
    if not raw:
        return None
    try:
        return {k: json.loads(v) for k, v in raw.items()}
    except ValueError as exc:
        raise _unreadable(path, exc) from None


PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
_TEXT_FIELDS = ("format", "preprocessing", "toolkit_version", "source_sha256", "arch")


def _schema_problem(raw) -> str | None:
    """What is wrong with decoded metadata, or None: the schema every reader can rely on."""
    if not isinstance(raw, dict):
        return f"expected an object, found {type(raw).__name__}"
    names = raw.get("class_names")
    if not isinstance(names, list) or not NUM_CLASSES <= len(names) <= MAX_CLASSES or \
            not all(isinstance(n, str) and n.strip() and len(n) <= 64 for n in names):
        return f"class_names must be {NUM_CLASSES} to {MAX_CLASSES} names"
    if len(names) > NUM_CLASSES and (tuple(names[:NUM_CLASSES]) != CLASS_NAMES or len(set(names)) != len(names)):
        return "a model with classes of its own names Fashion-MNIST's ten first, in order, and no name twice"
    if not isinstance(raw.get("input", {}), dict):
        return "input must be an object"
    if raw.get("precision", "fp32") not in PRECISIONS:
        return f"precision must be one of {', '.join(PRECISIONS)}"
    for name in _TEXT_FIELDS:
        if not isinstance(raw.get(name, ""), str):
            return f"{name} must be text"
    samples, accuracy = raw.get("calibration_samples"), raw.get("test_accuracy")
    if samples is not None and (not isinstance(samples, int) or isinstance(samples, bool) or samples < 0):
        return "calibration_samples must be a count"
    if accuracy is not None and (not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool)
                                 or not 0 <= accuracy <= 1):
        return "test_accuracy must be a number from 0 to 1"
    if not isinstance(raw.get("extra", {}), dict):
        return "extra must be an object"
    return None


def parse_metadata(path: Path, raw: dict | None) -> ModelMetadata | None:
    """The ModelMetadata of decoded metadata (None stays None), validated against its schema: a file
    whose metadata does not fit is one line, not an exception three calls later."""
    if raw is None:
        return None
    problem = _schema_problem(raw)
    if problem:
        raise FmnistEdgeError(f"{path}: invalid metadata ({problem}); export it again")
    return ModelMetadata.from_dict(raw)
