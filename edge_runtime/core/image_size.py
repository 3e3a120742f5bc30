"""An image file's pixel size read from its header, before anything decodes it, and the limit that every
reader of photos and frames holds it to. Pure Python (no OpenCV), so the CLI can hand the same limit to
OpenCV before OpenCV loads.

A 465 KB PNG can hold 20000x20000 pixels, which OpenCV decodes into 1.2 GB (and more on the way); the
header says so in its first bytes. The header is read for the formats OpenCV reads whose size sits at a
known place (PNG, JPEG, WebP, BMP, GIF, TIFF, PNM/PAM/PFM, Sun raster). For the others (JPEG 2000,
AVIF, Radiance HDR) the bound is OpenCV's own, OPENCV_IO_MAX_IMAGE_PIXELS, which `fmnist-edge` sets to
the same limit (opencv_limit). A file that claims one of the formats above but whose header cannot be
read is refused rather than guessed at: what this module cannot size, OpenCV must not be asked to
decode.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable, Iterator

from edge_runtime.core.errors import FmnistEdgeError

MAX_PIXELS_ENV = "FMNIST_EDGE_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 1 << 26
"""67,108,864 pixels: a 64-megapixel phone photo (9248x6936) still reads; 200 MB decoded as BGR."""
BYTES_PER_PIXEL = 8
"""A file may hold at most this many bytes per allowed pixel (16-bit RGBA, uncompressed) before it is refused
unread."""


def max_pixels() -> int:
    """The most pixels a photo or frame file may decode to: $FMNIST_EDGE_MAX_PIXELS, else DEFAULT_MAX_PIXELS."""
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_PIXELS
    if not (value.isascii() and value.isdigit() and int(value) > 0):
        raise FmnistEdgeError(f"{MAX_PIXELS_ENV}={value!r}: give a whole number of pixels, e.g. "
                              f"{DEFAULT_MAX_PIXELS}, or unset it")
    return int(value)


def over_limit(size: tuple[int, int] | None) -> str | None:
    """What is wrong with an image of `size` (a header's), in words every reader's message uses; None within
    the limit or when the size is not known."""
    if size is None or size[0] * size[1] <= max_pixels():
        return None
    return f"{size[0]}x{size[1]} pixels, over the limit of {max_pixels():,} ({MAX_PIXELS_ENV})"


def opencv_limit() -> None:
    """Hand the limit to OpenCV (OPENCV_IO_MAX_IMAGE_PIXELS), for the formats header_size cannot read.
    OpenCV reads it once, when it loads: call this before anything imports cv2. A value the user set wins;
    a bad FMNIST_EDGE_MAX_PIXELS is left for the first reader to refuse in one line."""
    try:
        os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(max_pixels()))
    except FmnistEdgeError:
        pass


def header_size(raw: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of the image file `raw` (its first bytes suffice for all but
    JPEG, whose frame header may follow large metadata); None for a format not read here. A header of a
    known format that cannot be read raises ValueError."""
    for signature, read in _FORMATS:
        if raw.startswith(signature):
            try:
                width, height = read(raw)
            except (struct.error, KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"a damaged {signature[:4]!r} header") from exc
            return int(width), int(height)
    return None


def _png(raw: bytes) -> tuple[int, int]:
    if raw[12:16] != b"IHDR":  # the first chunk, always
        raise KeyError("IHDR")
    return struct.unpack_from(">II", raw, 16)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x00, 0x01, 0xD8, *range(0xD0, 0xD8)}
_SCAN, _END = 0xDA, 0xD9


def _jpeg_markers(raw: bytes) -> Iterator[tuple[int, int]]:
    """(code, position) of each marker before the image data, walked as libjpeg walks them: segment by
    segment, skipping stray bytes before a marker, fill bytes and stuffed zeros."""
    i = 2
    while (i := raw.find(b"\xff", i)) >= 0 and i + 1 < len(raw):
        code = raw[i + 1]
        if code == 0xFF:
            i += 1
            continue
        yield code, i
        i += 2 if code in _STANDALONE else 2 + struct.unpack_from(">H", raw, i + 2)[0]


def _jpeg(raw: bytes) -> tuple[int, int]:
    """The first frame header (SOFn): the frame libjpeg decodes."""
    for code, i in _jpeg_markers(raw):
        if code in _SOF:
            height, width = struct.unpack_from(">HH", raw, i + 5)
            return width, height
        if code in (_SCAN, _END):  # a scan, or the end, before any frame header
            break
    raise KeyError("SOF")


