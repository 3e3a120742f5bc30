"""Where int8 loses accuracy (issue 25): the per-layer report of each int8 file names what the file holds,
its figures are measured (TFLite's debugger and the ONNX measurement agree on the same layers), `info`
shows the worst layers and what runs in float from the file itself, `--keep-float` keeps a layer in
float in both formats, and `--calib-photos` calibrates on a photo folder and reports the agreement there."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import error_line, run_cli, run_cli_json

from edge_runtime.core.backends import open_backend

pytestmark = pytest.mark.train
FIGURES = ("rmse", "mean_error", "max_abs_error", "rmse_per_scale", "scale")


def names_in_file(path: Path) -> set[str]:
    """TFLite: every operator's output tensor name; ONNX: every node name."""
    if path.suffix == ".tflite":
        with open_backend(path) as backend:
            return {name for _, name, _ in backend.op_outputs()}
    import onnx

    return {node.name for node in onnx.load(path).graph.node}


@pytest.fixture(scope="module")
def report(exported):
    out, _ = exported
    return json.loads((out / "quantization_report.json").read_text())


def conv_layer(report) -> str:
    """The Keras name of the tiny model's convolution, as the report shows it."""
    tflite = next(m for m in report["models"] if m["format"] == "tflite")
    return next(r["layer"] for r in tflite["layers"] if r["op"] == "CONV_2D")


def test_every_row_names_an_operator_of_its_file(exported, report, tiny_keras):
    from toolkit.keras_io import load_keras_model

    out, export_report = exported
    assert export_report["quantization_report"] == str(out / "quantization_report.json")
    layers = {layer.name for layer in load_keras_model(tiny_keras).layers}
    assert sorted(Path(m["path"]).name for m in report["models"]) == ["model_int8.onnx", "model_int8.tflite"]
    for model in report["models"]:
        rows, path = model["layers"], Path(model["path"])
        assert model["debug_images"] == report["debug_images"] == 200 and model["kept_float"] == []
        assert len(rows) >= 3 and {r["name"] for r in rows} <= names_in_file(path), path
        assert {r["layer"] for r in rows} - {None} <= layers and any(r["layer"] for r in rows)
        for r in rows:
            assert all(isinstance(r[k], float) and math.isfinite(r[k]) for k in FIGURES), r
            assert isinstance(r["zero_point"], int) and r["scale"] > 0
        assert [r["rmse_per_scale"] for r in rows] == sorted((r["rmse_per_scale"] for r in rows), reverse=True)
    markdown = (out / "quantization_report.md").read_text()
    assert "## model_int8.tflite" in markdown and "## model_int8.onnx" in markdown
    assert all(f"`{r['name']}`" in markdown for m in report["models"] for r in m["layers"])


def test_both_formats_measure_the_same_loss_on_the_same_layers(report):
    """Two independent measurements (TFLite's NumericVerify, ONNX's float twins) of one quantization:
    each weighted layer loses about as much in both files, and far more than the pooling does."""
    worst = {}
    for model in report["models"]:
        for r in model["layers"]:
            if r["layer"]:
                key = (model["format"], r["layer"])
                worst[key] = max(worst.get(key, 0.0), r["rmse_per_scale"])
    weighted = [layer for (fmt, layer) in worst if fmt == "tflite" and ("conv" in layer or "dense" in layer)]
    assert len(set(weighted)) == 2, worst
    for layer in set(weighted):
        assert worst[("onnx", layer)] == pytest.approx(worst[("tflite", layer)], rel=0.15), (layer, worst)
        assert worst[("tflite", layer)] > 0.05
    pooling = [v for (fmt, layer), v in worst.items() if "pool" in layer]
    assert pooling and max(pooling) < 0.01


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_int8.onnx"])
def test_info_shows_the_worst_layers_and_no_float(exported, report, name):
    out, _ = exported
    info = run_cli_json("info", str(out / name))
    entry = next(m for m in report["models"] if Path(m["path"]).name == name)
    quant = info["quantization"]
    assert quant["float_in_file"] == []
    assert [w["name"] for w in quant["measured"]["worst"]] == [r["name"] for r in entry["layers"][:3]]
    assert info["metadata"]["extra"]["quantization"]["worst"][0]["layer"] == entry["layers"][0]["layer"]
    text = run_cli("info", str(out / name)).stdout
    assert "kept in float (read from the file): none" in text and "layers that lose most to int8" in text
    assert (entry["layers"][0]["layer"] or entry["layers"][0]["name"]) in text


