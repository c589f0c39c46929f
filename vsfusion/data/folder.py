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
from typing import Any

import numpy as np
import pandas as pd

from vsfusion.data import sensor as _sensor
from vsfusion.data import video as _video
from vsfusion.data.adapter import DatasetAdapter
from vsfusion.data.cache import Entry
from vsfusion.data.errors import DataError
from vsfusion.data.manifest import MODALITY_COLUMNS, SPLITS
from vsfusion.data.sensor import TIME_COLUMNS, resample, validate_sensor
from vsfusion.data.video import VIDEO_EXTENSIONS, check_crop, crop_params, read_clip

__all__ = [
    "Folder",
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
    "sensor_from_array",
]

log = logging.getLogger(__name__)

NAME = "folder"
CACHE_FRAMES = _video.CACHE_FRAMES
"""Frames kept per clip in the cache (read at load time, so a test may lower it)."""
CACHE_SIZE = _video.CACHE_SIZE
"""Side of the cached square frames (read at load time)."""
SENSOR_STEPS = _sensor.SENSOR_STEPS
"""Steps every sensor recording is resampled to (read at load time)."""
SENSOR_EXTENSIONS: tuple[str, ...] = (".csv", ".npy")
SUBJECT_PATTERN = r"^(?P<subject>[^_]+)_"
"""Default subject regex: the file name's prefix before the first underscore."""
PROTOCOLS: tuple[str, ...] = ("folders",)
_FORMAT = 1  # bump when the readers below change what they store


# ---------------------------------------------------------------------------------------------
# readers (top-level and picklable: they run in build_cache's worker processes)


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
    return sensor_from_array(data, steps, path)


def sensor_from_array(
    data: Any, steps: int | None = SENSOR_STEPS, where: str | os.PathLike = "sensor"
) -> np.ndarray:
    """:func:`read_sensor_file` of a recording already in memory (evenly spaced samples).

    Checked like a file (2-D, numeric, finite) and resampled to ``steps`` the same way; what a
    served model does with a recording it receives.

    Example:
        >>> sensor_from_array(np.zeros((50, 6)), steps=128).shape
        (128, 6)
    """
    data = validate_sensor(np.asarray(data), where)
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


# ---------------------------------------------------------------------------------------------
# the adapter


class Folder(DatasetAdapter):
    """The class-per-folder adapter (module docstring).

    Example:
        >>> Folder.protocols["folders"][:20]
        'the top folder is th'
    """

    name = NAME
    modalities = {"video": {"kind": "rgb"}, "sensor": {"kind": "inertial"}}
    protocols = {"folders": "the top folder is the split; validation carved when there is no val/"}
    default_protocol = "folders"
    options = {
        "cache_dir": "cache/folder",
        "protocol": None,
        "workers": 2,
        "subject_pattern": SUBJECT_PATTERN,
        "video_crop": None,
    }
    root_hint = "pass the folder holding train/ and test/"
    carve_hint = "; or add a val/ folder or a subject_pattern that finds several subjects"

    def check(self) -> None:
        super().check()
        self.where = self.root / "train"

    def scan(self) -> list[Entry]:
        found = scan(self.root, self.opts["subject_pattern"])
        return [
            Entry(
                r.id,
                r.label,
                r.subject,
                r.split,
                {m: getattr(r, m) for m in MODALITY_COLUMNS if getattr(r, m)},
            )
            for r in found.itertuples(index=False)
        ]

    def readers(self) -> dict[str, Any]:
        crop = check_crop(self.opts["video_crop"])
        return {
            "video": functools.partial(
                read_clip, num_frames=CACHE_FRAMES, size=CACHE_SIZE, crop=crop, with_info=True
            ),
            "sensor": functools.partial(read_sensor_file, steps=SENSOR_STEPS),
        }

    def cache_params(self, modality: str, entries: list[Entry]) -> dict[str, Any]:
        return dict(
            dataset=NAME,
            root=str(self.root),
            frames=CACHE_FRAMES,
            size=CACHE_SIZE,
            steps=SENSOR_STEPS,
            format=_FORMAT,
            **crop_params(check_crop(self.opts["video_crop"])),
        )


load = Folder.load
"""``load(root, seed=0, val_fraction=0.25, *, cache_dir="cache/folder", protocol=None, workers=2,
subject_pattern=SUBJECT_PATTERN, video_crop=None) -> Manifest``: prepare (once, cached) and load a
class-per-folder dataset; a label only in ``val/`` or ``test/`` raises :class:`DataError` naming
the file before anything is decoded.

Example:
    >>> m = load("data/my_gestures", cache_dir="cache/folder", workers=2)  # doctest: +SKIP
"""
