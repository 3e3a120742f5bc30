"""Reference inputs a model file carries, with the answers the exporter's machine computed for them,
so that a device can check on its own that it computes the same (tools.verify).

The images are a stratified sample of the Fashion-MNIST test set: some of the images nearest a
decision boundary (where a runtime that rounds differently changes its answer first) and some of
the rest. `weights` says what share of the test set each stratum stands for, so the agreement on
the sample turns into an estimate for the whole test set, which the gate's rule (`rule`) judges.
"""

from __future__ import annotations

import io
import json
import math
import platform
import zipfile
from dataclasses import dataclass

import numpy as np

from edge_runtime.core.contract import MAX_CLASSES, NUM_CLASSES
from edge_runtime.core.errors import FmnistEdgeError, first_line
from edge_runtime.core.modelfile import bounded_json, checked_members, printable, zip_directory_problem

BOUNDARY, REST = 1, 0


@dataclass
class References:
    images: np.ndarray
    """uint8 [N,28,28,1]."""
    probs: np.ndarray
    """float32 [N,classes]: the file's answers on the exporter's machine."""
    labels: np.ndarray
    """uint8 [N]: the true classes."""
    stratum: np.ndarray
    """uint8 [N]: BOUNDARY or REST."""
    weights: np.ndarray
    """float64 [2]: the share of the test set that REST and BOUNDARY stand for."""
    rule: dict
    """What the gate allowed this precision ("min_agreement", "max_accuracy_drop", "max_abs_diff"; None
    where it checks nothing), and where the answers were computed ("machine", "runtime")."""

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, images=self.images[..., 0], probs=self.probs.astype(np.float32),
                            labels=self.labels.astype(np.uint8), stratum=self.stratum.astype(np.uint8),
                            weights=self.weights.astype(np.float64), rule=np.array(json.dumps(self.rule)))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, path, blob: bytes, classes: int | None = None) -> References:
        """The references in `blob`, checked against their schema (members, dtypes, shapes, values; the rule)
        before any member is decompressed in full; `classes`: the model's, which the answers must name."""
        try:
            arrays = _read_npz(blob)
            rule = bounded_json(str(arrays["rule"][()]), MAX_RULE_CHARS, 1)
            problem = _arrays_problem(arrays, classes) or _rule_problem(rule)
        except Exception as exc:  # zipfile, zlib and numpy's header parser fail in many ways on hostile bytes
            problem = printable(first_line(exc, 120))
        if problem:
            raise FmnistEdgeError(f"{path}: damaged reference inputs ({problem}); copy the file again, or export "
                                  "it again")
        return cls(arrays["images"][..., np.newaxis], arrays["probs"], arrays["labels"], arrays["stratum"],
                   arrays["weights"], rule)


MAX_REFERENCES = 1024
"""Reference images a file may carry: the exporter writes 64 (about 25 KB); a hostile file may claim millions."""
MAX_RULE_CHARS = 1024
_NPY_HEADER_BYTES = 4096
"""What numpy's header of one array may take (it writes 128 bytes)."""
_SCHEMA = {  # member: (dtype, shape), "n" standing for the number of images and "c" for the number of classes
    "images": (np.dtype(np.uint8), ("n", 28, 28)),
    "probs": (np.dtype("<f4"), ("n", "c")),
    "labels": (np.dtype(np.uint8), ("n",)),
    "stratum": (np.dtype(np.uint8), ("n",)),
    "weights": (np.dtype("<f8"), (2,)),
    "rule": (np.dtype(f"<U{MAX_RULE_CHARS}"), ()),
}
_BOUNDS = {"n": MAX_REFERENCES, "c": MAX_CLASSES}
_MEMBER_LIMITS = {f"{name}.npy": _NPY_HEADER_BYTES + dtype.itemsize * math.prod(_BOUNDS.get(d, d) for d in shape)
                  for name, (dtype, shape) in _SCHEMA.items()}
