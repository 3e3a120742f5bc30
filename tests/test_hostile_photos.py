"""Hostile photo folders (labels.csv and the files it names) through `train --photos`, `evaluate --photos`
and the readers under them: each bad input ends in one line naming the problem and the fix, never a
traceback, a hang or gigabytes. Decompression bombs run in a subprocess whose peak resident memory is
measured (os.wait4) under an address-space limit, so that a decoder allocating the image's declared size
fails the test."""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, error_line, real_photos_dir, run_cli

from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.data import photos
from edge_runtime.core.image_size import DEFAULT_MAX_PIXELS, header_size
from edge_runtime.data.images import ImageTooLarge, read_image, read_mask, read_photo
from toolkit import photo_augment

BOMB_SIDE = 20000
"""A 20000x20000 grey PNG of zeros: about 400 KB on disk, 1.2 GB decoded as BGR."""
ADDRESS_SPACE = 3 << 30
HEADER = "path,photo_class,fashion_mnist_classes"


def garment(seed: int = 0, size: tuple[int, int] = (120, 90)) -> np.ndarray:
    image = np.full((*size, 3), 215, np.uint8)
    cv2.rectangle(image, (15 + seed % 7, 12), (size[1] - 15, size[0] - 12), (50, 60, 90), -1)
    return image


def make_folder(root: Path, rows: list[str], photo_names: tuple[str, ...] = (), header: str = HEADER) -> Path:
    """ROOT with labels.csv (`header`, then `rows`) and a small garment photo at each of `photo_names`."""
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(photo_names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), garment(i))
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n" if header or rows else "")
    return root


