"""The bytes of an exported model file: what the runtime reads, what fmnist-edge embeds, and the
checksum that says the bytes are the ones the exporter wrote.

Every file fmnist-edge exports ends with a fixed marker and 64 hex digits: the SHA-256 of all the
file's bytes before those digits. A .tflite file carries it as the comment of the zip archive
appended to the flatbuffer (which also holds metadata.json and references.npz); an .onnx file as
its last metadata_props entry, `fmnist_edge:sha256`, which protobuf writes last. Checking it needs
no parser: read the file once, hash it, compare, and hand the same bytes to the runtime.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from edge_runtime.core.errors import FmnistEdgeError, first_line

DIGEST_HEX = 64
TFLITE_MARKER = b"fmnist-edge-sha256:"
ONNX_CHECKSUM_KEY = "fmnist_edge:sha256"
ONNX_REFERENCES_KEY = "fmnist_edge:references"
# The serialized metadata_props entry (ModelProto field 14) up to its value: tag, entry length,
# key (field 1) and the value's tag and length (field 2, 64 bytes).
ONNX_MARKER = (b"\x72" + bytes([2 + len(ONNX_CHECKSUM_KEY) + 2 + DIGEST_HEX]) + b"\x0a"
               + bytes([len(ONNX_CHECKSUM_KEY)]) + ONNX_CHECKSUM_KEY.encode() + b"\x12" + bytes([DIGEST_HEX]))
MARKERS = {".tflite": TFLITE_MARKER, ".onnx": ONNX_MARKER}
PLACEHOLDER = b"0" * DIGEST_HEX
MAX_EMBEDDED_BYTES = 16 << 20
"""Metadata and references take tens of KB; a damaged archive may claim gigabytes."""


def digest(data: bytes) -> bytes:
    """The checksum of a file's bytes: SHA-256 of all but the last 64, in hex."""
    return hashlib.sha256(data[:-DIGEST_HEX]).hexdigest().encode()


def seal(data: bytes, suffix: str) -> bytes:
    """Fill in the checksum of bytes that end with the marker and PLACEHOLDER."""
    marker = MARKERS[suffix]
    if data[-DIGEST_HEX - len(marker):] != marker + PLACEHOLDER:
        raise ValueError(f"the {suffix} bytes do not end with the checksum placeholder")
    return data[:-DIGEST_HEX] + digest(data)


def checksum_state(path: Path, data: bytes) -> str:
    """"ok" when the file's checksum matches its bytes, "missing" for a file without one (exported
    before fmnist-edge wrote checksums, or cut short); a mismatch is a one-line FmnistEdgeError."""
    marker = MARKERS.get(path.suffix.lower())
    if marker is None:
        return "missing"
    if len(data) < DIGEST_HEX + len(marker) or data[-DIGEST_HEX - len(marker):-DIGEST_HEX] != marker:
        if marker in data[-DIGEST_HEX - len(marker):]:  # the marker, but not where it belongs: cut short
            raise FmnistEdgeError(f"{path}: damaged: the file is cut short (its checksum is incomplete); copy the "
                                  "file again, or export it again")
        return "missing"
    if data[-DIGEST_HEX:] != digest(data):
        raise FmnistEdgeError(f"{path}: damaged: its bytes are not the ones the exporter wrote (SHA-256 "
                              "mismatch); copy the file again, or export it again")
    return "ok"


def read_checked(path: Path) -> tuple[bytes, str]:
    """The file's bytes, checked, and its checksum state."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FmnistEdgeError(f"{path}: cannot read ({exc.strerror}); check the path and its permissions") from None
    return data, checksum_state(path, data)


def tflite_pack(flatbuffer: bytes, members: dict[str, bytes]) -> bytes:
    """The flatbuffer with a zip archive of `members` appended, sealed with its checksum."""
    buf = io.BytesIO(flatbuffer)
    buf.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buf, "a") as archive:
        for name, content in members.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible bytes
            # An .npz is compressed already; JSON deflates well.
            archive.writestr(info, content, zipfile.ZIP_STORED if name.endswith(".npz") else zipfile.ZIP_DEFLATED)
        archive.comment = TFLITE_MARKER + PLACEHOLDER
    return seal(buf.getvalue(), ".tflite")


def tflite_members(path: Path, data: bytes) -> dict[str, bytes]:
    """The members of the archive appended to a .tflite file ({} when there is none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_EMBEDDED_BYTES:
                raise zipfile.BadZipFile("its members claim more than a model's metadata can hold")
            return {info.filename: archive.read(info) for info in archive.infolist()}
    except zipfile.BadZipFile as exc:
        if b"PK\x05\x06" not in data[-(1 << 16) - 22:]:
            return {}  # no archive at all: a plain .tflite file from elsewhere
        problem = exc
    except Exception as exc:  # zipfile and zlib fail in many ways on damaged bytes
        problem = exc
    raise FmnistEdgeError(f"{path}: damaged metadata archive ({first_line(problem, 80)}); copy the file again, "
                          "or export it again")


def tflite_flatbuffer(data: bytes) -> bytes:
    """The flatbuffer alone: the bytes before the appended archive (all of them when there is none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile:
        return data
    return data[: min(info.header_offset for info in infos)] if infos else data
