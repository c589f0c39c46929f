"""folder: bring-your-own data, one folder per class, with optional sensor files per video.

Layout (``<split>`` is ``train``, ``val`` or ``test``; ``val`` is optional)::

    ROOT/
      train/<label>/<name>.mp4     video (also .avi, .mov, .mkv; any case)
      train/<label>/<name>.csv     optional sensor of that video (same stem), or
      train/<label>/<name>.npy     optional sensor as float (steps, channels)
      val/<label>/...              optional; without it validation subjects are carved from train
      test/<label>/...

Only files directly inside ``<split>/<label>/`` are samples (nested folders are ignored). A sample
is a stem with a video, a sensor file, or both; a stem with only a sensor file is a sensor-only
sample. A stem with both ``.csv`` and ``.npy`` is an error (keep one).

Sensor files:

* ``.npy``: a numeric ``(steps, channels)`` array, samples evenly spaced in time.
* ``.csv``: one row per sample, with or without a header row (a first row that is entirely
  numeric is data). With a header, a column named ``times``, ``time``, ``timestamp`` (any case,
  see :data:`vsfusion.data.sensor.TIME_COLUMNS`) is the time axis and every other column is a
  channel; the recording is then linearly interpolated onto an evenly spaced grid of as many
  points over its own time span (irregular sampling is evened out; the time unit does not matter).
  Without a time column, rows are taken as evenly spaced. Every file must have the same number of
  channels.

Every sensor is resampled to :data:`SENSOR_STEPS` with the anti-aliased
:func:`vsfusion.data.sensor.resample`; every video is decoded by
:func:`vsfusion.data.video.read_video` (uniform temporal sampling to :data:`CACHE_FRAMES`,
shorter side resized to :data:`CACHE_SIZE`, centre crop to ``CACHE_SIZE`` x ``CACHE_SIZE``) in
:func:`vsfusion.data.cache.build_cache` worker processes. The cache lives at
``<cache_dir>/<cache_key(...)>/`` (the key covers the dataset root and these parameters).
Files that fail to decode are dropped and reported in one warning.

Subjects come from each file name through ``subject_pattern`` (searched in the file name with
its extension; the ``subject`` group, else group 1, else the whole match). The default
``^(?P<subject>[^_]+)_`` takes the prefix before the first underscore, e.g.
``p03_wave_2.mp4`` -> ``p03``. A file that does not match raises :class:`DataError`.
``subject_pattern=None`` makes every sample its own subject (validation is then carved per
sample, which is not subject-disjoint).

Protocol ``"folders"`` (the only one): the split is the top folder; when there is no ``val/``,
about ``val_fraction`` of the training samples, as whole subjects, become validation
(:func:`vsfusion.data.splits.carve_validation`). Classes are the training labels; a label that
occurs only in ``val/`` or ``test/`` raises :class:`DataError`.

Example:
    >>> from vsfusion.data import folder
    >>> manifest = folder.load("data/my_gestures", val_fraction=0.25)  # doctest: +SKIP
    >>> manifest.summary()["modalities"]  # doctest: +SKIP
    ['video', 'sensor']

    Command: ``python reproduce.py --dataset folder --data-root data/my_gestures --out runs/mine``.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from vsfusion.data.cache import Entry, build_cache, cache_key
from vsfusion.data.errors import DataError
from vsfusion.data.manifest import MODALITY_COLUMNS, SPLITS, Manifest
from vsfusion.data.sensor import TIME_COLUMNS, resample, validate_sensor
from vsfusion.data.splits import carve_validation
from vsfusion.data.video import check_crop, crop_clip, crop_params, log_crop, read_video

__all__ = [
    "CACHE_FRAMES",
    "CACHE_SIZE",
    "NAME",
    "PROTOCOLS",
    "SENSOR_EXTENSIONS",
    "SENSOR_STEPS",
    "SUBJECT_PATTERN",
    "VIDEO_EXTENSIONS",
    "load",
    "read_clip",
    "read_sensor_file",
    "scan",
    "sensor_channels",
]

log = logging.getLogger(__name__)

NAME = "folder"
CACHE_FRAMES = 32
"""Frames kept per clip in the cache (the loader samples its ``num_frames`` from these)."""
CACHE_SIZE = 128
"""Side of the cached square frames (the loader crops its ``crop_size`` from these)."""
SENSOR_STEPS = 128
"""Steps every sensor recording is resampled to."""
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv")
SENSOR_EXTENSIONS: tuple[str, ...] = (".csv", ".npy")
SUBJECT_PATTERN = r"^(?P<subject>[^_]+)_"
"""Default subject regex: the file name's prefix before the first underscore."""
PROTOCOLS: tuple[str, ...] = ("folders",)
_FORMAT = 1  # bump when the readers below change what they store


