"""Augmentation chosen for what a camera does to an item, as batched TensorFlow ops.

Geometry (shift, rotation, zoom, horizontal flip) is one projective transform per image; then
gain (contrast), blur and sensor noise. Random numbers are stateless and derived from the run's
seed and the batch index, so a seeded run is repeatable however tf.data schedules the work.
No vertical flips: clothes are not photographed upside down.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from toolkit.tf import tf


@dataclass(frozen=True)
class AugmentConfig:
    shift: float = 0.06
    """Largest shift, as a fraction of the image side (0.06 is about 1.7 px)."""
    rotation_deg: float = 8.0
    """Largest rotation either way, in degrees."""
    zoom: float = 0.08
    """Largest relative change of scale either way."""
    flip: bool = True
    """Mirror left-right half of the time."""
    gain: float = 0.25
    """Largest relative change of pixel intensity (contrast) either way."""
    blur_prob: float = 0.25
    """Share of images blended with a Gaussian-blurred copy (out-of-focus camera)."""
    noise_std: float = 6.0
    """Largest standard deviation of added Gaussian noise, in 0..255 pixel units."""

    def as_dict(self) -> dict:
        return asdict(self)


def _affine_transforms(batch: int, cfg: AugmentConfig, seeds: tf.Tensor, size: float) -> tf.Tensor:
    """[B,8] transforms mapping output pixel coordinates to input coordinates."""
    def uniform(i: int, low: float, high: float) -> tf.Tensor:
        return tf.random.stateless_uniform([batch], seed=seeds[i], minval=low, maxval=high)

    angle = uniform(0, -1.0, 1.0) * (cfg.rotation_deg * math.pi / 180.0)
    scale = 1.0 + uniform(1, -cfg.zoom, cfg.zoom)
    dx = uniform(2, -cfg.shift, cfg.shift) * size
    dy = uniform(3, -cfg.shift, cfg.shift) * size
    flip = tf.where(uniform(4, 0.0, 1.0) < 0.5, -1.0, 1.0) if cfg.flip else tf.ones([batch])
    # Output p maps to input c + R(-angle) * (p - c - d) / scale, with x mirrored when flipped.
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    c = (size - 1.0) / 2.0
    a0, a1 = cos * flip, sin * flip
    b0, b1 = -sin, cos
    ox, oy = c + dx, c + dy
    a2 = c - a0 * ox - a1 * oy
    b2 = c - b0 * ox - b1 * oy
    zeros = tf.zeros([batch])
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


_BLUR = tf.constant([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], shape=[3, 3, 1, 1]) / 16.0


def augment_batch(images: tf.Tensor, seed: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    """Augment a float32 batch [B,28,28,1] of 0..255 pixels; `seed` is an int32 [2] tensor."""
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=8)
    size = tf.cast(tf.shape(images)[1], tf.float32)
    transforms = _affine_transforms(batch, cfg, seeds, size)
    x = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
    gain = 1.0 + tf.random.stateless_uniform([batch, 1, 1, 1], seed=seeds[5], minval=-cfg.gain, maxval=cfg.gain)
    x = x * gain
    if cfg.blur_prob > 0:
        blurred = tf.nn.conv2d(x, _BLUR, strides=1, padding="SAME")
        pick = tf.random.stateless_uniform([batch, 1, 1, 1], seed=seeds[6]) < cfg.blur_prob
        x = tf.where(pick, blurred, x)
    if cfg.noise_std > 0:
        std = tf.random.stateless_uniform([batch, 1, 1, 1], seed=seeds[7], maxval=cfg.noise_std)
        noise_seed = tf.random.experimental.stateless_fold_in(seeds[7], 1)
        x = x + std * tf.random.stateless_normal(tf.shape(x), seed=noise_seed)
    return tf.clip_by_value(x, 0.0, 255.0)
