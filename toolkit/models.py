"""The model zoo: the classic Fashion-MNIST CNNs by name, each taking raw 0..255 pixels.

Every model starts with `Rescaling(1/255)`, so exported files take raw pixels as the model
contract says, and ends with a softmax over the ten classes.
"""

from __future__ import annotations

from collections.abc import Callable

from toolkit.tf import keras

layers = keras.layers

INPUT_SHAPE = (28, 28, 1)


def _classic(kernel: int, padding: str) -> list:
    # seed-a and seed-b: conv 64 -> pool -> dropout -> conv 32 -> pool -> dropout -> dense 256.
    return [
        layers.Conv2D(64, kernel, padding=padding, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.3),
        layers.Conv2D(32, kernel, padding=padding, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.3),
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.5),
    ]


def seed_a() -> list:
    """Conv 64 2x2 valid, the first classic design."""
    return _classic(2, "valid")


def seed_b() -> list:
    """Conv 64 3x3 same: the classic design, the default."""
    return _classic(3, "same")


def seed_c() -> list:
    """Three convs 32/64/128 with light dropout, then dense 128."""
    return [
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.2),
        layers.Conv2D(128, 3, activation="relu"),
        layers.Dropout(0.5),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
    ]


def seed_d() -> list:
    """The TensorFlow tutorial CNN: convs 32/64/64, dense 256."""
    return [
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.5),
    ]


ARCHITECTURES: dict[str, Callable[[], list]] = {
    "seed-a": seed_a,
    "seed-b": seed_b,
    "seed-c": seed_c,
    "seed-d": seed_d,
}
DEFAULT_ARCH = "seed-b"


def build_model(arch: str = DEFAULT_ARCH) -> keras.Model:
    """A fresh, uncompiled model of the named architecture."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    inputs = keras.Input(INPUT_SHAPE, name="pixels")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for layer in ARCHITECTURES[arch]():
        x = layer(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=arch)


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates for one image, over the layers that do them."""
    total = 0
    for layer in _flat_layers(model):
        out = layer.output.shape
        if isinstance(layer, layers.SeparableConv2D):
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            total += out[1] * out[2] * (kh * kw * cin * layer.depth_multiplier + cin * layer.depth_multiplier * out[3])
        elif isinstance(layer, layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += out[1] * out[2] * kh * kw * out[3]
        elif isinstance(layer, layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1] // layer.groups
            total += out[1] * out[2] * kh * kw * cin * out[3]
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def _flat_layers(model: keras.Model) -> list:
    found = []
    for layer in model.layers:
        found.extend(_flat_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return found