MAX_REFERENCES_BYTES = sum(_MEMBER_LIMITS.values()) + (64 << 10)
"""The most a references.npz can take (its members at their largest, and its zip directory): about 1.1 MB."""
MAX_REFERENCES_BASE64 = 4 * -(-MAX_REFERENCES_BYTES // 3)
"""The same, as the base64 text an ONNX file carries it in."""


def _read_npz(blob: bytes) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive holding the schema's members and nothing else, each refused by the
    size its zip entry and then its .npy header declare, before it is decompressed. Never unpickles."""
    if not blob.startswith(b"PK"):
        raise ValueError("not an .npz archive" + (" (a single .npy array)" if blob.startswith(b"\x93NUMPY") else ""))
    problem = zip_directory_problem(blob)
    if problem:
        raise ValueError(problem)
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        infos = checked_members(archive, _MEMBER_LIMITS)
        names = sorted(info.filename for info in archive.infolist())
        if names != sorted(_MEMBER_LIMITS):
            raise ValueError(f"members {printable(', '.join(names), 100)}, expected "
                             f"{', '.join(sorted(_MEMBER_LIMITS))}")
        return {info.filename[:-4]: _read_npy(archive, info) for info in infos}


def _read_npy(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    name = info.filename[:-4]
    expected, shape_of = _SCHEMA[name]
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:
            raise ValueError(f"{name} is an .npy of version {version}")
        shape, fortran_order, dtype = read_header[version](f)
        if not _fits(dtype, expected) or fortran_order or len(shape) != len(shape_of) or min(shape, default=0) < 0:
            order = " in Fortran order" if fortran_order else ""
            raise ValueError(f"{name} holds {printable(dtype.str, 20)} {printable(list(shape), 40)}{order}, expected "
                             f"{expected.str} of {len(shape_of)} dimensions")
        size = dtype.itemsize * math.prod(shape)
        if size != info.file_size - f.tell():
            raise ValueError(f"{name}: its header says {size:,} bytes, its entry {info.file_size - f.tell():,}")
        data = f.read(size)
    if len(data) != size:
        raise ValueError(f"{name} is cut short")
    return np.frombuffer(data, dtype).reshape(shape).copy()


def _fits(dtype: np.dtype, expected: np.dtype) -> bool:
    """The dtype the exporter writes (text: up to as many characters)."""
    if expected.kind == "U":
        return dtype.kind == "U" and dtype.str[0] in "<|" and dtype.itemsize <= expected.itemsize
    return dtype == expected


def _arrays_problem(arrays: dict[str, np.ndarray], classes: int | None) -> str | None:
    """What is wrong with the arrays' shapes and values, or None."""
    images, probs, labels, stratum, weights = (arrays[k] for k in ("images", "probs", "labels", "stratum", "weights"))
    n, c = len(images), probs.shape[1]
    if not 1 <= n <= MAX_REFERENCES:
        return f"{n} reference images, expected 1 to {MAX_REFERENCES}"
    if images.shape[1:] != (28, 28) or len(probs) != n or labels.shape != (n,) or stratum.shape != (n,) or \
            weights.shape != (2,):
        return "unexpected shapes"
    if not NUM_CLASSES <= c <= MAX_CLASSES or (classes is not None and c != classes):
        return f"answers for {c} classes, expected {classes or f'{NUM_CLASSES} to {MAX_CLASSES}'}"
    if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1.001:
        return "answers that are not probabilities (NaN, infinite, or outside 0..1)"
    if labels.max() >= c or stratum.max() > BOUNDARY:
        return "labels or strata out of range"
    if not np.isfinite(weights).all() or weights.min() < 0 or abs(weights.sum() - 1) > 1e-6:
        return "stratum weights that are not shares of the test set"
    return None


_RULE_CHECKS = ("min_agreement", "max_accuracy_drop", "max_abs_diff")


def _rule_problem(rule) -> str | None:
    """What is wrong with the gate's rule, or None: it must check something, with numbers from 0 to 1."""
    if not isinstance(rule, dict):
        return "the rule is not an object"
    for key in _RULE_CHECKS:
        value = rule.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value <= 1):
            return f"the rule's {key} is not a number from 0 to 1"
    if all(rule.get(key) is None for key in _RULE_CHECKS):
        return "a rule that checks nothing"
    said = [rule.get(key, "") for key in ("precision", "machine", "runtime")]  # verify prints them
    if not all(isinstance(text, str) and len(text) <= 100 and text.isprintable() for text in said):
        return "the rule's precision, machine and runtime must be printable text"
    return None


def this_machine() -> str:
    return platform.machine()
