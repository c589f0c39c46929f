"""VSL: Vietnamese Sign Language, video + two smartwatches, split by signer.

Each sample is one isolated sign performed by one signer, recorded by an RGB camera and by a
smartwatch on each wrist. Each watch gives 6 inertial channels (accelerometer x, y, z then
gyroscope x, y, z), so a recording's sensor array has 12 channels. Raw recordings prepared here
give the left watch's 6, then the right watch's 6 (:data:`SENSOR_CHANNEL_NAMES`); the processed
release keeps the order it was distributed in.

Source: the VSL dataset of the self-learning video + wearable-sensor fusion paper, as distributed
by its authors with the original code release (processed layout below). We could not verify a
public download URL; obtain it from the paper's authors. Cite the paper when you use it.

:func:`load` accepts two layouts and picks the one it finds.

1. Processed layout (the release, and every vsfusion cache), read by :func:`load_processed`::

    ROOT/
      video/<rel>.npy      uint8  (T, H, W, 3)
      sensor/<rel>.npy     float32 (steps, 12)
      train.csv            file,label[,subject]     file = <rel>.npy
      test.csv             file,label[,subject]
      val.csv              optional
      manifest.csv         optional: file,label,subject[,split]

   A sample whose video (or sensor) file is absent simply lacks that modality. Subjects come from
   the split CSV's ``subject`` column, else from ``manifest.csv``, else from the first folder of
   ``file`` (e.g. ``signer03/hello_01.npy`` -> ``signer03``). Splits are the CSVs' (protocol
   ``"given"``).

2. Raw recordings (camera videos and the watches' CSV exports), prepared once into a cache::

    ROOT/raw/                          (or ROOT itself, when it holds annotations.csv)
      annotations.csv                  file,label[,signer][,start,end][,split]
      <signer>/<sample>.mp4            one sign per video (.avi/.mov/.mkv also accepted)
      <signer>/<sample>_left.csv       left-wrist watch:  times,x1,y1,z1,x2,y2,z2
      <signer>/<sample>_right.csv      right-wrist watch: times,x1,y1,z1,x2,y2,z2

   ``file`` is the video's path relative to the raw folder (``signer01/hello_01.mp4``); the watch
   CSVs share its stem (``file`` may also omit the extension; ``.mp4``, ``.avi``, ``.mov``, ``.mkv``
   are then tried). ``x1,y1,z1`` is the accelerometer, ``x2,y2,z2`` the gyroscope. ``signer``
   (or ``subject``) defaults to the first folder of ``file``. Sample ids are ``file`` without
   its extension (``signer01/hello_01``). ``start``/``end`` give the sign's time span in the
   same time base (unit and origin) as that sample's sensor CSVs; empty cells (or no such
   columns) mean the span both watches cover (the overlap of the two CSVs). The video file is
   taken whole: it is expected to hold just the sign.

   ``times`` may be in seconds or milliseconds, since the epoch or relative; the unit is detected
   per CSV (:func:`detect_time_unit`): median ``|t| >= 1e11`` is milliseconds since the epoch,
   ``1e8 <= |t| < 1e11`` seconds since the epoch; smaller (relative) times are milliseconds when
   the median step between samples is >= 1 (rates up to 1 kHz), else seconds. ``start``/``end``
   values of epoch magnitude are detected the same way; smaller ones take the unit of the
   sample's left-watch CSV.

   Preparation (in :func:`vsfusion.data.cache.build_cache` worker processes): each watch is cut
   to the span (samples outside it are discarded), linearly interpolated onto a common time grid
   over the span at the faster watch's median rate, the two are concatenated (left 6, right 6)
   and resampled to :data:`SENSOR_STEPS` with the anti-aliased
   :func:`vsfusion.data.sensor.resample`. Videos are decoded by
   :func:`vsfusion.data.video.read_video`: :data:`CACHE_FRAMES` frames sampled uniformly, shorter
   side resized to :data:`CACHE_SIZE`, centre crop to ``CACHE_SIZE`` x ``CACHE_SIZE``. The cache
   is in the processed layout, videos under ``<cache_dir>/<cache_key(...)>/`` (keyed on the raw
   folder and the frame parameters) and sensors under another ``<cache_dir>/<cache_key(...)>/``
   (keyed on the raw folder, the steps and every sample's span, so editing a span re-prepares
   the cheap sensors, not the videos); later loads reuse both.

   Errors: a missing video or watch CSV raises :class:`DataError` naming the file before anything
   is decoded (fix the file or drop its annotation row). Problems found while reading a file
   (NaN/inf or non-numeric sensor values, a watch covering less than
   :data:`MIN_SPAN_COVERAGE` of the span, an undecodable video) drop that sample; all such
   samples are reported, with their files, in one warning. The cache does not look at file
   contents: after editing a raw video or CSV, delete its ``.npy`` files from the cache (or the
   cache) to re-prepare it. A validation or test label with no training sample raises
   :class:`DataError` naming the video, before anything is decoded.

Protocols (``protocol=``):

* ``"given"``: the splits the data carries (processed split CSVs; the annotation ``split``
  column, which must then be filled on every row). Default whenever such splits exist.
* ``"signer"`` (raw layout only): cross-signer; signers are sorted by name (numbers in names
  compare numerically, ``signer2 < signer10``) and the last :data:`TEST_SIGNER_FRACTION` of them
  (rounded, at least one, never all) are the test signers; chosen from the annotations, before
  preparation. Default for raw data without a ``split`` column.

With ``"signer"`` no signer is in both train and test; with ``"given"`` on raw data a signer in
both is logged as a warning. When there is no validation split, ``val_fraction`` of the training
samples, as whole signers, become validation (:func:`vsfusion.data.splits.carve_validation`).

Command::

    python reproduce.py --dataset VSL --data-root /data/VSL --out runs/vsl

Example:
    >>> from vsfusion.data import load_dataset
    >>> manifest = load_dataset("VSL", "data/VSL")  # doctest: +SKIP
    >>> manifest.summary()["modalities"]  # doctest: +SKIP
    ['video', 'sensor']
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from vsfusion.data import processed
from vsfusion.data.adapter import DatasetAdapter
from vsfusion.data.cache import Entry
from vsfusion.data.errors import DataError
from vsfusion.data.manifest import SPLITS, Manifest, _read_str_csv
from vsfusion.data.processed import SPLIT_FILES, make_split_csvs
from vsfusion.data.sensor import SENSOR_STEPS, read_sensor_csv, resample
from vsfusion.data.video import (
    CACHE_FRAMES,
    CACHE_SIZE,
    VIDEO_EXTENSIONS,
    check_crop,
    crop_params,
    read_clip,
)

__all__ = [
    "ANNOTATIONS",
    "CACHE_FRAMES",
    "CACHE_SIZE",
    "CHANNELS_PER_WATCH",
    "CSV_COLUMNS",
    "MIN_SPAN_COVERAGE",
    "MODALITIES",
    "NAME",
    "NUM_WATCHES",
    "PROTOCOLS",
    "SENSOR_CHANNELS",
    "SENSOR_UNIT_CHANNELS",
    "SENSOR_CHANNEL_NAMES",
    "SENSOR_STEPS",
    "SPLIT_BY",
    "TEST_SIGNER_FRACTION",
    "WATCHES",
    "VSL",
    "VIDEO_EXTENSIONS",
    "detect_time_unit",
    "load",
    "load_processed",
    "load_raw",
    "make_split_csvs",
    "read_watches",
    "signer_protocol",
]

log = logging.getLogger(__name__)

NAME = "VSL"
MODALITIES: tuple[str, ...] = ("video", "sensor")
NUM_WATCHES = 2
CHANNELS_PER_WATCH = 6
SENSOR_CHANNELS = NUM_WATCHES * CHANNELS_PER_WATCH
"""12: the two watches' 6 channels each, concatenated."""
SENSOR_UNIT_CHANNELS = CHANNELS_PER_WATCH
"""Channels of one rigid unit (a watch: accelerometer xyz, gyroscope xyz), rotated together in augmentation."""
SPLIT_BY = "signer"
WATCHES: tuple[str, ...] = ("left", "right")
"""Watch CSV suffixes, in channel order: ``<sample>_left.csv`` then ``<sample>_right.csv``."""
CSV_COLUMNS: tuple[str, ...] = ("x1", "y1", "z1", "x2", "y2", "z2")
"""Channel columns of a watch CSV (besides ``times``): accelerometer xyz, gyroscope xyz."""
SENSOR_CHANNEL_NAMES: tuple[str, ...] = tuple(
    f"{w}_{kind}_{axis}" for w in WATCHES for kind in ("acc", "gyro") for axis in "xyz"
)
ANNOTATIONS = "annotations.csv"
MIN_SPAN_COVERAGE = 0.5
"""A watch must have samples over at least this fraction of the sign's span."""
TEST_SIGNER_FRACTION = 0.2
"""Protocol "signer": this fraction of the signers (sorted by name, the last ones) is the test set."""
PROTOCOLS: tuple[str, ...] = ("given", "signer")
_FORMAT = 1  # bump when the raw readers below change what they store
_EPOCH_MS = 1e11  # |t| above this: milliseconds since the epoch (1e11 s would be year 5138)
_EPOCH_S = 1e8  # |t| above this (and below _EPOCH_MS): seconds since the epoch (1973 onwards)


