"""Hostile model files behind a VALID checksum (re-sealed): references that inflate or are of the wrong kind,
NaN answers and empty rules, metadata nested 100,000 deep, duplicate and countless archive members, class
names with terminal escapes. Every case ends in one line (exit 1) that names the problem and the fix (export
it again), never a traceback, never gigabytes. No TensorFlow: the golden files, taken apart and re-sealed
(tests/hostile_files.py)."""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hostile_files import (
    Source,
    inflating_npz,
    nested,
    npz,
    references,
    sealed,
    take_apart,
    with_raw,
    zip_of,
)

from edge_runtime.core.backends import open_backend
from edge_runtime.core.metadata import MAX_METADATA_BYTES, TFLITE_MEMBER, TFLITE_REFERENCES
from edge_runtime.core.modelfile import bounded_json, json_depth, printable
from edge_runtime.core.references import MAX_REFERENCES, MAX_REFERENCES_BASE64
from edge_runtime.tools.verify import verify_backend
from toolkit.cli import cli

FORMATS = ["tflite", "onnx"]
PEAK_RSS_MB = 400
"""What verify may take on a file whose references inflate to a gigabyte (it takes about 100 MB on any file)."""


@pytest.fixture(scope="module")
def sources(golden) -> dict[str, Source]:
    return {fmt: take_apart(golden[0] / f"model_int8.{fmt}") for fmt in FORMATS}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    """An image and a three-frame video for predict and camera."""
    folder = tmp_path_factory.mktemp("hostile-inputs")
    frame = np.zeros((96, 96, 3), np.uint8)
    cv2.rectangle(frame, (30, 20), (66, 76), (220, 220, 220), -1)
    image, video = folder / "item.png", folder / "items.avi"
    cv2.imwrite(str(image), frame)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 96))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    return image, video


def write(tmp_path: Path, fmt: str, data: bytes, name: str = "hostile") -> Path:
    path = tmp_path / f"{name}.{fmt}"
    path.write_bytes(data)
    return path


def one_line(*args: str) -> str:
    """Run the CLI in this process; it must fail with one error line (no exception escapes, no traceback)."""
    logging.root.handlers.clear()
    result = CliRunner().invoke(cli, list(args), prog_name="fmnist-edge")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, (result.exit_code, result.stdout[-500:], result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert "Traceback" not in result.stderr and len(errors) == 1 and lines[-1] == errors[0], result.stderr[-2000:]
    assert "export it again" in errors[0] and "\x1b" not in errors[0], errors[0]
    return errors[0]


# 1. References that inflate ------------------------------------------------------------------------------

PEAK_RUNNER = """import re, sys
from toolkit.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="fmnist-edge")
finally:  # VmHWM: this process's own peak (getrusage's also counts the pytest process it was forked from)
    hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
    print("peak_rss_kb", hwm, file=sys.stderr)
"""


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


@pytest.fixture(scope="module")
def gigabyte_npz() -> bytes:
    blob = inflating_npz(1 << 30)
    assert len(blob) < 1_100_000  # a gigabyte in 1 MB: under every outer bound, the inner one must hold
    return blob


@pytest.mark.parametrize("fmt", FORMATS)
def test_references_that_inflate_to_a_gigabyte_take_no_memory(sources, gigabyte_npz, tmp_path, fmt):
    path = write(tmp_path, fmt, sealed(sources[fmt], refs=gigabyte_npz))
    proc = subprocess.run([sys.executable, "-c", PEAK_RUNNER, "verify", str(path)], capture_output=True, text=True,
                          timeout=300, preexec_fn=limit_memory, check=False)
    lines = proc.stderr.strip().splitlines()
    peak_kb = int(lines[-1].split()[1])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "images.npy claims 1,066,139,776 bytes, more than the 806,912" in lines[-2], lines[-2]
    assert peak_kb < PEAK_RSS_MB * 1024, peak_kb


def test_an_npy_header_claiming_more_than_its_entry_holds(sources, tmp_path):
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (10**6, 28, 28)})
    members = [(f"{k}.npy", _npy(v)) for k, v in sources["tflite"].references.items() if k != "images"]
    blob = zip_of([("images.npy", header.getvalue() + bytes(100)), *members])
    path = write(tmp_path, "tflite", sealed(sources["tflite"], refs=blob))
    assert "images: its header says 784,000,000 bytes, its entry 100" in one_line("verify", str(path))


