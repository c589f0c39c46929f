"""Two augmented views per video for self-supervised (contrastive) pretraining.

``ViewPairLoader`` is a :class:`~vsfusion.data.loader.ClipLoader` whose batches are
``{"view1": (B, T, S, S, C), "view2": (B, T, S, S, C)}`` float32 in ``[0, 255]``: two clips of the
same video that differ in

* time: each view takes a random temporal window of at least ``min_window`` of the stored frames
  at a random position, sampled with TSN-style segment jitter
  (:func:`~vsfusion.data.video.uniform_indices` with ``jitter=True``), so the two views overlap
  partly or not at all;
* space: an independent random-resized crop (area fraction in ``[min_scale, 1]`` of the frame,
  aspect ratio in ``[3/4, 4/3]``) resized to ``crop_size``, and a horizontal flip with
  probability 0.5;
* intensity: brightness and contrast jitter, channel-agnostic, so 1-channel depth clips get it too.

The randomness of batch ``i`` in epoch ``e`` comes from ``default_rng([seed, e, i])``, as in
``ClipLoader``: reproducible whatever the worker scheduling. Incomplete last batches are dropped
(a contrastive batch needs negatives), except when there are fewer videos than ``batch_size``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from vsfusion.data.augment import random_resized_crop
from vsfusion.data.loader import ClipLoader
from vsfusion.data.video import hflip, uniform_indices

__all__ = ["ViewPairLoader", "random_resized_crop", "temporal_window_indices"]


def temporal_window_indices(
    n_total: int, num_frames: int, min_window: float, rng: np.random.Generator
) -> np.ndarray:
    """Indices of ``num_frames`` frames from a random window of a ``n_total``-frame video.

    The window covers a random fraction in ``[min_window, 1]`` of the video at a random start;
    frames are sampled in it with segment jitter.

    Example:
        >>> idx = temporal_window_indices(32, 8, 0.5, np.random.default_rng(0))
        >>> len(idx), bool((np.diff(idx) >= 0).all()), int(idx.max()) < 32
        (8, True, True)
    """
    frac = float(rng.uniform(min(max(min_window, 0.0), 1.0), 1.0))
    length = max(1, min(n_total, round(frac * n_total)))
    start = int(rng.integers(0, n_total - length + 1))
    return start + uniform_indices(length, num_frames, jitter=True, rng=rng)


def _intensity_jitter(
    clip: np.ndarray, rng: np.random.Generator, brightness: float, contrast: float
) -> np.ndarray:
    """Contrast (around the clip mean) and brightness jitter on a float clip in [0, 255]."""
    c = float(rng.uniform(1 - contrast, 1 + contrast))
    b = float(rng.uniform(-brightness, brightness)) * 255.0
    mean = float(clip.mean())
    return np.clip((clip - mean) * c + mean + b, 0.0, 255.0)


class ViewPairLoader(ClipLoader):
    """Batches ``{"view1", "view2"}`` of two augmented clips per video (labels are not used).

    Args:
        samples: Manifest rows with ``id``, ``label`` and ``video``.
        classes: Class names (labels are returned but a contrastive model ignores them).
        batch_size: Videos per batch.
        seed: Seed of the order and the augmentation.
        num_frames: Frames per view.
        crop_size: Side of each view in pixels.
        min_window: Smallest temporal window, as a fraction of the stored frames.
        min_scale: Smallest area fraction of the random-resized crop.
        brightness: Brightness jitter, as a fraction of 255.
        contrast: Contrast jitter (factor in ``[1 - contrast, 1 + contrast]``).
        flip: Random horizontal flips.
        shuffle: Shuffle the order each epoch.
        workers: Passed to ``keras.utils.PyDataset``.

    Example:
        >>> loader = ViewPairLoader(manifest.split("train"), manifest.classes, batch_size=4,
        ...                         num_frames=8, crop_size=32)  # doctest: +SKIP
        >>> x = loader[0]  # doctest: +SKIP
        >>> x["view1"].shape, x["view2"].shape  # doctest: +SKIP
        ((4, 8, 32, 32, 3), (4, 8, 32, 32, 3))
    """

    def __init__(
        self,
        samples: pd.DataFrame,
        classes: Sequence[str],
        *,
        batch_size: int = 8,
        seed: int = 0,
        num_frames: int = 16,
        crop_size: int = 64,
        min_window: float = 0.5,
        min_scale: float = 0.3,
        brightness: float = 0.2,
        contrast: float = 0.4,
        flip: bool = True,
        shuffle: bool = True,
        workers: int = 1,
    ) -> None:
        super().__init__(
            samples,
            classes,
            modalities=("video",),
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            train=True,
            num_frames=num_frames,
            crop_size=crop_size,
            flip=flip,
            workers=workers,
        )
        if not 0.0 < min_window <= 1.0 or not 0.0 < min_scale <= 1.0:
            raise ValueError(
                f"min_window and min_scale must be in (0, 1], got {min_window}, {min_scale}"
            )
        self.min_window = float(min_window)
        self.min_scale = float(min_scale)
        self.brightness = float(brightness)
        self.contrast = float(contrast)

    def __len__(self) -> int:
        return max(1, len(self._labels) // self.batch_size)

    def _read_view(self, path: str, rng: np.random.Generator) -> np.ndarray:
        arr = self._open_video(path)
        idx = temporal_window_indices(arr.shape[0], int(self.num_frames), self.min_window, rng)
        frames = np.asarray(arr[idx])
        frames = random_resized_crop(frames, int(self.crop_size), rng, (self.min_scale, 1.0))
        if self.flip and rng.random() < 0.5:
            frames = hflip(frames)
        clip = frames.astype(np.float32)
        return _intensity_jitter(clip, rng, self.brightness, self.contrast).astype(np.float32)

    def _batch(self, i: int) -> tuple[dict[str, np.ndarray], np.ndarray]:  # type: ignore[override]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} out of range for {len(self)} batches")
        rows = self.batch_indices(i)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        paths = [self._paths["video"][r] for r in rows]
        hint = "all videos must have the same channels"
        views = {}
        for name in ("view1", "view2"):
            views[name] = self._stack([self._read_view(p, rng) for p in paths], paths, name, hint)
        return views, self._labels[rows]

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:  # type: ignore[override]
        """The views of batch ``i`` (no labels: the pretraining model takes ``x`` only)."""
        return super().__getitem__(i)[0]
