"""Training-time augmentation of sensor recordings and video clips (the loader applies them).

Everything here is a pure function of its inputs and a ``numpy.random.Generator``, so a batch's
augmentation is reproducible from the loader's ``(seed, epoch, batch)`` generator.

* :class:`SensorAugment`: rotation of each rigid unit (accelerometer and gyroscope axes turned
  together), smooth time-warp, per-channel gain and jitter, for ``(steps, channels)`` recordings.
* :func:`scale_jitter_crop`: a square crop whose side varies around the output size, resized to
  it (the object appears larger or smaller; the test-time centre crop is the scale-1 case).
* :func:`random_resized_crop`: a random region of random area and aspect ratio resized to a
  square (the contrastive views of :mod:`vsfusion.data.views`).
* :func:`random_erase`: one random rectangle blanked in every frame of a clip (Zhong et al.,
  AAAI 2020, applied clip-wise).
* :func:`mixup`: convex combinations of the samples of a batch and of their one-hot targets
  (Zhang et al., ICLR 2018).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["SensorAugment", "mixup", "random_erase", "random_resized_crop", "scale_jitter_crop"]


@dataclass(frozen=True)
class SensorAugment:
    """Random transformations of one training recording ``(steps, channels)``, in the order listed.

    Attributes:
        rotate_deg: Rotate each rigid unit by a random angle up to this many degrees about a random
            axis. ``unit_channels`` consecutive channels form one unit, read as xyz triplets (a
            6-channel unit is accelerometer xyz + gyroscope xyz) that all get the unit's rotation,
            as both sensors turn with the device. 0, or ``unit_channels=0``: no rotation.
        unit_channels: Channels per rigid unit: a multiple of 3 that divides the channel count.
        warp: Smooth time-warp: the playback speed follows a random curve through 4 knots with
            standard deviation ``warp`` around 1, so the recording is locally stretched and
            squeezed while its first and last samples stay in place. 0: off.
        scale: Per-channel gain drawn from N(1, ``scale``). 0: off.
        jitter: Additive Gaussian noise with standard deviation ``jitter`` times the channel's
            standard deviation in this recording. 0: off.

    Example:
        >>> aug = SensorAugment(rotate_deg=10, unit_channels=6)
        >>> aug(np.ones((50, 6), "float32"), np.random.default_rng(0)).shape
        (50, 6)
    """

    rotate_deg: float = 15.0
    unit_channels: int = 0
    warp: float = 0.2
    scale: float = 0.1
    jitter: float = 0.05

    def check(self, channels: int) -> None:
        """A ``ValueError`` naming the fix when ``unit_channels`` does not fit ``channels``."""
        u = self.unit_channels
        if self.rotate_deg and u and (u % 3 or channels % u):
            raise ValueError(
                f"a rotation unit of {u} channels does not fit {channels} sensor channels; give a "
                "multiple of 3 that divides the channel count, or 0 for no rotation"
            )

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.array(x, dtype=np.float64)
        n, channels = x.shape
        if self.rotate_deg and self.unit_channels:
            self.check(channels)
            for start in range(0, channels, self.unit_channels):
                rot = _random_rotation(rng, np.deg2rad(self.rotate_deg))
                unit = x[:, start : start + self.unit_channels].reshape(n, -1, 3)
                x[:, start : start + self.unit_channels] = (unit @ rot.T).reshape(n, -1)
        if self.warp and n > 3:
            knots = np.clip(rng.normal(1.0, self.warp, 4), 0.2, None)
            speed = np.interp(np.linspace(0.0, 3.0, n - 1), np.arange(4), knots)
            t = np.concatenate([[0.0], np.cumsum(speed)])
            t *= (n - 1) / t[-1]
            grid = np.arange(n)
            x = np.stack([np.interp(t, grid, x[:, c]) for c in range(channels)], axis=1)
        if self.scale:
            x = x * rng.normal(1.0, self.scale, channels)
        if self.jitter:
            x = x + rng.normal(0.0, 1.0, x.shape) * (self.jitter * x.std(axis=0))
        return x.astype(np.float32)


def _random_rotation(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    """A rotation matrix about a uniformly random axis by an angle uniform in ``[-max, max]``."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis) + 1e-12
    angle = rng.uniform(-max_angle, max_angle)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)  # Rodrigues' formula


