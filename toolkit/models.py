"""The model zoo: the classic Fashion-MNIST CNNs by name, each taking raw 0..255 pixels.

Every model starts with `Rescaling(1/255)`, so exported files take raw pixels as the model
contract says, and ends with a softmax over the ten classes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from toolkit.tf import keras

layers = keras.layers

INPUT_SHAPE = (28, 28, 1)


def _classic(kernel: int, padding: str, dropout: float) -> list:
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
        layers.Dropout(dropout),
    ]


def seed_a(dropout: float = 0.5) -> list:
    """Conv 64 2x2 valid, the first classic design; `dropout` is the rate before the output layer."""
    return _classic(2, "valid", dropout)


def seed_b(dropout: float = 0.5) -> list:
    """Conv 64 3x3 same: the classic design, the default; `dropout` is the rate before the output layer."""
    return _classic(3, "same", dropout)


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


def seed_d(dropout: float = 0.5) -> list:
    """The TensorFlow tutorial CNN: convs 32/64/64, dense 256."""
    return [
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
        layers.Dropout(dropout),
    ]


def _conv_bn(filters: int, kernel: int = 3, strides: int = 1) -> list:
    # No bias: the batch norm that follows has one; the converters fold both into the conv.
    return [layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False),
            layers.BatchNormalization(), layers.ReLU()]


def _separable_bn(filters: int, strides: int = 1) -> list:
    # MobileNet v1 block: depthwise 3x3 + BN + ReLU, then pointwise 1x1 + BN + ReLU.
    return [layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False),
            layers.BatchNormalization(), layers.ReLU(), *_conv_bn(filters, 1)]


def edge(stem: int = 16, width1: int = 32, width2: int = 64, width3: int = 128, separable: bool = False,
         fc: int = 128, dropout: float = 0.0) -> list:
    """The edge design: cheap 28->14 stride-2 stem, one conv at 14x14, pool to 7x7, one block at 7x7,
    a stride-2 block to 4x4, global average pooling and a small dense layer instead of a large one.

    Batch norm after every conv (folded into the conv at export). `separable` makes the 7x7 and 4x4
    blocks depthwise-separable (MobileNet v1), which buys width for fewer multiply-accumulates.
    Full-resolution convolutions are what make seed-b slow; this design has none.
    """
    block = _separable_bn if separable else _conv_bn
    head = [layers.Dense(fc, activation="relu")] if fc else []
    return [*_conv_bn(stem, 3, 2), *_conv_bn(width1), layers.MaxPooling2D(2),
            *block(width2), *block(width3, strides=2), layers.GlobalAveragePooling2D(),
            *head, *([layers.Dropout(dropout)] if dropout else [])]


EDGE_SPACE: dict[str, list] = {
    "stem": [12, 16, 24],
    "width1": [24, 32, 48],
    "width2": [48, 64, 96, 128],
    "width3": [96, 128, 192, 256],
    "separable": [False, True],
    "fc": [0, 64, 128, 256],
    "dropout": [0.0, 0.2, 0.4],
}
"""The search space of `fmnist-edge tune --space edge`: each of edge()'s parameters and its choices."""


ARCHITECTURES: dict[str, Callable[..., list]] = {
    "seed-a": seed_a,
    "seed-b": seed_b,
    "seed-c": seed_c,
    "seed-d": seed_d,
    "edge": edge,
}


def build_model(arch: str, **params) -> keras.Model:
    """A fresh, uncompiled model of the named architecture; `params` are its hyperparameters."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    accepted = inspect.signature(ARCHITECTURES[arch]).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"{arch} has no parameter {', '.join(unknown)}; "
                         f"it takes {', '.join(accepted) or 'none'}")
    inputs = keras.Input(INPUT_SHAPE, name="pixels")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for layer in ARCHITECTURES[arch](**params):
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