def good_rows(n: int = 8) -> tuple[list[str], tuple[str, ...]]:
    """n labelled photos, both splits among them."""
    names = tuple(f"t-shirt/{i}.png" for i in range(n))
    return [f"{name},t-shirt,0" for name in names], names


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, whole: bool = False) -> bytes:
    """A grey PNG declaring width x height: with `whole`, every row (zeros, deflated: a decompression bomb);
    else one row (the header is all a size check needs)."""
    deflate = zlib.compressobj(9)
    row = bytes(width + 1)
    body = b"".join(deflate.compress(row * 500) for _ in range(height // 500)) if whole else deflate.compress(row)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + png_chunk(b"IDAT", body + deflate.flush()) + png_chunk(b"IEND", b""))


def jpeg_bytes(width: int, height: int) -> bytes:
    """A 16x16 JPEG whose frame header says width x height: libjpeg decodes it, the missing part grey, into
    the declared size (600 bytes that decode to 1.2 GB)."""
    raw = bytearray(cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes())
    sof = raw.find(b"\xff\xc0")
    raw[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(raw)


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


MEASURER = """import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
print("peak_rss_kb", usage.ru_maxrss, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Runs its arguments and says their peak resident memory: measured from this small process, so the peak is
not the pytest process's (a child forked from it inherits its high-water mark until it execs)."""


def run_measured(argv: list[str], env: dict | None = None) -> tuple[subprocess.CompletedProcess, int]:
    """Run `argv` under the address-space limit: (the finished process, its peak resident memory in MB)."""
    proc = subprocess.run([sys.executable, "-c", MEASURER, *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, preexec_fn=limit_memory, cwd=ROOT,
                          timeout=900, check=False)
    lines = proc.stderr.rstrip("\n").splitlines()
    peak_kb = int(lines[-1].split()[1])
    done = subprocess.CompletedProcess(argv, proc.returncode, proc.stdout, "\n".join(lines[:-1]) + "\n")
    return done, peak_kb >> 10


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "toolkit.cli", *args]


def evaluate(folder: Path, fmnist_dir: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_cli("evaluate", "--photos", str(folder), "--photo-split", "all", "--limit", "50", "--data-dir",
                   str(fmnist_dir), env=env, check=False)


def train(folder: Path, fmnist_dir: Path, out: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return run_cli("train", *args, "--photos", str(folder), "--limit", "100", "--epochs", "1", "--data-dir",
                   str(fmnist_dir), "--out", str(out), check=False, **kwargs)


@pytest.fixture(scope="module")
def bomb_folder(tmp_path_factory) -> Path:
    """A photo folder whose one photo is a real decompression bomb, and one with a JPEG of a forged size."""
    root = tmp_path_factory.mktemp("bomb")
    (root / "big.png").write_bytes(png_bytes(BOMB_SIDE, BOMB_SIDE, whole=True))
    (root / "labels.csv").write_text(f"{HEADER}\nbig.png,t-shirt,0\n")
    return root


# 1. Nothing to train on, a missing photo, a photo bank cache that cannot be written


@pytest.mark.train
@pytest.mark.parametrize(("table", "init"), [("", ("--init", "bundled")), (HEADER, ("--init", "bundled")),
                                             (f"{HEADER}\na.png,unlabelled,", ("--arch", "edge"))],
                         ids=["empty-file", "header-alone", "all-unlabelled"])
def test_train_with_nothing_labelled_is_one_line(tmp_path, fmnist_dir, table, init):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "labels.csv").write_text(table + "\n" if table else "")
    line = error_line(train(folder, fmnist_dir, tmp_path / "out", *init))
    assert "no labelled photo" in line and "fmnist-edge label" in line


@pytest.mark.train
def test_train_with_a_missing_photo_is_one_line(tmp_path, fmnist_dir):
    rows, names = good_rows()
    folder = make_folder(tmp_path / "photos", [*rows, "t-shirt/gone.png,t-shirt,0"], names)
    env = {"FMNIST_EDGE_PHOTO_BANK": str(tmp_path / "bank")}  # --init: the augmented photo bank reads them
    line = error_line(train(folder, fmnist_dir, tmp_path / "out", "--init", "bundled", "--photo-split", "all",
                            env=env))
    assert "gone.png: unreadable photo (no such file)" in line and "labels.csv" in line


def test_evaluate_with_a_missing_photo_is_one_line(tmp_path, fmnist_dir):
    rows, names = good_rows()
    folder = make_folder(tmp_path / "photos", [*rows, "t-shirt/gone.png,t-shirt,0"], names)
    assert "gone.png: unreadable photo (no such file)" in error_line(evaluate(folder, fmnist_dir))


@pytest.mark.parametrize("table", ["", HEADER, f"{HEADER}\na.png,unlabelled,"])
def test_evaluate_with_nothing_labelled_is_one_line(tmp_path, fmnist_dir, table):
    """Asked for a score on photos, evaluate says there is none to give, not a report without it."""
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "labels.csv").write_text(table + "\n" if table else "")
    assert "no labelled photo in the all split" in error_line(evaluate(folder, fmnist_dir))


def test_a_photo_bank_cache_that_cannot_be_written_is_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), garment(i))
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("FMNIST_EDGE_PHOTO_BANK", str(tmp_path / "a-file" / "bank"))  # no folder can be made there
    frames, partial = photo_augment.cached_photo_bank(paths, 3)
    assert frames.shape == (6, 28, 28, 1) and partial.shape == (6,)
    assert "cannot keep the photo bank" in caplog.text and "FMNIST_EDGE_PHOTO_BANK" in caplog.text
    if os.geteuid() != 0:  # root writes through a read-only mode
        locked = tmp_path / "read-only"
        locked.mkdir(mode=0o500)
        monkeypatch.setenv("FMNIST_EDGE_PHOTO_BANK", str(locked))
        np.testing.assert_array_equal(photo_augment.cached_photo_bank(paths, 3)[0], frames)


@pytest.mark.train
def test_train_goes_on_when_the_photo_bank_cannot_be_kept(tmp_path, fmnist_dir):
    rows, names = good_rows()
    folder = make_folder(tmp_path / "photos", rows, names)
    (tmp_path / "a-file").write_text("")
    proc = train(folder, fmnist_dir, tmp_path / "out", "--init", "bundled", "--photo-split", "all", "--json",
                 env={"FMNIST_EDGE_PHOTO_BANK": str(tmp_path / "a-file" / "bank")})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "cannot keep the photo bank" in proc.stderr
    assert json.loads(proc.stdout)["photos"]["photo_frames"] == 8 * 16  # the fine-tune recipe's 16 per photo


def test_a_damaged_or_foreign_cache_file_is_made_again(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FMNIST_EDGE_PHOTO_BANK", str(tmp_path / "bank"))
    path = tmp_path / "0.png"
    cv2.imwrite(str(path), garment())
    frames, _ = photo_augment.cached_photo_bank([path], 2)
    (cached,) = (tmp_path / "bank").glob("*.npz")
    cached.write_bytes(cached.read_bytes()[:100])  # cut short
    np.testing.assert_array_equal(photo_augment.cached_photo_bank([path], 2)[0], frames)
    assert "unreadable" in caplog.text
    np.savez(cached, frames=np.zeros((5, 28, 28, 1), np.uint8), partial=np.zeros(5, bool))  # another bank's shape
    np.testing.assert_array_equal(photo_augment.cached_photo_bank([path], 2)[0], frames)
    assert "not the photo bank it is named after" in caplog.text


def test_a_photo_changed_in_place_is_not_served_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_EDGE_PHOTO_BANK", str(tmp_path / "bank"))
    path = tmp_path / "0.png"
    cv2.imwrite(str(path), garment())
    photo_augment.cached_photo_bank([path], 2)
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))  # same name and size, rewritten
    photo_augment.cached_photo_bank([path], 2)
    assert len(list((tmp_path / "bank").glob("*.npz"))) == 2