def photo_folder(root: Path, images: np.ndarray) -> Path:
    """A labelled photo folder as camera --collect writes one: 256 px frames of test items on black."""
    (root / "frames").mkdir(parents=True)
    rows = ["path,photo_class,fashion_mnist_classes"]
    for i, image in enumerate(images):
        frame = cv2.resize(image[..., 0], (256, 256), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(root / "frames" / f"{i:06d}.jpg"), frame)
        rows.append(f"frames/{i:06d}.jpg,unlabelled,")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def kept(exported, report, tiny_keras, fmnist_dir, test_set, tmp_path_factory):
    """The tiny model exported with its convolution kept in float and a photo folder of 40 frames:
    (directory, export report, the layer kept)."""
    layer = conv_layer(report)
    folder = photo_folder(tmp_path_factory.mktemp("photos") / "collected", test_set[0][-40:])
    out = tmp_path_factory.mktemp("kept")
    proc = run_cli("export", str(tiny_keras), "--out", str(out), "--int8", "--keep-float", layer,
                   "--calib-photos", str(folder), "--calib-samples", "200", "--data-dir", str(fmnist_dir), "--json")
    return out, json.loads(proc.stdout), layer


def test_a_layer_kept_in_float_is_float_in_the_file(kept):
    out, export_report, layer = kept
    assert all(r["passed"] for r in export_report["models"])  # the same gate, metadata, references
    doc = json.loads((out / "quantization_report.json").read_text())
    for model in doc["models"]:
        assert model["kept_float"] == [layer] and layer not in {r["layer"] for r in model["layers"]}
        info = run_cli_json("info", model["path"])
        floats = info["quantization"]["float_in_file"]
        ops = {f["op"] for f in floats}
        if model["format"] == "tflite":
            assert ops == {"CONV_2D"}, floats
        else:  # ONNX Runtime leaves the pooling that only passes the float values on in float too
            assert "Conv" in ops and ops <= {"Conv", "Relu", "MaxPool"}, floats
        assert all(f["name"] in names_in_file(Path(model["path"])) for f in floats)
        assert not {f["name"] for f in floats} & {r["name"] for r in model["layers"]}  # the report agrees
        assert info["metadata"]["extra"]["quantization"]["kept_float"] == [layer]
        assert f"asked to keep in float at export: {layer}" in run_cli("info", model["path"]).stdout


def test_calib_photos_reports_the_agreement_on_them(kept):
    _, export_report, _ = kept
    assert export_report["photo_frames"] == 40
    for row in export_report["models"]:
        assert 0.5 <= row["photo_top1_agreement"] <= 1.0, row
        if row["precision"] == "fp32":
            assert row["photo_top1_agreement"] == 1.0
    int8 = next(r for r in export_report["models"] if r["path"].endswith("model_int8.tflite"))
    with open_backend(int8["path"]) as backend:
        assert backend.metadata.calibration_samples == 240  # 200 Fashion-MNIST images and the 40 frames


def test_keep_float_nonsense_is_one_line(tiny_keras, report):
    line = error_line(run_cli("export", str(tiny_keras), "--int8", "--keep-float", "nonsense", check=False))
    assert "--keep-float nonsense" in line and "no such layer" in line and conv_layer(report) in line


def test_keep_float_needs_int8(tiny_keras):
    proc = run_cli("export", str(tiny_keras), "--keep-float", "conv2d", check=False)
    assert proc.returncode == 2 and "add --int8" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("kind", ["missing", "empty", "unreadable"])
def test_bad_calib_folder_is_one_line(tiny_keras, tmp_path, kind):
    folder = tmp_path / "photos"
    if kind != "missing":
        folder.mkdir()
    if kind == "unreadable":
        (folder / "a.jpg").write_bytes(b"not a jpeg")
        (folder / "labels.csv").write_text("path,photo_class,fashion_mnist_classes\na.jpg,unlabelled,\n")
    line = error_line(run_cli("export", str(tiny_keras), "--int8", "--calib-photos", str(folder), check=False))
    assert str(folder) in line
    assert ("no such folder" in line) if kind == "missing" else ("no readable image" in line)
