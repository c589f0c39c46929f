"""Modalities as declared things: one registry of specs used by the cache, the manifest and the loader.

A *modality spec* (:class:`Modality`) says, for one kind of recording:

* how an array produced by a dataset's reader is checked before it is cached (:meth:`validate`);
* how a cached ``.npy`` is opened and checked when read back (:meth:`open`);
* how the loader turns it into a model input, with the training augmentation and the left-right
  mirror (:meth:`load`);
* which trunk classifies it by default (:attr:`trunk`).

Built in (:data:`MODALITIES`): ``rgb`` and ``depth`` clips (uint8 ``(T, H, W, C)``, C = 3 or 1),
``inertial`` recordings (float32 ``(steps, channels)``, any channel count) and ``skeleton``
sequences (float32 ``(T, joints, coords)``), plus ``array``, the fallback for an undeclared
numeric column. A dataset *stream* is a manifest column of one kind (UTD-MHAD's ``"video"`` column
is of kind ``depth``, VSL's of kind ``rgb``); :class:`StreamInfo` is its declaration: kind, the
per-sample array shape (``None`` where it varies between samples), the channel count and the
kind's attributes (e.g. ``unit_channels`` of a sensor, ``layout`` of a skeleton).

Adding a modality is one :func:`register_modality` call with a :class:`Modality` subclass (and a
reader in the dataset's adapter): the cache, the manifest and the loader pick it up by its kind.

Example:
    >>> sorted(MODALITIES)
    ['array', 'depth', 'inertial', 'rgb', 'skeleton']
    >>> modality("depth").validate(np.zeros((4, 8, 8, 1), np.uint8), "a.mat", {}).shape
    (4, 8, 8, 1)
    >>> modality("sonar")
    Traceback (most recent call last):
    ...
    ValueError: unknown modality kind 'sonar'; known kinds: array, depth, inertial, rgb, skeleton
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsfusion.data.errors import DataError
from vsfusion.data.io import load_npy

__all__ = [
    "MODALITIES",
    "STREAMS_NAME",
    "LoadOptions",
    "Modality",
    "StreamInfo",
    "default_kind",
    "infer_streams",
    "modality",
    "read_streams",
    "register_modality",
    "write_streams",
]

STREAMS_NAME = "modalities.json"
"""The file beside a cache's ``manifest.csv`` that declares its streams (kind, shape, channels)."""


@dataclass(frozen=True)
class StreamInfo:
    """The declaration of one manifest column.

    Attributes:
        kind: A key of :data:`MODALITIES` (``"rgb"``, ``"depth"``, ``"inertial"``, ...).
        shape: Per-sample array shape, ``None`` on axes that vary between samples (e.g. the
            number of frames); ``()`` when unknown.
        channels: Size of the last axis (colour channels, sensor channels, joint coordinates),
            or 0 when unknown.
        attrs: Kind-specific attributes, e.g. ``{"unit_channels": 6, "mirror_units": [[0, 1]]}``
            for two watches or ``{"layout": "kinect-v1"}`` for a skeleton.

    Example:
        >>> StreamInfo("inertial", (None, 6), 6).to_json()
        {'kind': 'inertial', 'shape': [None, 6], 'channels': 6}
    """

    kind: str
    shape: tuple[int | None, ...] = ()
    channels: int = 0
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (:meth:`from_json` reads it back)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "shape": list(self.shape),
            "channels": self.channels,
        }
        if self.attrs:
            out["attrs"] = dict(self.attrs)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StreamInfo:
        """Read :meth:`to_json`'s dict."""
        shape = tuple(None if s is None else int(s) for s in data.get("shape", ()))
        return cls(
            str(data["kind"]), shape, int(data.get("channels", 0)), dict(data.get("attrs", {}))
        )


