"""The model zoo: shapes, parameter counts and multiply-accumulates, computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit import models

# (parameters, MACs per image), each worked out from the layer shapes in models.py.
EXPECTED = {
    # conv 2x2 64 (28->27, pool 13), conv 2x2 32 (13->12, pool 6), dense 1152->256->10
    "seed-a": (64 * 5 + 32 * (4 * 64 + 1) + 1152 * 256 + 256 + 2570,
               27 * 27 * 4 * 64 + 12 * 12 * 4 * 64 * 32 + 1152 * 256 + 2560),
    # conv 3x3 same 64 (28, pool 14), conv 3x3 32 (14, pool 7), dense 1568->256->10
    "seed-b": (423_338, 28 * 28 * 9 * 64 + 14 * 14 * 9 * 64 * 32 + 1568 * 256 + 2560),
    # convs 32 (26, pool 13), 64 (11, pool 5), 128 (3), dense 1152->128->10
    "seed-c": (320 + 18_496 + 73_856 + 1152 * 128 + 128 + 1290,
               26 * 26 * 9 * 32 + 11 * 11 * 9 * 32 * 64 + 3 * 3 * 9 * 64 * 128 + 1152 * 128 + 1280),
    # convs 32 (26, pool 13), 64 (11, pool 5), 64 (3), dense 576->256->10
    "seed-d": (320 + 18_496 + 36_928 + 576 * 256 + 256 + 2570,
               26 * 26 * 9 * 32 + 11 * 11 * 9 * 32 * 64 + 3 * 3 * 9 * 64 * 64 + 576 * 256 + 2560),
    # convs without bias + BN (4 per channel): 16 s2 (14), 32 (14, pool 7), 64 (7), 128 s2 (4), GAP, dense 128
    "edge": (9 * 16 + 64 + 9 * 16 * 32 + 128 + 9 * 32 * 64 + 256 + 9 * 64 * 128 + 512 + 128 * 129 + 1290,
             14 * 14 * 9 * 16 + 14 * 14 * 9 * 16 * 32 + 7 * 7 * 9 * 32 * 64 + 4 * 4 * 9 * 64 * 128 + 128 * 128 + 1280),
}

# The separable edge variant: depthwise 3x3 + BN, pointwise 1x1 + BN, at 7x7 (32->128) and 4x4 s2 (128->256).
SEPARABLE = {"separable": True, "width2": 128, "width3": 256}
SEPARABLE_EXPECTED = (
    9 * 16 + 64 + 9 * 16 * 32 + 128 + 9 * 32 + 128 + 32 * 128 + 512 + 9 * 128 + 512 + 128 * 256 + 1024
    + 256 * 128 + 128 + 1290,
    14 * 14 * 9 * 16 + 14 * 14 * 9 * 16 * 32 + 7 * 7 * 9 * 32 + 7 * 7 * 32 * 128 + 4 * 4 * 9 * 128
    + 4 * 4 * 128 * 256 + 256 * 128 + 1280,
)


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_architecture(arch):
    model = models.build_model(arch)
    params, macs = EXPECTED[arch]
    assert model.count_params() == params
    assert models.count_macs(model) == macs
    assert tuple(model.input.shape) == (None, 28, 28, 1)
    probs = model.predict(np.full((3, 28, 28, 1), 255, np.float32), verbose=0)
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_separable_edge_counts():
    model = models.build_model("edge", **SEPARABLE)
    assert (model.count_params(), models.count_macs(model)) == SEPARABLE_EXPECTED
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("DepthwiseConv2D") == 2 and "Flatten" not in kinds


@pytest.mark.parametrize("arch", ["seed-a", "seed-b", "seed-d", "edge"])
def test_dropout_parameter(arch):
    rates = [layer.rate for layer in models.build_model(arch, dropout=0.1).layers
             if type(layer).__name__ == "Dropout"]
    assert rates[-1] == pytest.approx(0.1)


def test_edge_space_matches_its_parameters():
    import inspect

    assert set(models.EDGE_SPACE) == set(inspect.signature(models.edge).parameters)
    for name, default in ((n, p.default) for n, p in inspect.signature(models.edge).parameters.items()):
        assert default in models.EDGE_SPACE[name], name


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match="seed-c has no parameter dropout; it takes none"):
        models.build_model("seed-c", dropout=0.2)
    with pytest.raises(ValueError, match="edge has no parameter wdith"):
        models.build_model("edge", wdith=8)


def test_rescaling_is_inside_the_model():
    layer = models.build_model("seed-b").layers[1]
    assert type(layer).__name__ == "Rescaling" and layer.scale == pytest.approx(1 / 255)


def test_every_zoo_entry_is_tested():
    assert set(models.ARCHITECTURES) == set(EXPECTED)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture 'nope'"):
        models.build_model("nope")
