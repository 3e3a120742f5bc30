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
}


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


def test_rescaling_is_inside_the_model():
    layer = models.build_model("seed-b").layers[1]
    assert type(layer).__name__ == "Rescaling" and layer.scale == pytest.approx(1 / 255)


def test_every_zoo_entry_is_tested():
    assert set(models.ARCHITECTURES) == set(EXPECTED)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture 'nope'"):
        models.build_model("nope")
