"""Keras model files in and out: one way to read one (an unreadable file is one line naming the role it
was given for) and one way to write one (atomically, without the training state)."""

from __future__ import annotations

from pathlib import Path

from edge_runtime.core.errors import FmnistEdgeError, first_line
from edge_runtime.core.files import atomic_path
from toolkit.tf import keras


def load_keras_model(path: str | Path, role: str = "", hint: str = "give a model.keras that train wrote"):
    """A model.keras, uncompiled; a missing or unloadable file is one FmnistEdgeError line that names
    the file, the role it was given for (e.g. "--init") and `hint`."""
    path = Path(path)
    name = f"{role} {path}" if role else str(path)
    if not path.is_file():
        raise FmnistEdgeError(f"{name}: no such file; {hint}")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged or foreign file
        raise FmnistEdgeError(f"{name}: not a loadable Keras model ({first_line(exc)}); {hint}") from None


def save_keras_model(model, path: str | Path) -> None:
    """The architecture and weights, without the training loss: any Keras loads the file as it is.
    Written aside and renamed into place, so a half-written file never replaces a good one."""
    plain = keras.Model.from_config(model.get_config())  # the layers alone, not the compiled state
    plain.set_weights(model.get_weights())
    with atomic_path(Path(path)) as tmp:
        plain.save(tmp)