# ---------------------------------------------------------------------------------------------
# readers (top-level and picklable: they run in build_cache's worker processes)


def read_clip(
    path: str,
    num_frames: int = CACHE_FRAMES,
    size: int = CACHE_SIZE,
    crop: str = "centre",
    with_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict]:
    """Decode a video to uint8 ``(num_frames, size, size, 3)``: uniform sampling, resize, crop.

    The RGB video reader of the folder, VSL (raw) and UTD-MHAD (rgb) datasets. With
    ``crop="person"`` frames are decoded at twice ``size`` (shorter side) and the square around
    the clip's motion is cut and resized to ``size`` (:func:`~vsfusion.data.video.crop_clip`); a
    still clip falls back to the centre crop.

    Args:
        path: Video file.
        num_frames: Frames sampled uniformly in time (centre of each segment).
        size: Shorter side after resizing, and the side of the centre crop.
        crop: ``"centre"`` or ``"person"``.
        with_info: Also return the crop info (``{"crop", "box", "frame"}``, ``"warning"`` after
            a fallback), as the cache's readers do.

    Returns:
        Contiguous uint8 RGB array ``(num_frames, size, size, 3)``, or ``(clip, info)`` with
        ``with_info``.

    Raises:
        DataError: The file is missing or cannot be decoded.

    Example:
        >>> read_clip("train/wave/p1_wave.mp4", 16, 112).shape  # doctest: +SKIP
        (16, 112, 112, 3)
    """
    crop = check_crop(crop)
    decode = size if crop == "centre" else 2 * size
    clip, info = crop_clip(read_video(path, num_frames=num_frames, size=decode), size, crop, path)
    return (clip, info) if with_info else clip


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_header(path: Path) -> list[str] | None:
    """The header cells of a sensor CSV, or None when its first row is numeric data."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(
            f"{path}: cannot read sensor CSV ({type(e).__name__}); fix or drop it"
        ) from None
    cells = [c.strip() for c in first.strip().split(",")]
    if not first.strip():
        raise DataError(f"{path}: sensor CSV is empty; drop it or fill it")
    return None if all(_is_number(c) for c in cells) else cells


def _time_column(header: list[str] | None) -> int | None:
    if header is None:
        return None
    return next((i for i, c in enumerate(header) if c.lower() in TIME_COLUMNS), None)


def sensor_channels(path: str | os.PathLike) -> int:
    """Number of channels of a sensor file (``.npy`` shape or CSV columns minus the time column).

    Example:
        >>> sensor_channels("train/wave/p1_wave.csv")  # doctest: +SKIP
        6
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a readable .npy ({e}); re-save it with np.save") from None
        if arr.ndim != 2:
            raise DataError(f"{path}: sensor must be 2-D (steps, channels), got shape {arr.shape}")
        return int(arr.shape[1])
    header = _csv_header(path)
    if header is None:
        with open(path, encoding="utf-8") as f:
            return len(f.readline().strip().split(","))
    return len(header) - (_time_column(header) is not None)


