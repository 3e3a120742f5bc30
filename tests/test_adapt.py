"""`fmnist-edge adapt`: the field loop on the device, no TensorFlow. A folder of a few labelled frames
changes the answers it should and not the others; a class of the user's reaches every output; the file
is a model file like any other; a damaged or hostile folder is one line; the labelling page's flow for
a new class, in chromium."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import error_line, run_cli, run_cli_json, wait_until

from edge_runtime import load_model
from edge_runtime.core.classifier import BUNDLED
from edge_runtime.core.contract import CLASS_NAMES
from edge_runtime.data import photos
from toolkit.synthetic import render_frame, write_video

pytestmark = pytest.mark.heavy  # full adapts: minutes under emulation (Makefile, ARM64_FULL)

RING_FRAMES = 16


def ring(seed: int) -> np.ndarray:
    """A 28x28 ring in Fashion-MNIST polarity: no garment of the ten looks like it."""
    rng = np.random.default_rng(seed)
    image = np.zeros((28, 28), np.uint8)
    cv2.circle(image, (14 + int(rng.integers(-2, 3)), 14 + int(rng.integers(-2, 3))), int(rng.integers(7, 11)), 220,
               int(rng.integers(2, 4)))
    return image


@pytest.fixture(scope="module")
def folder(tmp_path_factory, test_set) -> Path:
    """A labelled folder as `camera --collect` and `label` leave it: rings labelled "ring" (a class of the
    user's), and a few Fashion-MNIST items labelled with their classes."""
    images, labels = test_set
    root = tmp_path_factory.mktemp("labelled")
    (root / "frames").mkdir()
    rows = []
    for i in range(RING_FRAMES):
        frame, _ = render_frame(ring(i), item_side=200, seed=i)
        cv2.imwrite(str(root / "frames" / f"r{i:03d}.jpg"), frame)
        rows.append({"path": f"frames/r{i:03d}.jpg", "photo_class": "ring", "fashion_mnist_classes": "",
                     "source": "0"})
    for i in range(10):
        frame, _ = render_frame(images[100 + i, ..., 0], item_side=200, seed=50 + i)
        cv2.imwrite(str(root / "frames" / f"f{i:03d}.jpg"), frame)
        rows.append({"path": f"frames/f{i:03d}.jpg", "photo_class": CLASS_NAMES[labels[100 + i]],
                     "fashion_mnist_classes": str(labels[100 + i]), "source": "0"})
    photos.write_rows(root, rows)
    return root


@pytest.fixture(scope="module")
def adapted(folder, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("adapted") / "mine.onnx"
    report = run_cli_json("adapt", str(folder), "--new-class", "ring", "--out", str(out))
    return out, report


def test_a_class_of_the_users_is_learnt_and_the_others_kept(adapted, test_set):
    out, report = adapted
    assert report["class_names"] == [*CLASS_NAMES, "ring"] and report["frames"] == RING_FRAMES + 10
    assert report["fmnist_test"]["after"] >= report["fmnist_test"]["before"] - 0.005
    fresh = np.stack([cv2.resize(ring(1000 + i), (28, 28))[..., None] for i in range(20)])  # rings never labelled
    images, _ = test_set
    with load_model(out) as model, load_model(BUNDLED["onnx"]) as base:
        assert model.class_names[-1] == "ring"
        named = [p.label for p in model.classify(fresh)]
        assert named.count("ring") >= 16, named  # the answers it should change
        before, after = base.predict(images[:2000]).argmax(1), model.predict(images[:2000])[:, :10].argmax(1)
    assert (before == after).mean() >= 0.97  # and not the others


def test_the_adapted_file_is_a_model_file_like_any_other(adapted, tmp_path):
    out, _ = adapted
    verified = run_cli_json("verify", str(out))
    assert verified["models"][0]["passed"] is True
    info = run_cli("info", str(out)).stdout
    assert "adapted on this device from default_int8.onnx on 26 labelled frames" in info and "ring" in info
    evaluated = run_cli_json("evaluate", str(out), "--limit", "500")
    assert len(evaluated["models"][0]["per_class_accuracy"]) == 10  # the test set on the first ten
    bench = run_cli_json("bench", str(out), "--runs", "20", "--warmup", "2")
    assert bench["results"][0]["p50_ms"] > 0
    damaged = tmp_path / "damaged.onnx"
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert "damaged" in error_line(run_cli("info", str(damaged), check=False))


def test_a_new_class_reaches_the_cameras_json_and_metrics(adapted, tmp_path):
    out, _ = adapted
    video = tmp_path / "rings.avi"
    write_video(video, np.stack([ring(2000 + i) for i in range(4)]), frames_per_item=30, size=(240, 320), seed=3)
    proc = run_cli("camera", "--model", str(out), "--source", str(video), "--headless", "--json")
    labels = [json.loads(line).get("label") for line in proc.stdout.splitlines()]
    assert "ring" in labels
    served = subprocess.Popen([sys.executable, "-m", "toolkit.cli", "camera", "--model", str(out), "--source",
                               str(video), "--headless", "--serve", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
    try:
        port = None
        while port is None:
            line = served.stderr.readline()
            assert line, "the camera did not start"
            if "http://127.0.0.1:" in line:
                port = line.split("http://127.0.0.1:")[1].split("/")[0]
        deadline = time.time() + 60
        while True:
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
            if 'fmnist_edge_label{label="ring"} 1.0' in metrics or time.time() > deadline:
                break
            time.sleep(0.2)
        assert 'fmnist_edge_label{label="ring"}' in metrics
    finally:
        served.send_signal(signal.SIGINT)
        served.communicate(timeout=60)


@pytest.mark.parametrize(("case", "message"), [
    ("empty", "no labels.csv"),
    ("few", "adapting needs at least 4"),
    ("few-new", "frames of the new class 'ring'; it needs at least 4"),
    ("same-out", "that is the model adapted from"),
    ("tflite", "adapt writes an ONNX file and starts from one"),
    ("reserved", "a new class needs a name of its own"),
    ("missing-photo", "unreadable photo"),
])
def test_a_folder_or_request_that_cannot_teach_is_one_line(folder, tmp_path, case, message):
    target, args = tmp_path / "f", []
    if case != "empty":
        shutil.copytree(folder, target)
    else:
        target.mkdir()
    rows = photos.read_rows(target) if case != "empty" else []
    if case == "few":
        photos.write_rows(target, rows[RING_FRAMES:RING_FRAMES + 3])
    if case == "few-new":
        photos.write_rows(target, rows[:3] + rows[RING_FRAMES:])
    if case == "missing-photo":
        (target / rows[0]["path"]).unlink()
    out = tmp_path / "out.onnx"
    if case == "same-out":
        shutil.copy(BUNDLED["onnx"], out)
        args = ["--model", str(out)]
    if case == "tflite":
        args = ["--model", str(BUNDLED["tflite"])]
    new = "Coat" if case == "reserved" else "ring"
    proc = run_cli("adapt", str(target), "--new-class", new, "--out", str(out), *args, check=False)
    assert message in error_line(proc)
    if case != "same-out":
        assert not out.exists()  # nothing written


def test_the_new_head_reproduces_the_old_one(test_set):
    """The ONNX rewrite keeps the network: the same last layer written back gives the same answers."""
    from edge_runtime.core.onnx_write import new_head
    from edge_runtime.field.features import load_base

    import onnxruntime as ort

    base = load_base(None)
    images = test_set[0][:1000].astype(np.float32)
    again = ort.InferenceSession(new_head(base.data, base.features, base.weights, base.bias, "p", {}))
    with load_model(BUNDLED["onnx"]) as model:
        before = model.predict(images.astype(np.uint8))
    after = again.run(None, {"pixels": images})[0]
    assert (before.argmax(1) == after.argmax(1)).mean() >= 0.98
    assert np.abs(before - after).max() < 0.06  # int8 output steps against a float head


def test_the_label_page_takes_a_class_of_the_users(folder, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from test_field_loop import start

    target = tmp_path / "f"
    shutil.copytree(folder, target)
    rows = photos.read_rows(target)
    for row in rows:
        row["photo_class"], row["fashion_mnist_classes"] = photos.UNLABELLED, ""
    photos.write_rows(target, rows)
    proc, base = start("label", str(target), "--serve", "127.0.0.1:0")
    try:
        browser.get(base + "/")
        wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".frame")) == len(rows))
        box = browser.find_element(By.ID, "new-class")
        box.send_keys("ring\n")  # typed once
        wait_until(lambda: browser.find_elements(By.ID, "user-a"))
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("a")  # then one key per frame
        wait_until(lambda: photos.read_rows(target)[0]["photo_class"] == "ring")
        body.send_keys("a")
        wait_until(lambda: photos.read_rows(target)[1]["photo_class"] == "ring")
        body.send_keys("3")
        wait_until(lambda: photos.read_rows(target)[2]["photo_class"] == "Dress")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    given = photos.read_rows(target)
    assert [(r["photo_class"], r["fashion_mnist_classes"]) for r in given[:3]] == [("ring", ""), ("ring", ""),
                                                                                    ("Dress", "3")]


def test_a_new_class_whose_frames_would_all_be_set_aside_is_still_learnt(folder, tmp_path):
    """Four frames of a new class whose paths all hash to the set-aside part: they are fit on, not set aside
    (a class with nothing to fit on once gave NaN weights and a refused model)."""
    import hashlib
    import shutil

    root = tmp_path / "aside"
    shutil.copytree(folder, root)
    rows = [r for r in photos.read_rows(root) if r["photo_class"] != "ring"]
    names = (n for n in (f"frames/x{i:04d}.jpg" for i in range(400))
             if hashlib.sha256(f"0/{Path(n).stem}".encode()).digest()[0] % 2 == 1)  # held-out by the split's hash
    photos_needed = 4
    for i, name in zip(range(photos_needed), names, strict=False):
        frame, _ = render_frame(ring(100 + i), item_side=200, seed=100 + i)
        cv2.imwrite(str(root / name), frame)
        rows.append({"path": name, "photo_class": "ring", "fashion_mnist_classes": "", "source": "0"})
    photos.write_rows(root, rows)
    assert sum(p.photo_class == "ring" and p.split == "held-out" for p in photos.load_photos(root)) == photos_needed
    report = run_cli_json("adapt", str(root), "--new-class", "ring", "--out", str(tmp_path / "aside.onnx"))
    assert report["class_names"][-1] == "ring" and report["fmnist_test"]["after"] > 0.8