@dataclass(frozen=True)
class LoadOptions:
    """What the loader asks of one stream's arrays (see :class:`~vsfusion.data.loader.ClipLoader`).

    Attributes:
        train: Training mode: augmentation and random draws on.
        num_frames: Frames per clip (video kinds; ``None``: all stored frames).
        crop_size: Square crop side of a clip (``None``: full frames).
        frame_size: Shorter side to resize clips to before cropping (``None``: as cached).
        flip: Allow the left-right mirror (with probability 0.5 per sample in training).
        scale_jitter: Training crop side varies by up to this factor.
        erase_prob: Training probability of blanking a rectangle of a clip.
        length: Steps of a sequence stream (inertial: samples; skeleton: frames), resampled by
            normalised time when the stored length differs; ``None``: as stored.
        augment: Training augmentation ``(array, rng) -> array`` of a sequence stream, or None.
    """

    train: bool = False
    num_frames: int | None = None
    crop_size: int | None = None
    frame_size: int | None = None
    flip: bool = False
    scale_jitter: float = 0.0
    erase_prob: float = 0.0
    length: int | None = None
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None


class Modality:
    """A modality spec. Subclasses override :meth:`validate`, :meth:`check` and :meth:`load`.

    Attributes:
        name: The kind's name (the key in :data:`MODALITIES`).
        trunk: Name of the trunk that classifies this kind by default (``"i3d"``,
            ``"inception_time"``, ``"stgcn"``), or ``None``.
        hint: How to give samples of this kind a common shape, named when a batch disagrees.
    """

    name: str = "array"
    trunk: str | None = None
    hint: str = "all samples must have the same shape"

    def validate(self, array: Any, where: str, attrs: Mapping[str, Any]) -> np.ndarray:
        """Check a reader's output before it is cached; return the array to store.

        The base accepts any non-empty numeric array that is finite when floating point.
        """
        if not isinstance(array, np.ndarray):
            raise DataError(
                f"{where}: {self.name} reader returned {type(array).__name__}, not a numpy array"
            )
        if array.size == 0 or not (
            np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
        ):
            raise DataError(
                f"{where}: {self.name} reader returned {array.dtype} array of shape {array.shape}; "
                "expected a non-empty numeric array"
            )
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise DataError(
                f"{where}: {self.name} has NaN/inf values; clean or drop this recording"
            )
        return array

    def check(self, array: np.ndarray, path: str) -> None:
        """Check a cached array read back (cheap: header-level); raise :class:`DataError`."""
        if array.size == 0:
            raise DataError(f"{path}: empty {self.name} array; re-run preprocessing")

    def open(self, path: str) -> np.ndarray:
        """The memory-mapped cached array at ``path``, checked."""
        arr = load_npy(path, self.name)
        self.check(arr, path)
        return arr

    def load(
        self,
        array: np.ndarray,
        info: StreamInfo,
        opts: LoadOptions,
        rng: np.random.Generator | None,
        mirror: bool | None,
    ) -> tuple[np.ndarray, bool | None]:
        """One model input from a cached array.

        Args:
            array: The (memory-mapped) cached array.
            info: The stream's declaration.
            opts: The loader's options.
            rng: The batch's generator in training mode, else ``None``.
            mirror: The sample's left-right mirror decision taken by an earlier stream of the
                same sample, or ``None`` when none has decided yet.

        Returns:
            ``(float32 array, decision)``: ``decision`` is the mirror decision this stream took or
            followed, or ``None`` when it cannot mirror (so a later stream decides).
        """
        out = np.asarray(array, dtype=np.float32)
        if opts.train and opts.augment is not None and rng is not None:
            out = np.asarray(opts.augment(out, rng), dtype=np.float32)
        return out, None

    def augmentation(
        self, info: StreamInfo
    ) -> Callable[[np.ndarray, np.random.Generator], np.ndarray] | None:
        """This kind's default training augmentation for the stream ``info`` (None: none); the
        generic stream stage (``train_stream.py``) uses it."""
        return None

    def describe(self, array: np.ndarray) -> tuple[tuple[int | None, ...], int]:
        """``(shape, channels)`` of one cached array, for its :class:`StreamInfo`."""
        return tuple(int(s) for s in array.shape), int(array.shape[-1]) if array.ndim else 0

    def varying_axes(self) -> tuple[int, ...]:
        """Axes whose size may differ between samples (recorded as ``None`` in the shape)."""
        return (0,)


