"""A hostile user against the labelling page (`fmnist-edge label DIR`) and the collector that writes the same
folder (`camera --collect DIR`): files outside the folder, lying or huge requests, loose JSON, damaged and
huge tables, a folder that cannot be written, two writers at once, a killed writer's leftovers, and the
HTTP games after those (methods, long lines, slow clients, too many clients, NUL bytes, Host and Origin).
Every refusal is a status and one line (or one CLI error line); nothing on disk is lost."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np
import pytest
from conftest import error_line, run_cli, wait_until

from edge_runtime.core.contract import CLASS_NAMES
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.files import locked, temp_beside
from edge_runtime.data import photos
from edge_runtime.field import label
from edge_runtime.field.label import LabelBook, LabelServer
from edge_runtime.web import http as web_http

FRAMES = 6


def make_folder(root: Path, frames: int = FRAMES) -> Path:
    """A folder as `camera --collect` leaves it: frames/NNNNNN.jpg and .png, every row unlabelled."""
    (root / "frames").mkdir(parents=True)
    rows = []
    for i in range(frames):
        cv2.imwrite(str(root / f"frames/{i:06d}.jpg"), np.full((32, 24, 3), 30 * i, np.uint8))
        cv2.imwrite(str(root / f"frames/{i:06d}.png"), np.full((28, 28), 30 * i, np.uint8))
        rows.append({"path": f"frames/{i:06d}.jpg", "photo_class": photos.UNLABELLED, "fashion_mnist_classes": "",
                     "predicted": "Coat", "class_id": "4", "score": "0.5", "model_input": f"frames/{i:06d}.png",
                     "source": "0"})
    photos.write_rows(root, rows)
    return root


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_folder(tmp_path / "collected")


@contextlib.contextmanager
def serving(folder: Path):
    server = LabelServer(folder, "127.0.0.1:0")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.close()


def call(server: LabelServer, method: str, path: str, body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, bytes, http.client.HTTPMessage]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.headers
    finally:
        conn.close()


def post(server: LabelServer, route: str, body: dict | bytes, headers: dict | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, answer, _ = call(server, "POST", route, data, {"Content-Type": "application/json", **(headers or {})})
    return status, json.loads(one_line(answer))


def raw(server: LabelServer, data: bytes, then: float = 0.0, half_close: bool = False) -> bytes:
    """Bytes as a hostile client sends them; the answer, read until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        time.sleep(then)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def slowloris(port: int) -> float:
    """A request whose header trickles in a byte now and then: seconds until the server cut it (8 at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        started = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\n")
        with contextlib.suppress(OSError):
            while time.monotonic() - started < 8:
                s.sendall(b"X")
                time.sleep(0.2)
        return time.monotonic() - started


def one_too_many(port: int, cap: int, path: str) -> None:
    """`cap` idle connections, then one more: that one is closed unanswered."""
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(cap)]
    time.sleep(0.3)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
        extra.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        with contextlib.suppress(ConnectionResetError):
            assert extra.recv(100) == b""
    for s in idle:
        s.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def one_line(body: bytes) -> str:
    """An error answer: one short line, no traceback, no HTML page."""
    text = body.decode()
    assert text.count("\n") <= 1 and len(text) < 600 and "Traceback" not in text and "<html" not in text.lower()
    return text


def body_of(answer: bytes) -> str:
    return one_line(answer.partition(b"\r\n\r\n")[2])


def interrupt(proc: subprocess.Popen) -> str:
    """Ctrl-C, as a user stops the page; its stderr. A process that does not stop is killed, and that fails."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"did not stop on Ctrl-C: {proc.communicate()[1][-2000:]}") from None


def peak_rss_mb() -> float:
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024


# 1. Nothing leaves the folder.

def test_only_regular_files_inside_the_folder_are_served(folder, tmp_path, monkeypatch):
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"secret")
    frames = folder / "frames"
    (frames / "out.png").symlink_to(outside)
    (frames / "zero.png").symlink_to("/dev/zero")
    os.mkfifo(frames / "fifo.png")
    (frames / "dir.png").mkdir()
    (frames / "big.png").write_bytes(b"\0" * 2048)
    (frames / "inside.png").symlink_to(frames / "000000.png")  # a link that stays inside the folder
    monkeypatch.setattr(label, "MAX_FILE_BYTES", 1024)
    refused = ["../outside.png", str(outside), "frames/../../outside.png", "frames/out.png", "frames/zero.png",
               "frames/fifo.png", "frames/dir.png", "frames/big.png"]
    photos.write_rows(folder, photos.read_rows(folder) + [
        {"path": name, "photo_class": photos.UNLABELLED, "fashion_mnist_classes": ""}
        for name in [*refused, "frames/inside.png"]])
    before = peak_rss_mb()
    with serving(folder) as server:
        for name in refused:
            started = time.monotonic()
            status, body, _ = call(server, "GET", "/file/" + quote(name))
            assert status in (403, 404), name
            assert b"secret" not in body and time.monotonic() - started < 5
            one_line(body)
        status, body, _ = call(server, "GET", "/file/frames/inside.png")
        assert status == 200 and body == (frames / "000000.png").read_bytes()
    assert peak_rss_mb() - before < 64  # /dev/zero was not read