def test_an_npy_header_with_negative_dimensions(sources, tmp_path):
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (-64, -28, 28)})
    members = [(f"{k}.npy", _npy(v)) for k, v in sources["tflite"].references.items() if k != "images"]
    blob = zip_of([("images.npy", header.getvalue() + bytes(64 * 28 * 28)), *members])
    path = write(tmp_path, "tflite", sealed(sources["tflite"], refs=blob))
    assert "images holds |u1 [-64, -28, 28], expected |u1 of 3 dimensions" in one_line("verify", str(path))


def _npy(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_the_base64_twin_is_measured_before_it_is_decoded(sources, tmp_path):
    path = write(tmp_path, "onnx", sealed(sources["onnx"], refs="A" * (MAX_REFERENCES_BASE64 + 4)))
    assert "characters of base64, more than" in one_line("verify", str(path))


def test_an_archive_member_larger_than_references_can_be(sources, tmp_path):
    blob = np.random.default_rng(0).integers(0, 256, 2 << 20, np.uint8).tobytes()
    path = write(tmp_path, "tflite", sealed(sources["tflite"], refs=blob))
    line = one_line("info", str(path))
    assert "damaged metadata archive (references.npz claims 2,097,152 bytes" in line, line


# 2. References of the wrong kind -------------------------------------------------------------------------

class Touch:
    """Unpickling it creates a file: proof that nothing was unpickled, when the file is not there."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


def wrong_kinds(source: Source, marker: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (references.npz, what the line says)."""
    refs, probs = source.references, source.references["probs"]
    rule = json.loads(str(refs["rule"]))
    many = {f"m{i}.npy": b"" for i in range(1000)}
    return {
        "npy-not-npz": (_npy(refs["images"]), "not an .npz archive (a single .npy array)"),
        "probs-as-text": (references(source, probs=probs.astype(str)), "probs holds <U"),
        "weights-as-text": (references(source, weights=np.array(["0.98", "0.02"])), "weights holds <U"),
        "object-array": (references(source, probs=np.array([Touch(marker)] * 2, dtype=object)), "probs holds |O"),
        "images-float": (references(source, images=refs["images"].astype(np.float32)), "images holds <f4"),
        "probs-big-endian": (references(source, probs=probs.astype(">f4")), "probs holds >f4"),
        "rule-strings": (references(source, rule={**rule, "min_agreement": "0.985"}),
                         "the rule's min_agreement is not a number from 0 to 1"),
        "rule-100000-deep": (references(source, rule=np.array("[" * 100_000 + "]" * 100_000)),
                             "rule.npy claims 800,128 bytes, more than the 8,192"),
        "rule-deep": (references(source, rule=np.array(nested(100))), "JSON nested more than 1 levels deep"),
        "rule-not-json": (references(source, rule=np.array("{min_agreement: 0.9")), "Expecting property name"),
        "no-images": (references(source, images=None), "members labels.npy, probs.npy, rule.npy, stratum.npy"),
        "one-more-member": (references(source, more=np.zeros(3)), "members images.npy, labels.npy, more.npy"),
        "member-twice": (zip_of([(f"{k}.npy", _npy(v)) for k, v in refs.items()] + [("probs.npy", _npy(probs))]),
                         "its archive holds probs.npy twice"),
        "thousand-members": (zip_of(list(many.items())), "its archive lists 1,000 members"),
        "no-images-at-all": (_n_images(source, 0), "0 reference images, expected 1 to 1024"),
        "too-many-images": (_n_images(source, MAX_REFERENCES + 1), "1025 reference images, expected 1 to 1024"),
        "eleven-classes": (references(source, probs=np.pad(probs, ((0, 0), (0, 1)))),
                           "answers for 11 classes, expected 10"),
        "label-out-of-range": (references(source, labels=refs["labels"] + 200), "labels or strata out of range"),
        "stratum-7": (references(source, stratum=refs["stratum"] * 7), "labels or strata out of range"),
        "weights-not-shares": (references(source, weights=np.array([0.98, 0.5])),
                               "stratum weights that are not shares"),
        "fortran-order": (references(source, images=np.asfortranarray(refs["images"])), "in Fortran order"),
    }


def _n_images(source: Source, n: int) -> bytes:
    refs = source.references
    take = np.arange(n) % len(refs["images"])
    return references(source, **{k: refs[k][take] for k in ("images", "probs", "labels", "stratum")})


@pytest.mark.parametrize("fmt", FORMATS)
def test_references_of_the_wrong_kind_are_one_line(sources, tmp_path, fmt):
    marker = tmp_path / "unpickled"
    for name, (blob, says) in wrong_kinds(sources[fmt], marker).items():
        path = write(tmp_path, fmt, sealed(sources[fmt], refs=blob), name)
        line = one_line("verify", str(path))
        assert f"{path}: damaged reference inputs (" in line and says in line, (name, line)
    assert not marker.exists(), "an object array was unpickled"


# 3. NaN answers, empty rules -----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_nan_answers_and_empty_rules_never_pass(sources, tmp_path, fmt):
    source = sources[fmt]
    probs, weights = source.references["probs"], source.references["weights"]
    rule = json.loads(str(source.references["rule"]))
    nan = probs.copy()
    nan[:, :] = np.nan
    cases = {
        "nan-empty-rule": (references(source, probs=nan, rule={}), "answers that are not probabilities"),
        "nan-one-answer": (references(source, probs=np.where(np.arange(probs.size).reshape(probs.shape) == 7, np.nan,
                                                                  probs).astype(np.float32)), "not probabilities"),
        "inf-answer": (references(source, probs=np.where(probs == probs.max(), np.inf, probs).astype(np.float32)),
                       "not probabilities"),
        "inf-weight": (references(source, weights=np.array([np.inf, weights[1]])), "stratum weights"),
        "empty-rule": (references(source, rule={}), "a rule that checks nothing"),
        "rule-of-nulls": (references(source, rule={**rule, "min_agreement": None, "max_accuracy_drop": None,
                                                   "max_abs_diff": None}), "a rule that checks nothing"),
        "rule-not-object": (references(source, rule=np.array("[0.985]")), "the rule is not an object"),
        "rule-nan": (references(source, rule=np.array('{"min_agreement": NaN}')), "NaN is not a number"),
        "rule-ansi": (references(source, rule={**rule, "machine": "x86_64\x1b[2J"}),
                      "the rule's precision, machine and runtime must be printable text"),
        "no-rule": (references(source, rule=None), "members images.npy, labels.npy, probs.npy, stratum.npy"),
    }
    for name, (blob, says) in cases.items():
        path = write(tmp_path, fmt, sealed(source, refs=blob), name)
        line = one_line("verify", str(path))
        assert says in line, (name, line)


def test_answers_that_are_not_numbers_here_fail_verify(golden, monkeypatch):
    with open_backend(golden[0] / "model_int8.tflite") as backend:
        monkeypatch.setattr(backend, "predict_batches", lambda images: np.full((len(images), 10), np.nan, np.float32))
        result = verify_backend(backend)
    assert not result.passed and "its answers here are not finite numbers" in result.failures


# 4. Metadata: depth, size, text --------------------------------------------------------------------------

COMMANDS = ["info", "predict", "verify", "camera", "evaluate", "bench"]


def command(name: str, path: Path, inputs: tuple[Path, Path]) -> list[str]:
    image, video = inputs
    return {"info": ["info", str(path)], "predict": ["predict", "--model", str(path), str(image)],
            "verify": ["verify", str(path)], "evaluate": ["evaluate", str(path), "--limit", "10"],
            "camera": ["camera", "--model", str(path), "--source", str(video), "--headless", "--max-frames", "2"],
            "bench": ["bench", str(path), "--runs", "10", "--warmup", "1"]}[name]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("depth", [100_000, 30_000])
def test_metadata_100000_deep_is_one_line_in_every_command(sources, inputs, tmp_path, fmt, depth):
    source, deep = sources[fmt], "[" * depth + "]" * depth
    if fmt == "tflite":
        data = sealed(source, metadata=with_raw(source.metadata, "extra", deep))
    else:
        data = sealed(source, props={"fmnist_edge.extra": deep})
    path = write(tmp_path, fmt, data)
    for name in COMMANDS:
        line = one_line(*command(name, path, inputs))
        # 200 KB: refused by its size first (a .tflite file's by its archive entry, before it is inflated)
        says = "65,536" if depth == 100_000 else "unreadable metadata (JSON nested more than"
        assert f"{path}: " in line and says in line, (name, line)


@pytest.mark.parametrize("fmt", FORMATS)
def test_extra_is_bounded_to_eight_levels_and_info_prints_it(sources, tmp_path, fmt):
    source = sources[fmt]
    for depth, ok in ((8, True), (9, False), (900, False)):
        text = nested(depth - 1, json.dumps({"from": "x", "frames": 3}))  # extra itself is the first level
        data = sealed(source, metadata=with_raw(source.metadata, "extra", text)) if fmt == "tflite" else \
            sealed(source, props={"fmnist_edge.extra": text})
        path = write(tmp_path, fmt, data, f"extra-{depth}")
        if ok:
            logging.root.handlers.clear()
            result = CliRunner().invoke(cli, ["info", str(path)])
            assert result.exit_code == 0, result.stderr
        else:
            assert "nested more than" in one_line("info", str(path))


def metadata_cases(meta: dict) -> dict[str, tuple[dict, str]]:
    """name -> (metadata, what the line says)."""
    return {
        "huge-arch": ({**meta, "arch": "x" * 100_000}, "65,536"),
        "10000-classes": ({**meta, "class_names": ["a"] * 10_000}, "class_names must be 10 names"),
        "huge-class-name": ({**meta, "class_names": [*meta["class_names"][:9], "x" * 10_000]},
                            "each printable text of at most 64 characters"),
        "ansi-class-name": ({**meta, "class_names": [*meta["class_names"][:9], "\x1b[2J\x1b[31mBag"]}, "printable"),
        "bidi-class-name": ({**meta, "class_names": [*meta["class_names"][:9], "\u202egaB"]}, "printable"),
        "ansi-arch": ({**meta, "arch": "edge\x1b]0;owned\x07"}, "arch must be printable text"),
        "negative-batch": ({**meta, "input": {**meta["input"], "shape": [-1, 28, 28, 1]}}, "input shape must be"),
        "huge-image": ({**meta, "input": {**meta["input"], "shape": [None, 28000, 28, 1]}}, "input shape must be"),
        "huge-zero-point": ({**meta, "input": {**meta["input"], "file_zero_point": 10**30}}, "file_zero_point"),
        "negative-scale": ({**meta, "input": {**meta["input"], "file_scale": -1.0}}, "file_scale"),
        "negative-samples": ({**meta, "calibration_samples": -5}, "calibration_samples must be a count"),
        "huge-samples": ({**meta, "calibration_samples": 10**300}, "calibration_samples must be a count"),
        "giant-samples": ({**meta, "calibration_samples": 10**4000}, "calibration_samples must be a count"),
        "giant-accuracy": ({**meta, "test_accuracy": -10**4000}, "test_accuracy must be a number"),
        "huge-extra": ({**meta, "extra": {"a": ["x" * 100] * 400}}, "extra takes more than 32,768 bytes"),
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_out_of_bounds_is_one_line(sources, tmp_path, fmt):
    source = sources[fmt]
    for name, (meta, says) in metadata_cases(source.metadata).items():
        path = write(tmp_path, fmt, sealed(source, metadata=meta), name)
        line = one_line("info", str(path))
        assert says in line, (name, line)


@pytest.mark.parametrize("key, raw, says", [
    ("test_accuracy", b"NaN", "unreadable metadata (NaN is not a number"),
    ("test_accuracy", b"-Infinity", "unreadable metadata (-Infinity is not a number"),
    ("test_accuracy", b"1e999", "test_accuracy must be a number from 0 to 1"),
    ("calibration_samples", b"9" * 5000, "unreadable metadata (Exceeds the limit"),
    ("arch", b'"\\ud800"', "arch must be printable text"),
    ("arch", b'"a\x01b"', "unreadable metadata (Invalid control character"),
    ("arch", b'"x', "unreadable metadata (Expecting"),
    ("arch", b'"\xff"', "unreadable metadata ('utf-8' codec can't decode byte 0xff"),
])
def test_metadata_json_a_reader_cannot_trust(sources, tmp_path, key, raw, says):
    source = sources["tflite"]
    text = with_raw(source.metadata, key, "@@").encode().replace(b"@@", raw)
    path = write(tmp_path, "tflite", sealed(source, metadata=text))
    line = one_line("info", str(path))
    assert says in line, line


def test_onnx_metadata_entries_are_bounded_in_all(sources, tmp_path):
    props = {f"fmnist_edge.note{i}": json.dumps("x" * 1000) for i in range(70)}
    path = write(tmp_path, "onnx", sealed(sources["onnx"], props=props))
    assert f"take more than the {MAX_METADATA_BYTES:,} bytes" in one_line("info", str(path))


# Archives and entries a hostile file would try next --------------------------------------------------------

def test_archive_members_listed_twice_or_by_the_thousand(sources, tmp_path):
    source = sources["tflite"]
    meta, refs = json.dumps(source.metadata).encode(), npz(source.references)
    cases = {
        "metadata-twice": ([(TFLITE_MEMBER, meta), (TFLITE_REFERENCES, refs), (TFLITE_MEMBER, b"{}")],
                           "its archive holds metadata.json twice"),
        "thousand-members": ([(TFLITE_MEMBER, meta), *((f"m{i}", b"") for i in range(1000))],
                             "its archive lists 1,001 members"),
    }
    for name, (members, says) in cases.items():
        path = write(tmp_path, "tflite", sealed(source, members=members), name)
        line = one_line("info", str(path))
        assert "damaged metadata archive (" in line and says in line, (name, line)


def test_onnx_metadata_props_listed_twice(sources, tmp_path):
    from hostile_files import onnx_sealed

    source = sources["onnx"]
    entries = [(f"fmnist_edge.{k}", json.dumps(v)) for k, v in source.metadata.items()]
    path = write(tmp_path, "onnx", onnx_sealed(source.body, [("fmnist_edge.arch", '"other"'), *entries]))
    assert "damaged metadata (fmnist_edge.arch twice in metadata_props)" in one_line("info", str(path))


def test_info_escapes_what_extra_says(sources, tmp_path):
    source = sources["tflite"]
    adapted = {"from": "base\x1b[2J.onnx", "frames": "\x1b]0;owned\x07", "new_classes": ["\u202eevil", 5],
               "time": None}
    path = write(tmp_path, "tflite", sealed(source, metadata={**source.metadata, "extra": {"adapted": adapted}}))
    logging.root.handlers.clear()
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout and "\x07" not in result.stdout
    assert "base\\x1b[2J.onnx" in result.stdout and "\\u202eevil, 5" in result.stdout, result.stdout


def test_re_sealed_originals_still_pass(sources, tmp_path):
    """The builders change only what a case asks: taken apart and sealed again, each file verifies."""
    for fmt, source in sources.items():
        path = write(tmp_path, fmt, sealed(source))
        logging.root.handlers.clear()
        result = CliRunner().invoke(cli, ["verify", str(path)])
        assert result.exit_code == 0, result.stderr


# The scanners themselves ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, depth", [
    ('{"a": [1, {"b": "]]]]}}}"}]}', 3),
    ('["\\"[[[", "\\\\", [[]]]', 3),
    ('"[[[["', 0),
    ("[" * 100_000, 10),  # counting stops past its limit
])
def test_json_depth_counts_brackets_outside_strings(text, depth):
    assert json_depth(text, 9) == depth