# ---------------------------------------------------------------------------------------------
# Raw recordings: annotations.csv + videos + per-wrist watch CSVs


def detect_time_unit(times: np.ndarray) -> str:
    """Guess whether watch times are seconds or milliseconds (see the module docstring).

    Args:
        times: The ``times`` column (any order).

    Returns:
        ``"s"`` or ``"ms"``.

    Example:
        >>> detect_time_unit(np.array([1.6e12, 1.6e12 + 20]))
        'ms'
        >>> detect_time_unit(np.array([1.6e9, 1.6e9 + 0.02]))
        's'
        >>> detect_time_unit(np.array([0.0, 20.0, 40.0])), detect_time_unit(np.array([0.0, 0.02]))
        ('ms', 's')
    """
    t = np.asarray(times, dtype=np.float64)
    t = t[np.isfinite(t)]
    if t.size == 0:
        raise ValueError("no finite times")
    mag = float(np.median(np.abs(t)))
    if mag >= _EPOCH_MS:
        return "ms"
    if mag >= _EPOCH_S:
        return "s"
    steps = np.diff(np.sort(t))
    steps = steps[steps > 0]
    return "ms" if steps.size and float(np.median(steps)) >= 1.0 else "s"


def _scalar_seconds(value: float, fallback_unit: str) -> float:
    """An annotation time in seconds: epoch magnitudes decide their unit, else ``fallback_unit``."""
    mag = abs(value)
    unit = "ms" if mag >= _EPOCH_MS else "s" if mag >= _EPOCH_S else fallback_unit
    return value / 1000.0 if unit == "ms" else value