# 2. A POST's body has an honest, small length, and comes in time.

@pytest.mark.parametrize(("headers", "status"), [
    ("Content-Length: -1\r\n", 400),
    ("", 411),
    ("Content-Length: 99999999999999999999999999\r\n", 413),
    ("Content-Length: 5000\r\n", 413),
    ("Content-Length: 1e3\r\n", 400),
    ("Content-Length: 10\r\nContent-Length: 12\r\n", 400),
    ("Transfer-Encoding: chunked\r\n", 411),
])
def test_a_post_needs_a_small_honest_content_length(folder, headers, status):
    table = (folder / "labels.csv").read_bytes()
    with serving(folder) as server:
        started = time.monotonic()
        answer = raw(server, f"POST /label HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
        assert time.monotonic() - started < 5  # answered, not waiting for a body that never ends
    assert status_of(answer) == status
    assert json.loads(body_of(answer))["error"]
    assert (folder / "labels.csv").read_bytes() == table


def test_a_body_shorter_than_said_or_too_slow_is_refused(folder, monkeypatch):
    monkeypatch.setattr(web_http, "SOCKET_SECONDS", 0.5)
    head = b"POST /label HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 40\r\n\r\n"
    with serving(folder) as server:
        short = raw(server, head + b'{"index": 0', half_close=True)
        started = time.monotonic()
        slow = raw(server, head + b'{"index": 0')  # and then nothing
        assert time.monotonic() - started < 5
    assert status_of(short) == 400 and "ended before" in body_of(short)
    assert status_of(slow) == 408


# 3. Strict JSON: true is not 1, no NaN or Infinity, no depth bomb; always a 400 and one line.

@pytest.mark.parametrize("body", [
    b'{"index": 0, "class_id": true}', b'{"index": 0, "class_id": false}', b'{"index": true, "class_id": 1}',
    b'{"index": Infinity, "class_id": 1}', b'{"index": NaN, "class_id": 1}', b'{"index": 1e400, "class_id": 1}',
    b'{"index": -Infinity, "class_id": 1}', b'{"index": 0.0, "class_id": 1}', b'{"index": 0, "class_id": 1.5}',
    b"[" * 2000 + b"]" * 2000, b'{"a":' * 600 + b"1" + b"}" * 600, b'{"index": 0, "index": 1, "class_id": 1}',
    b'{"index": 0, "class_id": 1, "extra": 1}', b"[]", b'"x"', b"\xff\xfe{}", b'{"index": 0}', b"",
    b'{"index": 0, "class_id": 1, "class_name": "ring"}', b'{"index": 0, "class_id": "1"}',
    b'{"index": 0, "class_id": 10}', b'{"index": -1, "class_id": 1}', b'{"index": 1' + b"0" * 40 + b', "class_id": 1}',
    b'{"path": 5, "class_id": 1}', b'{"index": 0, "class_name": null}', b'{"index": 0, "class_id": [1]}',
    b'{"index": 0, "class_id": 1', b"nonsense",
], ids=lambda b: b[:24].decode(errors="replace"))
def test_a_label_is_strict_json(folder, body):
    table = (folder / "labels.csv").read_bytes()
    with serving(folder) as server:
        status, answer = post(server, "/label", body)
        assert status == 400 and answer["error"]
        status, _ = post(server, "/label", {"index": 0, "class_id": 1})  # the server still answers
        assert status == 200
    rows = photos.read_rows(folder)
    assert rows[0]["photo_class"] == CLASS_NAMES[1] and all(r["photo_class"] == photos.UNLABELLED for r in rows[1:])
    assert table != (folder / "labels.csv").read_bytes()


def test_undo_takes_no_fields_and_a_frame_gone_is_a_conflict(folder):
    with serving(folder) as server:
        assert post(server, "/undo", {"index": 3})[0] == 400
        status, answer = post(server, "/label", {"path": "frames/none.jpg", "class_id": 1})
        assert status == 409 and "not in labels.csv" in answer["error"]
        assert post(server, "/undo", b"")[1] == {"index": None}


# 4. A table that cannot be read faithfully is refused, never rewritten.

HEADER = "path,photo_class,fashion_mnist_classes,source\n"
ROW = "frames/{i:06d}.jpg,unlabelled,,0\n"


@pytest.mark.parametrize(("line", "message"), [
    ('frames/000001.jpg,"unlabelled,,0\n', "line 3: unexpected end of data"),  # a quote left open swallows the rest
    ('frames/000001.jpg,"unlabelled\nframes/000002.jpg,unlabelled",,0\n', "line 3: a quoted field runs over 2 lines"),
    ("frames/000001.jpg,unlabelled,,0,extra,more\n", "line 3: 6 fields, the header names 4"),
    ('frames/000001.jpg,"un"labelled,,0\n', "line 3"),
    ("frames/000001.jpg,unlab\0elled,,0\n", "line 3 holds a NUL byte"),
    (b"frames/000001.jpg,unlab\xffelled,,0\n", "line 3 is not UTF-8"),
])
def test_a_table_that_cannot_be_read_faithfully_is_refused(folder, line, message):
    line = line if isinstance(line, bytes) else line.encode()
    table = HEADER.encode() + ROW.format(i=0).encode() + line + "".join(ROW.format(i=i) for i in range(2, 6)).encode()
    (folder / "labels.csv").write_bytes(table)
    with pytest.raises(FmnistEdgeError, match=message):
        LabelBook(folder)
    with pytest.raises(FmnistEdgeError, match=message):
        photos.read_rows(folder)
    assert (folder / "labels.csv").read_bytes() == table


@pytest.mark.parametrize(("text", "message"), [
    ("path,photo_class,fashion_mnist_classes,path\n", "the column 'path' is named twice"),
    ("path,photo_class\nframes/000000.jpg,unlabelled\n", "needs the columns"),
    (HEADER + ROW.format(i=0) + ROW.format(i=0), "'frames/000000.jpg' is on two rows"),
])
def test_a_table_the_page_cannot_label_by_path_is_refused(folder, text, message):
    (folder / "labels.csv").write_text(text)
    with pytest.raises(FmnistEdgeError, match=message):
        LabelBook(folder)


def test_the_cli_refuses_a_damaged_table_in_one_line(folder, tmp_path):
    open_quote = 'frames/000001.jpg,"unlabelled,,0\n'
    (folder / "labels.csv").write_text(HEADER + ROW.format(i=0) + open_quote + ROW.format(i=2))
    line = error_line(run_cli("label", str(folder), "--serve", "127.0.0.1:0", check=False, timeout=60))
    assert "labels.csv: line 3" in line and "fix that line" in line
    (tmp_path / "file").write_text("x")
    assert run_cli("label", str(tmp_path / "file"), check=False, timeout=60).returncode == 2  # a usage error


def test_the_writers_never_write_what_they_could_not_read_back(folder):
    rows = photos.read_rows(folder)
    rows[0]["source"] = "a\nb"
    with pytest.raises(FmnistEdgeError, match="a line break"):
        photos.write_rows(folder, rows)
    rows[0]["source"] = 'a "quoted", comma'  # quoting is fine: read back the same
    photos.write_rows(folder, rows)
    assert photos.read_rows(folder) == rows


# 5. Huge tables: a documented bound, refused quickly; the page pages its table.

def test_a_table_over_the_row_limit_is_refused_quickly(folder):
    rows = (ROW.format(i=i) for i in range(photos.MAX_ROWS + 1))
    (folder / "labels.csv").write_text(HEADER + "".join(rows))
    started, before = time.monotonic(), peak_rss_mb()
    with pytest.raises(FmnistEdgeError, match=f"more than {photos.MAX_ROWS} rows"):
        LabelBook(folder)
    assert time.monotonic() - started < 10 and peak_rss_mb() - before < 200
    with open(folder / "labels.csv", "wb") as f:  # a million rows' worth of bytes: refused unread
        f.truncate(photos.MAX_TABLE_BYTES + 1)
    started = time.monotonic()
    with pytest.raises(FmnistEdgeError, match="larger than 64 MB"):
        photos.read_rows(folder)
    assert time.monotonic() - started < 1


def test_the_bound_holds_for_writers_and_the_table_can_be_paged(folder, monkeypatch):
    monkeypatch.setattr(photos, "MAX_ROWS", 40)
    rows = photos.read_rows(folder)
    more = [{**rows[0], "path": f"frames/{i:06d}.jpg"} for i in range(FRAMES, 40)]
    photos.write_rows(folder, rows + more)
    with pytest.raises(FmnistEdgeError, match="more than 40 rows"):
        photos.write_rows(folder, rows + more + [{**rows[0], "path": "frames/x.jpg"}])
    with serving(folder) as server:
        status, body, _ = call(server, "GET", "/frames.json?offset=10&limit=5")
        part = json.loads(body)
        assert status == 200 and part["total"] == 40 and [f["index"] for f in part["frames"]] == list(range(10, 15))
        for query in ("offset=-1", "limit=x", "limit=1&limit=2", "offset=99999999999"):
            status, body, _ = call(server, "GET", f"/frames.json?{query}")
            assert (status == 400 and one_line(body)) or json.loads(body)["frames"] == [], query


# 6. A folder that cannot be written: refused at the start; a label that cannot be written is not shown as given.

@pytest.fixture
def freeze():
    """Make a folder unwritable, even for root (chattr +i); undone after the test."""
    frozen: list[tuple[Path, bool]] = []

    def make(path: Path) -> None:
        if os.geteuid() != 0:
            path.chmod(0o555)
            frozen.append((path, False))
            return
        made = shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)], check=False, capture_output=True)
        if not made or made.returncode:
            pytest.skip("chattr +i is not available on this file system")
        frozen.append((path, True))

    yield make
    for path, immutable in frozen:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=False)
        else:
            path.chmod(0o755)