def scale_jitter_crop(
    frames: np.ndarray, size: int, jitter: float, rng: np.random.Generator
) -> np.ndarray:
    """A random square crop of side ``size * exp(U(-log(1+j), log(1+j)))`` (at most the frame's
    shorter side), at a random position, resized to ``size`` x ``size``.

    Args:
        frames: ``(T, H, W, C)`` clip with ``min(H, W) >= size``.
        size: Output side (the test-time centre crop's side).
        jitter: ``j`` >= 0; 0 is a plain random crop of ``size``.
        rng: Random generator.

    Returns:
        ``(T, size, size, C)`` clip of the input's dtype.

    Example:
        >>> clip = np.zeros((4, 128, 128, 1), "uint8")
        >>> scale_jitter_crop(clip, 96, 0.25, np.random.default_rng(0)).shape
        (4, 96, 96, 1)
    """
    _, h, w, _ = frames.shape
    factor = float(np.exp(rng.uniform(-np.log1p(jitter), np.log1p(jitter)))) if jitter else 1.0
    side = int(min(h, w, max(8, round(size * factor))))
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    crop = frames[:, top : top + side, left : left + side]
    return crop if side == size else _resize_clip(crop, size)


def _resize_clip(region: np.ndarray, size: int) -> np.ndarray:
    """Every frame of ``region`` resized to ``size`` x ``size`` (area averaging when shrinking)."""
    t, h, w, c = region.shape
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    out = np.empty((t, size, size, c), dtype=region.dtype)
    for k in range(t):
        resized = cv2.resize(np.ascontiguousarray(region[k]), (size, size), interpolation=interp)
        out[k] = resized.reshape(size, size, c)
    return out


def random_resized_crop(
    frames: np.ndarray,
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.3, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> np.ndarray:
    """Crop a random region (the same in every frame) and resize it to ``size`` x ``size``.

    Args:
        frames: ``(T, H, W, C)`` array.
        size: Output side in pixels.
        rng: Random generator.
        scale: Range of the crop area as a fraction of ``H * W``.
        ratio: Range of the crop's width / height (sampled log-uniformly).

    Returns:
        ``(T, size, size, C)`` array of the input dtype.

    Example:
        >>> out = random_resized_crop(np.zeros((2, 40, 60, 1), np.uint8), 32, np.random.default_rng(0))
        >>> out.shape
        (2, 32, 32, 1)
    """
    _, h, w, _ = frames.shape
    area = float(rng.uniform(*scale)) * h * w
    aspect = math.exp(float(rng.uniform(math.log(ratio[0]), math.log(ratio[1]))))
    cw = int(round(math.sqrt(area * aspect)))
    ch = int(round(math.sqrt(area / aspect)))
    cw, ch = max(1, min(cw, w)), max(1, min(ch, h))
    top = int(rng.integers(0, h - ch + 1))
    left = int(rng.integers(0, w - cw + 1))
    return _resize_clip(frames[:, top : top + ch, left : left + cw], size)


def random_erase(
    frames: np.ndarray,
    rng: np.random.Generator,
    area: tuple[float, float] = (0.02, 0.25),
    aspect: tuple[float, float] = (0.3, 3.3),
) -> np.ndarray:
    """Blank one random rectangle (the same in every frame) of a clip, in a copy.

    The rectangle covers a fraction of the frame drawn uniformly from ``area``, with an aspect
    ratio log-uniform in ``aspect``; it is filled with 0 (the background of depth clips).

    Example:
        >>> out = random_erase(np.full((2, 32, 32, 1), 9, "uint8"), np.random.default_rng(1))
        >>> bool((out == 0).any()), bool((out == 9).any())
        (True, True)
    """
    _, h, w, _ = frames.shape
    out = np.array(frames)
    for _ in range(10):  # rejection sampling until the rectangle fits
        a = rng.uniform(*area) * h * w
        r = float(np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1]))))
        eh, ew = round(np.sqrt(a * r)), round(np.sqrt(a / r))
        if 0 < eh < h and 0 < ew < w:
            top, left = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
            out[:, top : top + eh, left : left + ew] = 0
            break
    return out


def mixup(
    x: np.ndarray, labels: np.ndarray, num_classes: int, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Mix a batch with a shuffled copy of itself: ``lam * x + (1 - lam) * x[perm]``.

    ``lam ~ Beta(alpha, alpha)``, one per sample, folded to ``max(lam, 1 - lam)`` so each mixed
    sample stays closest to its own; the targets are mixed the same way.

    Returns:
        ``(mixed x as float32, soft targets float32 (B, num_classes))``.

    Example:
        >>> x, t = mixup(np.eye(2, dtype="float32"), np.array([0, 1]), 2, 0.4, np.random.default_rng(0))
        >>> np.allclose(t.sum(1), 1), np.allclose(x, t)
        (True, True)
    """
    n = len(labels)
    onehot = np.eye(num_classes, dtype=np.float32)[labels]
    lam = rng.beta(alpha, alpha, n)
    lam = np.maximum(lam, 1.0 - lam).astype(np.float32)
    perm = rng.permutation(n)
    shape = (n,) + (1,) * (x.ndim - 1)
    mixed = lam.reshape(shape) * x + (1.0 - lam.reshape(shape)) * x[perm]
    targets = lam[:, None] * onehot + (1.0 - lam[:, None]) * onehot[perm]
    return mixed.astype(np.float32), targets