# 2. Class ids that pass str.isdigit and fail int()


def test_a_superscript_class_id_is_one_line_in_evaluate(tmp_path, fmnist_dir):
    rows, names = good_rows()
    folder = make_folder(tmp_path / "photos", [*rows, f"{names[0]},t-shirt,²"], names)
    assert "fashion_mnist_classes must be class ids 0 to 9, not '²'" in error_line(evaluate(folder, fmnist_dir))


@pytest.mark.train
def test_a_superscript_class_id_is_one_line_in_train(tmp_path, fmnist_dir):
    rows, names = good_rows()
    folder = make_folder(tmp_path / "photos", [*rows, f"{names[0]},t-shirt,0 ²"], names)
    line = error_line(train(folder, fmnist_dir, tmp_path / "out", "--arch", "edge"))
    assert "fashion_mnist_classes must be class ids 0 to 9" in line


def test_collect_every_superscript_is_refused_as_every_bad_value_is(tmp_path):
    """Refused in one line, the same way as any --collect-when that is not unsure, all or every:N."""
    folder = tmp_path / "collected"
    odd = run_cli("camera", "--headless", "--collect", str(folder), "--collect-when", "every:²", check=False)
    plain = run_cli("camera", "--headless", "--collect", str(folder), "--collect-when", "sometimes", check=False)
    assert odd.returncode == plain.returncode in (1, 2) and "Traceback" not in odd.stderr
    errors = [line for line in odd.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [odd.stderr.strip().splitlines()[-1]] and "every:N" in errors[0], odd.stderr
    assert not folder.exists()


@pytest.mark.parametrize(("accepted", "ok"), [(" ".join(map(str, range(100))), False), ("5 " * 100, True),
                                              ("-1", False), ("0x3", False), ("9" * 40, False), ("٣", False)])
def test_class_id_lists(tmp_path, accepted, ok):
    folder = make_folder(tmp_path, [f"a.png,shoe,{accepted}"], ("a.png",))
    if ok:
        assert photos.load_photos(folder)[0].accepted == {5}
    else:
        with pytest.raises(FmnistEdgeError, match="fashion_mnist_classes must be class ids 0 to 9"):
            photos.load_photos(folder)


# 3. Decoded sizes bounded: headers read before decoding


CV2_FORMATS = [".png", ".jpg", ".webp", ".bmp", ".tiff", ".ppm", ".pgm", ".pbm", ".pam", ".pfm", ".ras", ".gif"]


@pytest.mark.parametrize("suffix", CV2_FORMATS)
def test_header_size_is_what_opencv_decodes(suffix):
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3)).astype(np.uint8)
    if suffix in (".pgm", ".pbm"):
        image = image[..., 0]
    if suffix == ".pfm":
        image = image.astype(np.float32) / 255
    params = {".webp": [[], [cv2.IMWRITE_WEBP_QUALITY, 101]], ".jpg": [[], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]]}
    for extra in params.get(suffix, [[]]):  # lossy and lossless, baseline and progressive
        raw = cv2.imencode(suffix, image, extra)[1].tobytes()
        assert header_size(raw) == (53, 37) == cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED
                                                            ).shape[1::-1]