@pytest.mark.parametrize("locked_before", [False, True])
def test_a_folder_that_cannot_be_written_is_refused_at_the_start(folder, freeze, locked_before):
    if locked_before:
        (folder / photos.LOCK).touch()  # a folder labelled before: the lock file is there
    freeze(folder)
    line = error_line(run_cli("label", str(folder), "--serve", "127.0.0.1:0", check=False, timeout=60))
    assert "cannot write" in line and str(folder) in line


def test_a_label_that_cannot_be_written_is_an_error_and_not_counted(folder, freeze):
    from test_field_loop import start

    table = (folder / "labels.csv").read_bytes()
    proc, base = start("label", str(folder), "--serve", "127.0.0.1:0")
    try:
        freeze(folder)
        for i in range(3):
            request = urllib.request.Request(base + "/label", data=json.dumps({"index": i, "class_id": 1}).encode(),
                                             method="POST")
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(request, timeout=20)
            assert info.value.code == 500 and "cannot write" in json.loads(one_line(info.value.read()))["error"]
        frames = json.loads(urllib.request.urlopen(base + "/frames.json", timeout=20).read())["frames"]
        assert {f["photo_class"] for f in frames} == {photos.UNLABELLED}
    finally:
        err = interrupt(proc)
    assert proc.returncode == 0 and err.strip().endswith(f"0 of {FRAMES} frames labelled in {folder}")
    assert (folder / "labels.csv").read_bytes() == table


