"""The field loop on the device's side: camera --collect keeps frames as a photo folder, the camera page's
button keeps the current one, and `fmnist-edge label` labels them in a real browser (Debian's chromium,
driven by Selenium with Debian's chromium-driver), every label in labels.csv at once."""

from __future__ import annotations

import csv
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import error_line, run_cli, wait_until

from edge_runtime.core.contract import CLASS_NAMES
from edge_runtime.data import photos
from toolkit.synthetic import write_video

ITEMS, PER_ITEM = 6, 5


@pytest.fixture(scope="module")
def items_video(tmp_path_factory, test_set) -> tuple[Path, np.ndarray]:
    images, labels = test_set
    path = tmp_path_factory.mktemp("video") / "items.avi"
    write_video(path, images[:ITEMS, ..., 0], frames_per_item=PER_ITEM, size=(240, 320), seed=9)
    return path, labels[:ITEMS]


def collect(video: Path, folder: Path, *flags: str) -> list[dict]:
    run_cli("camera", "--source", str(video), "--headless", "--collect", str(folder), *flags)
    with open(folder / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def collected(items_video, tmp_path_factory) -> Path:
    """Every item made 'unsure' (a min score no answer reaches): one frame per item, six frames."""
    folder = tmp_path_factory.mktemp("collected")
    collect(items_video[0], folder, "--min-score", "0.9999", "--collect-interval", "0")
    return folder


def test_one_frame_per_item_as_a_photo_folder(collected, items_video):
    rows = photos.read_rows(collected)
    assert [int(r["frame"]) // PER_ITEM for r in rows] == list(range(ITEMS))  # one per item, each item once
    for row in rows:
        assert row["photo_class"] == photos.UNLABELLED and row["fashion_mnist_classes"] == ""
        assert row["predicted"] in CLASS_NAMES and 0 <= float(row["score"]) <= 1
        frame = cv2.imread(str(collected / row["path"]))
        assert frame is not None and max(frame.shape[:2]) == 256  # the frame, longest side 256
        seen = cv2.imread(str(collected / row["model_input"]), cv2.IMREAD_UNCHANGED)
        assert seen.shape == (28, 28) and seen[0, 0] == 0 and seen.max() > 100  # what the model saw
    assert photos.load_photos(collected) == []  # nothing labelled yet: nothing to train or score on
    assert not list(collected.rglob(".*tmp*"))


def test_confident_items_are_not_collected_by_default(items_video, tmp_path):
    collect_dir = tmp_path / "c"
    run_cli("camera", "--source", str(items_video[0]), "--headless", "--collect", str(collect_dir))
    assert (collect_dir / "frames").is_dir() and not (collect_dir / "labels.csv").exists()


@pytest.mark.parametrize("flags, expected", [
    (["--collect-when", "every:7", "--collect-interval", "0"], [0, 7, 14, 21, 28]),
    (["--collect-when", "all", "--collect-interval", "0", "--collect-max", "4"], [0, 1, 2, 3]),
])
def test_other_rules_and_the_bound(items_video, tmp_path, flags, expected):
    rows = collect(items_video[0], tmp_path / "c", *flags)
    assert [int(r["frame"]) for r in rows] == expected


def test_a_folder_collected_before_is_added_to(items_video, tmp_path):
    folder = tmp_path / "c"
    collect(items_video[0], folder, "--collect-when", "every:10", "--collect-interval", "0")
    rows = collect(items_video[0], folder, "--collect-when", "every:10", "--collect-interval", "0",
                   "--collect-max", "5")
    assert len(rows) == 5 and len({r["path"] for r in rows}) == 5  # three then two more: the bound is the folder's
    assert all((folder / r["path"]).is_file() for r in rows)


def test_collect_flags_are_checked(items_video):
    assert "every:N" in error_line(run_cli("camera", "--source", str(items_video[0]), "--headless", "--collect",
                                           "/tmp/x", "--collect-when", "sometimes", check=False))
    proc = run_cli("camera", "--headless", "--collect-max", "3", check=False)
    assert proc.returncode == 2 and "are for --collect DIR" in proc.stderr


def start(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "toolkit.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stderr.readline()
        if match := re.search(r"http://127\.0\.0\.1:(\d+)/", line):
            return proc, f"http://127.0.0.1:{match.group(1)}"
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"{args[0]} did not start: {proc.stderr.read()}")


def test_the_camera_page_button_keeps_the_current_frame(long_video, tmp_path):
    folder = tmp_path / "kept"
    # No top score of ten classes is below 0.1: the "unsure" rule keeps nothing, only the button does.
    proc, base = start("camera", "--source", str(long_video), "--headless", "--serve", "127.0.0.1:0",
                       "--collect", str(folder), "--min-score", "0.05")
    try:
        deadline = time.time() + 60
        while json.loads(urllib.request.urlopen(base + "/state.json").read())["frame"] < 0:  # frames flow
            assert time.time() < deadline
            time.sleep(0.1)
        page = urllib.request.urlopen(base + "/").read().decode()
        assert 'id="save"' in page
        request = urllib.request.Request(base + "/save", method="POST")
        assert urllib.request.urlopen(request).status == 202
        while json.loads(urllib.request.urlopen(base + "/state.json").read())["collected"] < 1:  # the page's count
            assert time.time() < deadline
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert len(photos.read_rows(folder)) == 1


def test_label_page_in_a_browser(collected, tmp_path, browser):
    from selenium.webdriver.common.by import By

    folder = tmp_path / "folder"
    shutil.copytree(collected, folder)
    proc, base = start("label", str(folder), "--serve", "127.0.0.1:0")
    try:
        browser.get(base + "/")
        wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".frame")) == ITEMS)

        def given() -> list[str]:
            return [r["photo_class"] for r in photos.read_rows(folder)]

        browser.find_element(By.ID, "class-4").click()  # the first frame: a click on "Coat"
        wait_until(lambda: given()[0] == "Coat")
        browser.find_element(By.TAG_NAME, "body").send_keys("n")  # the second: none of these, by key
        wait_until(lambda: given()[1] == photos.NONE_OF_THESE)
        browser.find_element(By.ID, "undo").click()  # taken back
        wait_until(lambda: given()[1] == photos.UNLABELLED)
        browser.find_element(By.TAG_NAME, "body").send_keys("9")  # the second again: Ankle boot, by key
        wait_until(lambda: given()[1] == "Ankle boot")
        browser.save_screenshot(str(tmp_path / "label-page.png"))
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and err.strip().endswith(f"2 of {ITEMS} frames labelled in {folder}")
    rows = photos.read_rows(folder)
    assert (rows[0]["fashion_mnist_classes"], rows[1]["fashion_mnist_classes"]) == ("4", "9")
    labelled = photos.load_photos(folder)
    assert [sorted(p.accepted) for p in labelled] == [[4], [9]]  # what training reads
    assert cv2.imread(str(tmp_path / "label-page.png")) is not None


def test_label_refuses_what_is_not_a_frame_of_the_folder(collected):
    from edge_runtime.field.label import LabelServer

    server = LabelServer(collected, "127.0.0.1:0")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        for name in ("../labels.csv", "frames/../../etc/passwd", "labels.csv", "frames/missing.jpg"):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(f"{base}/file/{name}")
            assert info.value.code == 404
        request = urllib.request.Request(base + "/label", data=b'{"index": 99, "class_id": 1}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request)
        assert info.value.code == 400
    finally:
        server.close()