def test_header_size_walks_a_jpeg_as_libjpeg_does():
    raw = cv2.imencode(".jpg", np.zeros((37, 53, 3), np.uint8))[1].tobytes()
    big_app = b"\xff\xe1" + struct.pack(">H", 65535) + b"\xff\xc0\x00\x11\x08\xff\xff\xff\xff" + bytes(65524)
    stray = b"junk\xff\xff\xff"  # stray bytes before a marker, then fill bytes
    forged = raw[:2] + big_app + stray + raw[2:]  # a fake frame header inside a segment is skipped, as libjpeg does
    assert header_size(forged) == (53, 37)
    assert cv2.imdecode(np.frombuffer(forged, np.uint8), cv2.IMREAD_COLOR).shape == (37, 53, 3)
    with pytest.raises(ValueError):
        header_size(raw[:2] + b"\xff\xda\x00\x02" + raw[2:])  # a scan before any frame header


def test_header_size_of_big_tiff_and_webp_extended():
    big = (b"II+\0" + struct.pack("<HHQ", 8, 0, 16) + struct.pack("<Q", 2)
           + struct.pack("<HHQQ", 256, 16, 1, 70000) + struct.pack("<HHQQ", 257, 4, 1, 3))
    assert header_size(big) == (70000, 3)
    vp8x = b"RIFF" + bytes(4) + b"WEBPVP8X" + bytes(8) + (29999).to_bytes(3, "little") + (19999).to_bytes(3, "little")
    assert header_size(vp8x) == (30000, 20000)


def forged(kind: str, side: int = BOMB_SIDE) -> bytes:
    """A small file whose header declares side x side pixels."""
    return {"png": lambda: png_bytes(side, side), "jpg": lambda: jpeg_bytes(side, side),
            "bmp": lambda: b"BM" + bytes(12) + struct.pack("<Iii", 40, side, -side) + bytes(40),
            "gif": lambda: b"GIF89a" + struct.pack("<HH", side, side) + bytes(20),
            "tiff": lambda: b"II*\0" + struct.pack("<IH", 8, 2) + struct.pack("<HHII", 256, 4, 1, side)
            + struct.pack("<HHII", 257, 3, 1, side) + bytes(4),
            "pgm": lambda: f"P5\n# a comment {side}\n{side} {side}\n255\n".encode() + bytes(64)}[kind]()


@pytest.mark.parametrize("kind", ["png", "jpg", "bmp", "gif", "tiff", "pgm"])
def test_an_oversized_photo_is_refused_before_decoding(tmp_path, kind):
    path = tmp_path / f"big.{kind}"
    path.write_bytes(forged(kind))
    with pytest.raises(ImageTooLarge, match=rf"big\.{kind}: 20000x20000 pixels, over the limit of "
                                            f"{DEFAULT_MAX_PIXELS:,} .*downscale the photo"):
        read_photo(path)


def test_the_pixel_limit_can_be_moved_and_a_bad_value_is_one_line(tmp_path, monkeypatch, caplog):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), garment())  # 90x120: 10,800 pixels
    monkeypatch.setenv("FMNIST_EDGE_MAX_PIXELS", "10000")
    with pytest.raises(ImageTooLarge, match="over the limit of 10,000"):
        read_mask(path)
    assert read_image(path) is None and "over the limit" in caplog.text  # predict: that image has no answer
    monkeypatch.setenv("FMNIST_EDGE_MAX_PIXELS", "10800")
    assert read_photo(path).shape == (120, 90, 3)
    noise = tmp_path / "noise.png"
    cv2.imwrite(str(noise), np.random.default_rng(0).integers(0, 255, (120, 90, 3)).astype(np.uint8))
    monkeypatch.setenv("FMNIST_EDGE_MAX_PIXELS", "1000")  # 8,000 bytes at most: refused before it is read
    assert noise.stat().st_size > 8000
    with pytest.raises(ImageTooLarge, match="more than any image within the limit of 1,000 pixels"):
        read_photo(noise)
    monkeypatch.setenv("FMNIST_EDGE_MAX_PIXELS", "lots")
    with pytest.raises(FmnistEdgeError, match="FMNIST_EDGE_MAX_PIXELS='lots': give a whole number"):
        read_photo(path)