def test_the_page_shows_a_label_that_was_not_written(folder, freeze, browser):
    from selenium.webdriver.common.by import By

    with serving(folder) as server:
        browser.get(f"http://127.0.0.1:{server.port}/")
        wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".frame")) == FRAMES)
        freeze(folder)
        browser.find_element(By.ID, "class-4").click()
        wait_until(lambda: "not saved" in browser.find_element(By.ID, "message").text)
        assert "cannot write" in browser.find_element(By.ID, "message").text
        assert browser.find_elements(By.CSS_SELECTOR, ".frame.done") == []
        assert browser.find_element(By.ID, "progress").text == f"0 labelled, {FRAMES} to go"


# 7. Two writers of one table: the page labels while the collector adds frames; nothing is lost.

def frame_result(i: int):
    from edge_runtime.camera.pipeline import FrameResult
    from edge_runtime.camera.preprocess import PreparedFrame
    from edge_runtime.camera.smoothing import SmoothedLabel
    from edge_runtime.camera.sources import Frame

    probs = np.full(10, 0.1, np.float32)
    return FrameResult(Frame(np.full((60, 80, 3), i % 255, np.uint8), i, 0.0),
                       PreparedFrame(np.full((28, 28, 1), i % 255, np.uint8), (10, 10, 20, 20), 0.3),
                       probs, SmoothedLabel("unsure", None, 0.1, probs), 30.0)


def label_while(server: LabelServer, running, given: dict[str, int]) -> None:
    """Label the folder's first frames over and over while `running()`; what was last given, by path."""
    i = 0
    while running() or i < 2 * FRAMES:
        path, class_id = f"frames/{i % FRAMES:06d}.jpg", i % 10
        status, answer = post(server, "/label", {"path": path, "class_id": class_id})
        assert status == 200, answer
        given[path] = class_id
        i += 1


