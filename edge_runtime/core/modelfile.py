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
import json
import re
import struct
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
MAX_ARCHIVE_MEMBERS = 16
"""An archive fmnist-edge writes holds two members (references.npz six); a hostile one may list millions."""
MAX_DIRECTORY_BYTES = 64 << 10
"""The zip directory of that many members, at most: zipfile reads all of it before anything else."""


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


def zip_directory_problem(data: bytes) -> str | None:
    """What is wrong with the zip directory at the end of `data`, read from its end record before zipfile
    builds an entry for every member it lists; None when it is small (or there is no archive)."""
    at = len(data) - 22 if data[-22:-18] == b"PK\x05\x06" and data[-2:] == b"\0\0" else \
        data.rfind(b"PK\x05\x06", max(0, len(data) - (1 << 16) - 22))
    if at < 0 or at + 22 > len(data):
        return None
    entries, directory_bytes = struct.unpack_from("<HI", data, at + 10)
    if at + 22 + struct.unpack_from("<H", data, at + 20)[0] > len(data):
        return "its end record's comment is cut short"
    if data[max(0, at - 20):at - 16] == b"PK\x06\x07":
        return "a zip64 archive, which fmnist-edge never writes"
    if entries > MAX_ARCHIVE_MEMBERS or directory_bytes > MAX_DIRECTORY_BYTES:
        return f"its archive lists {entries:,} members in {directory_bytes:,} bytes"
    return None


def checked_members(archive: zipfile.ZipFile, limits: dict[str, int]) -> list[zipfile.ZipInfo]:
    """The members of `archive` named in `limits`, each declaring no more bytes than its limit: raises
    ValueError, before anything is decompressed, for a member listed twice or too many members."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise ValueError(f"its archive holds {len(infos):,} members")
    twice = sorted({name for name in names if names.count(name) > 1})  # 16 names at most
    if twice:
        raise ValueError(f"its archive holds {printable(twice[0], 40)} twice")
    wanted = [info for info in infos if info.filename in limits]
    for info in wanted:
        if info.file_size > limits[info.filename]:
            raise ValueError(f"{info.filename} claims {info.file_size:,} bytes, more than the "
                             f"{limits[info.filename]:,} it can hold")
    return wanted


def tflite_members(path: Path, data: bytes, limits: dict[str, int] | None = None) -> dict[str, bytes]:
    """The members of the archive appended to a .tflite file ({} when there is none): those named in
    `limits`, each checked against its limit before it is decompressed (all of them, if None)."""
    try:
        problem = zip_directory_problem(data)
        if problem is None:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if limits is None:
                    limits = {info.filename: MAX_EMBEDDED_BYTES for info in archive.infolist()}
                infos = checked_members(archive, limits)
                if not infos and _has_member_header(data, limits):  # the archive found is one nested in a member
                    raise ValueError("its end record is missing: the file is cut short")
                if sum(info.file_size for info in infos) > MAX_EMBEDDED_BYTES:
                    raise ValueError("its members claim more than a model's metadata can hold")
                return {info.filename: archive.read(info) for info in infos}
    except zipfile.BadZipFile as exc:
        if b"PK\x05\x06" in data[-(1 << 16) - 22:]:
            problem = first_line(exc, 80)
        elif _has_member_header(data, limits or {}):
            problem = "its end record is missing: the file is cut short"
        else:
            return {}  # no archive at all: a plain .tflite file from elsewhere
    except Exception as exc:  # zipfile and zlib fail in many ways on damaged bytes
        problem = first_line(exc, 120)
    raise FmnistEdgeError(f"{path}: damaged metadata archive ({problem}); copy the file again, "
                          "or export it again")


def _has_member_header(data: bytes, names) -> bool:
    """Whether `data` holds the start of a zip entry named one of `names` (its local header: signature,
    22 bytes, the name's length, 2 bytes, the name), or ends within such a header, before its name:
    what is left of an fmnist-edge archive cut before its end record."""
    if not names:
        return False
    if data.find(b"PK\x03\x04", max(0, len(data) - 30 - max(map(len, names)))) >= 0:
        return True
    if any(data.endswith(b"PK\x03"[:k]) and (len(data) - k) % 4 == 0 for k in (1, 2, 3)):
        return True  # ends within the signature itself, after a flatbuffer (always a multiple of 4 bytes)
    for name in map(str.encode, names):
        at = data.rfind(name)
        while at >= 30:
            if data[at - 30:at - 26] == b"PK\x03\x04" and struct.unpack_from("<H", data, at - 4)[0] == len(name):
                return True
            at = data.rfind(name, 0, at)
    return False


def check_sealed(path: Path, checksum: str, references: bytes | None) -> None:
    """Every file fmnist-edge has written since it stores reference inputs is sealed: one that carries
    them without a checksum has lost its end (cut short) or the marker before its checksum."""
    if checksum == "missing" and references is not None:
        raise FmnistEdgeError(f"{path}: damaged: it carries reference inputs but not the checksum every file "
                              "with them ends with (cut short, or its end altered); copy the file again, "
                              "or export it again")


def tflite_flatbuffer(data: bytes) -> bytes:
    """The flatbuffer alone: the bytes before the appended archive (all of them when there is none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile:
        return data
    return data[: min(info.header_offset for info in infos)] if infos else data


# Reading what a file embeds: its bytes may be hostile even where its checksum holds (whoever sealed it
# computed the checksum too), so nothing is decoded before its size and nesting are known to be small.

_JSON_SPECIAL = re.compile(r'[\[\]{}"\\]')


def json_depth(text: str, stop: int) -> int:
    """How deep a JSON text nests arrays and objects, from one pass over its brackets outside strings
    (no recursion); counting stops once it passes `stop`."""
    depth = deepest = 0
    in_string, skip = False, -1
    for match in _JSON_SPECIAL.finditer(text):
        at, char = match.start(), match.group()
        if at == skip:  # the character after a backslash, escaped
            continue
        if in_string:
            if char == "\\":
                skip = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > stop:
                break
        elif char in "]}":
            depth -= 1
    return deepest


def _no_constants(name: str):
    raise ValueError(f"{name} is not a number")


def bounded_json(text: str | bytes, max_chars: int, max_depth: int):
    """JSON decoded only when it is at most `max_chars` long and `max_depth` deep (NaN and Infinity refused);
    ValueError says what is wrong, in one line."""
    if len(text) > max_chars:
        raise ValueError(f"{len(text):,} bytes of JSON, more than {max_chars:,}")
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if json_depth(text, max_depth) > max_depth:
        raise ValueError(f"JSON nested more than {max_depth} levels deep")
    return json.loads(text, parse_constant=_no_constants)


def printable(value, limit: int = 200) -> str:
    """`value` as text safe to print on a terminal: control characters (ANSI escapes, bidi overrides)
    escaped, and at most `limit` characters."""
    text = str(value)
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