def test_opencv_holds_the_limit_for_formats_whose_header_is_not_read(tmp_path, fmnist_dir):
    """JPEG 2000 is sized by OpenCV itself: the CLI hands it the same limit before OpenCV loads."""
    rows, names = good_rows(2)
    folder = make_folder(tmp_path / "photos", [*rows, "big.jp2,t-shirt,0"], names)
    cv2.imwrite(str(folder / "big.jp2"), garment(0, (200, 200)))
    line = error_line(evaluate(folder, fmnist_dir, env={"FMNIST_EDGE_MAX_PIXELS": "20000"}))
    assert "big.jp2: over OpenCV's size limit" in line and "downscale the photo" in line
    assert evaluate(folder, fmnist_dir).returncode == 0


@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_evaluate_on_a_decompression_bomb_stays_small(bomb_folder, tmp_path, fmnist_dir, kind):
    folder = bomb_folder
    if kind == "jpg":  # 600 bytes that libjpeg decodes into 1.2 GB
        folder = make_folder(tmp_path / "jpeg-bomb", ["big.jpg,t-shirt,0"])
        (folder / "big.jpg").write_bytes(jpeg_bytes(BOMB_SIDE, BOMB_SIDE))
    proc, peak_mb = run_measured(cli("evaluate", "--photos", str(folder), "--photo-split", "all", "--limit", "50",
                                     "--data-dir", str(fmnist_dir)))
    assert f"big.{kind}: 20000x20000 pixels, over the limit" in error_line(proc)
    assert peak_mb < 400, peak_mb  # 2.4 GB before the header was read


@pytest.mark.train
def test_train_on_a_decompression_bomb_stays_small(bomb_folder, tmp_path, fmnist_dir):
    proc, peak_mb = run_measured(cli("train", "--init", "bundled", "--photos", str(bomb_folder), "--photo-split",
                                     "all", "--limit", "100", "--epochs", "1", "--data-dir", str(fmnist_dir), "--out",
                                     str(tmp_path / "out")), env={"FMNIST_EDGE_PHOTO_BANK": str(tmp_path / "bank")})
    assert "big.png: 20000x20000 pixels, over the limit" in error_line(proc)
    assert peak_mb < 2000, peak_mb  # TensorFlow and the data; 3.2 GB before