def _read_watch(path: str) -> tuple[np.ndarray, np.ndarray, str]:
    """One watch CSV as (float64 (n, 6) sorted by time, times in seconds, detected unit)."""
    try:
        header = [str(c).strip() for c in pd.read_csv(path, nrows=0).columns]
    except FileNotFoundError:
        raise DataError(f"{path}: watch CSV not found; restore it") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: not a readable CSV ({msg}); fix or re-export it") from None
    if "times" not in header:
        raise DataError(
            f"{path}: no 'times' column; watch CSVs have columns times,{','.join(CSV_COLUMNS)}"
        )
    data, times = read_sensor_csv(path, columns=CSV_COLUMNS)
    if len(times) < 2:
        raise DataError(f"{path}: fewer than two samples; drop this recording")
    order = np.argsort(times, kind="stable")
    unit = detect_time_unit(times)
    seconds = times[order] / (1000.0 if unit == "ms" else 1.0)
    return data[order].astype(np.float64), seconds, unit


def read_watches(source: dict, steps: int = SENSOR_STEPS) -> np.ndarray:
    """Cut both watches to the sign's span, put them on one time grid, resample to ``steps``.

    Args:
        source: ``{"left": csv, "right": csv, "start": float | None, "end": float | None}``;
            ``start``/``end`` in the CSVs' time base (``None``: the span both watches cover).
        steps: Output steps.

    Returns:
        float32 ``(steps, 12)``: left accelerometer, left gyroscope, right accelerometer, right
        gyroscope (x, y, z each).

    Raises:
        DataError: Unreadable CSV, NaN/inf values, no ``times`` column, or a watch with fewer than
            two samples in the span or covering less than :data:`MIN_SPAN_COVERAGE` of it (each
            naming the file).

    Example:
        >>> read_watches({"left": "s1/hi_left.csv", "right": "s1/hi_right.csv",
        ...               "start": None, "end": None}).shape  # doctest: +SKIP
        (128, 12)
    """
    paths = [str(source[w]) for w in WATCHES]
    watches = [_read_watch(p) for p in paths]
    unit = watches[0][2]
    start, end = source.get("start"), source.get("end")
    lo = max(t[0] for _, t, _ in watches) if start is None else _scalar_seconds(start, unit)
    hi = min(t[-1] for _, t, _ in watches) if end is None else _scalar_seconds(end, unit)
    if not hi > lo:
        raise DataError(
            f"{paths[0]}, {paths[1]}: empty time span [{lo:.3f}, {hi:.3f}] s (the watches do not "
            "overlap, or start >= end); check the times and the annotation"
        )
    rate = 0.0
    for _, t, _ in watches:
        dt = np.diff(t)
        dt = dt[dt > 0]
        if dt.size:
            rate = max(rate, 1.0 / float(np.median(dt)))
    n = int(min(max(2, math.floor((hi - lo) * rate) + 1), 100_000))
    grid = np.linspace(lo, hi, n)
    parts = []
    for path, (data, t, _) in zip(paths, watches, strict=True):
        inside = (t >= lo) & (t <= hi)
        k = int(inside.sum())
        covered = (t[inside][-1] - t[inside][0]) / (hi - lo) if k >= 2 else 0.0
        if k < 2 or covered < MIN_SPAN_COVERAGE:
            raise DataError(
                f"{path}: {k} samples covering {covered:.0%} of the sign's span "
                f"[{lo:.3f}, {hi:.3f}] s; check the times unit and the annotation start/end"
            )
        tt, xx = t[inside], data[inside]
        parts.append(np.stack([np.interp(grid, tt, xx[:, c]) for c in range(xx.shape[1])], 1))
    return resample(np.concatenate(parts, axis=1), steps)


