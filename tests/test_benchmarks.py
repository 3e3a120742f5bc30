"""The benchmark scripts: merging machines' reports, the accuracy/latency front, the Pi wheel check's tags, the
camera pipeline's and the adapt sweep's runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import check_pi_wheels
import run_matrix

ROOT = Path(__file__).resolve().parents[1]


def report(board, cpu, p50, throttled=False, verified=True):
    return {"device": {"board": board, "cpu": cpu, "cores_usable": 4, "os": "Raspberry Pi OS", "python": "3.11.2",
                       "governor": "ondemand", "throttled": throttled,
                       "verify": [{"model": "/x/model_int8.tflite", "passed": verified}]},
            "results": [{"model": "/x/model_int8.tflite", "precision": "int8", "backend": "litert", "threads": 1,
                         "batch": 1, "p50_ms": p50, "p99_ms": 2 * p50},
                        {"model": "/x/model_fp32.onnx", "precision": "fp32", "backend": "onnxruntime", "threads": 2,
                         "batch": 1, "p50_ms": 3 * p50, "p99_ms": 4 * p50}]}


def test_merge_puts_machines_side_by_side(tmp_path):
    files = []
    for name, rep in [("laptop", report(None, "AMD EPYC", 0.05)),
                      ("pi4", report("Raspberry Pi 4 Model B Rev 1.4", "Cortex-A72", 0.61, throttled=True)),
                      ("pi5", report("Raspberry Pi 5 Model B Rev 1.0", "Cortex-A76", 0.21, verified=False))]:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(rep))
        files.append(str(path))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "merge.py"), *files, "--p99"],
                         capture_output=True, text=True, check=True).stdout
    header = next(line for line in out.splitlines() if line.startswith("| model"))
    assert header.endswith("| AMD EPYC | Raspberry Pi 4 Model B Rev 1.4 (throttled) | "
                           "Raspberry Pi 5 Model B Rev 1.0 (verify failed) |")
    assert "| model_int8.tflite | int8 | litert | 1 | 1 | 0.0500 / 0.1000 | 0.6100 / 1.2200 | 0.2100 / 0.4200 |" in out
    assert "| model_fp32.onnx | fp32 | onnxruntime | 2 | 1 |" in out


def test_merge_refuses_a_file_that_is_not_a_report(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "merge.py"), str(bad)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "not a `fmnist-edge bench --json` report" in proc.stderr


def test_pareto_front():
    # (latency, accuracy): the second is slower and worse than the first; the rest trade off.
    points = [(0.02, 0.93), (0.05, 0.92), (0.05, 0.94), (0.01, 0.90)]
    assert sorted(run_matrix.pareto(points)) == [0, 2, 3]


def test_pi_wheel_tags_cover_every_glibc_up_to_the_os():
    args = check_pi_wheels.platform_args(36)
    tags = args[1::2]
    assert args[::2] == ["--platform"] * len(tags)
    assert "manylinux2014_aarch64" in tags and "manylinux_2_17_aarch64" in tags and "manylinux_2_36_aarch64" in tags
    assert "manylinux_2_37_aarch64" not in tags


def test_camera_pipeline_times_the_preprocessing_as_it_is_and_as_it_was():
    """benchmarks/camera_pipeline.py runs the camera once with each preprocessing on the same MJPEG video."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "camera_pipeline.py"), "--frames", "20",
                           "--repeats", "1"], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert set(result) == {"current", "reference"}
    for variant in result.values():
        (run,) = variant["runs"]
        assert run["frames"] == 20 and run["stage_ms"]["preprocess"] > 0 and run["stage_ms"]["wait"] > 0
        assert 0 < variant["core_share"] < 2  # busy seconds over the video's 0.67 s


