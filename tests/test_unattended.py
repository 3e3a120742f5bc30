"""Unattended operation: Prometheus metrics on --serve, label changes to a real MQTT broker (Debian's
mosquitto, started here on 127.0.0.1) that goes away and comes back, and the systemd unit."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import error_line, run_cli

from edge_runtime.core.contract import CLASS_NAMES

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@pytest.fixture(scope="module")
def video(long_video) -> Path:
    """A file someone watches plays at its own 30 frames/s (conftest.long_video)."""
    return long_video


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_camera(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "toolkit.cli", "camera", "--headless", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 30, step: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"gave up waiting after {timeout} s")


def get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return None


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


def test_metrics_on_serve(video):
    port = free_port()
    proc = start_camera("--source", str(video), "--serve", f"127.0.0.1:{port}")
    try:
        base = f"http://127.0.0.1:{port}"
        first = wait_for(lambda: (t := get(base + "/metrics")) and metric(t, "fmnist_edge_frames_total") > 5 and t)
        later = wait_for(lambda: (t := get(base + "/metrics")) and metric(t, "fmnist_edge_frames_total")
                         > metric(first, "fmnist_edge_frames_total") and t)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert metric(later, "fmnist_edge_frame_latency_seconds_count") == metric(later, "fmnist_edge_frames_total")
    assert metric(later, "fmnist_edge_frames_reused_total") == 0  # without --reuse-still, every frame is preprocessed
    assert 0 < metric(later, "fmnist_edge_fps") < 40  # a watched file plays at its own 30 frames/s
    shown = [metric(later, "fmnist_edge_label", f'{{label="{name}"}}') for name in (*CLASS_NAMES, "unsure")]
    assert sorted(shown) == [0.0] * 10 + [1.0]  # exactly one label is shown
    for stage in ("wait", "preprocess", "inference", "draw"):
        assert metric(later, "fmnist_edge_stage_seconds_total", f'{{stage="{stage}"}}') >= 0
    assert metric(later, "fmnist_edge_dropped_frames_total") == 0
    assert metric(later, "fmnist_edge_source_gaps_total") == 0
    assert metric(later, "fmnist_edge_skipped_frames_total") == 0  # no --max-fps: every frame
    assert metric(later, "fmnist_edge_undecoded_frames_total") == 0  # no --decode-scale: OpenCV decodes them


def test_metrics_count_the_frames_max_fps_skips(video):
    port = free_port()
    proc = start_camera("--source", str(video), "--serve", f"127.0.0.1:{port}", "--max-fps", "10")
    try:
        base = f"http://127.0.0.1:{port}"
        text = wait_for(lambda: (t := get(base + "/metrics")) and metric(t, "fmnist_edge_frames_total") > 20 and t)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    frames, skipped = metric(text, "fmnist_edge_frames_total"), metric(text, "fmnist_edge_skipped_frames_total")
    assert 2 * (frames - 1) <= skipped <= 2 * (frames + 1)  # two of every three frames of a 30 fps file
    assert 0 < metric(text, "fmnist_edge_fps") <= 12  # played at its own time: ten a second (N frames in N-1 tenths)


class Broker:
    """mosquitto on 127.0.0.1, which a test can stop and start again on the same port."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.config = tmp / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for(self._listening)

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Listener:
    """A subscriber that collects every message on the topic, reconnecting when the broker comes back."""

    def __init__(self, port: int, topic: str):
        import paho.mqtt.client as mqtt

        self.messages: list[dict] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        self.client.on_message = lambda c, u, m: self.messages.append(json.loads(m.payload))
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="Debian's mosquitto is not installed (make test does it)")
def test_mqtt_publishes_label_changes_and_survives_the_broker_going_away(video, tmp_path):
    pytest.importorskip("paho.mqtt.client", reason="needs the [mqtt] extra")
    broker = Broker(tmp_path)
    broker.start()
    listener = Listener(broker.port, "shop/camera/label")
    camera = start_camera("--source", str(video), "--json", "--serve", "127.0.0.1:0", "--mqtt",
                          f"127.0.0.1:{broker.port}", "--topic", "shop/camera/label")
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: lines.extend(json.loads(line) for line in camera.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: len(listener.messages) >= 2)  # label changes arrive
        before = len(lines)
        time.sleep(2)
        frames_before_stop = len(lines) - before  # this machine's pace with the broker up
        broker.stop()
        down_at, frames_at_stop = time.time(), len(lines)
        time.sleep(2)  # the broker is away
        frames_while_down = len(lines) - frames_at_stop
        broker.start()
        before = len(listener.messages)
        wait_for(lambda: len(listener.messages) > before, timeout=60)  # reconnected, publishing again
        camera.wait(timeout=60)
    finally:
        camera.kill()
        listener.close()
        broker.stop()
    reader.join(timeout=10)
    assert camera.returncode == 0 and lines[-1]["summary"]["ended_by"] == "end of file"
    # The camera never waited for the network: it kept its pace (30 frames/s, or what a slower machine
    # manages) while the broker was gone.
    assert frames_while_down >= 0.5 * frames_before_stop > 0, (frames_before_stop, frames_while_down)
    message = listener.messages[0]
    assert set(message) == {"label", "class_id", "score", "frame", "time", "source"}
    assert message["label"] in (*CLASS_NAMES, "unsure") and message["source"] == str(video)
    changes = [line["label"] for line in lines[:-1]]
    published = [m["label"] for m in listener.messages]
    assert all(label in changes for label in published)
    assert time.time() - down_at < 120