def test_bounded_json_refuses_before_decoding():
    with pytest.raises(ValueError, match="more than 10"):
        bounded_json("[" + "1," * 20 + "1]", 10, 5)
    with pytest.raises(ValueError, match="nested more than 2 levels"):
        bounded_json("[[[1]]]", 100, 2)
    assert bounded_json('{"a": [1]}', 100, 2) == {"a": [1]}


def test_printable_escapes_control_characters():
    assert printable("Bag\x1b[31m\u202e") == "Bag\\x1b[31m\\u202e"
    assert printable("x" * 300, 10) == "xxxxxxx..."



@pytest.mark.parametrize("fmt", FORMATS)
def test_info_reads_a_quantization_report_beside_the_file_and_holds_against_a_hostile_one(golden, tmp_path, fmt):
    """A file without the per-layer summary in its metadata: `info` takes the worst layers from
    quantization_report.json beside it; one nested 100,000 deep, over its size bound or of the wrong shape
    is "not recorded" (exit 0), never a traceback."""
    path = tmp_path / f"model_int8.{fmt}"
    path.write_bytes((golden[0] / f"model_int8.{fmt}").read_bytes())
    report = tmp_path / "quantization_report.json"
    row = {"layer": "conv\x1b[2J", "name": "n", "op": "CONV_2D", "rmse_per_scale": 0.5}
    hostile = ["[" * 100_000 + "]" * 100_000, " " * (5 << 20) + "{}", '{"models": {"path": 1}}',
               '{"models": [{"path": "' + path.name + '", "layers": "abc"}]}']

    def info() -> str:
        logging.root.handlers.clear()
        result = CliRunner().invoke(cli, ["info", str(path)])
        assert result.exit_code == 0 and result.exception is None, (result.exception, result.stderr[-500:])
        assert "\x1b" not in result.stdout
        return result.stdout

    report.write_text(json.dumps({"sorted_by": "rmse_per_scale", "models": [
        {"path": f"elsewhere/{path.name}", "debug_images": 7, "layers": [row]}]}))
    assert "conv\\x1b[2J (CONV_2D) rmse_per_scale 0.5" in info() and "7 test images" in info()
    for text in hostile:
        report.write_text(text)
        assert "layers that lose most to int8: not recorded" in info(), text[:40]
