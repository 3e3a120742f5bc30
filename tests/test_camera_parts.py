"""The camera's parts on their own: label smoothing, live-source grabbing and reopening, the HTTP server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from edge_runtime.camera.serve import BOUNDARY, FrameServer
from edge_runtime.camera.smoothing import UNSURE, LabelSmoother
from edge_runtime.camera.sources import FileSource, LiveSource, SourceError, kind_of, open_capture
from edge_runtime.web.address import parse_host_port
from edge_runtime.core.contract import CLASS_NAMES
from edge_runtime.core.errors import FmnistEdgeError


def one_hot(i: int, p: float = 0.9) -> np.ndarray:
    probs = np.full(10, (1 - p) / 9, np.float32)
    probs[i] = p
    return probs


def test_smoother_holds_a_steady_label_through_a_flicker():
    smoother = LabelSmoother(CLASS_NAMES, frames=5, min_score=0.6)
    labels = [smoother.update(one_hot(7)).label for _ in range(10)]
    labels.append(smoother.update(one_hot(5)).label)  # one odd frame
    assert labels[-1] == "Sneaker" and labels[5] == "Sneaker"


def test_smoother_goes_unsure_when_the_item_leaves():
    smoother = LabelSmoother(CLASS_NAMES, frames=5, min_score=0.6)
    for _ in range(10):
        smoother.update(one_hot(1))
    shown = [smoother.update(None) for _ in range(10)]
    assert shown[-1].label == UNSURE and shown[-1].class_id is None


def test_smoother_is_unsure_of_a_low_confidence_guess():
    smoother = LabelSmoother(CLASS_NAMES, frames=1, min_score=0.6)
    assert smoother.update(one_hot(3, p=0.4)).label == UNSURE
    assert smoother.update(one_hot(3, p=0.8)).label == "Dress"


def test_kind_of_source():
    assert [kind_of(s) for s in ("0", "2", "clip.mp4", "rtsp://cam/stream", "http://x:8080/v.mjpg", "picamera")] \
        == ["index", "index", "file", "url", "url", "picamera"]


def test_missing_device_and_file_are_refused_cleanly(tmp_path):
    with pytest.raises(SourceError, match=r"cannot open camera source '9'.*ls /dev/video"):
        open_capture("9")
    with pytest.raises(SourceError, match=r"cannot open camera source .*check the path"):
        open_capture(str(tmp_path / "nope.mp4"))


class FakeCapture:
    """Delivers numbered frames; fails after `fail_after` reads to play a camera that drops out."""

    opened = 0

    def __init__(self, fail_after: int | None = None, delay: float = 0.002):
        FakeCapture.opened += 1
        self.count, self.fail_after, self.delay = 0, fail_after, delay
        self._delivered = threading.Condition()

    def isOpened(self):
        return True

    def read(self):
        time.sleep(self.delay)
        if self.fail_after is not None and self.count >= self.fail_after:
            return False, None
        with self._delivered:
            self.count += 1
            self._delivered.notify_all()
        return True, np.full((4, 4, 3), self.count % 256, np.uint8)

    def wait_for(self, count: int, timeout: float = 10) -> bool:
        """Until `count` frames were delivered, however slow the machine."""
        with self._delivered:
            return self._delivered.wait_for(lambda: self.count >= count, timeout)

    def get(self, prop):
        return 30.0

    def release(self):
        pass


def test_live_source_keeps_only_the_newest_frame():
    capture = FakeCapture(delay=0.001)
    source = LiveSource("0", opener=lambda s: capture)
    try:
        first = source.read(timeout=2)
        assert capture.wait_for(first.index + 8)  # the grabber runs on while the loop is busy
        later = source.read(timeout=2)
        assert later.index > first.index + 5  # not the next frame in a queue: the newest one
        assert source.dropped >= later.index - first.index - 1 - 1
    finally:
        source.close()


def test_live_source_reopens_after_the_camera_drops_out():
    FakeCapture.opened = 0
    attempts = {"n": 0}

    def opener(name):
        attempts["n"] += 1
        if attempts["n"] == 1:
            return FakeCapture(fail_after=5)  # works, then stops delivering
        if attempts["n"] == 2:
            raise SourceError("still unplugged")  # the first reopen fails: back off and retry
        return FakeCapture()

    source = LiveSource("0", opener=opener, max_backoff=0.5)
    try:
        seen = []
        deadline = time.time() + 10
        while time.time() < deadline and (not source.gaps or len(seen) < 10):
            frame = source.read(timeout=1)
            if frame is not None:
                seen.append(frame.index)
        assert len(source.gaps) == 1 and source.gaps[0] >= 0.5  # one gap, with at least one backoff in it
        assert attempts["n"] == 3
        assert seen == sorted(seen) and len(seen) >= 10  # frames keep coming, still in order
    finally:
        source.close()


def test_silent_live_source_times_out_instead_of_hanging():
    source = LiveSource("0", opener=lambda s: FakeCapture(fail_after=0), max_backoff=0.2)
    try:
        start = time.time()
        assert source.read(timeout=0.3) is None
        assert time.time() - start < 2
    finally:
        source.close()


def test_file_source_reads_every_frame_in_order(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(12):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    source = FileSource(str(path))
    indices = []
    while (frame := source.read()) is not None:
        indices.append(frame.index)
    source.close()
    assert indices == list(range(12)) and source.fps == pytest.approx(25)


@pytest.mark.parametrize("value, expected", [
    ("8080", ("127.0.0.1", 8080)), (":8080", ("127.0.0.1", 8080)),
    ("0.0.0.0:9000", ("0.0.0.0", 9000)), ("[::1]:81", ("::1", 81)),
])
def test_serve_address(value, expected):
    assert parse_host_port(value, "--serve") == expected


@pytest.mark.parametrize("value", ["host:", "host:http", "1:99999"])
def test_bad_serve_address(value):
    with pytest.raises(FmnistEdgeError, match="give HOST:PORT"):
        parse_host_port(value, "--serve")


def fetch(url: str, timeout: float = 5) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def test_frame_server_routes_and_stream():
    server = FrameServer("127.0.0.1:0")
    base = f"http://127.0.0.1:{server.port}"
    try:
        start = time.time()
        status, _, _ = fetch(base + "/frame.jpg")
        assert status == 503 and time.time() - start < 5  # nothing published yet, and no hang
        status, ctype, page = fetch(base + "/")
        assert status == 200 and ctype.startswith("text/html") and b"stream.mjpg" in page
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[:, :, 2] = 255  # red
        server.publish(frame, {"label": "Sneaker", "score": 0.9, "frame": 3, "fps": 30.0, "latency_ms": 1.0})
        status, ctype, body = fetch(base + "/state.json")
        assert json.loads(body)["label"] == "Sneaker" and ctype == "application/json"
        status, ctype, jpeg = fetch(base + "/frame.jpg")
        decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == (120, 160, 3) and decoded[..., 2].mean() > 200
        assert fetch(base + "/nope")[0] == 404

        # The MJPEG stream: a viewer makes frames get encoded; read two parts.
        parts = []

        def read_stream():
            with urllib.request.urlopen(base + "/stream.mjpg", timeout=5) as resp:
                assert resp.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
                data = b""
                while data.count(b"\xff\xd9") < 2:
                    data += resp.read1(65536)
                parts.append(data)

        reader = threading.Thread(target=read_stream)
        reader.start()
        deadline, i = time.time() + 20, 0
        while not parts and reader.is_alive() and time.time() < deadline:  # until the viewer has two frames
            time.sleep(0.05)
            frame[:, :, 1] = i % 256
            server.publish(frame, {"label": "Sneaker", "score": 0.9, "frame": 4 + i, "fps": 30.0, "latency_ms": 1.0})
            i += 1
        reader.join(timeout=5)
        assert parts and parts[0].count(f"--{BOUNDARY}".encode()) >= 2
    finally:
        server.close()


def test_serve_port_in_use_is_one_clear_error():
    first = FrameServer("127.0.0.1:0")
    try:
        with pytest.raises(FmnistEdgeError, match="cannot listen"):
            FrameServer(f"127.0.0.1:{first.port}")
    finally:
        first.close()


# camera --reuse-still: a frame of the same scene gets the last preprocessed frame's result, nothing else does.

def still_item(test_set, centre=(320, 240), seed=0, size=(480, 640)) -> np.ndarray:
    from toolkit.synthetic import render_frame

    return render_frame(test_set[0][0, ..., 0], size, 240, centre, seed=seed)[0]


def test_a_still_scene_reuses_and_a_changed_one_does_not(test_set):
    from edge_runtime.camera.preprocess import preprocess_frame
    from edge_runtime.camera.still import StillOptions, StillScene

    calls = []
    still = StillScene(lambda image, roi: calls.append(roi) or preprocess_frame(image, roi), StillOptions(max_age=4))
    first, reused = still(still_item(test_set, seed=0))
    assert not reused and calls == [None]
    reused_count = 0
    for seed in range(1, 5):  # the same item, new sensor noise: the same result, not preprocessed again
        result, reused = still(still_item(test_set, seed=seed))
        assert reused and result is first
        reused_count += reused
    assert len(calls) == 1 and reused_count == 4
    assert not still(still_item(test_set, seed=5))[1]  # max_age: the fifth in a row is preprocessed anyway
    moved, reused = still(still_item(test_set, centre=(300, 240), seed=6))  # the item moved 20 px
    assert not reused and moved.box[0] < first.box[0] - 10
    assert not still(np.full((480, 640, 3), 200, np.uint8))[1]  # the item went away
    assert not still(np.full((240, 320, 3), 200, np.uint8))[1]  # another frame size
    assert still(np.full((240, 320, 3), 201, np.uint8))[1]
    assert len(calls) == 5
    for bad in (np.zeros((4, 4), bool), np.zeros((4, 4, 2), np.uint8), np.zeros((0, 3), np.uint8)):
        with pytest.raises(FmnistEdgeError, match="a frame must be"):  # the preprocessing's line, not OpenCV's
            still(bad)


def test_reuse_still_on_the_command_line(tmp_path, test_set):
    from conftest import run_cli

    from toolkit.synthetic import write_video

    images, _ = test_set
    path = tmp_path / "stand.avi"
    write_video(path, images[:6, ..., 0], frames_per_item=6, hand_held=False)
    runs = {}
    for flag in ((), ("--reuse-still",)):
        lines = [json.loads(line) for line in run_cli("camera", "--source", str(path), "--headless", "--json",
                                                       *flag).stdout.splitlines()]
        runs[bool(flag)] = lines[:-1], lines[-1]["summary"]
    (plain, plain_summary), (reusing, summary) = runs[False], runs[True]
    assert plain_summary["reused"] == 0 and not any(f["reused"] for f in plain)
    assert not reusing[0]["reused"] and summary["reused"] == sum(f["reused"] for f in reusing) >= 20  # of 30 possible
    assert [f["frame"] for f in reusing] == list(range(36))
    for f in reusing[::6]:  # each item's first frame is a new scene: preprocessed
        assert not f["reused"]
    agree = np.mean([a["class_id"] == b["class_id"] for a, b in zip(plain, reusing, strict=True)])
    assert agree >= 0.9, agree


def test_a_reused_frame_reuses_the_models_answer_too(test_set):
    from edge_runtime.camera.pipeline import FrameStep
    from edge_runtime.camera.sources import Frame

    class Counting:
        class_names = CLASS_NAMES
        calls = 0

        def predict(self, batch):
            self.calls += 1
            return one_hot(int(batch.sum()) % 10)[np.newaxis]

    model = Counting()
    step = FrameStep(model, LabelSmoother(CLASS_NAMES, frames=3, min_score=0.6), reuse_still=True)
    frames = [still_item(test_set, seed=s) for s in range(4)] + [still_item(test_set, centre=(280, 240), seed=9)]
    results = [step.process(Frame(image, i, 0.0), waited=0.0) for i, image in enumerate(frames)]
    assert [r.reused for r in results] == [False, True, True, True, False]
    assert model.calls == 2  # the first frame and the moved item; the three reused frames not
    assert all(r.probs is results[0].probs for r in results[1:4])
    plain = FrameStep(model, LabelSmoother(CLASS_NAMES, frames=3, min_score=0.6))
    for i, image in enumerate(frames):
        plain.process(Frame(image, i, 0.0), waited=0.0)
    assert model.calls == 7  # without --reuse-still, every frame


# --capture-size: a camera is asked for smaller frames (cheaper to decode and preprocess); files refuse it.

@pytest.mark.parametrize(("value", "expected"), [("320x240", (320, 240)), ("640X480", (640, 480)),
                                                 (" 16x4096 ", (16, 4096))])
def test_capture_size_is_parsed(value, expected):
    from edge_runtime.camera.sources import parse_size

    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["320", "320x", "x240", "320x240x3", "-320x240", "320.0x240", "15x240", "320x4097",
                                   "٣٢٠x240", ""])
def test_a_bad_capture_size_is_one_line(value):
    from edge_runtime.camera.sources import parse_size

    with pytest.raises(ValueError, match=r"WIDTHxHEIGHT|pixels"):
        parse_size(value)


class FakeCamera:
    """cv2.VideoCapture of a camera that has only the sizes it has."""

    modes = ((640, 480), (320, 240))

    def __init__(self, index):
        self.size, self.asked = (640, 480), {}

    def isOpened(self):
        return True

    def set(self, prop, value):
        self.asked[prop] = value
        want = (self.asked.get(cv2.CAP_PROP_FRAME_WIDTH, self.size[0]), self.asked.get(cv2.CAP_PROP_FRAME_HEIGHT,
                                                                                        self.size[1]))
        self.size = min(self.modes, key=lambda m: abs(m[0] - want[0]) + abs(m[1] - want[1]))
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_WIDTH: self.size[0], cv2.CAP_PROP_FRAME_HEIGHT: self.size[1]}.get(prop, 0.0)

    def release(self):
        pass


def test_a_camera_is_asked_for_the_capture_size(monkeypatch, caplog):
    from edge_runtime.camera import sources

    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeCamera)
    capture = open_capture("0", size=(320, 240))
    assert capture.asked == {cv2.CAP_PROP_FRAME_WIDTH: 320, cv2.CAP_PROP_FRAME_HEIGHT: 240}
    assert capture.size == (320, 240) and "not the" not in caplog.text
    assert open_capture("0").asked == {}  # no size: the camera's own
    assert open_capture("0", fps=10).asked == {cv2.CAP_PROP_FPS: 10}  # --max-fps asks the camera for it too
    capture = open_capture("0", size=(300, 200))  # a size it does not have: the nearest, and it says so
    assert capture.size == (320, 240) and "gives 320x240 frames, not the 300x200 asked for" in caplog.text
    with pytest.raises(SourceError, match="--capture-size is for a camera"):
        open_capture("clip.mp4", size=(320, 240))


def test_the_pi_camera_is_configured_with_the_capture_size(monkeypatch):
    import sys
    import types

    configured = []

    class Picamera2:
        def create_video_configuration(self, main, controls):
            configured.append((main["size"], controls))
            return main

        def configure(self, config):
            pass

        def start(self):
            pass

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=Picamera2))
    open_capture("picamera", size=(320, 240))
    open_capture("picamera")
    open_capture("picamera", fps=8)  # --max-fps: libcamera's frame duration, in microseconds
    assert configured == [((320, 240), {}), ((640, 480), {}), ((640, 480), {"FrameDurationLimits": (125000, 125000)})]


def test_capture_size_on_the_command_line(tmp_path):
    from conftest import run_cli

    proc = run_cli("camera", "--source", str(tmp_path / "clip.mp4"), "--capture-size", "320x240", "--headless",
                   check=False)
    assert proc.returncode == 2 and "--capture-size is for a camera" in proc.stderr
    proc = run_cli("camera", "--source", "0", "--capture-size", "320", "--headless", check=False)
    assert proc.returncode == 2 and "WIDTHxHEIGHT" in proc.stderr
    unit = run_cli("camera", "--source", "0", "--capture-size", "320X240", "--headless", "--systemd-unit").stdout
    assert "--capture-size 320x240" in unit


def test_the_capture_size_reaches_the_opener(tmp_path, test_set):
    from edge_runtime.camera.app import CameraOptions, run

    from toolkit.synthetic import write_video

    path = tmp_path / "v.avi"
    write_video(path, test_set[0][:2, ..., 0], frames_per_item=2, size=(240, 320))
    asked = []

    def opener(source, size=None):
        asked.append(size)
        return cv2.VideoCapture(source)

    summary = run(CameraOptions(source=str(path), headless=True, capture_size=(320, 240)), opener=opener)
    assert asked == [(320, 240)] and summary.frames == 4


def test_frame_server_asks_for_extra_state_when_the_page_asks():
    asked = []
    server = FrameServer("127.0.0.1:0", extra_state=lambda: asked.append(1) or {"collected": len(asked)})
    try:
        for i in range(5):
            server.publish(None, {"label": "Bag", "score": 0.9, "frame": i, "fps": 30.0, "latency_ms": 1.0})
        assert not asked  # a frame published costs nothing more
        state = json.loads(fetch(f"http://127.0.0.1:{server.port}/state.json")[2])
        assert state["frame"] == 4 and state["collected"] == 1
    finally:
        server.close()


def test_rate_limit_takes_at_most_hz_frames_a_second():
    from edge_runtime.camera.sources import RateLimit

    def taken(hz, times):
        limit = RateLimit(hz)
        return [t for t in times if limit.take(t)]

    frames = [i / 30 for i in range(300)]  # 10 s of a 30 fps camera
    assert taken(10, frames) == frames[::3]
    assert taken(30, frames) == frames  # at or above the camera's rate: every frame
    rng = np.random.default_rng(0)
    jittered = sorted(i / 30 + rng.uniform(-0.003, 0.003) for i in range(300))  # a camera's clock is not exact
    for hz in (15, 12, 7.5, 1):
        kept = taken(hz, jittered)
        assert abs(len(kept) - 10 * hz) <= 1, (hz, len(kept))  # the rate asked for, not a halved one
        assert all(np.searchsorted(kept, t + 1) - i <= hz + 1 for i, t in enumerate(kept))  # no second holds more
    assert taken(10, [0.0, 0.05, 5.0, 5.05, 5.1]) == [0.0, 5.0, 5.1]  # after a gap, the next frame, then the steps
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="above 0"):
            RateLimit(bad)


def test_file_source_with_a_rate_limit_takes_frames_of_its_own_time(tmp_path, caplog):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(12):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    source = FileSource(str(path), max_fps=5)
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    source.close()
    assert [f.index for f in frames] == [0, 5, 10] and source.skipped == 9  # 5 a second of a 25 fps file
    assert source.rate == 5 and FileSource(str(path), max_fps=50).rate == 25  # the rate it delivers at
    assert [int(f.image.mean()) for f in frames] == pytest.approx([0, 100, 200], abs=3)  # the frames at those places

    class NoRate(FakeCapture):
        def get(self, prop):
            return 0.0

    capture = NoRate(fail_after=6, delay=0)
    source = FileSource("clip", opener=lambda s: capture, max_fps=5)
    assert sum(1 for _ in iter(source.read, None)) == 6 and source.skipped == 0  # no frame rate: every frame
    assert source.rate == 0  # and it says it does not know the rate, not the limit's
    assert "has no frame rate" in caplog.text


class GrabbingCapture(FakeCapture):
    """A camera behind cv2.VideoCapture's grab() and retrieve(): counts the frames it was asked to decode."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.grabbed = self.retrieved = 0

    def grab(self):
        ok, self._image = self.read()
        self.grabbed += ok
        return ok

    def retrieve(self):
        self.retrieved += 1
        return True, self._image