def _natural_key(text: str) -> list:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", str(text))]


def signer_protocol(
    signers: Iterable[str], fraction: float = TEST_SIGNER_FRACTION
) -> tuple[list[str], list[str]]:
    """The "signer" protocol: the last ``fraction`` of the signers, sorted by name, are test.

    Names sort naturally (``signer2`` before ``signer10``); at least one signer is test and at
    least one is train.

    Args:
        signers: Signer ids (duplicates ignored).
        fraction: Fraction of signers for test.

    Returns:
        ``(train_signers, test_signers)``.

    Raises:
        DataError: Fewer than two signers.

    Example:
        >>> signer_protocol(["s1", "s10", "s2", "s3", "s4"])
        (['s1', 's2', 's3', 's4'], ['s10'])
    """
    names = sorted({str(s) for s in signers}, key=_natural_key)
    if len(names) < 2:
        raise DataError(
            f"only {len(names)} signer(s) ({names}): a cross-signer split needs at least two; "
            "add signers or give a split column in annotations.csv"
        )
    n_test = min(len(names) - 1, max(1, math.floor(fraction * len(names) + 0.5)))
    return names[:-n_test], names[-n_test:]


def _raw_dir(root: Path) -> Path | None:
    for d in (root / "raw", root):
        if (d / ANNOTATIONS).is_file():
            return d
    return None


