"""`camera --decode-scale N`: an MJPEG source read as its JPEG packets, each decoded at 1/N of its size; boxes
and --roi in the source's pixels all the same; packets that do not decode, or are over the pixel limit, skipped
without being decoded; any other source decoded in full, and said so."""

from __future__ import annotations

import json
import logging
import time

import cv2
import numpy as np
import pytest

from edge_runtime.camera.sinks.base import Sink
from edge_runtime.camera.sources import AUTO, MAX_BAD_PACKETS, Frame, ReducedJpegCapture, auto_scale, open_capture


def jpeg(height: int, width: int, value: int = 200) -> np.ndarray:
    """A JPEG file's bytes as the 1xN row an OpenCV capture gives a packet as."""
    image = np.full((height, width, 3), value, np.uint8)
    return cv2.imencode(".jpg", image)[1].reshape(1, -1)


def test_regions_and_boxes_convert_between_the_source_and_a_smaller_decode():
    frame = Frame(np.zeros((120, 160, 3), np.uint8), 0, 0.0, scale=4)
    assert frame.in_source_pixels((10, 20, 30, 40)) == (40, 80, 120, 160)
    assert frame.in_image_pixels((5, 7, 10, 10)) == (1, 1, 3, 4)  # every pixel the region touches
    assert frame.in_image_pixels((0, 0, 640, 480)) == (0, 0, 160, 120)
    assert frame.in_image_pixels(None) is None
    whole = Frame(np.zeros((480, 640, 3), np.uint8), 0, 0.0)
    assert whole.in_source_pixels((1, 2, 3, 4)) == (1, 2, 3, 4) and whole.in_image_pixels((1, 2, 3, 4)) == (1, 2, 3, 4)


class Frames(Sink):
    """Keeps what each frame was decoded to, and its JSON line."""

    def __init__(self):
        self.seen = []

    def consume(self, result):
        self.seen.append((result.frame.image.shape, result.frame.scale, result.record()))


def test_an_mjpeg_video_is_decoded_at_a_quarter_with_boxes_and_roi_in_its_own_pixels(tmp_path, test_set):
    from edge_runtime.camera.app import CameraOptions, run

    from toolkit.synthetic import write_video

    path = tmp_path / "clip.avi"  # MJPEG, as a USB camera sends it
    write_video(path, test_set[0][:8, ..., 0], frames_per_item=3)
    runs = {}
    for scale in (1, 4):
        sink = Frames()
        run(CameraOptions(source=str(path), headless=True, decode_scale=scale), [sink])
        runs[scale] = sink.seen
    assert {(shape, s) for shape, s, _ in runs[1]} == {((480, 640, 3), 1)}
    assert {(shape, s) for shape, s, _ in runs[4]} == {((120, 160, 3), 4)}
    full, quarter = ([line for _, _, line in runs[s]] for s in (1, 4))
    assert [line["frame"] for line in quarter] == list(range(24))
    assert all(a["found"] and b["found"] for a, b in zip(full, quarter, strict=True))
    for a, b in zip(full, quarter, strict=True):  # the same item, found in the same place of the 640x480 frame
        assert np.abs(np.array(a["box"]) - b["box"]).max() <= 16, (a["box"], b["box"])
        x, y, w, h = b["box"]
        assert x % 4 == y % 4 == w % 4 == h % 4 == 0 and x + w <= 640 + 3 and y + h <= 480 + 3
    agree = np.mean([a["class_id"] == b["class_id"] for a, b in zip(full, quarter, strict=True)])
    assert agree >= 0.8, agree

    sink = Frames()  # a region given in the source's pixels is looked in there, whatever the decode
    run(CameraOptions(source=str(path), headless=True, decode_scale=4, roi=(0, 0, 320, 480)), [sink])
    boxes = [line["box"] for _, _, line in sink.seen if line["found"]]
    assert boxes and all(x + w <= 320 for x, _, w, _ in boxes)