def jpeg_truncated(raw: bytes) -> bool:
    """A JPEG cut short: no scan, or no end-of-image marker after its first scan starts (libjpeg would decode
    it with the missing part grey). Data after the marker (a motion photo's video) does not matter. False
    for any other format."""
    if not raw.startswith(b"\xff\xd8\xff"):
        return False
    try:
        for code, i in _jpeg_markers(raw):
            if code == _SCAN:
                return raw.find(b"\xff\xd9", i) < 0  # stuffing keeps FF D9 out of the image data
            if code == _END:
                return False  # an end before any scan: damaged, not cut short (libjpeg says which)
    except struct.error:  # cut inside a segment
        pass
    return True


def _bmp(raw: bytes) -> tuple[int, int]:
    if struct.unpack_from("<I", raw, 14)[0] == 12:  # OS/2 BITMAPCOREHEADER
        return struct.unpack_from("<HH", raw, 18)
    width, height = struct.unpack_from("<ii", raw, 18)
    return abs(width), abs(height)  # a negative height is a top-down bitmap


def _webp(raw: bytes) -> tuple[int, int]:
    if raw[8:12] != b"WEBP":
        raise KeyError("WEBP")
    kind = raw[12:16]
    if kind == b"VP8 ":
        width, height = struct.unpack_from("<HH", raw, 26)
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L":
        bits = struct.unpack_from("<I", raw, 21)[0]
        return (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1
    if kind == b"VP8X":
        return 1 + int.from_bytes(raw[24:27], "little"), 1 + int.from_bytes(raw[27:30], "little")
    raise KeyError(kind)


_TIFF_TYPES = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 16: "Q", 17: "q"}


def _tiff(raw: bytes) -> tuple[int, int]:
    """ImageWidth and ImageLength of the first directory (the page OpenCV reads), classic or BigTIFF; where
    a tag is repeated, the largest value."""
    order = "<" if raw[:2] == b"II" else ">"
    big = raw[2:4] in (b"+\0", b"\0+")
    offset = struct.unpack_from(order + ("Q" if big else "I"), raw, 8 if big else 4)[0]
    count = struct.unpack_from(order + ("Q" if big else "H"), raw, offset)[0]
    entry, first = (20, offset + 8) if big else (12, offset + 2)
    size = {256: 0, 257: 0}
    for k in range(min(count, (len(raw) - first) // entry)):
        tag, kind = struct.unpack_from(order + "HH", raw, first + k * entry)
        if tag in size:
            value = struct.unpack_from(order + _TIFF_TYPES[kind], raw, first + k * entry + (12 if big else 8))[0]
            size[tag] = max(size[tag], abs(value))
    if not size[256] or not size[257]:
        raise KeyError("ImageWidth")
    return size[256], size[257]


def _pnm(raw: bytes) -> tuple[int, int]:
    """P1-P6 and PF/Pf: the two numbers after the magic; P7 (PAM): its WIDTH and HEIGHT lines. Comments
    (# to the end of the line) are skipped, as OpenCV does; the header must sit in the first 64 KB."""
    tokens = re.sub(rb"#[^\r\n]*", b" ", raw[2:65536]).split()
    if raw[:2] == b"P7":
        fields = dict(zip(tokens[::2], tokens[1::2], strict=False))
        return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
    return int(tokens[0]), int(tokens[1])


def _int_pair(fmt: str, at: int) -> Callable[[bytes], tuple[int, int]]:
    return lambda raw: struct.unpack_from(fmt, raw, at)


_FORMATS: list[tuple[bytes, Callable[[bytes], tuple[int, int]]]] = [
    (b"\x89PNG\r\n\x1a\n", _png), (b"\xff\xd8\xff", _jpeg), (b"RIFF", _webp), (b"BM", _bmp),
    (b"GIF87a", _int_pair("<HH", 6)), (b"GIF89a", _int_pair("<HH", 6)),
    (b"II*\0", _tiff), (b"MM\0*", _tiff), (b"II+\0", _tiff), (b"MM\0+", _tiff),
    *((b"P" + bytes([c]), _pnm) for c in b"1234567"), (b"PF", _pnm), (b"Pf", _pnm),
    (b"\x59\xa6\x6a\x95", _int_pair(">II", 4)),  # Sun raster
]
"""Signature -> header reader, for the formats OpenCV tells apart by the same signatures."""