def _float_cell(value: str, path: Path, row: int, col: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        out = float(value)
    except ValueError:
        out = math.nan
    if not math.isfinite(out):
        raise DataError(f"{path}: row {row}: {col} {value!r} is not a number; fix it")
    return out


def _read_annotations(raw: Path) -> tuple[pd.DataFrame, bool]:
    """Parse annotations.csv: rows with id, label, signer, start, end, split, video, left, right."""
    path = raw / ANNOTATIONS
    df = _read_str_csv(path)
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in ("file", "label") if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; annotations have columns "
            "file,label[,signer][,start,end][,split]"
        )
    if ("start" in df.columns) != ("end" in df.columns):
        raise DataError(f"{path}: give both 'start' and 'end' columns, or neither")
    if df.empty:
        raise DataError(f"{path}: no samples listed")
    signer_col = (
        "signer" if "signer" in df.columns else "subject" if "subject" in df.columns else None
    )
    has_split = "split" in df.columns and (df["split"].str.strip() != "").any()
    rows = []
    for i, r in enumerate(df.to_dict("records")):
        line = i + 2  # 1-based, after the header
        file = r["file"].strip().replace("\\", "/")
        label = r["label"].strip()
        if not file or not label:
            raise DataError(f"{path}: row {line}: empty file or label; fix or drop the row")
        rel = PurePosixPath(file)
        video = raw / rel
        if rel.suffix.lower() not in VIDEO_EXTENSIONS:  # a stem: find its video
            video = next(
                (raw / f"{file}{e}" for e in VIDEO_EXTENSIONS if (raw / f"{file}{e}").is_file()),
                raw / f"{file}.mp4",
            )
            rel = PurePosixPath(f"{file}{video.suffix}")
        signer = r[signer_col].strip() if signer_col else ""
        if not signer:
            if len(rel.parts) < 2:
                raise DataError(
                    f"{path}: row {line}: no signer for {file}; add a signer column or put the "
                    "files in <signer>/ folders"
                )
            signer = rel.parts[0]
        start = _float_cell(r.get("start", ""), path, line, "start")
        end = _float_cell(r.get("end", ""), path, line, "end")
        if start is not None and end is not None and not end > start:
            raise DataError(f"{path}: row {line}: end {end} <= start {start} for {file}; fix it")
        split = r.get("split", "").strip().lower()
        if split and split not in SPLITS:
            raise DataError(
                f"{path}: row {line}: split {split!r} is not one of {list(SPLITS)}; fix it"
            )
        stem = video.with_suffix("")
        rows.append(
            {
                "id": str(rel.with_suffix("")),
                "label": label,
                "subject": signer,
                "split": split,
                "start": start,
                "end": end,
                "video": video,
                **{w: stem.with_name(f"{stem.name}_{w}.csv") for w in WATCHES},
            }
        )
    out = pd.DataFrame(rows)
    dup = out["id"][out["id"].duplicated()]
    if len(dup):
        raise DataError(f"{path}: sample {dup.iloc[0]!r} is listed twice; list each sample once")
    missing_files = [
        (str(f), what)
        for r in out.itertuples(index=False)
        for f, what in (
            (r.video, "video"),
            (r.left, "left-wrist CSV"),
            (r.right, "right-wrist CSV"),
        )
        if not f.is_file()
    ]
    if missing_files:
        (f, what), more = missing_files[0], len(missing_files) - 1
        raise DataError(
            f"{f}: {what} not found"
            + (f" (and {more} more missing files)" if more else "")
            + f"; every sample in {ANNOTATIONS} needs <stem>.mp4, <stem>_left.csv and "
            "<stem>_right.csv: restore the file or drop the row"
        )
    return out, has_split


# ---------------------------------------------------------------------------------------------
# The adapter