def label_changes(lines: list[dict]) -> int:
    """How many times the shown label changed (what the MQTT sink publishes), from --json's frame lines."""
    shown = [line["label"] for line in lines if "summary" not in line]
    return sum(1 for i, label in enumerate(shown) if i == 0 or label != shown[i - 1])


@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="Debian's mosquitto is not installed (make test does it)")
def test_mqtt_normal_exit_delivers_everything_and_says_nothing_alarming(video, tmp_path):
    pytest.importorskip("paho.mqtt.client", reason="needs the [mqtt] extra")
    broker = Broker(tmp_path)
    broker.start()
    try:
        proc = subprocess.run([sys.executable, "-m", "toolkit.cli", "camera", "--headless", "--source", str(video),
                               "--json", "--max-frames", "90", "--mqtt", f"127.0.0.1:{broker.port}"],
                              capture_output=True, text=True, timeout=120, check=False)
    finally:
        broker.stop()
    assert proc.returncode == 0, proc.stderr
    assert "lost" not in proc.stderr and "not delivered" not in proc.stderr, proc.stderr  # not "Normal disconnection"


@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="Debian's mosquitto is not installed (make test does it)")
def test_mqtt_broker_gone_for_the_rest_of_the_run_is_said_and_counted(video, tmp_path):
    pytest.importorskip("paho.mqtt.client", reason="needs the [mqtt] extra")
    broker, port = Broker(tmp_path), free_port()
    broker.start()
    listener = Listener(broker.port, "t")
    camera = start_camera("--source", str(video), "--json", "--serve", f"127.0.0.1:{port}", "--mqtt",
                          f"127.0.0.1:{broker.port}", "--topic", "t")
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: lines.extend(json.loads(line) for line in camera.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: len(listener.messages) >= 2)
        broker.stop()  # for the rest of the run
        scraped = wait_for(lambda: (t := get(f"http://127.0.0.1:{port}/metrics"))
                           and metric(t, "fmnist_edge_mqtt_connected") == 0
                           and metric(t, "fmnist_edge_mqtt_undelivered") > 0 and t, timeout=60)
        camera.wait(timeout=120)  # stdout is the reader's
        stderr = camera.stderr.read()
    finally:
        camera.kill()
        listener.close()
    reader.join(timeout=10)
    assert camera.returncode == 0 and "Traceback" not in stderr
    assert metric(scraped, "fmnist_edge_mqtt_delivered_total") >= 2
    said = re.search(r"MQTT: (\d+) of (\d+) label changes not delivered", stderr)
    assert said and "lost 127.0.0.1" in stderr, stderr
    undelivered, total = int(said.group(1)), int(said.group(2))
    assert total == label_changes(lines) and undelivered >= total - len(listener.messages) > 0


def test_mqtt_broker_down_from_the_start_is_said_at_once(video):
    pytest.importorskip("paho.mqtt.client", reason="needs the [mqtt] extra")
    camera = start_camera("--source", str(video), "--mqtt", f"127.0.0.1:{free_port()}")  # nobody listens
    try:
        first = ""
        while "MQTT" not in first and camera.poll() is None:
            first = camera.stderr.readline()  # said while running, not only at exit
        time.sleep(3)  # label changes queue up meanwhile
        camera.terminate()
        _, rest = camera.communicate(timeout=30)
    finally:
        camera.kill()
    assert "cannot reach the broker at 127.0.0.1" in first, first
    assert "label changes not delivered" in rest and "Traceback" not in rest and "cannot reach" not in rest


