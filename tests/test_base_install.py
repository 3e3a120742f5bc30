"""The edge commands as a base install runs them: TensorFlow, Keras, tf2onnx, onnx and matplotlib
made unimportable, the bundled model, nothing but the edge runtime's own dependencies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from toolkit.synthetic import render_frame

BLOCKED = ("tensorflow", "keras", "tf2onnx", "onnx", "matplotlib", "keras_tuner", "paho")


@pytest.fixture(scope="module")
def no_training_side(tmp_path_factory) -> dict:
    """An environment in which importing any training-side package fails loudly."""
    blocker = tmp_path_factory.mktemp("blocked")
    for name in BLOCKED:
        (blocker / name).mkdir()
        (blocker / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError('{name} is not part of the edge install', name='{name}')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}


def edge(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_the_blocker_blocks(no_training_side):
    proc = subprocess.run([sys.executable, "-c", "import tensorflow"], env=no_training_side, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 1 and "not part of the edge install" in proc.stderr


def test_predict(no_training_side, test_set, tmp_path):
    images, labels = test_set
    paths = []
    for i, ext in enumerate([".png", ".jpg", ".png"]):
        frame, _ = render_frame(images[i, ..., 0], (300 + 40 * i, 400), item_side=220, centre=(200, 150 + 20 * i))
        path = tmp_path / f"item{i}{ext}"
        cv2.imwrite(str(path), frame if ext == ".jpg" else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        paths.append(str(path))
    out = json.loads(edge(no_training_side, "predict", *paths, "--json").stdout)
    assert [p["image"] for p in out["predictions"]] == paths
    assert [p["class_id"] for p in out["predictions"]] == [int(c) for c in labels[:3]]


def test_predict_reports_an_unreadable_image_and_runs_the_rest(no_training_side, test_set, tmp_path):
    images, _ = test_set
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), images[0, ..., 0])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    proc = edge(no_training_side, "predict", str(broken), str(good), str(tmp_path / "missing.png"), "--json",
                check=False)
    assert proc.returncode == 1
    predictions = json.loads(proc.stdout)["predictions"]
    assert predictions[0] == {"image": str(broken), "error": "not an image OpenCV can read"}
    assert predictions[1]["label"] == "Ankle boot"
    assert predictions[2]["error"] == "no such file"
    assert f"{broken}: not an image OpenCV can read" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "Error: 2 of 3 images could not be read"


def test_evaluate_info_and_bench_with_the_bundled_model(no_training_side):
    report = json.loads(edge(no_training_side, "evaluate", "--limit", "2000", "--json").stdout)
    bundled = report["models"][0]
    assert Path(bundled["path"]).name == "default_int8.tflite" and bundled["accuracy"] > 0.85
    assert len(bundled["per_class_accuracy"]) == 10
    info = json.loads(edge(no_training_side, "info", "--json").stdout)
    assert info["metadata"]["precision"] == "int8" and info["inputs"][0]["dtype"] == "int8"
    bench = json.loads(edge(no_training_side, "bench", "--runs", "20", "--warmup", "2", "--json").stdout)
    assert [Path(r["model"]).name for r in bench["results"]] == ["default_int8.tflite", "default_int8.onnx"]


def test_runtime_banners_only_when_verbose(no_training_side):
    quiet = edge(no_training_side, "evaluate", "--limit", "50")
    assert quiet.stderr == ""  # nothing but the report, on stdout
    loud = edge(no_training_side, "--verbose", "evaluate", "--limit", "50")
    assert "XNNPACK" in loud.stderr and loud.stdout == quiet.stdout


def test_evaluate_plot_needs_matplotlib_and_says_so(no_training_side, tmp_path):
    proc = edge(no_training_side, "evaluate", "--limit", "100", "--plot", str(tmp_path / "cm.png"), check=False)
    assert proc.returncode == 1 and proc.stderr.strip().endswith("plots need matplotlib: pip install matplotlib")


def test_camera_on_a_video(no_training_side, test_set, tmp_path):
    from toolkit.synthetic import write_video

    images, _ = test_set
    video = tmp_path / "v.mp4"
    write_video(video, images[:3, ..., 0], frames_per_item=4)
    lines = edge(no_training_side, "camera", "--source", str(video), "--headless", "--json").stdout.splitlines()
    assert json.loads(lines[-1])["summary"]["frames"] == 12


def test_mqtt_without_its_extra_says_what_to_install(no_training_side):
    proc = edge(no_training_side, "camera", "--headless", "--mqtt", "127.0.0.1:1883", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "Error: --mqtt needs paho-mqtt: pip install 'fmnist-edge[mqtt]'"


def test_training_commands_say_what_to_install(no_training_side, tmp_path):
    proc = edge(no_training_side, "train", "--limit", "10", "--out", str(tmp_path), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == \
        "Error: train needs the training extras: pip install 'fmnist-edge[train]'"
