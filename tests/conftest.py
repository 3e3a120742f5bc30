"""Shared fixtures: the real dataset (Debian package), a CLI runner in a subprocess, golden model files.

Tests that need the training extras (TensorFlow) carry the `train` marker, or skip their whole
module; where TensorFlow is not installed (a base install, `make test-arm64`) they are skipped and
everything else runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmark scripts, importable by the tests
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def has_tensorflow() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


# Modules that import TensorFlow at the top, not collected without it (pytest lists what it skipped
# by marker, not these: `make test-arm64` names them).
TRAINING_MODULES = ["test_train.py", "test_tune.py", "test_export.py", "test_models.py"]
collect_ignore = [] if has_tensorflow() else TRAINING_MODULES


def pytest_collection_modifyitems(config, items):
    if has_tensorflow():
        return
    skip = pytest.mark.skip(reason="needs the training extras (TensorFlow): pip install 'fmnist-edge[train]'")
    for item in items:
        if "train" in item.keywords:
            item.add_marker(skip)


ALL_FILES = ["model_fp32.tflite", "model_fp16.tflite", "model_dynamic.tflite", "model_int8.tflite",
             "model_fp32.onnx", "model_dynamic.onnx", "model_int8.onnx"]


@pytest.fixture(scope="session")
def fmnist_dir() -> Path:
    """The Debian dataset directory; `make test` installs the package."""
    if not (DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.fail("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist (make test does it)")
    return DEBIAN_DIR


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, check: bool = True,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `fmnist-edge ARGS` as users do, in a fresh interpreter."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli", *args], capture_output=True, text=True, check=False,
                          env=full_env, timeout=timeout, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"fmnist-edge {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def run_cli_json(*args: str, **kwargs) -> dict:
    proc = run_cli(*args, "--json", **kwargs)
    return json.loads(proc.stdout)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one error line of a failed command (logs may precede it; no traceback may)."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    return errors[0]


@pytest.fixture(scope="session")
def test_set(fmnist_dir):
    from edge_runtime.data import fashion_mnist as data

    return data.load_split("test", fmnist_dir)


@pytest.fixture(scope="session")
def long_video(tmp_path_factory, test_set) -> Path:
    """20 s at 30 frames/s, 20 test items: long enough to be watched over HTTP, by a browser, by /metrics
    and through a broker's restart (made once: under emulation, making videos is most of the time)."""
    from toolkit.synthetic import write_video

    images, _ = test_set
    path = tmp_path_factory.mktemp("video") / "long.mp4"
    write_video(path, images[:20, ..., 0], frames_per_item=30, seed=4)
    return path


@pytest.fixture(scope="session")
def golden() -> tuple[Path, dict]:
    """Tiny models exported to every format and precision, committed (tests/golden/make_golden.py):
    (directory, export report), as `exported` gives them, without TensorFlow."""
    return GOLDEN_DIR, json.loads((GOLDEN_DIR / "export_report.json").read_text())


@pytest.fixture(scope="session")
def tiny_keras(tmp_path_factory, fmnist_dir) -> Path:
    """A small seeded CNN trained for a few seconds (about 85% test accuracy)."""
    import numpy as np

    from edge_runtime.data import fashion_mnist as data
    from toolkit.tf import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((28, 28, 1))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    images, labels = data.load_split("train", fmnist_dir, limit=6000)
    model.fit(images.astype(np.float32), labels, epochs=3, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("tiny") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def exported(tiny_keras, tmp_path_factory, fmnist_dir):
    """The tiny model exported by the CLI to every format and precision: (directory, report).
    What the command printed on stderr is kept beside the directory, in export.stderr."""
    out = tmp_path_factory.mktemp("export")
    proc = run_cli("export", str(tiny_keras), "--out", str(out), "--int8", "--fp16", "--dynamic",
                   "--calib-samples", "200", "--data-dir", str(fmnist_dir), "--json")
    (out.parent / f"{out.name}.stderr").write_text(proc.stderr)
    return out, json.loads(proc.stdout)


def real_photos_dir() -> Path | None:
    """../shared/real-photos beside the checkout (or $FMNIST_EDGE_PHOTOS); None where it is absent."""
    for candidate in (os.environ.get("FMNIST_EDGE_PHOTOS"), ROOT.parent / "shared" / "real-photos",
                      "/work/shared/real-photos"):
        if candidate and (Path(candidate) / "labels.csv").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    found = real_photos_dir()
    if found is None:
        pytest.skip("the real-photos folder (../shared/real-photos) is not beside this checkout")
    return found


CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    """Debian's chromium, headless, driven by Selenium with Debian's chromium-driver."""
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (CHROMIUM and DRIVER):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def wait_until(condition, timeout: float = 20):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "gave up waiting"
        time.sleep(0.05)


def avi_claiming(path, scale: int, rate: int, frames: int = 6):
    """An MJPEG .avi of `frames` frames whose stream header says rate/scale frames a second."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 30, np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    strh = data.find(b"strh") + 8  # AVISTREAMHEADER after its fourcc and size: dwScale, dwRate at 20
    data[strh + 20 : strh + 28] = np.array([scale, rate], "<u4").tobytes()
    path.write_bytes(bytes(data))
    return path