class FakeV4L2:
    """cv2.VideoCapture of a V4L2 camera that starts in YUYV, has an MJPEG mode, and gives its packets as they
    come once asked not to convert them (CAP_PROP_CONVERT_RGB 0), as OpenCV's V4L2 backend does."""

    def __init__(self, index):
        self.fourcc, self.convert = cv2.VideoWriter_fourcc(*"YUYV"), True

    def isOpened(self):
        return True

    def getBackendName(self):
        return "V4L2"

    def set(self, prop, value):
        if prop == cv2.CAP_PROP_FOURCC:
            self.fourcc = value
        elif prop == cv2.CAP_PROP_CONVERT_RGB:
            self.convert = bool(value)
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_WIDTH: 640, cv2.CAP_PROP_FRAME_HEIGHT: 480, cv2.CAP_PROP_FOURCC: self.fourcc,
                cv2.CAP_PROP_FPS: 30.0}.get(prop, 0.0)

    def grab(self):
        return True

    def retrieve(self):
        return True, np.full((480, 640, 3), 200, np.uint8) if self.convert else jpeg(480, 640)

    def read(self):
        return self.retrieve()

    def release(self):
        pass


def test_a_v4l2_camera_is_switched_to_mjpeg_and_read_as_packets(monkeypatch):
    from edge_runtime.camera import sources

    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeV4L2)
    capture = open_capture("0", decode_scale=2)
    assert isinstance(capture, ReducedJpegCapture)
    ok, image = capture.read()
    assert ok and image.shape == (240, 320, 3) and capture.frame_scale == 2
    assert not isinstance(open_capture("0"), ReducedJpegCapture)  # without the option: as OpenCV decodes it


def test_a_live_source_gives_its_frames_with_their_scale(monkeypatch):
    from edge_runtime.camera import sources

    monkeypatch.setattr(sources.cv2, "VideoCapture", FakeV4L2)
    source = sources.LiveSource("0", opener=lambda src: open_capture(src, decode_scale=AUTO))
    try:
        frame = source.read(timeout=5)
    finally:
        source.close()
    assert frame is not None and frame.image.shape == (120, 160, 3) and frame.scale == 4


def test_a_source_that_is_not_mjpeg_is_decoded_in_full_and_says_so(tmp_path, test_set, caplog):
    from toolkit.synthetic import write_video

    path = tmp_path / "clip.mp4"  # mp4v: not JPEG packets
    write_video(path, test_set[0][:1, ..., 0], frames_per_item=2)
    capture = open_capture(str(path), decode_scale=4)
    assert not isinstance(capture, ReducedJpegCapture)
    assert "--decode-scale 4" in caplog.text and "not MJPEG packets; decoding them in full" in caplog.text
    ok, image = capture.read()
    assert ok and image.shape == (480, 640, 3)
    capture.release()


class Packets:
    """A capture that gives the packets it was made with, then ends."""

    def __init__(self, packets):
        self.packets, self.released = list(packets), False

    def grab(self):
        return bool(self.packets)

    def retrieve(self):
        return True, self.packets.pop(0)

    def get(self, prop):
        return 0.0  # no frame rate, no size: as a raw stream says

    def release(self):
        self.released = True