def test_live_source_with_a_rate_limit_decodes_only_the_frames_it_takes():
    capture = GrabbingCapture(delay=0.004)  # a camera far faster than the limit, even under emulation
    start = time.perf_counter()
    source = LiveSource("0", opener=lambda s: capture, max_fps=5)
    try:
        frames = [f for f in (source.read(timeout=2) for _ in range(6)) if f is not None]
        assert len(frames) == 6 and [f.index for f in frames] == sorted({f.index for f in frames})
    finally:
        source.close()
    elapsed = time.perf_counter() - start  # the grabber's whole life
    assert capture.retrieved <= 5 * elapsed + 2  # at most the limit (one over in a second, and the first frame)
    assert capture.grabbed == capture.retrieved + source.skipped and source.skipped > capture.retrieved
    assert frames[-1].index >= 2 * len(frames)  # the indices count the frames skipped too
    assert source.rate == 5  # the limit, below the camera's 30


def test_live_source_rate_without_a_limit_or_a_camera_rate():
    class NoRate(FakeCapture):
        def get(self, prop):
            return 0.0

    for max_fps, rate in ((None, 30.0), (12, 12)):
        source = LiveSource("0", opener=lambda s: FakeCapture(), max_fps=max_fps)
        source.close()
        assert source.rate == rate
    for max_fps, rate in ((None, 0.0), (12, 12)):  # a camera that does not say: at most the limit
        source = LiveSource("0", opener=lambda s: NoRate(), max_fps=max_fps)
        source.close()
        assert source.rate == rate