def test_camera_pipeline_times_a_rate_limited_camera():
    """--max-fps 10 adds a row of camera --max-fps 10: a third of the 30 fps video's frames classified."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "camera_pipeline.py"), "--frames", "30",
                           "--repeats", "1", "--no-reference", "--max-fps", "10", "--markdown"], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = next(line for line in proc.stdout.splitlines() if "--max-fps 10" in line)
    assert row.split("|")[2].strip() == "10"  # frames classified
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "camera_pipeline.py"), "--max-fps", "0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "above 0" in proc.stderr


def test_camera_pipeline_times_a_smaller_decode():
    """--decode-scale 4 adds a row of camera --decode-scale 4 on the same MJPEG video, every frame classified; with
    --reuse-still, one of the two together too."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "camera_pipeline.py"), "--frames", "20",
                           "--repeats", "1", "--no-reference", "--decode-scale", "4", "--reuse-still", "--on-stand",
                           "--markdown"], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    header = [c.strip() for c in lines[0].split("|")]
    rows = {row[1]: dict(zip(header, row, strict=True))
            for row in ([c.strip() for c in line.split("|")] for line in lines[2:])}
    assert set(rows) == {"as it is (edge_runtime.camera.preprocess)", "as it is, camera --reuse-still",
                         "as it is, camera --decode-scale 4", "as it is, camera --decode-scale 4 --reuse-still"}
    cell = rows["as it is, camera --decode-scale 4"]
    assert cell["frames"] == "20" and cell["reused"] == "0%" and "decoding them in full" not in proc.stderr
    total = float(cell["decode+wait+preprocess ms"])
    assert total == pytest.approx(float(cell["decode+wait ms"]) + float(cell["preprocess ms"]), abs=0.0015)
    both = rows["as it is, camera --decode-scale 4 --reuse-still"]
    assert both["frames"] == "20" and int(both["reused"].rstrip("%")) > 0  # two items on a stand: most reused


@pytest.mark.heavy  # six fits on 13,000 replayed and test images: minutes under emulation
def test_adapt_sweep_scores_every_replay_weighting(tmp_path, test_set):
    """benchmarks/adapt_sweep.py on a folder of rings (a new class) and test items, the bundled model and its
    bank: every weighting scored, and weighing images and bank together is adapt's own fit."""
    import cv2
    import numpy as np
    from test_adapt import ring

    import adapt_sweep
    from edge_runtime.core.classifier import BUNDLED
    from edge_runtime.core.contract import CLASS_NAMES
    from edge_runtime.data import photos
    from toolkit.synthetic import render_frame

    images, labels = test_set
    (tmp_path / "frames").mkdir()
    rows = []
    for i in range(80):
        ringed = i % 2 == 0
        frame, _ = render_frame(ring(i) if ringed else images[i, ..., 0], item_side=200, seed=i)
        cv2.imwrite(str(tmp_path / "frames" / f"{i:03d}.jpg"), frame)
        rows.append({"path": f"frames/{i:03d}.jpg", "photo_class": "ring" if ringed else CLASS_NAMES[labels[i]],
                     "fashion_mnist_classes": "" if ringed else str(labels[i])})
    photos.write_rows(tmp_path, rows)
    args = adapt_sweep.argparse.Namespace(base=BUNDLED["onnx"], photos=str(tmp_path), new_class=["ring"], k=[4],
                                          seeds=1, json=True)
    result = adapt_sweep.run(args)
    assert result["pool"] >= 4 and result["new_scored"] > 0 and result["others_scored"] > 0
    assert len(result["rows"]) == len(adapt_sweep.WEIGHTINGS)
    for row in result["rows"]:
        scores = row["k"][4]
        assert all(0 <= scores[key] <= 1 for key in ("new_named", "others_right", "fmnist_test")), row
        assert scores["fmnist_test"] > 0.85  # the ten classes kept
    # "together 4" is adapt's fit with its default replay_weight: the same answers on the same frames.
    from edge_runtime.field import adapt
    from edge_runtime.field.features import Featurizer, load_base
    from edge_runtime.field.replay import load_bank

    base = load_base(BUNDLED["onnx"])
    featurize = Featurizer(base)
    pool = [p for p in photos.load_photos(tmp_path, "tune-a") if p.photo_class == "ring"]
    frames, mirrored = adapt._user_frames(adapt_sweep.draw(pool, 4, 0), featurize, ["ring"])
    replay, _ = adapt._fmnist(None, featurize, 11, adapt.AdaptSettings())
    bank = load_bank(base)
    replay = adapt._join(replay, adapt.bank_frames(bank, 11))
    weights, bias = adapt.fit_head(adapt._join(frames, mirrored), replay, base.weights, base.bias, 1,
                                   adapt.AdaptSettings())
    scored = photos.load_photos(tmp_path, "tune-b")
    top = (featurize(photos.prepare(scored)) @ weights + bias).argmax(axis=1)
    named = np.mean([top[i] == 10 for i, p in enumerate(scored) if p.photo_class == "ring"])
    together = next(r for r in result["rows"] if r["how"] == "together" and r["weight"] == 4.0)
    assert together["k"][4]["new_named"] == round(float(named), 4)