def test_packets_that_do_not_decode_or_are_too_big_are_skipped_undecoded(monkeypatch, caplog):
    monkeypatch.setenv("FMNIST_EDGE_MAX_PIXELS", "100000")
    decoded = np.full((48, 64, 3), 9, np.uint8)
    capture = ReducedJpegCapture(Packets([jpeg(48, 64), jpeg(400, 300), np.frombuffer(b"\xff\xd8 not a jpeg", np.uint8)
                                          .reshape(1, -1), np.zeros((1, 0), np.uint8), jpeg(96, 128), decoded]),
                                 "cam", 2)
    with caplog.at_level(logging.WARNING):
        ok, image = capture.read()
        assert ok and image.shape == (24, 32, 3) and capture.frame_scale == 2
        ok, image = capture.read()  # 300x400 is over 100,000 pixels: skipped, and so are the broken packets
        assert ok and image.shape == (48, 64, 3) and capture.skipped_packets == 3
        ok, image = capture.read()  # a backend that decoded it after all: passed on as it is
        assert ok and image is decoded and capture.frame_scale == 1
        assert capture.read() == (False, None)
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["cam: skipped a frame (300x400 pixels, over the limit of 100,000 (FMNIST_EDGE_MAX_PIXELS); "
                        "1 so far): it is not decoded"]  # one line, not one a frame

    limited = ReducedJpegCapture(Packets([jpeg(48, 64, 0), np.frombuffer(b"junk", np.uint8).reshape(1, -1),
                                          jpeg(48, 64, 90)]), "cam", 2)
    assert limited.grab() and limited.retrieve()[1].mean() < 10  # grab and retrieve, as --max-fps reads
    ok, image = limited.retrieve() if limited.grab() else (False, None)
    assert ok and 80 < image.mean() < 100 and limited.skipped_packets == 1  # the junk skipped for the next frame

    whole = jpeg(48, 64, 90)
    cut = ReducedJpegCapture(Packets([whole[:, : whole.shape[1] // 2], whole]), "cam", 2)
    with caplog.at_level(logging.WARNING):
        ok, image = cut.read()  # half a frame, which libjpeg would decode with its rest grey: skipped, as a photo is
    assert ok and 80 < image.mean() < 100 and cut.skipped_packets == 1
    assert "cam: skipped a frame (a JPEG cut short: no end marker; 1 so far)" in caplog.text

    endless = ReducedJpegCapture(Packets([np.frombuffer(b"junk", np.uint8).reshape(1, -1)] * (MAX_BAD_PACKETS + 5)),
                                 "cam", 4)
    assert endless.read() == (False, None) and endless.skipped_packets == MAX_BAD_PACKETS  # gives up, not forever


def test_decode_scale_on_the_command_line(tmp_path):
    from conftest import run_cli

    proc = run_cli("camera", "--source", "clip.avi", "--decode-scale", "3", "--headless", check=False)
    assert proc.returncode == 2 and "--decode-scale" in proc.stderr
    unit = run_cli("camera", "--source", "0", "--decode-scale", "4", "--headless", "--systemd-unit").stdout
    assert "--decode-scale 4" in unit

    # A raw MJPEG stream whose fourth frame is bigger than the limit: that frame is skipped, not decoded (decoded in
    # full, FFmpeg would decode it at its own size before scaling it to the stream's).
    small, big = (cv2.imencode(".jpg", np.full((h, w, 3), 200, np.uint8))[1].tobytes() for h, w in ((48, 64),
                                                                                                    (800, 1000)))
    stream = tmp_path / "grows.mjpeg"
    stream.write_bytes(small * 3 + big + small * 2)
    proc = run_cli("camera", "--source", str(stream), "--headless", "--json", "--decode-scale", "2",
                   env={"FMNIST_EDGE_MAX_PIXELS": "100000"})
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["frame"] for line in lines[:-1]] == [0, 1, 2, 4, 5] and lines[-1]["summary"]["frames"] == 5
    assert lines[-1]["summary"]["undecoded"] == 1
    assert "skipped a frame (1000x800 pixels, over the limit of 100,000" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("scale", [2, 8])
def test_every_scale_decodes_to_its_share_of_the_frame(scale):
    capture = ReducedJpegCapture(Packets([jpeg(480, 640)]), "cam", scale)
    ok, image = capture.read()
    assert ok and image.shape == (480 // scale, 640 // scale, 3)


def test_auto_keeps_the_copy_the_item_is_searched_on():
    """auto: each frame at the smallest scale whose longest side is still at least 128 px (the search's copy)."""
    assert [auto_scale(size) for size in ((640, 480), (1280, 720), (1920, 1080), (320, 240), (200, 150), (64, 48),
                                          (480, 640), (1024, 100))] == [4, 8, 8, 2, 1, 1, 4, 8]
    capture = ReducedJpegCapture(Packets([jpeg(480, 640), jpeg(720, 1280), jpeg(150, 200)]), "cam", AUTO)
    shapes = []
    while (got := capture.read())[0]:
        shapes.append((got[1].shape, capture.frame_scale))
    assert shapes == [((120, 160, 3), 4), ((90, 160, 3), 8), ((150, 200, 3), 1)]


def test_auto_on_the_command_line(tmp_path, test_set):
    from conftest import run_cli

    from toolkit.synthetic import write_video

    path = tmp_path / "clip.avi"
    write_video(path, test_set[0][:2, ..., 0], frames_per_item=2)
    proc = run_cli("camera", "--source", str(path), "--headless", "--json", "--decode-scale", "auto")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[-1]["summary"]["frames"] == 4
    assert all(v % 4 == 0 for line in lines[:-1] for v in line["box"])  # a quarter of 640x480: steps of 4 px


def test_an_http_mjpeg_stream_is_read_as_packets_and_a_frame_over_the_limit_is_skipped(monkeypatch, caplog, test_set):
    """An IP camera's stream (multipart MJPEG over HTTP, read live by FFmpeg): decoded at a half, boxes in the
    stream's pixels, and a frame that grew past the pixel limit after the stream opened skipped undecoded."""
    from soak import stream_server  # benchmarks/soak.py's stream: the frames given, in turn, as fast as read

    from edge_runtime.camera.app import CameraOptions, run

    from toolkit.synthetic import render_frame

    monkeypatch.setenv("FMNIST_EDGE_MAX_PIXELS", "100000")  # 320x240 (76,800) passes; 1000x800 does not
    item = render_frame(test_set[0][0, ..., 0], (240, 320), 120, (160, 120), seed=0)[0]
    server = stream_server([cv2.imencode(".jpg", image)[1].tobytes()
                            for image in (item, np.full((800, 1000, 3), 200, np.uint8))])  # small, big, small...
    sink = Frames()
    try:
        with caplog.at_level(logging.WARNING):
            url = f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
            summary = run(CameraOptions(source=url, headless=True, decode_scale=AUTO, max_frames=4), [sink])
    finally:
        server.shutdown()
        server.server_close()
    assert summary.frames == 4 and len(sink.seen) == 4
    assert {(shape, scale) for shape, scale, _ in sink.seen} == {((120, 160, 3), 2)}  # auto: a half of 320x240
    boxes = [line["box"] for _, _, line in sink.seen]
    assert all(line["found"] for _, _, line in sink.seen) and all(v % 2 == 0 for box in boxes for v in box)
    assert all(x + w <= 320 and y + h <= 240 for x, y, w, h in boxes)  # the stream's own pixels
    assert "skipped a frame (1000x800 pixels, over the limit of 100,000" in caplog.text
    assert summary.undecoded >= 1 and f"{summary.undecoded} undecoded" in summary.format_text()


def test_frames_skipped_undecoded_are_counted_on_metrics_and_over_reopenings(monkeypatch):
    """A camera service says how many frames it could not decode: /metrics has them, and a live source keeps
    the count of the captures it reopened from."""
    from edge_runtime.camera import sources
    from edge_runtime.camera.sinks import StreamInfo
    from edge_runtime.camera.sinks.metrics import MetricsSink
    from edge_runtime.core.contract import CLASS_NAMES

    junk = np.frombuffer(b"junk", np.uint8).reshape(1, -1)
    source = sources.FileSource("clip.avi", opener=lambda src: ReducedJpegCapture(
        Packets([jpeg(48, 64), junk, junk, jpeg(48, 64)]), src, 2))
    sink = MetricsSink()
    sink.start(StreamInfo("clip.avi", 0.0, False, CLASS_NAMES, source))
    assert [frame.index for frame in iter(source.read, None)] == [0, 3]
    assert "fmnist_edge_undecoded_frames_total 2.0" in sink.exposition().decode()

    captures = iter([[junk, jpeg(48, 64)], [junk, junk, jpeg(48, 64)]])  # the second after a reopening
    live = sources.LiveSource("cam", opener=lambda src: ReducedJpegCapture(Packets(next(captures, [])), src, 2),
                              max_backoff=0.5)
    try:
        deadline = time.time() + 20
        while live.undecoded < 3 and time.time() < deadline:
            time.sleep(0.05)
    finally:
        live.close()
    assert live.undecoded == 3 and live.gap_count >= 1