class VSL(DatasetAdapter):
    """VSL (module docstring): the processed layout as given, or raw recordings prepared.

    Units of the 12-channel sensor: unit 0 is the left-wrist watch, unit 1 the right-wrist watch
    (raw recordings prepared here; the processed release keeps its own order), 6 channels each,
    swapped by a left-right mirror.

    Example:
        >>> VSL.modalities["sensor"]["mirror_units"]
        [[0, 1]]
    """

    name = NAME
    modalities = {
        "video": {"kind": "rgb"},
        "sensor": {
            "kind": "inertial",
            "unit_channels": CHANNELS_PER_WATCH,
            "units": ["left_wrist", "right_wrist"],
            "mirror_units": [[0, 1]],
        },
    }
    protocols = {
        "given": "the splits the data carries (split CSVs; the annotations' split column)",
        "signer": "raw layout: the last TEST_SIGNER_FRACTION of the signers (natural sort) test",
    }
    default_protocol = None  # the data decides: "given" when it carries splits, else "signer"
    options = {"cache_dir": "cache/VSL", "protocol": None, "workers": 2, "video_crop": None}
    root_hint = "pass the VSL root"

    layout: str | None = None
    """``"processed"`` or ``"raw"``; found by :meth:`check` unless set before."""

    def check(self) -> None:
        super().check()
        crop = self.opts["video_crop"]
        if self.layout is None:
            if processed.is_processed(self.root, MODALITIES):
                self.layout = "processed"
            elif _raw_dir(self.root) is not None:
                self.layout = "raw"
            else:
                raise DataError(
                    f"{self.root}: no VSL data found. Expected either the processed layout "
                    "(train.csv and test.csv with video/<file> and/or sensor/<file> .npy arrays) "
                    f"or raw recordings (raw/{ANNOTATIONS} with columns "
                    "file,label[,signer][,start,end][,split] and raw/<signer>/<sample>.mp4, "
                    "<sample>_left.csv, <sample>_right.csv with columns times,x1,y1,z1,x2,y2,z2)"
                )
        if self.layout == "processed":
            if crop not in (None, "centre"):
                raise DataError(
                    f"{self.root}: the processed layout's clips are already cropped; video_crop "
                    f"{crop!r} applies to raw recordings (raw/{ANNOTATIONS}) only: drop it"
                )
            if self.protocol == "signer":
                raise DataError(
                    f"{self.root}: the processed layout carries its own split CSVs; protocol "
                    "'signer' applies to raw recordings (raw/annotations.csv) only"
                )
            self.protocol = "given"
            self.where = self.root / SPLIT_FILES["train"]
            self.modalities = processed.layout_modalities(self.root, type(self).modalities)
            self.carve_hint = "; or add a subject column / val.csv"
            return
        raw = _raw_dir(self.root)
        if raw is None:
            raise DataError(
                f"{self.root}: no raw/{ANNOTATIONS} (or {ANNOTATIONS}); see vsfusion.data.vsl"
            )
        self.raw = raw
        self.where = raw / ANNOTATIONS

    def scan(self) -> list[Entry]:
        if self.layout == "processed":
            return processed.scan_processed(self.root, self.modalities, NAME)
        ann, self.has_split = _read_annotations(self.raw)
        return [
            Entry(
                r.id,
                r.label,
                r.subject,
                r.split,
                {
                    "video": str(r.video),
                    "sensor": {
                        "left": str(r.left),
                        "right": str(r.right),
                        "start": None if pd.isna(r.start) else float(r.start),
                        "end": None if pd.isna(r.end) else float(r.end),
                    },
                },
            )
            for r in ann.itertuples(index=False)
        ]

    def split(self, entries: list[Entry]) -> list[Entry]:
        if self.layout == "processed":
            return entries
        if self.protocol is None:
            self.protocol = "given" if self.has_split else "signer"
        if self.protocol == "given":
            if not self.has_split:
                raise DataError(
                    f"{self.where}: protocol 'given' needs a filled 'split' column; add it or "
                    "use protocol 'signer'"
                )
            empty = [e for e in entries if not e.split]
            if empty:
                raise DataError(
                    f"{empty[0].sources['video']}: empty split in {ANNOTATIONS} while other "
                    "rows have one; fill every row's split or use protocol 'signer'"
                )
            both = {e.subject for e in entries if e.split == "train"} & {
                e.subject for e in entries if e.split == "test"
            }
            if both:
                log.warning("VSL: signers in both train and test: %s", sorted(both)[:10])
            return entries
        if self.has_split:
            log.info("VSL: protocol 'signer' ignores the split column of %s", ANNOTATIONS)
        _, test_s = signer_protocol(e.subject for e in entries)
        log.info("VSL protocol 'signer': test signers %s", test_s)
        test = set(test_s)
        return [
            Entry(e.id, e.label, e.subject, "test" if e.subject in test else "train", e.sources)
            for e in entries
        ]

    def readers(self) -> dict[str, Any]:
        if self.layout == "processed":
            return {}
        crop = check_crop(self.opts["video_crop"])
        return {
            "video": functools.partial(
                read_clip, num_frames=CACHE_FRAMES, size=CACHE_SIZE, crop=crop, with_info=True
            ),
            "sensor": functools.partial(read_watches, steps=SENSOR_STEPS),
        }

    def cache_params(self, modality: str, entries: list[Entry]) -> dict[str, Any]:
        """Videos and sensors live in separate caches: the sensor key holds every sample's span,
        so editing a span re-prepares the cheap sensors, not the videos."""
        base = dict(dataset=NAME, root=str(self.raw), format=_FORMAT)
        if modality == "video":
            return {
                **base,
                "frames": CACHE_FRAMES,
                "size": CACHE_SIZE,
                **crop_params(check_crop(self.opts["video_crop"])),
            }
        spans = sorted(
            (e.id, e.sources["sensor"]["start"], e.sources["sensor"]["end"]) for e in entries
        )
        return {**base, "steps": SENSOR_STEPS, "spans": spans}