def read_sensor_file(path: str, steps: int | None = SENSOR_STEPS) -> np.ndarray:
    """Read a ``.npy`` or ``.csv`` sensor file (see the module docstring) as float32.

    Args:
        path: The file.
        steps: Resample to this many steps (anti-aliased); ``None`` keeps the length.

    Returns:
        float32 ``(steps, channels)``.

    Raises:
        DataError: Unreadable file, non-numeric cells, NaN/inf (naming rows), or fewer than two
            distinct times.

    Example:
        >>> read_sensor_file("train/wave/p1_wave.csv", steps=128).shape  # doctest: +SKIP
        (128, 6)
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            data = validate_sensor(np.load(path, allow_pickle=False), path)
        except (OSError, ValueError) as e:
            if isinstance(e, DataError):
                raise
            raise DataError(f"{path}: not a readable .npy ({e}); re-save it with np.save") from None
        times = None
    else:
        header = _csv_header(path)
        try:
            df = pd.read_csv(path, header=None if header is None else 0, dtype=str)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(f"{path}: not a readable CSV ({msg}); fix or re-export it") from None
        values = df.apply(lambda c: pd.to_numeric(c.str.strip(), errors="coerce"))
        bad = values.isna() & df.notna() & (df.apply(lambda c: c.str.strip()) != "")
        if bad.to_numpy().any():
            row, col = (int(x[0]) for x in np.nonzero(bad.to_numpy()))
            raise DataError(
                f"{path}: non-numeric value {df.iat[row, col]!r} at data row {row}, column "
                f"{df.columns[col]!r}; fix the CSV"
            )
        arr = values.to_numpy(dtype=np.float64)
        tcol = _time_column(header)
        times = None
        if tcol is not None:
            times = arr[:, tcol]
            arr = np.delete(arr, tcol, axis=1)
            if not np.isfinite(times).all():
                raise DataError(f"{path}: time column has missing values; fix the CSV")
        data = validate_sensor(arr, path)
    if times is not None and len(times) > 1:
        order = np.argsort(times, kind="stable")
        t, x = times[order], data[order].astype(np.float64)
        if t[-1] <= t[0]:
            raise DataError(f"{path}: all times are equal; fix the time column")
        grid = np.linspace(t[0], t[-1], len(t))
        data = np.stack([np.interp(grid, t, x[:, c]) for c in range(x.shape[1])], axis=1)
        data = data.astype(np.float32)
    return data if steps is None else resample(data, steps)


# ---------------------------------------------------------------------------------------------
# scanning the folder tree


def _subject(name: str, path: Path, rx: re.Pattern | None) -> str:
    if rx is None:
        return Path(name).stem
    mt = rx.search(name)
    if mt is None:
        raise DataError(
            f"{path}: file name does not match the subject pattern {rx.pattern!r}; rename it "
            "or pass subject_pattern (a regex with a 'subject' group)"
        )
    if "subject" in rx.groupindex:
        subject = mt.group("subject")
    else:
        subject = mt.group(1 if rx.groups else 0)
    if not subject:
        raise DataError(f"{path}: subject pattern {rx.pattern!r} matched an empty subject")
    return subject


def scan(root: str | os.PathLike, subject_pattern: str | None = SUBJECT_PATTERN) -> pd.DataFrame:
    """List the samples of a class-per-folder tree (no decoding).

    Args:
        root: Dataset root holding ``train/``, ``test/`` and optionally ``val/``.
        subject_pattern: Regex giving the subject from each file name (see the module docstring).

    Returns:
        DataFrame with columns ``id`` (``<split>/<label>/<stem>``), ``label``, ``subject``,
        ``split``, ``video`` and ``sensor`` (source paths, ``""`` when absent), sorted by id.

    Raises:
        DataError: Missing ``train/`` or ``test/``, a file not matching the subject pattern, a stem
            with both ``.csv`` and ``.npy``, or sensors with differing channel counts.

    Example:
        >>> scan("data/my_gestures").columns.tolist()  # doctest: +SKIP
        ['id', 'label', 'subject', 'split', 'video', 'sensor']
    """
    root = Path(root)
    rx = re.compile(subject_pattern) if subject_pattern is not None else None
    missing = [s for s in ("train", "test") if not (root / s).is_dir()]
    if missing:
        raise DataError(
            f"{root}: no {missing[0]}/ folder; the folder layout is "
            "<root>/{train,val,test}/<label>/<name>.mp4 (+ optional <name>.csv or <name>.npy)"
        )
    rows = []
    for split in SPLITS:
        base = root / split
        if not base.is_dir():
            continue
        for label_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            stems: dict[str, dict[str, Path]] = {}
            for f in sorted(p for p in label_dir.iterdir() if p.is_file()):
                ext = f.suffix.lower()
                if ext in VIDEO_EXTENSIONS:
                    kind = "video"
                elif ext in SENSOR_EXTENSIONS:
                    kind = "sensor"
                else:
                    continue
                have = stems.setdefault(f.stem, {})
                if kind in have:
                    raise DataError(
                        f"{f}: two {kind} files with the stem {f.stem!r} ({have[kind].name} and "
                        f"{f.name}); keep one"
                    )
                have[kind] = f
            for stem, files in stems.items():
                first = files.get("video", files.get("sensor"))
                rows.append(
                    {
                        "id": f"{split}/{label_dir.name}/{stem}",
                        "label": label_dir.name,
                        "subject": _subject(first.name, first, rx),
                        "split": split,
                        **{
                            m: str(files[m].resolve()) if m in files else ""
                            for m in MODALITY_COLUMNS
                        },
                    }
                )
    df = pd.DataFrame(rows, columns=["id", "label", "subject", "split", *MODALITY_COLUMNS])
    if df.empty:
        raise DataError(
            f"{root}: no videos ({', '.join(VIDEO_EXTENSIONS)}) or sensor files under "
            "{train,val,test}/<label>/"
        )
    df = df.sort_values("id", kind="stable").reset_index(drop=True)

    channels: dict[int, str] = {}
    for p in df["sensor"]:
        if p:
            channels.setdefault(sensor_channels(p), p)
    if len(channels) > 1:
        (c1, p1), (c2, p2) = sorted(channels.items())[:2]
        raise DataError(
            f"sensors have differing channel counts: {p1} has {c1}, {p2} has {c2}; every sensor "
            "file must have the same channels"
        )
    return df


def _check_labels(df: pd.DataFrame) -> None:
    """Before any decoding: train non-empty, every val/test label a training label (source named)."""
    train_labels = set(df.loc[df["split"] == "train", "label"])
    if not train_labels:
        raise DataError("split 'train' has no samples; put videos in train/<label>/")
    bad = df[(df["split"] != "train") & ~df["label"].isin(train_labels)]
    if len(bad):
        r = bad.iloc[0]
        raise DataError(
            f"{r['video'] or r['sensor']}: label {r['label']!r} occurs in split {r['split']!r} but "
            "not in 'train'; add training samples of that class or drop it from the split"
        )


# ---------------------------------------------------------------------------------------------
# the adapter


def load(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    val_fraction: float = 0.25,
    cache_dir: str | os.PathLike = "cache/folder",
    protocol: str | None = None,
    workers: int = 2,
    subject_pattern: str | None = SUBJECT_PATTERN,
    video_crop: str | None = None,
) -> Manifest:
    """Prepare (once, cached) and load a class-per-folder dataset.

    Args:
        root: Dataset root (``train/``, ``test/``, optional ``val/``; see the module docstring).
        seed: Seed of the validation carve.
        val_fraction: Fraction of training samples, as whole subjects, moved to "val" when there is
            no ``val/`` folder; 0 disables the carve.
        cache_dir: Cache folder; arrays go to ``<cache_dir>/<cache_key(...)>/``.
        protocol: ``None`` or ``"folders"`` (splits from the top folders).
        workers: Preparation worker processes (``<= 1``: in this process).
        subject_pattern: Regex taking the subject from each file name; ``None``: one subject per
            sample.
        video_crop: ``"centre"`` (default) or ``"person"`` (the square around the clip's motion,
            see :func:`read_clip`), a separate cache.

    Returns:
        The validated :class:`Manifest` named ``"folder"``; ids are ``<split>/<label>/<stem>``.

    Raises:
        DataError: Layout problems (see :func:`scan`), a carve that is impossible (one training
            subject), or any :meth:`Manifest.validate` error (e.g. a test label absent from train).

    Example:
        >>> m = load("data/my_gestures", cache_dir="cache/folder", workers=2)  # doctest: +SKIP
        >>> m.summary()["train"]  # doctest: +SKIP
        96
    """
    crop = check_crop(video_crop)
    if protocol not in (None, *PROTOCOLS):
        raise DataError(f"folder: unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    found = scan(root, subject_pattern)
    _check_labels(found)
    entries = [
        Entry(
            r.id,
            r.label,
            r.subject,
            r.split,
            {m: getattr(r, m) for m in MODALITY_COLUMNS if getattr(r, m)},
        )
        for r in found.itertuples(index=False)
    ]
    key = cache_key(
        dataset=NAME,
        root=str(root),
        frames=CACHE_FRAMES,
        size=CACHE_SIZE,
        steps=SENSOR_STEPS,
        format=_FORMAT,
        **crop_params(crop),
    )
    readers = {
        "video": functools.partial(
            read_clip, num_frames=CACHE_FRAMES, size=CACHE_SIZE, crop=crop, with_info=True
        ),
        "sensor": functools.partial(read_sensor_file, steps=SENSOR_STEPS),
    }
    df = build_cache(entries, Path(cache_dir) / key, readers, workers=workers, desc=NAME)
    log_crop(NAME, crop, df)
    if val_fraction and not (df["split"] == "val").any():
        try:
            df = carve_validation(df, val_fraction, seed)
        except DataError as e:
            raise DataError(
                f"{root / 'train'}: {e}; or add a val/ folder or a subject_pattern that finds "
                "several subjects"
            ) from None
    classes = sorted(set(df.loc[df["split"] == "train", "label"]))
    manifest = Manifest(samples=df, classes=classes, name=NAME, root=root).validate()
    log.info("loaded %s", manifest.summary())
    return manifest