def test_the_page_and_the_collector_write_one_table_without_losing_anything(folder):
    from edge_runtime.camera.sinks.base import StreamInfo
    from edge_runtime.field.collect import CollectorSink

    sink = CollectorSink(str(folder), when="all", max_frames=1000, interval=0)
    sink.start(StreamInfo("cam\nera", 30.0, True, CLASS_NAMES))  # a source name with a line break, too
    given: dict[str, int] = {}
    with serving(folder) as server:
        fed = threading.Event()
        labeller = threading.Thread(target=label_while, args=(server, lambda: not fed.is_set(), given))
        labeller.start()
        for i in range(60):
            sink.consume(frame_result(i))
            time.sleep(0.01)
        fed.set()
        sink.stop(None)
        labeller.join(60)
        assert json.loads(call(server, "GET", "/frames.json")[1])["total"] == FRAMES + sink.saved
    rows = photos.read_rows(folder)
    assert sink.saved + sink.skipped == 60 and sink.saved >= 10 and len(rows) == FRAMES + sink.saved
    assert {r["path"]: int(r["fashion_mnist_classes"]) for r in rows[:FRAMES]} == given
    on_disk = {f"frames/{p.name}" for p in (folder / "frames").iterdir()}
    assert on_disk == {name for r in rows for name in (r["path"], r["model_input"])}  # nothing orphaned
    assert rows[-1]["source"] == "cam era"