def _draw_mirror(opts: LoadOptions, rng: np.random.Generator | None, mirror: bool | None) -> bool:
    if mirror is not None:
        return mirror
    return bool(opts.train and opts.flip and rng is not None and rng.random() < 0.5)


class VideoModality(Modality):
    """Clips: uint8 ``(T, H, W, C)``; ``channels`` fixes C (``None``: any)."""

    trunk = "i3d"
    hint = "pass num_frames and crop_size for a common clip shape"

    def __init__(self, name: str, channels: int | None) -> None:
        self.name = name
        self.channels = channels

    def validate(self, array: Any, where: str, attrs: Mapping[str, Any]) -> np.ndarray:
        if not isinstance(array, np.ndarray):
            raise DataError(
                f"{where}: {self.name} reader returned {type(array).__name__}, not a numpy array"
            )
        if array.dtype != np.uint8 or array.ndim != 4 or array.size == 0:
            raise DataError(
                f"{where}: video reader returned {array.dtype} array of shape {array.shape}; "
                "expected uint8 (T, H, W, C)"
            )
        if self.channels is not None and array.shape[3] != self.channels:
            raise DataError(
                f"{where}: {self.name} clip has {array.shape[3]} channels, expected {self.channels}"
            )
        return array

    def check(self, array: np.ndarray, path: str) -> None:
        if array.ndim != 4 or array.dtype != np.uint8 or array.shape[0] == 0:
            raise DataError(
                f"{path}: video must be non-empty uint8 (T, H, W, C), got {array.dtype} "
                f"{array.shape}; re-run video preprocessing"
            )

    def load(self, array, info, opts, rng, mirror):  # noqa: ANN001, ANN201 - see Modality.load
        from vsfusion.data.augment import random_erase, scale_jitter_crop
        from vsfusion.data.video import (
            center_crop,
            hflip,
            random_crop,
            resize_shorter,
            uniform_indices,
        )

        idx = uniform_indices(array.shape[0], opts.num_frames, jitter=opts.train, rng=rng)
        frames = np.asarray(array[idx])  # reads only the kept frames from the memory map
        if opts.frame_size is not None and min(frames.shape[1:3]) != opts.frame_size:
            frames = resize_shorter(frames, opts.frame_size)
        if opts.crop_size is not None:
            if min(frames.shape[1:3]) < opts.crop_size:
                frames = resize_shorter(frames, opts.crop_size)
            if not opts.train:
                frames = center_crop(frames, opts.crop_size)
            elif opts.scale_jitter:
                frames = scale_jitter_crop(frames, opts.crop_size, opts.scale_jitter, rng)
            else:
                frames = random_crop(frames, opts.crop_size, rng)
        flipped = _draw_mirror(opts, rng, mirror)
        if flipped:
            frames = hflip(frames)
        if opts.train and opts.erase_prob and rng.random() < opts.erase_prob:
            frames = random_erase(frames, rng)
        return frames.astype(np.float32), flipped

    def varying_axes(self) -> tuple[int, ...]:
        return (0, 1, 2)


def _units(info: StreamInfo, channels: int) -> int:
    unit = int(info.attrs.get("unit_channels", 0) or 0)
    return unit if unit and channels % unit == 0 else 0