def test_max_fps_reaches_the_opener_and_the_summary(tmp_path, test_set):
    from edge_runtime.camera.app import CameraOptions, run

    from toolkit.synthetic import write_video

    path = tmp_path / "v.avi"
    write_video(path, test_set[0][:3, ..., 0], frames_per_item=10, size=(240, 320))  # 30 frames at 30 fps
    asked = []

    def opener(source, fps=None):
        asked.append(fps)
        return cv2.VideoCapture(source)

    record = tmp_path / "rec.avi"
    summary = run(CameraOptions(source=str(path), headless=True, max_fps=10, record=str(record)), opener=opener)
    assert asked == [10] and summary.frames == 10 and summary.skipped == 20
    recorded = cv2.VideoCapture(str(record))
    try:  # the ten frames at ten a second: the recording lasts as long as the video, not a third of it
        assert recorded.get(cv2.CAP_PROP_FRAME_COUNT) == 10 and recorded.get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    finally:
        recorded.release()


def test_max_fps_on_a_file_without_a_frame_rate_records_every_frame_at_the_default_rate(tmp_path, test_set):
    """Such a file gives every frame (nothing says which to skip): a recording of them plays at the
    recorder's default, not at --max-fps, which would stretch it to three times its length."""
    from edge_runtime.camera.app import CameraOptions, run
    from edge_runtime.camera.video import DEFAULT_FPS

    from toolkit.synthetic import write_video

    path = tmp_path / "v.avi"
    write_video(path, test_set[0][:2, ..., 0], frames_per_item=6, size=(120, 160))

    class NoRate:
        def __init__(self, source):
            self._capture = cv2.VideoCapture(source)

        def get(self, prop):
            return 0.0 if prop == cv2.CAP_PROP_FPS else self._capture.get(prop)

        def __getattr__(self, name):
            return getattr(self._capture, name)

    record = tmp_path / "rec.avi"
    summary = run(CameraOptions(source=str(path), headless=True, max_fps=10, record=str(record)),
                  opener=lambda source, fps=None: NoRate(source))
    assert summary.frames == 12 and summary.skipped == 0
    recorded = cv2.VideoCapture(str(record))
    try:
        assert recorded.get(cv2.CAP_PROP_FRAME_COUNT) == 12
        assert recorded.get(cv2.CAP_PROP_FPS) == pytest.approx(DEFAULT_FPS)
    finally:
        recorded.release()


