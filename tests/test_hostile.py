"""What a hostile tester found, each case with its regression test: damaged and odd model files, a dying
bench worker, the camera's inputs and clients, predict's region of interest. Every case ends in one line
(exit 1; usage errors exit 2) or works. No TensorFlow: golden files and the bundled models."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import error_line, run_cli

from edge_runtime.core.backends import open_backend
from edge_runtime.core.backends.base import MAX_TENSOR_BYTES, check_tensor_memory
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.metadata import ModelMetadata, onnx_metadata_props
from edge_runtime.core.modelfile import tflite_flatbuffer


@pytest.fixture(scope="module")
def golden_int8(golden) -> tuple[bytes, ModelMetadata]:
    """The golden int8 TFLite model's flatbuffer and metadata."""
    path = golden[0] / "model_int8.tflite"
    with open_backend(path) as backend:
        return tflite_flatbuffer(path.read_bytes()), backend.metadata


def usage_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


# Model files ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, problem", [
    ([], "expected an object, found list"),
    ({"precision": "int8"}, "class_names must be 10 names"),
    ({"class_names": ["a", "b", "c"]}, "class_names must be 10 names"),
    ({"class_names": list("abcdefghij"), "input": "x"}, "input must be an object"),
    ({"class_names": list("abcdefghij"), "test_accuracy": "high"}, "test_accuracy must be a number"),
])
def test_metadata_that_does_not_fit_its_schema(golden_int8, tmp_path, raw, problem):
    import io
    import zipfile

    flat, _ = golden_int8
    buf = io.BytesIO(flat)
    buf.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buf, "a") as archive:
        archive.writestr("metadata.json", json.dumps(raw))
    path, image = tmp_path / "odd.tflite", tmp_path / "item.png"
    path.write_bytes(buf.getvalue())
    cv2.imwrite(str(image), np.full((60, 60), 200, np.uint8))
    for command in (["info", str(path)], ["predict", "--model", str(path), str(image)], ["verify", str(path)]):
        line = error_line(run_cli(*command, check=False))
        assert f"{path}: invalid metadata ({problem}" in line, (command, line)


def test_onnx_metadata_of_the_wrong_types(golden, tmp_path):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(golden[0] / "model_int8.onnx")
    del model.metadata_props[:]
    meta = ModelMetadata(class_names=list("abcdefghij"))
    onnx.helper.set_model_props(model, {**onnx_metadata_props(meta), "fmnist_edge.class_names": "5",
                                        "fmnist_edge.unknown_field": "[1, 2]"})
    path = tmp_path / "odd.onnx"
    path.write_bytes(model.SerializeToString())
    assert "invalid metadata (class_names must be 10 names" in error_line(run_cli("info", str(path), check=False))


def test_a_damaged_tensor_name_is_one_line(golden_int8, tmp_path):
    """A byte of a tensor's name made invalid UTF-8 (an old file without a checksum, so LiteRT reads it)."""
    flat, _ = golden_int8
    name = b"serving_default_pixels:0"
    assert name in flat
    damaged = bytearray(flat)
    damaged[flat.index(name) + 3] ^= 0xFF
    path = tmp_path / "names.tflite"
    path.write_bytes(bytes(damaged))  # no archive, no checksum: what LiteRT itself makes of it
    for command in (["info", str(path)], ["evaluate", str(path), "--limit", "10"]):
        line = error_line(run_cli(*command, check=False))
        assert str(path) in line and "export it again" in line


def test_a_damaged_onnx_dim_name_is_one_line(golden, tmp_path):
    data = (golden[0] / "model_int8.onnx").read_bytes()
    name = b"unk__"  # the free batch dimension's name, as tf2onnx writes it
    at = data.find(name)
    if at < 0:
        pytest.skip("this ONNX file names no free dimension")
    damaged = bytearray(data[:-88])  # without its checksum trailer: an old file
    damaged[at] ^= 0xFF
    path = tmp_path / "dims.onnx"
    path.write_bytes(bytes(damaged))
    line = error_line(run_cli("info", str(path), check=False))
    assert str(path) in line


def test_tensors_asking_for_too_much_memory_are_refused_before_allocating(tmp_path):
    with pytest.raises(FmnistEdgeError, match=r"its tensors would take 15,360 MB, more than the 256 MB"):
        check_tensor_memory(tmp_path / "m.tflite", [15 << 30])
    check_tensor_memory(tmp_path / "m.tflite", [MAX_TENSOR_BYTES])


