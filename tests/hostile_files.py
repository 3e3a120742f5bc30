"""Hostile model files behind a valid checksum, for tests/test_hostile_models.py and tests/test_fuzz.py.

A checksum says the bytes are the ones whoever sealed the file wrote; these builders seal what they craft
(modelfile.seal, as the exporter does), so the runtime's own checks are what stand between the file and a
traceback or gigabytes. Nothing here needs TensorFlow or the `onnx` package: a .tflite file's archive is
written with zipfile, an ONNX file's metadata_props with edge_runtime's protobuf writer.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.core.metadata import TFLITE_MEMBER, TFLITE_REFERENCES
from edge_runtime.core.modelfile import ONNX_CHECKSUM_KEY, ONNX_REFERENCES_KEY, PLACEHOLDER, seal, tflite_flatbuffer
from edge_runtime.core.onnx_proto import iter_fields, parse_message
from edge_runtime.core.onnx_write import MODEL_PROPS, encode, field, metadata_entry

BLOCK = 784 << 14
"""Zeros deflated as one block: 16,384 images of 28x28, 12.8 MB, about 12 KB deflated."""


@dataclass
class Source:
    """One sealed model file taken apart: what the builders put back together, changed."""

    suffix: str
    body: bytes
    """.tflite: the flatbuffer; .onnx: every field of the model but metadata_props."""
    metadata: dict
    references: dict[str, np.ndarray]


def take_apart(path: Path) -> Source:
    data = path.read_bytes()
    if path.suffix == ".tflite":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            meta, refs = json.loads(archive.read(TFLITE_MEMBER)), archive.read(TFLITE_REFERENCES)
        body = tflite_flatbuffer(data)
    else:
        props = dict(onnx_props(data))
        meta = {k.removeprefix("fmnist_edge."): json.loads(v) for k, v in props.items() if k.startswith("fmnist_edge.")}
        import base64

        refs = base64.b64decode(props[ONNX_REFERENCES_KEY])
        body = b"".join(encode(n, w, v) for n, w, v in iter_fields(data) if n != MODEL_PROPS)
    with np.load(io.BytesIO(refs)) as npz:  # the golden file's own: trusted
        arrays = {k: npz[k] for k in npz.files}
    return Source(path.suffix, body, meta, arrays)


def onnx_props(data: bytes) -> list[tuple[str, str]]:
    """An ONNX file's metadata_props entries, in order."""
    entries = [parse_message(v) for n, _, v in iter_fields(data) if n == MODEL_PROPS]
    return [(e[1][0].decode(), e.get(2, [b""])[0].decode()) for e in entries]


def npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def references(source: Source, **changes) -> bytes:
    """The source's references with members changed (a value of None drops the member); `rule` may be a dict."""
    arrays = dict(source.references)
    for name, value in changes.items():
        if value is None:
            arrays.pop(name, None)
        else:
            arrays[name] = np.array(json.dumps(value)) if name == "rule" and isinstance(value, dict) else value
    return npz(arrays)


def zip_of(members: list[tuple[str, bytes]]) -> bytes:
    """A zip archive of `members` as given: twice the same name, if asked."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as archive:
        warnings.simplefilter("ignore")  # "Duplicate name": the point
        for name, content in members:
            archive.writestr(name, content)
    return buf.getvalue()


def sealed(source: Source, metadata: dict | str | bytes | None = None, refs: bytes | str | None = None,
           members: list[tuple[str, bytes]] | None = None, props: dict[str, str] | None = None) -> bytes:
    """The source's file with its metadata (a dict; for .tflite also the raw JSON text), references (an .npz,
    or for ONNX the raw base64 text) or, for .tflite, archive `members` (as given) replaced; `props` adds or
    replaces raw ONNX metadata_props entries. Sealed with a valid checksum."""
    meta = source.metadata if metadata is None else metadata
    refs = npz(source.references) if refs is None else refs
    if source.suffix == ".tflite":
        text = meta if isinstance(meta, (str, bytes)) else json.dumps(meta)
        members = members or [(TFLITE_MEMBER, text.encode() if isinstance(text, str) else text),
                              (TFLITE_REFERENCES, refs)]
        return tflite_sealed(source.body, members)
    import base64

    entries = {f"fmnist_edge.{k}": json.dumps(v) for k, v in meta.items()}  # raw text: through `props`
    entries[ONNX_REFERENCES_KEY] = refs if isinstance(refs, str) else base64.b64encode(refs).decode()
    entries |= props or {}
    return onnx_sealed(source.body, list(entries.items()))


def tflite_sealed(flatbuffer: bytes, members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO(flatbuffer)
    buf.seek(0, io.SEEK_END)
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "a") as archive:
        warnings.simplefilter("ignore")
        for name, content in members:
            archive.writestr(name, content, zipfile.ZIP_STORED if name.endswith(".npz") else zipfile.ZIP_DEFLATED)
        archive.comment = b"fmnist-edge-sha256:" + PLACEHOLDER
    return seal(buf.getvalue(), ".tflite")


def onnx_sealed(body: bytes, entries: list[tuple[str, str]]) -> bytes:
    """`body` with these metadata_props entries (twice the same key, if asked), then the checksum."""
    props = b"".join(field(MODEL_PROPS, metadata_entry(k, v)) for k, v in entries)
    return seal(body + props + field(MODEL_PROPS, metadata_entry(ONNX_CHECKSUM_KEY, PLACEHOLDER.decode())), ".onnx")


def inflating_npz(inflated: int, claimed: int | None = None) -> bytes:
    """An .npz whose images.npy (uint8 [N,28,28]) inflates to about `inflated` bytes of zeros from about a
    thousandth of that: built in proportion to its compressed size (one deflate block, repeated), its CRC
    left wrong as a hostile file's may be (a reader that inflates it has taken the memory before it can
    tell). Its zip entry declares the true size, or `claimed` (a lie). Sizes below 4 GB (no zip64)."""
    count = max(1, inflated // BLOCK)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (count * BLOCK // 784, 28, 28)})
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflate.compress(header.getvalue()) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(bytes(BLOCK)) + deflate.flush(zlib.Z_FULL_FLUSH)  # stands alone: repeatable
    stream = head + block * count + deflate.flush()
    size, name = len(header.getvalue()) + count * BLOCK if claimed is None else claimed, b"images.npy"
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, 0, len(stream), size, len(name), 0) + name
    central = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, 0, len(stream), size, len(name),
                          0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(stream), 0)
    return local + stream + central + end


def nested(depth: int, leaf: str = "1") -> str:
    """JSON text `depth` levels of objects deep, {"a": {"a": ... leaf}}, written without recursion."""
    return '{"a": ' * depth + leaf + "}" * depth


def with_raw(metadata: dict, key: str, text: str) -> str:
    """The metadata as JSON text, `key` holding the JSON `text` as written (json.dumps would recurse)."""
    return json.dumps({**metadata, key: "@RAW@"}).replace('"@RAW@"', text)
