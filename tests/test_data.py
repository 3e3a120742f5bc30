"""The dataset: idx parsing, verification, damaged files, the search order and the download."""

from __future__ import annotations

import functools
import gzip
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import error_line, run_cli, run_cli_json

from edge_runtime.data import fashion_mnist as data


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_parse_idx_round_trip():
    images = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28).astype(np.uint8)
    np.testing.assert_array_equal(data.parse_idx(idx_bytes(images)), images)


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b"\x00\x00\x0d\x03" + b[4:], "wrong magic number"),
    (lambda b: b"\x12\x34" + b[2:], "wrong magic number"),
    (lambda b: b[:10], "truncated idx header"),
    (lambda b: b[:-5], "truncated, 1579 of 1584 bytes"),
    (lambda b: b + b"\x00\x00", "unexpected trailing bytes"),
])
def test_parse_idx_rejects_damage(mangle, message):
    good = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(data.DataError, match=message) as info:
        data.parse_idx(mangle(good), "some-file")
    assert str(info.value).startswith("some-file: ")
    assert "apt-get install dataset-fashion-mnist" in str(info.value)


def test_count_mismatch_names_both_files():
    with pytest.raises(data.DataError, match="imgs has 3 images but lbls has 2 labels"):
        data.check_pair(np.zeros((3, 28, 28), np.uint8), np.zeros(2, np.uint8), "imgs", "lbls")


def test_load_real_test_split(fmnist_dir):
    images, labels = data.load_split("test", fmnist_dir)
    assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10  # the official test set is balanced
    assert images.max() == 255 and images.min() == 0  # raw pixels, not normalised


def copy_dataset(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in data.SHA256:
        shutil.copy(src / f"{name}.gz", dst / f"{name}.gz")
    return dst


def test_truncated_file_is_one_line_error_naming_file_and_fix(fmnist_dir, tmp_path):
    copy = copy_dataset(fmnist_dir, tmp_path / "ds")
    victim = copy / "train-labels-idx1-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:2000])
    proc = run_cli("data", "--data-dir", str(copy), check=False)
    line = error_line(proc)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr  # nothing else either
    assert str(victim) in line and "truncated" in line
    assert "apt-get install dataset-fashion-mnist" in line and "--data-dir" in line


def test_corrupted_content_fails_sha_check(fmnist_dir, tmp_path):
    copy = copy_dataset(fmnist_dir, tmp_path / "ds")
    victim = copy / "t10k-labels-idx1-ubyte.gz"
    labels = bytearray(gzip.decompress(victim.read_bytes()))
    labels[100] = (labels[100] + 1) % 10  # one wrong label: still a well-formed idx file
    victim.write_bytes(gzip.compress(bytes(labels)))
    with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte\.gz: corrupted or not the official file"):
        data.load_split("test", copy)


def test_uncompressed_files_are_accepted(fmnist_dir, tmp_path):
    for name in data.SHA256:
        (tmp_path / name).write_bytes(gzip.decompress((fmnist_dir / f"{name}.gz").read_bytes()))
    found = data.locate(tmp_path)
    assert found.source == "--data-dir" and all(p.suffix != ".gz" for p in found.files.values())


def test_environment_variable_comes_before_debian(fmnist_dir, tmp_path, monkeypatch):
    copy = copy_dataset(fmnist_dir, tmp_path / "env-ds")
    monkeypatch.setenv("FMNIST_EDGE_DATA", str(copy))
    assert data.locate().directory == copy and data.locate().source == "$FMNIST_EDGE_DATA"


def test_missing_everywhere_without_download_is_clear(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "nothing")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FMNIST_EDGE_DATA", raising=False)
    with pytest.raises(data.DataError, match=r"Fashion-MNIST not found in .*apt-get install"):
        data.locate(allow_download=False)


@pytest.fixture
def mirror(fmnist_dir):
    """The dataset served over HTTP on 127.0.0.1, as the official mirror serves it."""
    handler = functools.partial(QuietHandler, directory=str(fmnist_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_into_cache_verifies_and_writes_atomically(mirror, tmp_path):
    env = {"FMNIST_EDGE_MIRROR": mirror, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    # An empty --data-dir is filled by the download.
    report = run_cli_json("data", "--data-dir", str(tmp_path / "fresh"), env=env)
    assert report["source"] == "--data-dir" and report["verified"] is True
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == sorted(f"{n}.gz" for n in data.SHA256)


def test_failed_download_leaves_nothing_behind(tmp_path):
    env = {"FMNIST_EDGE_MIRROR": "http://127.0.0.1:9/", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = run_cli("data", "--data-dir", str(tmp_path / "fresh"), env=env, check=False)
    assert "could not download train-images-idx3-ubyte.gz" in error_line(proc)
    assert not (tmp_path / "fresh").exists() or not any((tmp_path / "fresh").iterdir())


@pytest.mark.parametrize("mirror_up", [True, False])
def test_a_directory_where_a_file_belongs_is_named(fmnist_dir, tmp_path, request, mirror_up):
    copy = copy_dataset(fmnist_dir, tmp_path / "ds")
    (copy / "t10k-labels-idx1-ubyte.gz").unlink()
    (copy / "t10k-labels-idx1-ubyte.gz").mkdir()
    mirror = request.getfixturevalue("mirror") if mirror_up else "http://127.0.0.1:9/"
    line = error_line(run_cli("data", "--data-dir", str(copy), check=False, env={"FMNIST_EDGE_MIRROR": mirror}))
    assert "t10k-labels-idx1-ubyte.gz: not a file" in line and "remove it" in line


@pytest.mark.parametrize("mirror_up", [True, False])
def test_data_variable_pointing_at_a_file_is_named(tmp_path, request, mirror_up):
    afile = tmp_path / "not-a-dir"
    afile.write_text("x")
    mirror = request.getfixturevalue("mirror") if mirror_up else "http://127.0.0.1:9/"
    env = {"FMNIST_EDGE_DATA": str(afile), "FMNIST_EDGE_MIRROR": mirror}
    line = error_line(run_cli("data", check=False, env=env))
    assert f"$FMNIST_EDGE_DATA {afile} is a file, not a directory" in line


@pytest.mark.parametrize("mirror_up", [True, False])
def test_an_unwritable_destination_is_named_before_any_download(tmp_path, request, mirror_up):
    """Below a regular file nothing can be created, even by root (chmod does not stop root)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    mirror = request.getfixturevalue("mirror") if mirror_up else "http://127.0.0.1:9/"
    env = {"XDG_CACHE_HOME": str(blocker / "cache"), "FMNIST_EDGE_MIRROR": mirror}
    line = error_line(run_cli("data", "--data-dir", str(blocker / "sub"), check=False, env=env))
    assert f"cannot write the dataset into --data-dir {blocker / 'sub'}" in line and "writable directory" in line


def test_an_unreadable_file_is_not_called_corrupted(fmnist_dir, tmp_path, monkeypatch):
    copy = copy_dataset(fmnist_dir, tmp_path / "ds")
    real = Path.read_bytes

    def deny(self):
        if self.name.startswith("t10k-images"):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte\.gz: cannot read it \(Permission denied\)"):
        data.load_split("test", copy)