def test_the_photo_bank_holds_one_full_size_photo_at_a_time(tmp_path):
    """Twelve 16-megapixel photos (48 MB each decoded) make a bank without ever being in memory together."""
    image = np.full((4000, 4000, 3), 210, np.uint8)
    cv2.rectangle(image, (1000, 800), (3000, 3200), (40, 50, 60), -1)
    cv2.imwrite(str(tmp_path / "0.png"), image)
    for i in range(1, 12):
        shutil.copy(tmp_path / "0.png", tmp_path / f"{i}.png")
    script = ("import sys; from toolkit.photo_augment import cached_photo_bank; "
              "frames, _ = cached_photo_bank(sys.argv[1:], 2); assert frames.shape == (24, 28, 28, 1)")
    proc, peak_mb = run_measured([sys.executable, "-c", script, *(str(tmp_path / f"{i}.png") for i in range(12))],
                                 env={"FMNIST_EDGE_PHOTO_BANK": str(tmp_path / "bank")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert peak_mb < 400, peak_mb  # all twelve at once: over 600 MB


# 4. Every file a row names lies inside its folder


@pytest.fixture
def outside(tmp_path) -> Path:
    """A photo beside the folder, not in it."""
    path = tmp_path / "elsewhere" / "secret.png"
    path.parent.mkdir()
    cv2.imwrite(str(path), garment())
    return path


@pytest.mark.parametrize("case", ["dot-dot", "absolute", "link-to-a-file", "link-to-a-folder", "mask-dot-dot",
                                  "mask-absolute", "the-folder-itself"])
def test_a_row_naming_a_file_outside_the_folder_is_refused(tmp_path, outside, case):
    rows, names = good_rows(2)
    folder = make_folder(tmp_path / "photos", rows, names, header=f"{HEADER},mask")
    row = {"dot-dot": "../elsewhere/secret.png,t-shirt,0,", "absolute": f"{outside},t-shirt,0,",
           "link-to-a-file": "link.png,t-shirt,0,", "link-to-a-folder": "linked/secret.png,t-shirt,0,",
           "mask-dot-dot": f"{names[0]},t-shirt,0,../elsewhere/secret.png", "mask-absolute": f"{names[1]},t-shirt,0,"
           f"{outside}", "the-folder-itself": ".,t-shirt,0,"}[case]
    (folder / "link.png").symlink_to(outside)
    (folder / "linked").symlink_to(outside.parent, target_is_directory=True)
    (folder / "labels.csv").write_text((folder / "labels.csv").read_text() + row + "\n")
    with pytest.raises(FmnistEdgeError, match=r"leads outside the photo folder .*copy the file into"):
        photos.load_photos(folder)


def test_links_that_stay_inside_the_folder_are_followed(tmp_path):
    rows, names = good_rows(2)
    folder = make_folder(tmp_path / "photos", [*rows, "alias/0.png,tee,0"], names)
    (folder / "alias").symlink_to(folder / "t-shirt", target_is_directory=True)  # the same file by two names...
    with pytest.raises(FmnistEdgeError, match="the same photo as"):  # ...is still one photo
        photos.load_photos(folder)
    (folder / "labels.csv").write_text(f"{HEADER}\n{rows[0]}\nalias/1.png,tee,0\n")
    assert [p.photo_class for p in photos.load_photos(folder)] == ["t-shirt", "tee"]
    (tmp_path / "via-link").symlink_to(folder, target_is_directory=True)  # the folder itself given through a link
    assert photos.prepare(photos.load_photos(tmp_path / "via-link")).shape == (2, 28, 28, 1)


@pytest.mark.train
def test_train_refuses_a_photo_outside_the_folder(tmp_path, outside, fmnist_dir):
    rows, names = good_rows()
    folder = make_folder(tmp_path / "photos", [*rows, "../elsewhere/secret.png,t-shirt,0"], names)
    line = error_line(train(folder, fmnist_dir, tmp_path / "out", "--arch", "edge"))
    assert "'../elsewhere/secret.png' leads outside the photo folder" in line


def test_evaluate_refuses_a_photo_outside_the_folder(tmp_path, outside, fmnist_dir):
    rows, names = good_rows()
    folder = make_folder(tmp_path / "photos", [*rows, f"{outside},t-shirt,0"], names)
    assert "leads outside the photo folder" in error_line(evaluate(folder, fmnist_dir))


@pytest.mark.parametrize("name", ["real-photos", "real-photos-more"])
def test_the_shared_folders_keep_loading(name):
    found = real_photos_dir()
    if found is None or not (found.parent / name / "labels.csv").is_file():
        pytest.skip(f"../shared/{name} is not beside this checkout")
    folder = found.parent / name
    every = photos.load_photos(folder)
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(every) == len(rows)
    assert sum(p.mask is not None for p in every) == sum(bool(r.get("mask")) for r in rows)
    for photo in every[:: max(1, len(every) // 40)]:  # a sample through the checked readers, masks against photos
        image = read_photo(photo.path)
        if photo.mask is not None:
            read_mask(photo.mask, image.shape)


# Beyond the list: files that are not photos, a row twice, masks that do not fit, tables that are not text


def _cut(suffix: str) -> bytes:
    raw = cv2.imencode(suffix, np.random.default_rng(0).integers(0, 255, (120, 90, 3)).astype(np.uint8))[1].tobytes()
    return raw[: len(raw) * 3 // 4]


def _fifo(path: Path) -> None:
    os.mkfifo(path)


BAD_FILES = {
    "empty-file": (lambda p: p.write_bytes(b""), "an empty file"),
    "a-folder": (lambda p: p.mkdir(), "a folder, not a file"),
    "a-fifo": (_fifo, "not a regular file"),  # opened, it would wait for a writer forever
    "not-an-image": (lambda p: p.write_text("hello"), "not an image OpenCV can read"),
    "truncated-jpeg": (lambda p: p.write_bytes(_cut(".jpg")), "a JPEG cut short"),  # libjpeg: half grey
    "truncated-png": (lambda p: p.write_bytes(_cut(".png")), "not an image OpenCV can read"),
    "damaged-header": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(8)), "damaged"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_file_that_is_not_a_photo_is_one_line(tmp_path, case):
    make_photo, problem = BAD_FILES[case]
    rows, names = good_rows(2)
    folder = make_folder(tmp_path, [*rows, "bad.jpg,t-shirt,0"], names)
    make_photo(folder / "bad.jpg")
    with pytest.raises(FmnistEdgeError, match=r"bad\.jpg: unreadable photo \(.*" + problem):
        photos.prepare(photos.load_photos(folder))


@pytest.mark.parametrize("case", ["truncated-jpeg", "a-folder"])
def test_evaluate_on_a_file_that_is_not_a_photo_is_one_line(tmp_path, fmnist_dir, case):
    make_photo, problem = BAD_FILES[case]
    rows, names = good_rows()
    folder = make_folder(tmp_path, [*rows, "bad.jpg,t-shirt,0"], names)
    make_photo(folder / "bad.jpg")
    line = error_line(evaluate(folder, fmnist_dir))
    assert "bad.jpg: unreadable photo" in line and problem in line and "labels.csv" in line


@pytest.mark.parametrize(("second", "repeated"), [("t-shirt/0.png,t-shirt,0", True), ("./t-shirt/0.png,shirt,6", True),
                                                   ("t-shirt/1.png,t-shirt,0", False)])
def test_a_photo_listed_twice_is_refused(tmp_path, second, repeated):
    rows, names = good_rows(2)
    folder = make_folder(tmp_path, [rows[0], second], names)
    if repeated:
        with pytest.raises(FmnistEdgeError, match=r"row 2 .*the same photo as .*row 1 .*keep one row per photo"):
            photos.load_photos(folder)
    else:
        assert len(photos.load_photos(folder)) == 2
    with pytest.raises(FmnistEdgeError, match="the same photo as"):  # the same folder given twice
        photos.load_folders([folder, f"{folder}/"])


def test_one_photo_may_have_a_row_per_item_mask(tmp_path):
    folder = make_folder(tmp_path, ["a.png,street-shirt,6,m1.png", "a.png,street-pants,1,m2.png"], ("a.png",),
                         header=f"{HEADER},mask")
    for name in ("m1.png", "m2.png"):
        cv2.imwrite(str(folder / name), np.zeros((120, 90), np.uint8))
    assert len(photos.load_photos(folder)) == 2


@pytest.mark.parametrize(("mask", "problem"), [((60, 45), "a 45x60 mask for a 90x120 photo"),
                                               (None, r"m\.png: unreadable mask \(no such file\)")])
def test_a_mask_that_does_not_fit_its_photo_is_one_line(tmp_path, monkeypatch, mask, problem):
    monkeypatch.setenv("FMNIST_EDGE_PHOTO_BANK", str(tmp_path / "bank"))
    cv2.imwrite(str(tmp_path / "a.png"), garment())
    if mask is not None:
        cv2.imwrite(str(tmp_path / "m.png"), np.full(mask, 255, np.uint8))
    with pytest.raises(FmnistEdgeError, match=problem):
        photo_augment.cached_photo_bank([tmp_path / "a.png"], 2, mask_paths=[tmp_path / "m.png"])


@pytest.mark.parametrize(("row", "problem"), [(",t-shirt,0", "an empty path"), ("a.png,,0", "no photo_class"),
                                              ("a.png, ,0", "no photo_class")])
def test_an_empty_path_or_class_is_one_line(tmp_path, row, problem):
    folder = make_folder(tmp_path, [row], ("a.png",))
    with pytest.raises(FmnistEdgeError, match=problem):
        photos.load_photos(folder)


def test_a_table_that_is_not_utf8_is_one_line_in_evaluate(tmp_path, fmnist_dir):
    rows, names = good_rows()
    folder = make_folder(tmp_path, rows, names)
    (folder / "labels.csv").write_bytes(f"{HEADER}\n".encode() + "t-shirt/0.png,tée,0\n".encode("latin-1"))
    assert "UTF-8" in error_line(evaluate(folder, fmnist_dir))


def test_a_huge_still_image_as_the_camera_source_is_one_line(tmp_path):
    """FFmpeg decodes a still image given as --source whole before the first frame: bounded by its header."""
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_bytes(20000, 20000))
    line = error_line(run_cli("camera", "--source", str(huge), "--headless", check=False, timeout=60))
    assert "is an image of 20000x20000 pixels, over the limit" in line and "FMNIST_EDGE_MAX_PIXELS" in line


def test_predict_says_an_image_is_over_the_limit(tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_bytes(20000, 20000))
    proc = run_cli("predict", str(huge), "--json", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "20000x20000 pixels, over the limit" in json.loads(proc.stdout)["predictions"][0]["error"]
