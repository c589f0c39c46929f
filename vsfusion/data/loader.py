"""``ClipLoader``: batches of ``({stream: array}, label)`` from per-sample ``.npy`` files.

Each stream (manifest column) is read by the spec of its kind
(:mod:`vsfusion.data.modality`): clips are opened with ``np.load(..., mmap_mode="r")`` and only
the frames that are kept are read, so memory holds one batch, never the dataset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np
import pandas as pd

from vsfusion.data.augment import SensorAugment, mixup
from vsfusion.data.errors import DataError
from vsfusion.data.modality import LoadOptions, StreamInfo, infer_streams
from vsfusion.data.modality import modality as modality_spec

__all__ = ["ClipLoader"]


class ClipLoader(keras.utils.PyDataset):
    """Keras ``PyDataset`` over manifest rows, yielding dict batches keyed by modality.

    ``x = {"video": float32 (B, T, S, S, C) in [0, 255], "sensor": float32 (B, steps, ch)}``
    (only the requested modalities) and ``y = int64 (B,)``.

    * Test mode (``train=False``): uniform temporal sampling, centre crop, no flip: deterministic.
    * Train mode: jittered temporal sampling, random crop (with ``scale_jitter``: a square of
      varying side resized to ``crop_size``), horizontal flip with probability 0.5 when
      ``flip=True``, random erasing with probability ``erase_prob``, the ``sensor_augment``
      transformations, and with ``mixup > 0`` mixup of the whole batch (then ``y`` is soft
      targets ``float32 (B, K)`` instead of labels). The randomness of batch ``i`` in epoch ``e`` comes from
      ``default_rng([seed, e, i])``, so it is reproducible whatever the worker scheduling.
    * Frames smaller than ``crop_size`` are first resized (shorter side up to ``crop_size``).
    * Sensors are resampled to ``sensor_steps`` (see :func:`vsfusion.data.sensor.resample`) when
      given and the stored length differs; raw values are passed through (no normalisation).
      Any other sequence stream (e.g. ``"skeleton"``) is resampled to ``lengths[stream]``.
    * Every stream is read by the spec of its kind (``streams``, else inferred from the column
      name and the files). The left-right mirror is one decision per sample: the first stream
      that can mirror (clips, skeletons with a joint layout, sensors declaring ``mirror_units``)
      draws it and the sample's other streams follow it, so paired streams stay paired.
    * With ``shuffle=True`` the order is a seeded permutation, redrawn at every epoch end.

    Args:
        samples: Manifest rows (``id``, ``label`` and one path column per requested modality).
        classes: Class names; labels map to their index.
        modalities: Path columns to load, e.g. ``("video",)``.
        batch_size: Samples per batch (the last batch may be smaller).
        shuffle: Shuffle the order each epoch.
        seed: Seed of the shuffling and augmentation.
        train: Enable augmentation (temporal jitter, random crop, optional flip).
        num_frames: Frames per clip (``None``: all stored frames; then clips must be equally long).
        crop_size: Square crop side (``None``: full frames; then frames must be equally sized).
        frame_size: Resize frames so the shorter side is this before cropping (``None``: keep the
            cached size); e.g. 80 with ``crop_size=64`` keeps the cached field of view at a lower
            resolution.
        flip: Random horizontal flips in train mode.
        sensor_steps: Sensor length (``None``: stored length; then lengths must agree).
        scale_jitter: Train-mode crop side varies by up to this factor (see
            :func:`vsfusion.data.augment.scale_jitter_crop`); 0: fixed ``crop_size``.
        erase_prob: Train-mode probability of blanking a random rectangle of a clip.
        sensor_augment: Train-mode sensor transformations, or None (``augment["sensor"]``).
        streams: Column -> :class:`~vsfusion.data.modality.StreamInfo` (e.g.
            ``manifest.streams``); columns missing here are inferred from their files.
        lengths: Column -> steps of a sequence stream (``sensor_steps`` is ``lengths["sensor"]``).
        augment: Column -> train-mode ``(array, rng) -> array`` augmentation of a sequence
            stream (``sensor_augment`` is ``augment["sensor"]``).
        mixup: Train-mode mixup ``Beta(alpha, alpha)`` parameter; 0: off.
        workers: Passed to ``keras.utils.PyDataset``.
        use_multiprocessing: Passed to ``keras.utils.PyDataset``.
        max_queue_size: Passed to ``keras.utils.PyDataset``.

    Raises:
        DataError: Unknown label, a sample missing a requested modality, or (when reading) a video
            that is not 4-D uint8 ``(T, H, W, C)``, a sensor that is not 2-D, or channel counts that
            differ between samples, each naming the file.

    Example:
        >>> train = ClipLoader(manifest.split("train"), manifest.classes, batch_size=4,
        ...                    shuffle=True, train=True, num_frames=16, crop_size=112,
        ...                    flip=True, sensor_steps=100)  # doctest: +SKIP
        >>> x, y = train[0]  # doctest: +SKIP
        >>> x["video"].shape, x["sensor"].shape, y.dtype  # doctest: +SKIP
        ((4, 16, 112, 112, 3), (4, 100, 12), dtype('int64'))
    """

    def __init__(
        self,
        samples: pd.DataFrame,
        classes: Sequence[str],
        *,
        modalities: Sequence[str] = ("video", "sensor"),
        batch_size: int = 8,
        shuffle: bool = False,
        seed: int = 0,
        train: bool = False,
        num_frames: int | None = None,
        crop_size: int | None = None,
        frame_size: int | None = None,
        flip: bool = False,
        sensor_steps: int | None = None,
        scale_jitter: float = 0.0,
        erase_prob: float = 0.0,
        sensor_augment: SensorAugment | None = None,
        mixup: float = 0.0,
        streams: Mapping[str, StreamInfo] | None = None,
        lengths: Mapping[str, int] | None = None,
        augment: Mapping[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]
        | None = None,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ) -> None:
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.modalities = tuple(modalities)
        if not self.modalities:
            raise ValueError("modalities is empty; request at least one of 'video', 'sensor'")
        samples = samples.reset_index(drop=True)
        if len(samples) == 0:
            raise DataError("ClipLoader: no samples; check the split passed to the loader")
        for m in self.modalities:
            if m not in samples.columns:
                raise DataError(
                    f"ClipLoader: samples have no {m!r} column; available: {list(samples.columns)}"
                )
            paths = samples[m].fillna("").astype(str)
            if (paths == "").any():
                sid = samples.loc[paths == "", "id"].iloc[0] if "id" in samples else "?"
                raise DataError(
                    f"{sid}: sample has no {m} file; drop samples lacking {m} or do not request it"
                )
        self.classes = [str(c) for c in classes]
        index = {c: i for i, c in enumerate(self.classes)}
        labels = np.empty(len(samples), dtype=np.int64)
        for k, label in enumerate(samples["label"].astype(str)):
            if label not in index:
                sid = samples["id"].iloc[k] if "id" in samples else k
                raise DataError(
                    f"{sid}: label {label!r} is not one of the {len(self.classes)} classes; "
                    "drop the sample or train on that class"
                )
            labels[k] = index[label]
        self.samples = samples
        self.last_error: DataError | None = None
        self._labels = labels
        self._paths = {m: samples[m].astype(str).tolist() for m in self.modalities}
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.train = bool(train)
        self.num_frames = num_frames
        self.crop_size = crop_size
        if frame_size is not None and crop_size is not None and frame_size < crop_size:
            raise ValueError(f"frame_size {frame_size} is smaller than crop_size {crop_size}")
        self.frame_size = frame_size
        self.flip = bool(flip)
        self.sensor_steps = sensor_steps
        self.scale_jitter = float(scale_jitter)
        self.erase_prob = float(erase_prob)
        self.sensor_augment = sensor_augment
        self.mixup = float(mixup)
        self.epoch = 0
        self._channels: dict[str, tuple[int, str]] = {}
        known = dict(streams or {})
        missing = tuple(m for m in self.modalities if m not in known)
        if missing:
            known.update(infer_streams(samples, missing))
        self.streams = {m: known[m] for m in self.modalities}
        lengths = dict(lengths or {})
        augment = dict(augment or {})
        if sensor_steps is not None:
            lengths.setdefault("sensor", sensor_steps)
        if sensor_augment is not None:
            augment.setdefault("sensor", sensor_augment)
        self._options = {
            m: LoadOptions(
                train=self.train,
                num_frames=num_frames,
                crop_size=crop_size,
                frame_size=frame_size,
                flip=self.flip,
                scale_jitter=self.scale_jitter,
                erase_prob=self.erase_prob,
                length=lengths.get(m),
                augment=augment.get(m),
            )
            for m in self.modalities
        }
        self._order = self._permutation()

    # -- order -----------------------------------------------------------------------------
    def _permutation(self) -> np.ndarray:
        n = len(self._labels)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n)

    def on_epoch_end(self) -> None:
        """Advance the epoch: new augmentation draws and, with ``shuffle``, a new order."""
        self.seek_epoch(self.epoch + 1)

    def seek_epoch(self, epoch: int) -> None:
        """Continue at ``epoch``: its order and augmentation draws, as after that many epochs
        (what a resumed fit restores)."""
        self.epoch = int(epoch)
        self._order = self._permutation()

    @property
    def labels(self) -> np.ndarray:
        """int64 labels of all samples in the given row order (the batch order when not shuffled)."""
        return self._labels.copy()

    def __len__(self) -> int:
        return math.ceil(len(self._labels) / self.batch_size)

    def batch_indices(self, i: int) -> np.ndarray:
        """Positions (into ``samples`` and ``labels``) of the samples in batch ``i`` this epoch."""
        return self._order[i * self.batch_size : (i + 1) * self.batch_size]

    # -- reading ---------------------------------------------------------------------------
    def _check_channels(self, modality: str, channels: int, path: str) -> None:
        seen = self._channels.setdefault(modality, (channels, path))
        if seen[0] != channels:
            raise DataError(
                f"{path}: {modality} has {channels} channels but {seen[1]} has {seen[0]}; "
                "all samples must have the same channels"
            )

    def _open_video(self, path: str, modality: str = "video") -> np.ndarray:
        """The memory-mapped ``(T, H, W, C)`` uint8 clip at ``path``, checked (DataError if not)."""
        arr = modality_spec("rgb").open(path)
        self._check_channels(modality, arr.shape[3], path)
        return arr

    def _read(
        self, column: str, path: str, rng: np.random.Generator | None, mirror: bool | None
    ) -> tuple[np.ndarray, bool | None]:
        """One sample's input of ``column`` and its mirror decision (see ``Modality.load``)."""
        info = self.streams[column]
        spec = modality_spec(info.kind)
        arr = spec.open(path)
        if arr.ndim:
            self._check_channels(column, arr.shape[-1], path)
        try:
            return spec.load(arr, info, self._options[column], rng, mirror)
        except ValueError as exc:  # an augmentation that does not fit this recording
            raise DataError(f"{path}: {exc}") from None

    @staticmethod
    def _stack(items: list[np.ndarray], paths: list[str], modality: str, hint: str) -> np.ndarray:
        shapes = {a.shape for a in items}
        if len(shapes) > 1:
            first = items[0].shape
            k = next(j for j, a in enumerate(items) if a.shape != first)
            raise DataError(
                f"{paths[k]}: {modality} shape {items[k].shape} differs from {first} of "
                f"{paths[0]} in the same batch; {hint}"
            )
        return np.stack(items)

    def __getitem__(self, i: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        try:
            return self._batch(i)
        except DataError as exc:
            # Keras backends may wrap errors raised inside fit() (TensorFlow turns them into an
            # InvalidArgumentError); keep the original so callers can report it in one line.
            self.last_error = exc
            raise

    def _batch(self, i: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} out of range for {len(self)} batches")
        rows = self.batch_indices(i)
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        x: dict[str, np.ndarray] = {}
        mirrors: list[bool | None] = [None] * len(rows)
        for m in self.modalities:
            paths = [self._paths[m][r] for r in rows]
            items = []
            for k, p in enumerate(paths):
                arr, mirrors[k] = self._read(m, p, rng, mirrors[k])
                items.append(arr)
            x[m] = self._stack(items, paths, m, modality_spec(self.streams[m].kind).hint)
        y = self._labels[rows]
        if self.train and self.mixup:
            names = sorted(x)
            mixed = [
                mixup(
                    x[m],
                    y,
                    len(self.classes),
                    self.mixup,
                    np.random.default_rng([self.seed, self.epoch, i, 1]),
                )
                for m in names
            ]
            x = {m: arr for m, (arr, _) in zip(names, mixed, strict=True)}
            return x, mixed[0][1]
        return x, y