def test_labelling_while_camera_collect_runs(folder, test_set, tmp_path):
    from toolkit.synthetic import write_video

    video = tmp_path / "items.avi"
    write_video(video, test_set[0][:8, ..., 0], frames_per_item=8, size=(240, 320), seed=3)
    given: dict[str, int] = {}
    with serving(folder) as server:
        camera = subprocess.Popen(
            [sys.executable, "-m", "toolkit.cli", "camera", "--source", str(video), "--headless", "--collect",
             str(folder), "--collect-when", "all", "--collect-interval", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        label_while(server, lambda: camera.poll() is None, given)
        assert camera.wait(120) == 0, camera.stderr.read()
        total = json.loads(call(server, "GET", "/frames.json")[1])["total"]
    rows = photos.read_rows(folder)
    assert len(rows) > FRAMES and total == len(rows)
    assert {r["path"]: int(r["fashion_mnist_classes"]) for r in rows[:FRAMES]} == given
    assert {f"frames/{p.name}" for p in (folder / "frames").glob("*.jpg")} == {r["path"] for r in rows}


def test_a_page_opened_before_frames_were_added_keeps_them(folder):
    book = LabelBook(folder)
    writer = photos.Table(folder)
    writer.update(lambda rows: rows.extend({**rows[0], "path": f"frames/new{i}.jpg"} for i in range(18)))
    book.label(index=2, class_id=3)
    rows = photos.read_rows(folder)
    assert len(rows) == FRAMES + 18 and rows[2]["photo_class"] == CLASS_NAMES[3]
    assert json.loads(book.table())["total"] == FRAMES + 18


def test_concurrent_labels_are_all_written(folder):
    with serving(folder) as server:
        def label_frame(i: int) -> None:
            for class_id in range(10):
                body = {"path": f"frames/{i:06d}.jpg", "class_id": (i + class_id) % 10}
                assert post(server, "/label", body)[0] == 200

        threads = [threading.Thread(target=label_frame, args=(i,)) for i in range(FRAMES)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    rows = photos.read_rows(folder)
    assert [r["fashion_mnist_classes"] for r in rows] == [str((i + 9) % 10) for i in range(FRAMES)]
    assert not list(folder.glob(".*.tmp*"))


# 8. A killed writer's temporary tables go at the next start; a live writer's do not.

def test_a_killed_writers_temporary_files_are_removed_at_the_start(folder):
    stale = folder / ".labels.csv.k9x2ab.tmp.csv"
    stale.write_text("half a table")
    frame = folder / "frames" / ".000009.jpg.k9x2ab.tmp.jpg"
    frame.write_bytes(b"half a frame")
    keep = folder / "notes.tmp.csv"
    keep.write_text("the user's")
    LabelBook(folder)
    assert not stale.exists() and keep.exists()
    from edge_runtime.camera.sinks.base import StreamInfo
    from edge_runtime.field.collect import CollectorSink

    sink = CollectorSink(str(folder))
    sink.start(StreamInfo("0", 30.0, True, CLASS_NAMES))
    sink.stop(None)
    assert not frame.exists() and keep.exists()


def test_a_live_writers_temporary_table_is_left_alone(folder, tmp_path):
    rows = photos.read_rows(folder)
    rows[0]["photo_class"] = "Coat"
    (tmp_path / "scratch").mkdir()
    photos.write_rows(tmp_path / "scratch", rows)
    books: list[LabelBook] = []
    with locked(folder / photos.LOCK):  # another writer, between writing its table aside and renaming it
        live = temp_beside(folder / "labels.csv")
        shutil.copy(tmp_path / "scratch" / "labels.csv", live)
        starting = threading.Thread(target=lambda: books.append(LabelBook(folder)))
        starting.start()
        time.sleep(0.5)
        assert live.exists() and not books  # the new page waits for the lock
        os.replace(live, folder / "labels.csv")
    starting.join(20)
    assert books and books[0].rows[0]["photo_class"] == "Coat"


# Past the list: the HTTP surface.

def test_other_methods_long_lines_and_bad_requests_are_one_line(folder):
    with serving(folder) as server:
        for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
            status, body, headers = call(server, method, "/label", b"{}")
            assert status == 405 and headers["Allow"] == "GET, POST" and one_line(body)
        assert call(server, "HEAD", "/")[0] == 405
        answers = [raw(server, b"BREW /pot HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
                   raw(server, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"),
                   raw(server, b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n"),
                   raw(server, b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n"),
                   raw(server, b"GET / HTTP/9.9\r\n\r\n"),
                   raw(server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")]  # TLS to plain HTTP
        assert [status_of(a) for a in answers] == [501, 414, 431, 431, 505, 400]
        for answer in answers:
            body_of(answer)
            assert b"Python" not in answer
        assert call(server, "GET", "/frames.json")[0] == 200  # and it still serves


def test_nul_bytes_and_encoded_paths_are_not_found(folder):
    with serving(folder) as server:
        for path in ("/file/frames/000000.jpg%00.png", "/frames.json%00", "/file/frames%2F..%2F..%2Fetc%2Fpasswd",
                     "/file/%2e%2e/labels.csv", "/file/frames/000000.jpg%2500", "/file/"):
            status, body, _ = call(server, "GET", path)
            assert status == 404 and one_line(body), path
        assert status_of(raw(server, b"GET /file/frames/000000.jpg\0.png HTTP/1.0\r\n\r\n")) in (400, 404)
        assert call(server, "GET", "/file/frames%2F000000.jpg")[0] == 200


def test_a_slow_or_idle_client_is_cut_off(folder, monkeypatch):
    monkeypatch.setattr(web_http, "REQUEST_SECONDS", 1.5)
    with serving(folder) as server:
        assert slowloris(server.port) < 4
    monkeypatch.setattr(web_http, "SOCKET_SECONDS", 0.5)
    with serving(folder) as server, socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        started = time.monotonic()
        assert s.recv(100) == b"" and time.monotonic() - started < 3  # idle: closed


def test_too_many_connections_are_closed_not_queued(folder, monkeypatch):
    monkeypatch.setattr(web_http, "MAX_CONNECTIONS", 3)
    with serving(folder) as server:
        one_too_many(server.port, 3, "/")

        def answered() -> bool:  # until the server has let the closed ones go, a new one may still be cut
            try:
                return call(server, "GET", "/frames.json")[0] == 200
            except (ConnectionError, http.client.HTTPException):
                return False

        wait_until(answered, timeout=10)


def test_only_this_servers_names_and_pages_are_answered(folder):
    port_free = {"Content-Type": "application/json"}
    with serving(folder) as server:
        here = f"127.0.0.1:{server.port}"
        status, body, _ = call(server, "GET", "/frames.json", headers={"Host": "evil.example"})
        assert status == 421 and b"frames" not in body  # a name pointed at 127.0.0.1: DNS rebinding
        status, _, headers = call(server, "GET", "/frames.json", headers={"Host": f"localhost:{server.port}"})
        assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert status_of(raw(server, f"GET / HTTP/1.1\r\nHost: {here}\r\nHost: evil.example\r\n\r\n".encode())) == 400
        for origin in ("http://evil.example", "null", f"http://{here}.evil.example"):
            status, answer = post(server, "/label", {"index": 0, "class_id": 1}, {"Origin": origin, **port_free})
            assert status == 403 and "another site" in answer["error"]
        assert photos.read_rows(folder)[0]["photo_class"] == photos.UNLABELLED
        assert post(server, "/label", {"index": 0, "class_id": 1}, {"Origin": f"http://{here}"})[0] == 200


@pytest.mark.parametrize("name", ["a,b", 'a"b', "a\nb", "<b>x</b>", "x" * 41, "coat", "NONE", "Unlabelled", "  ",
                                  "", "caf\u00e9", "a;b", "../x"])
def test_a_class_name_is_checked(folder, name):
    with serving(folder) as server:
        status, answer = post(server, "/label", {"index": 0, "class_name": name})
    assert status == 400 and answer["error"]
    assert photos.read_rows(folder)[0]["photo_class"] == photos.UNLABELLED


def test_a_class_of_the_users_round_trips(folder):
    with serving(folder) as server:
        assert post(server, "/label", {"index": 0, "class_name": " ring "})[1]["photo_class"] == "ring"
        assert json.loads(call(server, "GET", "/frames.json")[1])["user_classes"] == ["ring"]
    assert photos.read_rows(folder)[0]["photo_class"] == "ring"


def test_a_table_that_is_a_link_a_directory_or_a_device_is_one_line(folder, tmp_path):
    table = folder / "labels.csv"
    elsewhere = tmp_path / "elsewhere.csv"
    shutil.move(table, elsewhere)
    table.symlink_to(elsewhere)
    with pytest.raises(FmnistEdgeError, match="is a symbolic link"):
        LabelBook(folder)
    table.unlink()
    table.symlink_to("/dev/zero")
    started = time.monotonic()
    with pytest.raises(FmnistEdgeError, match="not a regular file"):
        photos.read_rows(folder)
    assert time.monotonic() - started < 1
    table.unlink()
    table.mkdir()
    with pytest.raises(FmnistEdgeError, match="unreadable"):
        LabelBook(folder)
    line = error_line(run_cli("label", str(folder), "--serve", "127.0.0.1:0", check=False, timeout=60))
    assert "labels.csv" in line


def test_frames_that_is_a_file_is_one_line(folder):
    from edge_runtime.camera.sinks.base import StreamInfo
    from edge_runtime.field.collect import CollectorSink

    shutil.rmtree(folder / "frames")
    (folder / "frames").write_text("not a folder")
    with serving(folder) as server:
        status, body, _ = call(server, "GET", "/file/frames/000000.jpg")
        assert status == 404 and one_line(body)
    with pytest.raises(FmnistEdgeError, match="cannot make the folder"):
        CollectorSink(str(folder)).start(StreamInfo("0", 30.0, True, CLASS_NAMES))


def test_the_collector_refuses_a_folder_it_cannot_add_to_in_one_line(folder, freeze):
    from edge_runtime.camera.sinks.base import StreamInfo
    from edge_runtime.field.collect import CollectorSink

    stream = StreamInfo("0", 30.0, True, CLASS_NAMES)
    with pytest.raises(FmnistEdgeError, match=f"--collect-max {photos.MAX_ROWS + 1}: a photo folder holds at most"):
        CollectorSink(str(folder), max_frames=photos.MAX_ROWS + 1).start(stream)
    table = folder / "labels.csv"
    good = table.read_bytes()
    table.write_bytes(good + b'frames/x.jpg,"unlabelled\n')
    with pytest.raises(FmnistEdgeError, match=r"line 8: unexpected end of data"):
        CollectorSink(str(folder)).start(stream)
    table.write_bytes(good)
    freeze(folder)
    with pytest.raises(FmnistEdgeError, match="cannot write"):
        CollectorSink(str(folder)).start(stream)


def test_a_table_saved_with_a_byte_order_mark_is_read(folder):
    rows = photos.read_rows(folder)
    (folder / "labels.csv").write_bytes(b"\xef\xbb\xbf" + (folder / "labels.csv").read_bytes())
    assert photos.read_rows(folder) == rows
    LabelBook(folder).label(index=0, class_id=2)
    assert photos.read_rows(folder)[0]["photo_class"] == CLASS_NAMES[2]


def test_undo_is_bounded(folder, monkeypatch):
    monkeypatch.setattr(label, "UNDO_DEPTH", 2)
    book = LabelBook(folder)
    for i in range(4):
        book.label(index=i, class_id=1)
    assert [book.undo()["index"] for _ in range(3)] == [3, 2, None]
    assert [r["photo_class"] for r in photos.read_rows(folder)[:4]] == [CLASS_NAMES[1]] * 2 + [photos.UNLABELLED] * 2


# The camera's page (`camera --serve`) stands on the same guarded server: a POST /save from another
# site's page keeps no frame, a foreign Host reads nothing, bodies are bounded, slow clients are cut off,
# and a stream viewer outlives the request deadline but not a stop in reading.

@contextlib.contextmanager
def camera_page(address: str = "127.0.0.1:0"):
    from edge_runtime.camera.serve import FrameServer
    from edge_runtime.camera.sinks.base import Reply

    saved = []
    server = FrameServer(address, routes={("POST", "/save"): lambda: saved.append(1) or Reply(b"{}", "application/json",
                                                                                             202)})
    try:
        yield server, saved
    finally:
        server.close()


def publish(server, frame: np.ndarray, i: int) -> None:
    server.publish(frame, {"label": "Shirt", "score": 0.9, "frame": i, "fps": 30.0, "latency_ms": 1.0})


def test_the_camera_page_refuses_other_sites_and_big_bodies(monkeypatch):
    with camera_page() as (server, saved):
        here = f"127.0.0.1:{server.port}"
        for origin in ("http://evil.example", "null", f"http://{here}.evil.example"):
            status, body, _ = call(server, "POST", "/save", b"", {"Origin": origin})
            assert status == 403 and "another site" in json.loads(one_line(body))["error"]
        assert saved == []
        assert call(server, "POST", "/save", b"", {"Origin": f"http://{here}"})[0] == 202  # the page's own button
        assert call(server, "POST", "/save")[0] == 202  # curl -X POST: no Origin, no body
        assert len(saved) == 2
        for path in ("/state.json", "/stream.mjpg", "/frame.jpg", "/"):
            status, body, _ = call(server, "GET", path, headers={"Host": "evil.example"})
            assert status == 421 and one_line(body), path  # a name pointed at 127.0.0.1: DNS rebinding
        status, _, headers = call(server, "GET", "/state.json", headers={"Host": f"localhost:{server.port}"})
        assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        for head, status in ((b"Content-Length: 5000\r\n", 413), (b"Transfer-Encoding: chunked\r\n", 411),
                             (b"Content-Length: -1\r\n", 400)):
            answer = raw(server, b"POST /save HTTP/1.1\r\nHost: 127.0.0.1\r\n" + head + b"\r\n")
            assert status_of(answer) == status and json.loads(body_of(answer))["error"]
        assert len(saved) == 2
        assert status_of(raw(server, b"POST /save HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")) == 202  # no length at all
        assert status_of(raw(server, b"POST /nope HTTP/1.0\r\nContent-Length: 0\r\n\r\n")) == 404
        assert len(saved) == 3
        for method in ("PUT", "DELETE", "HEAD"):
            assert call(server, method, "/save")[0] == 405
        assert status_of(raw(server, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")) == 414
        assert call(server, "GET", "/state.json")[0] == 200  # and it still serves
    with camera_page("0.0.0.0:0") as (server, saved):  # on the network: any name it is reached by
        assert call(server, "GET", "/state.json", headers={"Host": f"pi.local:{server.port}"})[0] == 200
        assert call(server, "POST", "/save", b"", {"Host": "pi.local", "Origin": "http://evil.example"})[0] == 403
        assert saved == []


def test_the_camera_page_cuts_slow_clients_and_caps_connections(monkeypatch):
    monkeypatch.setattr(web_http, "REQUEST_SECONDS", 1.5)
    with camera_page() as (server, _):
        assert slowloris(server.port) < 4
    monkeypatch.setattr(web_http, "MAX_CONNECTIONS", 2)
    with camera_page() as (server, _):
        one_too_many(server.port, 2, "/state.json")


def test_a_stream_outlives_the_request_deadline_but_not_a_viewer_that_stops_reading(monkeypatch):
    monkeypatch.setattr(web_http, "REQUEST_SECONDS", 1.0)
    monkeypatch.setattr(web_http, "SOCKET_SECONDS", 0.5)
    frame = np.zeros((120, 160, 3), np.uint8)
    with camera_page() as (server, _), socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        started, seen, i = time.monotonic(), b"", 0
        while time.monotonic() - started < 3:  # three times the request deadline, still streaming
            publish(server, frame, i)
            i += 1
            time.sleep(0.05)
            seen = seen[-65536:] + s.recv(65536)
        assert b"Content-Type: image/jpeg" in seen[-65536:] and server._viewers == 1
    with camera_page() as (server, _), socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)  # ~400 KB a frame
        wait_until(lambda: server._viewers == 1, timeout=10)

        def let_go() -> bool:  # the socket buffers fill, a write waits 0.5 s, the viewer is dropped
            publish(server, noise, 0)
            return server._viewers == 0

        wait_until(let_go, timeout=30)
