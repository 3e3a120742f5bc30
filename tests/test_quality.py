"""A camera service that says how well it sees: the quality series on /metrics, /healthz, the summary's
quality, and systemd's watchdog (a fake notify socket the test reads). A stalled source and a hanging
inference turn /healthz to 503 and stop the watchdog's pings. In-process, with a fake live capture."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import wait_until

from edge_runtime.camera import app
from edge_runtime.camera.quality import MIN_FRAMES, SCORE_BINS, Quality, _bin_of, psi, reference_shares, score_bin
from edge_runtime.core.classifier import Classifier, load_model


def test_psi_and_bins():
    shares = np.full(len(SCORE_BINS) - 1, 1 / (len(SCORE_BINS) - 1))
    assert psi(shares, shares) == 0.0
    moved = np.zeros_like(shares)
    moved[0] = 1.0
    assert psi(moved, shares) > 1.0  # everything in the lowest bin: a large shift
    assert score_bin(np.array([0.0, 0.29, 0.3, 0.995, 1.0])).tolist() == [0, 0, 1, 9, 9]
    # the per-frame bin (bisect, no NumPy call) is score_bin's, at the edges, between them, and on float32 scores
    scores = np.concatenate([np.array(SCORE_BINS), np.nextafter(np.array(SCORE_BINS), 2), np.nextafter(
        np.array(SCORE_BINS), -1), np.random.default_rng(0).random(2000)]).astype(np.float32)
    assert [_bin_of(float(s)) for s in scores] == score_bin(scores).tolist()


def test_the_bundled_models_reference_looks_like_the_test_set():
    with load_model() as model:
        reference = reference_shares(model)
    assert reference is not None and abs(reference.sum() - 1) < 1e-9
    assert reference[-1] > 0.3  # most test images are answered with a top score above 0.99


class Gate:
    """A fake live capture: frames of a dark item on a light background until `hold` is set, then it
    blocks (a source that stalls) until released."""

    def __init__(self):
        self.hold, self.released = threading.Event(), threading.Event()
        self.count = 0

    def isOpened(self):
        return True

    def read(self):
        if self.hold.is_set():
            self.released.wait()
        time.sleep(0.01)
        self.count += 1
        frame = np.full((120, 160, 3), 200, np.uint8)
        frame[30:90, 50:110] = 40
        return True, frame

    def get(self, prop):
        return 30.0

    def release(self):
        self.released.set()


def fetch(url: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read().decode()
            return resp.status, json.loads(body) if resp.headers["Content-Type"] == "application/json" else body
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A socket standing in for systemd's: what the camera tells it, as a list of messages."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # pings every 0.2 s
    heard: list[tuple[float, str]] = []
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            try:
                heard.append((time.monotonic(), sock.recv(4096).decode()))
            except OSError:
                continue

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    yield heard
    stop.set()
    thread.join(timeout=2)
    sock.close()


def dashboard_metrics() -> set[str]:
    """The series docs/grafana/fmnist-edge-dashboard.json queries (those of --mqtt aside)."""
    import re
    from pathlib import Path

    dashboard = Path(__file__).resolve().parents[1] / "docs" / "grafana" / "fmnist-edge-dashboard.json"
    if not dashboard.is_file():
        pytest.skip("the docs are not beside these tests")
    exprs = [t["expr"] for p in json.loads(dashboard.read_text())["panels"] for t in p["targets"]]
    return {n for e in exprs for n in re.findall(r"fmnist_edge_\w+", e) if not n.startswith("fmnist_edge_mqtt_")}


def pings_since(heard, since: float) -> int:
    return sum(1 for t, m in heard if t >= since and m == "WATCHDOG=1")


@pytest.mark.parametrize("stall", ["source", "inference"])
def test_a_stall_turns_healthz_to_503_and_stops_the_watchdog(stall, notify_socket, monkeypatch):
    gate, port = Gate(), free_port()
    hung = threading.Event()
    if stall == "inference":
        real = Classifier.predict

        def predict(self, images, batch=500):
            if gate.hold.is_set():
                hung.set()
                gate.released.wait()  # an inference that hangs
            return real(self, images, batch)

        monkeypatch.setattr(Classifier, "predict", predict)
    opts = app.CameraOptions(source="0", headless=True, serve=f"127.0.0.1:{port}", max_frames=400)
    results = []
    runner = threading.Thread(target=lambda: results.append(app.run(opts, opener=lambda s: gate)), daemon=True)
    runner.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: fetch(base + "/healthz")[0] == 200 if gate.count > 20 else False, timeout=60)
        status, body = fetch(base + "/healthz")
        assert status == 200 and body["status"] == "ok" and body["last_frame_age_s"] < 5 and body["fps"] > 0
        assert any(m.startswith("READY=1") for _, m in notify_socket)
        wait_until(lambda: pings_since(notify_socket, 0) >= 3)
        gate.hold.set()
        stalled_at = time.monotonic()
        wait_until(lambda: fetch(base + "/healthz")[0] == 503, timeout=30)
        status, body = fetch(base + "/healthz")
        assert body["status"] == "stalled" and body["last_frame_age_s"] >= 5
        assert pings_since(notify_socket, stalled_at + 1.0) == 0  # systemd would restart it now
        if stall == "inference":
            assert hung.is_set()
        metrics = fetch(base + "/metrics")[1]
    finally:
        gate.hold.clear()
        gate.released.set()
        runner.join(timeout=120)
    assert "fmnist_edge_unsure_frames_total" in metrics and "fmnist_edge_score_bucket" in metrics
    assert 'fmnist_edge_label_frames_total{label="' in metrics and "fmnist_edge_drift" in metrics
    for name in dashboard_metrics():  # the docs' Grafana dashboard asks only for series the camera serves
        assert f"\n{name}" in metrics or f"\n{name}{{" in metrics, name
    summary = results[0]
    assert summary.frames == 400 and sum(summary.quality["label_frames"].values()) == 400
    wait_until(lambda: any(m == "STOPPING=1" for _, m in notify_socket), timeout=5)


def test_quality_counts_and_drift(golden):
    from edge_runtime.camera.pipeline import FrameResult
    from edge_runtime.camera.preprocess import PreparedFrame
    from edge_runtime.camera.smoothing import UNSURE, SmoothedLabel
    from edge_runtime.camera.sources import Frame

    reference = np.zeros(len(SCORE_BINS) - 1)
    reference[-1] = 1.0  # the reference answers every image with a top score above 0.99
    quality = Quality(reference)

    def result(score: float | None, label: str) -> FrameResult:
        probs = np.full(10, (1 - (score or 0.1)) / 9, np.float32)
        probs[3] = score or 0.1
        prepared = PreparedFrame(np.zeros((28, 28, 1), np.uint8), None if score is None else (0, 0, 1, 1), 0.5)
        return FrameResult(Frame(np.zeros((4, 4, 3), np.uint8), 0, 0.0), prepared, probs,
                           SmoothedLabel(label, None, 0.5, probs), fps=30.0)

    for _ in range(MIN_FRAMES - 1):
        quality.add(result(0.999, "Dress"))
    assert quality.drift() is None  # too few frames to say
    quality.add(result(0.999, "Dress"))
    assert quality.drift() == 0.0  # like the reference
    for _ in range(MIN_FRAMES):
        quality.add(result(0.45, UNSURE))
        quality.add(result(None, UNSURE))
    summary = quality.to_dict()
    assert summary["unsure_frames"] == {"no_item": MIN_FRAMES, "low_score": MIN_FRAMES}
    assert summary["label_frames"] == {"Dress": MIN_FRAMES, UNSURE: 2 * MIN_FRAMES}
    assert summary["drift"] > 0.25  # half the recent scores fell to 0.45: a large shift
    mean = (MIN_FRAMES * 0.999 + MIN_FRAMES * 0.45) / (2 * MIN_FRAMES)  # the frames with an item in view
    assert summary["mean_score"] == pytest.approx(mean, abs=1e-4)
    # What a running service reports (MQTT's status, /state.json): the same figures, the frame count, no labels.
    assert quality.status() == {"frames": 3 * MIN_FRAMES, "unsure_frames": summary["unsure_frames"],
                                "mean_score": summary["mean_score"], "drift": summary["drift"]}


def test_drift_looks_at_the_last_window_of_scores_only():
    from edge_runtime.camera.pipeline import FrameResult
    from edge_runtime.camera.preprocess import PreparedFrame
    from edge_runtime.camera.smoothing import SmoothedLabel
    from edge_runtime.camera.sources import Frame

    rng = np.random.default_rng(7)
    reference = rng.dirichlet(np.ones(len(SCORE_BINS) - 1))
    window = MIN_FRAMES + 20
    quality = Quality(reference, window=window)
    scores = np.concatenate([rng.uniform(0.1, 0.5, 2 * window), rng.uniform(0.9, 1.0, window // 2)])
    for i, score in enumerate(scores):
        probs = np.full(10, (1 - score) / 9, np.float32)
        probs[i % 10] = score
        quality.add(FrameResult(Frame(np.zeros((4, 4, 3), np.uint8), i, 0.0),
                                PreparedFrame(np.zeros((28, 28, 1), np.uint8), (0, 0, 1, 1), 0.5), probs,
                                SmoothedLabel("Dress", 3, 0.9, probs), fps=30.0))
    last = scores[-window:].astype(np.float32)  # each frame's top score, as its probabilities hold it
    shares = np.bincount(score_bin(last), minlength=len(SCORE_BINS) - 1) / window
    assert quality.drift() == round(psi(shares, reference), 4)
    assert sum(quality.recent_counts) == window and quality.with_item == len(scores)
