"""Every Nth single-byte flip of a bundled model file without its checksum and reference inputs (as a
file exported before checksums would be): each damaged file loaded and run in a forked child under a
1.5 GB address-space limit and a 20 s timeout. Counts what happened: one error line, the same answers,
other answers (what only a checksum can catch), and anything that escaped, crashed, hung or blew its
memory.

    python benchmarks/flip_sweep.py tflite|onnx STEP OUT.json
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import logging
import os
import resource
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from edge_runtime import load_model
from edge_runtime.core.classifier import BUNDLED
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.metadata import TFLITE_MEMBER
from edge_runtime.core.modelfile import ONNX_CHECKSUM_KEY, ONNX_REFERENCES_KEY, tflite_flatbuffer
from edge_runtime.core.onnx_proto import iter_fields, parse_message
from edge_runtime.core.onnx_write import MODEL_PROPS, encode

LIMIT = 1536 << 20
SECONDS = 20


def unsealed(data: bytes, suffix: str) -> bytes:
    """The file as fmnist-edge wrote it before checksums: its metadata, without the reference inputs and
    the checksum that came together (a file with references and no checksum is refused as damaged)."""
    if suffix == ".tflite":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            metadata = archive.read(TFLITE_MEMBER)
        buf = io.BytesIO(tflite_flatbuffer(data))
        buf.seek(0, io.SEEK_END)
        with zipfile.ZipFile(buf, "a") as archive:
            archive.writestr(TFLITE_MEMBER, metadata)
        return buf.getvalue()
    later = {ONNX_REFERENCES_KEY.encode(), ONNX_CHECKSUM_KEY.encode()}
    return b"".join(encode(number, wire, value) for number, wire, value in iter_fields(data)
                    if not (number == MODEL_PROPS and parse_message(value)[1][0] in later))


def outcome(path: Path, images: np.ndarray, reference: np.ndarray) -> str:
    """In a child: what loading and running the file did."""
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))
    try:
        with load_model(path) as model:
            probs = model.predict(images)
        return "same answers" if np.allclose(probs, reference, atol=1e-6) else "other answers"
    except FmnistEdgeError:
        return "one line"
    except MemoryError:
        return "MEMORY"
    except BaseException as exc:  # what the sweep is looking for
        return f"ESCAPED {type(exc).__name__}"


def run_child(path: Path, images: np.ndarray, reference: np.ndarray) -> str:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, outcome(path, images, reference).encode())
        os._exit(0)
    os.close(write)
    deadline = time.time() + SECONDS
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.time() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(read)
            return "HUNG"
        time.sleep(0.002)
    said = os.read(read, 256).decode()
    os.close(read)
    return said or f"CRASHED (status {done[1]})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("format", choices=list(BUNDLED))
    parser.add_argument("step", type=int)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # a file flipped in its metadata warns
    base = unsealed(BUNDLED[args.format].read_bytes(), BUNDLED[args.format].suffix)
    work = args.out.with_suffix(f".{args.format}")
    work.write_bytes(base)
    images = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1), dtype=np.uint8)
    with load_model(work) as model:
        reference = model.predict(images)
    counts: collections.Counter = collections.Counter()
    examples: dict[str, int] = {}
    for position in range(0, len(base), args.step):
        damaged = bytearray(base)
        damaged[position] ^= 0xFF
        work.write_bytes(bytes(damaged))
        what = run_child(work, images, reference)
        counts[what] += 1
        examples.setdefault(what, position)
    work.unlink()
    report = {"file": str(BUNDLED[args.format]), "bytes": len(base), "step": args.step, "flips": sum(counts.values()),
              "counts": dict(counts), "first_position": examples}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
