"""Real photos in training: the folders' training split through the camera's preprocessing (or as
augmented full-size frames), and the photos it leaves, scored after training."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from edge_runtime.core.contract import NUM_CLASSES
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.data import photos as photo_folder
from edge_runtime.data.scoring import PhotoScore, score_photos
from toolkit.train.config import TrainConfig
from toolkit.train.losses import photo_targets

log = logging.getLogger(__name__)


def balanced_rows(photos: list[photo_folder.Photo], frames_of: np.ndarray, power: float, seed: int) -> np.ndarray:
    """As many frame rows, drawn (seeded, with replacement) so that a group of photos (one source, one photo
    class) is seen in proportion to its size to the `power`: 1 as it is (the 2,100 shoe photos of one
    source outweigh the 6 worn sneakers), 0 every group alike, 0.5 between."""
    groups = [f"{p.source}/{p.photo_class}" for p in photos]
    sizes = {g: groups.count(g) for g in set(groups)}
    weight = np.array([sizes[groups[i]] ** (power - 1.0) for i in frames_of])
    return np.random.default_rng([seed, 7]).choice(len(frames_of), len(frames_of), p=weight / weight.sum())


@dataclass
class PhotoSets:
    """Photo folders through the camera's preprocessing: one split trains (its photos, or with variants
    augmented full-size frames of them), the photos it leaves are scored."""

    tune_images: np.ndarray
    tune_targets: np.ndarray
    tune_photos: int
    held_out: list[photo_folder.Photo]
    held_out_images: np.ndarray

    @classmethod
    def load(cls, folders: tuple[str, ...], cfg: TrainConfig) -> PhotoSets:
        if cfg.photo_split not in photo_folder.SCORED_AFTER:
            raise FmnistEdgeError(f"photos can train on {', '.join(photo_folder.SCORED_AFTER)}, "
                                  f"not {cfg.photo_split}")
        tune = photo_folder.load_folders(folders, cfg.photo_split, tuple(cfg.photo_exclude))
        if not tune:
            raise FmnistEdgeError(f"--photos {', '.join(folders)}: no labelled photo in the {cfg.photo_split} "
                                  "split to train on; label some frames (fmnist-edge label DIR), or choose another "
                                  "--photo-split")
        scored_split = photo_folder.SCORED_AFTER[cfg.photo_split]
        held_out = photo_folder.load_folders(folders, scored_split) if scored_split else []
        log.info("preprocessing %d %s and %d %s photos from %s", len(tune), cfg.photo_split, len(held_out),
                 scored_split or "scored", ", ".join(folders))
        images, target = cls._training_frames(tune, cfg)
        return cls(images, target, len(tune), held_out,
                   photo_folder.prepare(held_out) if held_out else np.zeros((0, 28, 28, 1), np.uint8))

    @staticmethod
    def _training_frames(tune: list[photo_folder.Photo], cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
        target = photo_targets(photo_folder.accepted_mask(tune))
        if cfg.photo_variants <= 1:
            images, frames_of = photo_folder.prepare(tune), np.arange(len(tune))
        else:
            from toolkit.photo_augment import PhotoAugmentConfig, cached_photo_bank

            images, partial = cached_photo_bank([p.path for p in tune], cfg.photo_variants, cfg.seed,
                                                PhotoAugmentConfig(**cfg.photo_augment_params),
                                                [p.mask for p in tune])
            target = np.repeat(target, cfg.photo_variants, axis=0)
            target[partial] = photo_targets(np.zeros((1, NUM_CLASSES), np.float32))  # part of an item: no class
            frames_of = np.repeat(np.arange(len(tune)), cfg.photo_variants)
        if cfg.photo_balance != 1.0:
            pick = balanced_rows(tune, frames_of, cfg.photo_balance, cfg.seed)
            images, target = images[pick], target[pick]
        return images, target

    def score(self, model) -> PhotoScore | None:
        if not self.held_out:
            return None
        probs = model.predict(self.held_out_images.astype(np.float32), batch_size=512, verbose=0)
        return score_photos(self.held_out, probs)