def test_systemd_unit_paths_and_values(video, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    unit = run_cli("camera", "--source", str(video), "--headless", "--collect", "frames", "--systemd-unit",
                   cwd=tmp_path).stdout
    assert f"--collect {tmp_path.resolve() / 'frames'}" in unit  # the service runs in another directory
    for value in ("0\nExecStartPre=/bin/rm -rf /", "x\rBad", "a\x1bb"):
        line = error_line(run_cli("camera", "--source", value, "--headless", "--systemd-unit", check=False))
        assert "cannot go into a systemd unit" in line
    line = error_line(run_cli("camera", "--source", "0", "--headless", "--topic", "a\nb", "--mqtt", "h:1",
                              "--systemd-unit", check=False))
    assert "cannot go into a systemd unit" in line or "--topic" in line


def test_mqtt_flags_are_checked():
    line = error_line(run_cli("camera", "--headless", "--mqtt", "127.0.0.1:1", "--topic", "a/+/b", check=False))
    assert "--topic 'a/+/b'" in line and "wildcards" in line
    proc = run_cli("camera", "--headless", "--topic", "x", check=False)
    assert proc.returncode == 2 and "--topic is for --mqtt" in proc.stderr


def test_systemd_unit(video, tmp_path):
    unit = run_cli("camera", "--source", str(video), "--headless", "--serve", "0.0.0.0:8080",
                   "--systemd-unit").stdout
    assert "Restart=on-failure" in unit and "StandardOutput=journal" in unit and "MemoryMax=" in unit
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
    assert f"camera --source {video.resolve()} --headless --serve 0.0.0.0:8080" in exec_start
    path = tmp_path / "fmnist-edge.service"
    path.write_text(unit)
    analyze = shutil.which("systemd-analyze")
    if analyze:
        check = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
    # What the service would run, runs (for a few frames, without the server).
    import shlex

    words = shlex.split(exec_start.replace("%%", "%"))
    words = [*words[:words.index("--serve")], "--max-frames", "3", "--json"]
    done = subprocess.run(words, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and json.loads(done.stdout.splitlines()[-1])["summary"]["frames"] == 3


def test_a_service_needs_headless():
    line = error_line(run_cli("camera", "--source", "0", "--systemd-unit", check=False))
    assert "a service has no display: add --headless" in line


@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="Debian's mosquitto is not installed (make test does it)")
def test_mqtt_status_topic_says_how_well_it_sees(tmp_path, monkeypatch):
    pytest.importorskip("paho.mqtt.client", reason="needs the [mqtt] extra")
    import numpy as np

    from edge_runtime.camera.pipeline import FrameResult
    from edge_runtime.camera.preprocess import PreparedFrame
    from edge_runtime.camera.sinks import StreamInfo
    from edge_runtime.camera.sinks import mqtt as mqtt_sink
    from edge_runtime.camera.smoothing import SmoothedLabel
    from edge_runtime.camera.sources import Frame

    monkeypatch.setattr(mqtt_sink, "STATUS_EVERY", 0.0)  # every frame, for the test
    broker = Broker(tmp_path)
    broker.start()
    listener = Listener(broker.port, "t/status")
    sink = mqtt_sink.MqttSink(f"127.0.0.1:{broker.port}", "t")
    stream = StreamInfo("fake", 30.0, True, CLASS_NAMES)
    sink.start(stream)
    try:
        wait_for(sink._connected.is_set)
        probs = np.eye(10, dtype=np.float32)[3]
        for i in range(5):
            result = FrameResult(Frame(np.zeros((4, 4, 3), np.uint8), i, 0.0),
                                 PreparedFrame(np.zeros((28, 28, 1), np.uint8), (0, 0, 1, 1), 0.5), probs,
                                 SmoothedLabel("Dress", 3, 1.0, probs), fps=30.0)
            stream.quality.add(result)  # as the camera's loop does before the sink is told
            sink.consume(result)
        wait_for(lambda: listener.messages)
    finally:
        sink.stop(None)
        listener.close()
        broker.stop()
    status = listener.messages[-1]
    assert status["frames"] >= 1 and status["unsure_frames"] == {"no_item": 0, "low_score": 0}
    assert status["mean_score"] == 1.0 and status["drift"] is None and status["source"] == "fake"