def test_a_sealed_file_with_any_byte_changed_never_loads(golden, tmp_path):
    """Every kind of damage a flip can do inside a file fmnist-edge sealed is caught before a runtime reads it."""
    for name in ("model_int8.tflite", "model_int8.onnx"):
        data = (golden[0] / name).read_bytes()
        for position in np.random.default_rng(1).choice(len(data) - 90, 20, replace=False):
            flipped = bytearray(data)
            flipped[position] ^= 0xFF
            path = tmp_path / name
            path.write_bytes(bytes(flipped))
            with pytest.raises(FmnistEdgeError, match="damaged"):
                open_backend(path)


# bench ---------------------------------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    """Processes whose parent is `pid`, from /proc (a minimal system has no pgrep)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def bench_workers(pid: int) -> list[int]:
    """bench's measuring processes (multiprocessing's spawned children), not its other children."""
    found = []
    for child in children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


@pytest.fixture
def bench_run():
    """`bench` with a hundred million runs and its worker started; killed at the end whatever happened."""
    proc = subprocess.Popen([sys.executable, "-m", "toolkit.cli", "bench", "--runs", "100000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300  # an emulated core takes a while to start a Python worker
    while not bench_workers(proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    yield proc
    for pid in [proc.pid, *children(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate()


def test_a_dying_bench_worker_is_one_line_not_a_hang(bench_run):
    proc = bench_run
    workers = bench_workers(proc.pid)
    assert workers
    time.sleep(2)  # loaded and measuring
    for child in workers:
        os.kill(child, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith("the process measuring it died (signal SIGKILL); the model or "
                                                "its runtime crashed on this machine, or it ran out of memory")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_bench_leaves_no_worker_behind(bench_run, sig):
    proc = bench_run
    workers = children(proc.pid)
    assert bench_workers(proc.pid)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(alive(w) for w in workers)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_bench_refuses_an_unwritable_out_before_running(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    start = time.time()
    line = error_line(run_cli("bench", "--runs", "100000000", "--out", str(blocker / "bench.json"), check=False))
    assert line == f"Error: cannot write {blocker / 'bench.json'}: {blocker} is a file, not a directory; pick " \
                   "another place"
    assert time.time() - start < 30  # refused before a hundred million runs


# camera --------------------------------------------------------------------------------------------------

def test_a_huge_camera_index_is_one_line():
    line = error_line(run_cli("camera", "--source", "99999999999999999999", "--headless", check=False))
    assert "camera index 99999999999999999999 is out of range" in line


@pytest.mark.parametrize("value", ["ä..b:18750", "", "host name:80", "127.0.0.1:99999"])
def test_bad_serve_addresses_are_usage_errors(value):
    err = usage_error(run_cli("camera", "--serve", value, "--headless", check=False))
    assert "--serve" in err and "HOST:PORT" in err


@pytest.mark.parametrize("flag", ["--min-score", "--smooth"])
def test_nan_is_not_a_number(flag):
    err = usage_error(run_cli("camera", flag, "nan", "--headless", check=False))
    assert flag in err


def test_a_video_claiming_a_millionth_of_a_frame_a_second_neither_hangs_nor_stops_the_recording(tmp_path):
    """Watched (--serve), a file is played at its own rate: at the rate this header claims, its second frame
    would come in eleven days. Taken as not known, it is classified at once and recorded at 30 fps."""
    from conftest import avi_claiming

    video, record = avi_claiming(tmp_path / "slow.avi", 10**6, 1), tmp_path / "rec.mp4"
    proc = run_cli("camera", "--source", str(video), "--headless", "--serve", "127.0.0.1:0", "--record", str(record),
                   "--json", timeout=120)
    assert json.loads(proc.stdout.splitlines()[-1])["summary"]["frames"] == 6
    assert "taken as not known" in proc.stderr and "Traceback" not in proc.stderr
    recorded = cv2.VideoCapture(str(record))
    assert recorded.get(cv2.CAP_PROP_FPS) == pytest.approx(30) and recorded.get(cv2.CAP_PROP_FRAME_COUNT) == 6
    recorded.release()


def test_a_recording_of_frames_mp4_cannot_hold_names_the_size_and_the_fix(tmp_path):
    video = tmp_path / "dot.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (1, 1))
    for _ in range(3):
        writer.write(np.zeros((1, 1, 3), np.uint8))
    writer.release()
    proc = run_cli("camera", "--source", str(video), "--headless", "--record", str(tmp_path / "r.mp4"), check=False)
    assert "a 1x1 video" in error_line(proc) and "use an .avi name" in proc.stderr
    assert not [p for p in tmp_path.iterdir() if "r.mp4" in p.name]  # nothing half-written left behind
    run_cli("camera", "--source", str(video), "--headless", "--record", str(tmp_path / "r.avi"))  # the fix works
    assert cv2.VideoCapture(str(tmp_path / "r.avi")).get(cv2.CAP_PROP_FRAME_COUNT) == 3


def test_ctrl_c_while_a_stream_never_answers():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    proc = subprocess.Popen([sys.executable, "-m", "toolkit.cli", "camera", "--headless", "--source",
                             f"http://127.0.0.1:{server.getsockname()[1]}/stream.mjpg"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not held and time.time() < deadline:  # OpenCV is waiting on the stream
        time.sleep(0.05)
    assert held
    interrupted = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err.strip() == "interrupted"
    assert time.time() - interrupted < 5  # not the stream's 30 s
    server.close()


def test_clients_that_reset_the_connection_print_no_traceback():
    from edge_runtime.camera.serve import FrameServer

    server = FrameServer("127.0.0.1:0")
    read, write = os.pipe()
    saved = os.dup(2)
    os.dup2(write, 2)  # what the server threads print
    try:
        for _ in range(5):
            client = socket.create_connection(("127.0.0.1", server.port))
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # a reset, not a goodbye
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", server.port)) as client:  # serving goes on
            client.sendall(b"GET /state.json HTTP/1.0\r\n\r\n")
            assert b"200 OK" in client.recv(4096)
    finally:
        os.dup2(saved, 2)
        os.close(write)
        server.close()
    printed = os.read(read, 1 << 16).decode()
    os.close(read)
    assert "Traceback" not in printed and "ConnectionResetError" not in printed


# predict ---------------------------------------------------------------------------------------------------

def test_a_roi_outside_one_image_spares_the_others(tmp_path):
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    cv2.imwrite(str(big), np.full((300, 400, 3), 200, np.uint8))
    cv2.imwrite(str(small), np.full((40, 50, 3), 200, np.uint8))
    proc = run_cli("predict", "--roi", "100,100,50,50", str(big), str(small), "--json", check=False)
    predictions = json.loads(proc.stdout)["predictions"]
    assert "label" in predictions[0]
    assert predictions[1] == {"image": str(small), "error": "--roi 100,100,50,50 lies outside the 50x40 frame"}
    assert error_line(proc) == "Error: 1 of 2 images could not be classified"


def test_a_tiny_roi_is_called_tiny(tmp_path):
    image = tmp_path / "i.png"
    cv2.imwrite(str(image), np.full((300, 400, 3), 200, np.uint8))
    proc = run_cli("predict", "--roi", "0,0,1,1", str(image), "--json", check=False)
    assert json.loads(proc.stdout)["predictions"][0]["error"] == \
        "--roi 0,0,1,1 leaves 1x1 px of the 400x300 frame; give a region of at least 2x2 px"


@pytest.mark.parametrize("cut", [1, 30, 64])
def test_a_sealed_file_cut_short_is_one_line(golden, tmp_path, cut):
    """Cut inside its checksum: not mistaken for a file exported before checksums."""
    for name in ("model_int8.tflite", "model_int8.onnx"):
        path = tmp_path / name
        path.write_bytes((golden[0] / name).read_bytes()[:-cut])
        with pytest.raises(FmnistEdgeError, match="cut short"):
            open_backend(path)


def _cut_points(data: bytes) -> dict[str, int]:
    """Cuts through a sealed .tflite file's appended archive, by how many bytes are cut off the end."""
    first = data.find(b"PK\x03\x04", len(tflite_flatbuffer(data)))
    end_record = data.rfind(b"PK\x05\x06")
    return {"the comment, before the checksum": 70,
            "the end record": len(data) - end_record - 10,
            "the directory (a nested .npz's end record remains)": len(data) - end_record + 40,
            "the last member": len(data) - data.rfind(b"PK\x03\x04") - 40,
            "the first member": len(data) - first - 60,
            "the first member's header, before its name": len(data) - first - 12,
            "the first member's signature": len(data) - first - 2,
            "just after a nested .npz's end record": len(data) - data.rfind(b"PK\x05\x06", 0, end_record) - 22}


@pytest.mark.parametrize("where", ["the comment, before the checksum", "the end record",
                                   "the directory (a nested .npz's end record remains)", "the last member",
                                   "the first member", "the first member's header, before its name",
                                   "the first member's signature", "just after a nested .npz's end record"])
def test_a_tflite_file_cut_anywhere_in_its_archive_is_one_line(golden, tmp_path, where):
    """Cut after its flatbuffer, a file once lost its archive silently and loaded as one exported before
    fmnist-edge wrote metadata (its classes assumed, its checksum skipped)."""
    data = (golden[0] / "model_int8.tflite").read_bytes()
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[:-_cut_points(data)[where]])
    with pytest.raises(FmnistEdgeError, match="damaged"):
        open_backend(path)
    proc = run_cli("info", str(path), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "damaged" in error_line(proc)


@pytest.mark.parametrize("tail", ["none", "a foreign archive", "a foreign archive and bytes after it"])
def test_a_tflite_file_from_elsewhere_still_loads(golden_int8, tmp_path, tail):
    """The rules for cut files leave other tools' files alone: a bare flatbuffer, one with its own archive
    (as TFLite Support's metadata writer appends one, with labels.txt)."""
    import io
    import zipfile

    buf = io.BytesIO(golden_int8[0])
    if tail != "none":
        buf.seek(0, io.SEEK_END)
        with zipfile.ZipFile(buf, "a") as archive:
            archive.writestr("labels.txt", "\n".join(golden_int8[1].class_names))
        buf.write(b"\0" * 7 if "after" in tail else b"")
    path = tmp_path / "other.tflite"
    path.write_bytes(buf.getvalue())
    with open_backend(path) as backend:
        assert backend.metadata is None and backend.checksum == "missing"
        assert backend.predict(np.zeros((1, 28, 28, 1), np.uint8)).shape == (1, 10)


def test_an_onnx_file_cut_at_its_checksum_entry_is_one_line(golden, tmp_path):
    """Cut exactly before its last metadata_props entry, the checksum, an ONNX file is a valid model with
    every other entry: it carries reference inputs, which only sealed files do."""
    data = (golden[0] / "model_int8.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: data.rfind(b"\x72" + bytes([88 - 2]))])
    assert len(path.read_bytes()) == len(data) - 88
    with pytest.raises(FmnistEdgeError, match="reference inputs but not the checksum"):
        open_backend(path)


def test_an_onnx_file_cut_between_its_metadata_entries_is_one_line(golden, tmp_path):
    """Cut at the end of one of its metadata entries (before `extra`, written last): a valid model whose
    metadata stops short."""
    data = (golden[0] / "model_int8.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: data.rfind(b"\x72", 0, data.rfind(b"fmnist_edge.extra"))])
    with pytest.raises(FmnistEdgeError, match="metadata stops before `extra`"):
        open_backend(path)


def test_a_video_of_frames_over_the_pixel_limit_is_refused_before_a_frame_is_decoded(tmp_path):
    """A few MB of MJPEG can hold frames of 12000x12000 (1.5 GB decoded): bounded as photos are. Shown here
    with a small video and a small limit, so the test costs no memory."""
    video = tmp_path / "wide.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (400, 300))
    for _ in range(3):
        writer.write(np.full((300, 400, 3), 200, np.uint8))
    writer.release()
    proc = run_cli("camera", "--source", str(video), "--headless", env={"FMNIST_EDGE_MAX_PIXELS": "100000"},
                   check=False)
    assert error_line(proc) == (f"Error: camera source {str(video)!r} gives frames of 400x300 pixels, over the limit "
                                "of 100,000 (FMNIST_EDGE_MAX_PIXELS): give a smaller video or stream, or raise the "
                                "limit")
    run_cli("camera", "--source", str(video), "--headless", env={"FMNIST_EDGE_MAX_PIXELS": "120000"})  # at the limit
