"""Regenerate the golden model files the edge tests use where TensorFlow is not installed (a
Raspberry Pi, `make test-arm64`): a tiny seeded CNN trained for a few seconds and exported by
fmnist-edge's own exporter to every format and precision, with the export report.

    python tests/golden/make_golden.py [--data-dir DIR]      # needs the [train] extra; about a minute

The files are committed; regenerate them when the export format changes (metadata, references,
checksum), and commit the new ones with the script's output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TARGETS = [("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "dynamic"), ("tflite", "int8"),
           ("onnx", "fp32"), ("onnx", "dynamic"), ("onnx", "int8")]


def tiny_model(images: np.ndarray, labels: np.ndarray):
    """A 3,000-parameter CNN (conv 8 stride 2, pool, dense 10): small files, about 74% test accuracy."""
    from toolkit.tf import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((28, 28, 1), name="pixels")
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="golden")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images.astype(np.float32), labels, epochs=5, batch_size=64, verbose=0)
    return model


def main() -> None:
    from converters.base import Target
    from converters.export import calibration_set, export
    from edge_runtime.data import fashion_mnist as data

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    train_images, train_labels = data.load_split("train", args.data_dir, limit=6000)
    test_images, test_labels = data.load_split("test", args.data_dir)
    keras_path = HERE / "golden.keras"
    tiny_model(train_images, train_labels).save(keras_path)
    calibration = calibration_set(train_images, train_labels, 200)
    report = export(keras_path, HERE, [Target(f, p) for f, p in TARGETS], calibration, test_images, test_labels)
    keras_path.unlink()
    rows = report.to_dict()
    rows["source"] = keras_path.name
    for row in rows["models"]:
        row["path"] = Path(row["path"]).name  # the files travel with the repository
    (HERE / "export_report.json").write_text(json.dumps(rows, indent=2) + "\n")
    for row in rows["models"]:
        print(f"{row['path']}: {row['size_bytes']:,} bytes, accuracy {row['accuracy']:.4f}")


if __name__ == "__main__":
    main()
