"""Training: a recipe (config.py, toolkit/recipes/*.toml) resolved into a TrainConfig, the targets and
loss (losses.py), the tf.data pipeline (pipeline.py), real photos (photos.py), teachers for
distillation (teachers.py), the run itself (run.py) and what it writes (outputs.py).

`from toolkit.train import train, TrainConfig` works without importing TensorFlow until `train` is used.
"""

from __future__ import annotations

from toolkit.train.config import TrainConfig

__all__ = ["TrainConfig", "TrainReport", "train"]


def __getattr__(name: str):
    if name in ("train", "TrainReport"):  # TensorFlow is imported here, when training is asked for
        from toolkit.train import outputs, run

        return run.train if name == "train" else outputs.TrainReport
    raise AttributeError(name)