load = VSL.load
"""``load(root, seed=0, val_fraction=0.25, *, cache_dir="cache/VSL", protocol=None, workers=2,
video_crop=None) -> Manifest``: either layout (module docstring). The processed layout
(``train.csv`` plus ``video/`` or ``sensor/``) is read as :func:`load_processed` reads it;
otherwise ``raw/annotations.csv`` (or ``annotations.csv``) is prepared through the cache."""


def load_processed(
    root: str | os.PathLike,
    name: str = NAME,
    val_fraction: float = 0.2,
    seed: int = 0,
    allow_sample_split: bool = False,
) -> Manifest:
    """:func:`vsfusion.data.processed.load_processed` named ``"VSL"`` by default.

    Example:
        >>> m = load_processed("data/VSL", val_fraction=0.2, seed=0)  # doctest: +SKIP
    """
    return processed.load_processed(root, name, val_fraction, seed, allow_sample_split)


def load_raw(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    val_fraction: float = 0.25,
    cache_dir: str | os.PathLike = "cache/VSL",
    protocol: str | None = None,
    workers: int = 2,
    video_crop: str | None = None,
) -> Manifest:
    """Prepare raw VSL recordings (once, cached) and split them, even beside a processed layout.

    Args:
        root: ``ROOT`` holding ``raw/annotations.csv`` (or the raw folder itself).
        seed: Seed of the validation carve.
        val_fraction: Fraction of training samples, as whole signers, for validation when the
            protocol gives none; 0 disables it.
        cache_dir: Cache folder.
        protocol: ``None`` (``"given"`` if the annotations have a split column, else
            ``"signer"``), ``"given"`` or ``"signer"``.
        workers: Preparation worker processes (``<= 1``: in this process).
        video_crop: ``"centre"`` (default) or ``"person"``, a separate video cache.

    Returns:
        The validated :class:`Manifest`; ids are the video paths relative to the raw folder
        without extension (``signer01/hello_01``), subjects the signers.

    Example:
        >>> m = load_raw("/data/VSL", protocol="signer", workers=2)  # doctest: +SKIP
    """
    adapter = VSL(
        root,
        seed,
        val_fraction,
        cache_dir=cache_dir,
        protocol=protocol,
        workers=workers,
        video_crop=video_crop,
    )
    adapter.layout = "raw"
    return adapter._load()