def test_max_fps_on_the_command_line(tmp_path):
    from conftest import run_cli

    for bad in ("0", "0.1", "-2", "nan", "fast"):  # under 0.5 a second, /healthz would call it stalled
        proc = run_cli("camera", "--source", "0", "--max-fps", bad, "--headless", check=False)
        assert proc.returncode == 2 and "--max-fps" in proc.stderr and "Traceback" not in proc.stderr
    unit = run_cli("camera", "--source", "0", "--max-fps", "5", "--headless", "--systemd-unit").stdout
    assert "--max-fps 5" in unit


def test_a_rate_nobody_could_play_is_taken_as_not_known(tmp_path, caplog):
    from conftest import avi_claiming
    from edge_runtime.camera.video import RATES, believable_rate

    for scale, rate in ((10**6, 1), (1, 10**6)):  # a millionth and a million frames a second
        path = avi_claiming(tmp_path / f"{scale}-{rate}.avi", scale, rate)
        assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) == pytest.approx(rate / scale)  # what it claims
        source = FileSource(str(path), max_fps=5)
        assert source.fps == source.rate == 0 and sum(1 for _ in iter(source.read, None)) == 6  # every frame
        source.close()
    assert "taken as not known" in caplog.text
    path = avi_claiming(tmp_path / "fine.avi", 1, 12)
    assert FileSource(str(path)).fps == 12

    class Says(FakeCapture):
        def __init__(self, said):
            super().__init__()
            self.said = said

        def get(self, prop):
            return self.said

    for said in (float("inf"), float("nan"), -30.0, None):  # a camera driver's infinity, a bad header
        source = LiveSource("0", opener=lambda s, said=said: Says(said))
        source.close()
        assert source.fps == source.rate == 0, said
    assert [believable_rate(x) for x in (RATES[0], RATES[1], 29.97)] == [RATES[0], RATES[1], 29.97]


def test_the_recorder_writes_at_the_default_rate_whatever_rate_it_is_given(tmp_path):
    """OpenCV's writer hangs for good on an infinite rate and refuses a millionth as if the name were wrong;
    run in a child so a hang fails the test instead of the suite."""
    script = (
        "import sys, numpy as np, cv2\n"
        "from edge_runtime.camera.video import AtomicVideoWriter\n"
        "for i, fps in enumerate((float('inf'), float('nan'), -1.0, 1e-6, 1e6)):\n"
        "    for ext in ('avi', 'mp4'):\n"
        "        path = f'{sys.argv[1]}/{i}.{ext}'\n"
        "        writer = AtomicVideoWriter(path, fps, (64, 48))\n"
        "        writer.write(np.zeros((48, 64, 3), np.uint8))\n"
        "        writer.close()\n"
        "        print(ext, cv2.VideoCapture(path).get(cv2.CAP_PROP_FPS))\n")
    from edge_runtime.camera.video import DEFAULT_FPS

    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    rates = [float(line.split()[1]) for line in proc.stdout.splitlines()]
    assert rates == [pytest.approx(DEFAULT_FPS)] * 10