def mirror_inertial(x: np.ndarray, unit_channels: int, pairs: Any, signs: Any = None) -> np.ndarray:
    """Mirror a multi-unit inertial recording left-right.

    The units of each pair in ``pairs`` (e.g. ``[[0, 1]]``: the left and the right watch) swap
    places, and every unit's channels are multiplied by ``signs``: a reflection across the body's
    sagittal plane negates the x component of acceleration and the y and z components of angular
    velocity (an axial vector), so the default for 6-channel units (acc xyz, gyro xyz) is
    ``(-1, 1, 1, 1, -1, -1)`` and for 3-channel units ``(-1, 1, 1)``. Mirroring twice is the
    identity.

    Example:
        >>> x = np.arange(12, dtype="float32").reshape(1, 12)
        >>> mirror_inertial(x, 6, [[0, 1]]).tolist()
        [[-6.0, 7.0, 8.0, 9.0, -10.0, -11.0, -0.0, 1.0, 2.0, 3.0, -4.0, -5.0]]
    """
    x = np.asarray(x, dtype=np.float32)
    n_units = x.shape[-1] // unit_channels
    if signs is None:
        base = (-1.0, 1.0, 1.0)
        signs = (base + (1.0, -1.0, -1.0)) if unit_channels == 6 else base * (unit_channels // 3)
    signs = np.asarray(signs, dtype=np.float32)
    if signs.shape != (unit_channels,):
        raise ValueError(f"mirror signs {signs.tolist()} do not fit {unit_channels}-channel units")
    order = list(range(n_units))
    for a, b in pairs:
        if not (0 <= a < n_units and 0 <= b < n_units):
            raise ValueError(f"mirror unit pair {[a, b]} out of range for {n_units} units")
        order[a], order[b] = order[b], order[a]
    units = x.reshape(*x.shape[:-1], n_units, unit_channels)[..., order, :]
    return (units * signs).reshape(x.shape)


class InertialModality(Modality):
    """Wearable sensors: finite float32 ``(steps, channels)``, any channel count.

    Attributes it reads from :attr:`StreamInfo.attrs`: ``unit_channels`` (channels per device,
    e.g. 6 for acc + gyro xyz) and ``mirror_units`` (pairs of device indices that swap under a
    left-right mirror, e.g. ``[[0, 1]]`` for a left and a right watch; absent: the stream does not
    mirror and follows no mirror decision), optionally ``mirror_signs``.
    """

    name = "inertial"
    trunk = "inception_time"
    hint = "pass sensor_steps to resample to a common length"

    def validate(self, array: Any, where: str, attrs: Mapping[str, Any]) -> np.ndarray:
        from vsfusion.data.sensor import validate_sensor

        if not isinstance(array, np.ndarray):
            raise DataError(
                f"{where}: sensor reader returned {type(array).__name__}, not a numpy array"
            )
        out = validate_sensor(array, where)
        unit = int(attrs.get("unit_channels", 0) or 0)
        if unit and out.shape[1] % unit:
            raise DataError(
                f"{where}: {out.shape[1]} sensor channels are not a whole number of "
                f"{unit}-channel units; check the reader or the declared unit_channels"
            )
        return out

    def open(self, path: str) -> np.ndarray:
        from vsfusion.data.sensor import validate_sensor

        return validate_sensor(load_npy(path, "sensor"), path)

    def load(self, array, info, opts, rng, mirror):  # noqa: ANN001, ANN201 - see Modality.load
        from vsfusion.data.sensor import resample

        arr = array
        if opts.length is not None and arr.shape[0] != opts.length:
            arr = resample(arr, opts.length)
        if opts.train and opts.augment is not None:
            arr = opts.augment(arr, rng)
        arr = np.asarray(arr, dtype=np.float32)
        pairs = info.attrs.get("mirror_units")
        unit = _units(info, arr.shape[1])
        if not pairs or not unit:
            return arr, None
        flipped = _draw_mirror(opts, rng, mirror)
        if flipped:
            arr = mirror_inertial(arr, unit, pairs, info.attrs.get("mirror_signs"))
        return arr, flipped

    def describe(self, array: np.ndarray) -> tuple[tuple[int | None, ...], int]:
        return (int(array.shape[0]), int(array.shape[1])), int(array.shape[1])

    def augmentation(self, info: StreamInfo) -> Any:
        """Rotation of each declared device unit, time-warp, gain and jitter (``SensorAugment``
        defaults; no rotation when the stream declares no ``unit_channels``)."""
        from vsfusion.data.augment import SensorAugment

        return SensorAugment(unit_channels=_units(info, info.channels))


class SkeletonModality(Modality):
    """Joint sequences: finite float32 ``(T, joints, channels)``: xy, xyz or xyz + visibility.

    Attributes it reads from :attr:`StreamInfo.attrs`: ``layout``, a joint layout name of
    :mod:`vsfusion.data.skeleton` (its joint count is checked; loaded sequences are normalised:
    the first frame's centre at the origin, divided by the body size; its left/right pairs
    mirror). Without a layout, sequences pass through unnormalised and never mirror.
    """

    name = "skeleton"
    trunk = "stgcn"
    hint = "pass a frame count (lengths) to resample skeletons to a common length"

    def validate(self, array: Any, where: str, attrs: Mapping[str, Any]) -> np.ndarray:
        from vsfusion.data.skeleton import validate_skeleton

        return validate_skeleton(array, where, joints=attrs.get("layout"))

    def check(self, array: np.ndarray, path: str) -> None:
        if array.ndim != 3 or array.shape[0] == 0:
            raise DataError(
                f"{path}: skeleton must be (T, joints, coords), got {array.shape}; re-run preprocessing"
            )

    def load(self, array, info, opts, rng, mirror):  # noqa: ANN001, ANN201 - see Modality.load
        from vsfusion.data.skeleton import (
            layout,
            mirror_skeleton,
            normalize_skeleton,
            resample_skeleton,
        )

        arr = np.asarray(array, dtype=np.float32)
        if opts.length is not None and arr.shape[0] != opts.length:
            arr = resample_skeleton(arr, opts.length)
        name = info.attrs.get("layout")
        if name:
            arr = normalize_skeleton(arr, layout(name))
        if opts.train and opts.augment is not None:
            arr = np.asarray(opts.augment(arr, rng), dtype=np.float32)
        if not name:
            return arr, None
        flipped = _draw_mirror(opts, rng, mirror)
        if flipped:
            arr = mirror_skeleton(arr, layout(name))
        return arr.astype(np.float32, copy=False), flipped

    def augmentation(self, info: StreamInfo) -> Any:
        """A small turn about the vertical axis and a scale change (``SkeletonAugment``; its
        mirror is off: the loader's one mirror decision per sample does that), or None without a
        declared layout."""
        from vsfusion.data.skeleton import SkeletonAugment

        name = info.attrs.get("layout")
        return SkeletonAugment(name, mirror=0.0) if name else None


MODALITIES: dict[str, Modality] = {}
"""The registry: kind name -> spec. Add to it with :func:`register_modality`."""


def register_modality(spec: Modality, *, replace: bool = False) -> Modality:
    """Add a modality spec to :data:`MODALITIES` (under ``spec.name``) and return it.

    Raises:
        ValueError: The name is taken (pass ``replace=True`` to redefine it).

    Example:
        >>> class Sonar(Modality):
        ...     name = "sonar"
        >>> register_modality(Sonar()).name
        'sonar'
        >>> _ = MODALITIES.pop("sonar")
    """
    if spec.name in MODALITIES and not replace:
        raise ValueError(f"modality kind {spec.name!r} is already registered; pass replace=True")
    MODALITIES[spec.name] = spec
    return spec


for _spec in (
    Modality(),
    VideoModality("rgb", 3),
    VideoModality("depth", 1),
    InertialModality(),
    SkeletonModality(),
):
    register_modality(_spec)


def modality(kind: str) -> Modality:
    """The registered spec of ``kind``; a ``ValueError`` lists the known kinds."""
    try:
        return MODALITIES[kind]
    except KeyError:
        raise ValueError(
            f"unknown modality kind {kind!r}; known kinds: {', '.join(sorted(MODALITIES))}"
        ) from None


_COLUMN_KINDS = {"sensor": "inertial"}


def default_kind(column: str, array: np.ndarray | None = None) -> str:
    """The kind of an undeclared column: its own name when that is a kind; ``"video"`` is
    ``rgb`` with 3 channels and ``depth`` with 1 (``rgb`` when unknown); ``"sensor"`` is
    ``inertial``; anything else is ``array``.

    Example:
        >>> default_kind("video", np.zeros((1, 2, 2, 1), np.uint8)), default_kind("sensor")
        ('depth', 'inertial')
    """
    if column in MODALITIES:
        return column
    if column == "video":
        one = isinstance(array, np.ndarray) and array.ndim == 4 and array.shape[3] == 1
        return "depth" if one else "rgb"
    return _COLUMN_KINDS.get(column, "array")


def _merge_shapes(a: tuple[int | None, ...], b: tuple[int | None, ...]) -> tuple[int | None, ...]:
    if len(a) != len(b):
        return tuple([None] * max(len(a), len(b)))
    return tuple(x if x == y else None for x, y in zip(a, b, strict=True))


def describe_stream(
    kind: str, arrays: list[np.ndarray], attrs: Mapping[str, Any] | None = None
) -> StreamInfo:
    """The :class:`StreamInfo` of a column from (some of) its cached arrays."""
    spec = modality(kind)
    shape: tuple[int | None, ...] | None = None
    channels = 0
    for arr in arrays:
        s, channels = spec.describe(arr)
        s = tuple(None if i in spec.varying_axes() else d for i, d in enumerate(s))
        shape = s if shape is None else _merge_shapes(shape, s)
    return StreamInfo(kind, shape or (), channels, dict(attrs or {}))


def infer_streams(
    samples: Any,
    columns: tuple[str, ...],
    declared: Mapping[str, Mapping[str, Any]] | None = None,
    probe: int = 3,
) -> dict[str, StreamInfo]:
    """Declarations of ``columns`` of a samples table, from ``declared`` kinds/attributes and the
    headers of up to ``probe`` cached files per column (memory-mapped: no array is read).

    Args:
        samples: DataFrame with the path columns.
        columns: The path columns to describe (columns without any file are left out).
        declared: Column -> ``{"kind": ..., **attrs}`` (or a :class:`StreamInfo`'s JSON).
        probe: Files opened per column.
    """
    declared = declared or {}
    out: dict[str, StreamInfo] = {}
    for col in columns:
        paths = [p for p in samples[col] if p] if col in samples else []
        if not paths:
            continue
        arrays = []
        for p in paths[:probe]:
            try:
                arrays.append(load_npy(p, col))
            except DataError:  # reported with its file when the loader reads it
                continue
        decl = dict(declared.get(col, {}))
        attrs = decl.pop("attrs", {}) or {}
        kind = decl.pop("kind", None) or default_kind(col, arrays[0] if arrays else None)
        decl.pop("shape", None), decl.pop("channels", None)
        out[col] = describe_stream(kind, arrays, {**attrs, **decl})
    return out


def write_streams(path: str | os.PathLike, streams: Mapping[str, StreamInfo]) -> Path:
    """Write stream declarations as JSON, atomically."""
    from vsfusion.data.io import atomic_write_text

    data = {c: s.to_json() for c, s in streams.items()}
    return atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def read_streams(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read :func:`write_streams`'s file as declarations (``{}`` when absent)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(
            f"{path}: unreadable modality declarations ({e}); delete it to re-infer"
        ) from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of column -> declaration; delete it")
    return data
