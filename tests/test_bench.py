"""bench: the contract's JSON keys, sane percentiles, the device block, and the output formats."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, run_cli_json

RESULT_KEYS = {"model", "format", "precision", "backend", "backend_version", "threads", "batch", "size_bytes",
               "load_ms", "first_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "throughput_ips",
               "peak_rss_mb"}


@pytest.fixture(scope="module")
def bench_report(golden):
    out, _ = golden
    models = [str(out / "model_int8.tflite"), str(out / "model_fp32.onnx")]
    return models, run_cli_json("bench", *models, "--threads", "1,2", "--batch", "4", "--runs", "30", "--warmup", "3")


def test_one_result_per_model_and_thread_count(bench_report):
    models, report = bench_report
    got = [(r["model"], r["threads"]) for r in report["results"]]
    assert got == [(m, t) for m in models for t in (1, 2)]


def test_result_keys_and_values(bench_report):
    _, report = bench_report
    for r in report["results"]:
        assert RESULT_KEYS <= set(r)
        assert r["batch"] == 4 and r["runs"] == 30
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["mean_ms"] > 0 and r["std_ms"] >= 0 and r["load_ms"] > 0 and r["first_ms"] > 0
        # 4 images per run: throughput and mean latency describe the same runs.
        assert r["throughput_ips"] == pytest.approx(4 / (r["mean_ms"] / 1e3), rel=0.02)
        assert 10 < r["peak_rss_mb"] < 2000
    tflite, onnx = report["results"][0], report["results"][2]
    assert (tflite["format"], tflite["precision"]) == ("tflite", "int8")
    assert tflite["backend"] in ("litert", "tflite_runtime")
    assert (onnx["format"], onnx["precision"], onnx["backend"]) == ("onnx", "fp32", "onnxruntime")


def test_device_block(bench_report):
    _, report = bench_report
    device = report["device"]
    for key in ("cpu", "cores", "os", "python", "versions", "before", "after", "throttled"):
        assert key in device
    assert device["cores"] >= 1 and "onnxruntime" in device["versions"]
    assert set(device["before"]) == {"temperature_c", "cpu_freq_mhz", "throttling"}


def test_markdown_and_out_file(golden, tmp_path):
    out, _ = golden
    model = str(out / "model_int8.tflite")
    md = run_cli("bench", model, "--runs", "10", "--warmup", "1", "--markdown").stdout
    assert "| model | precision | runtime |" in md and "model_int8.tflite" in md
    target = tmp_path / "bench.json"
    proc = run_cli("bench", model, "--runs", "10", "--warmup", "1", "--out", str(target))
    assert proc.stdout == ""
    assert json.loads(target.read_text())["results"][0]["model"] == model


def test_conflicting_formats_refused(golden):
    out, _ = golden
    proc = run_cli("bench", str(out / "model_int8.tflite"), "--json", "--markdown", check=False)
    assert proc.returncode == 2 and "exclusive" in proc.stderr


def test_bad_thread_list_refused():
    proc = run_cli("bench", "--threads", "1,x", check=False)
    assert proc.returncode == 2 and "thread counts" in proc.stderr


def test_display_names_tell_same_named_files_apart():
    from edge_runtime.report.tables import display_names

    names = display_names(["runs/zoo/edge/export/model_int8.tflite", "runs/zoo/seed-b/export/model_int8.tflite",
                           "runs/zoo/edge/export/model_int8.onnx", "/abs/other.tflite"])
    assert names == {"runs/zoo/edge/export/model_int8.tflite": "edge/export/model_int8.tflite",
                     "runs/zoo/seed-b/export/model_int8.tflite": "seed-b/export/model_int8.tflite",
                     "runs/zoo/edge/export/model_int8.onnx": "model_int8.onnx",
                     "/abs/other.tflite": "other.tflite"}
