"""Berkeley MHAD: multi-view video + six wearable accelerometers, 11 actions, 12 subjects.

The Berkeley Multimodal Human Action Database (Ofli, Chaudhry, Kurillo, Vidal and Bajcsy,
"Berkeley MHAD: A Comprehensive Multimodal Human Action Database", WACV 2013) was recorded by the
Tele-immersion Lab, UC Berkeley (with the Center for Imaging Science, Johns Hopkins University)
and is distributed by the lab (https://tele-immersion.citris-uc.org/berkeley_mhad) as one archive
per modality. Facts:

* 12 subjects (7 male, 5 female), ``S01`` .. ``S12``; 11 actions (:data:`ACTIONS`), ``A01`` ..
  ``A11``; 5 repetitions, ``R01`` .. ``R05``: about 660 recordings (the release lacks a few, e.g.
  ``s04_a08_r05``; the accelerometer files of ``s02_a07_r05`` are absent as well).
* Video: 12 cameras in 4 clusters, 640x480 at about 22 fps, one PGM file per frame. The frames are
  raw single-channel Bayer mosaics: the dataset's own demo script reads
  ``Camera/Cluster01/Cam01/...pgm`` and demosaics it with pattern ``'grbg'``. This adapter does
  the same (:data:`BAYER_PATTERN`, OpenCV ``COLOR_BayerGRBG2RGB``), so cached clips are RGB with
  3 channels; ``bayer=None`` keeps the raw frame as one grey channel instead (for a camera whose
  PGMs are plain grey images).
* Sensors: 6 Shimmer wireless 3-axis accelerometers (``Shimmer01`` .. ``Shimmer06``, values in g,
  about 30-32 Hz, irregularly sampled with occasional gaps of about 1 s, each unit on its own
  clock but all stamped in Unix seconds).

Layout expected under ``root`` (the official archives extracted side by side)::

    ROOT/
      Accelerometer/Shimmer0K/acc_h0K_sSS_aAA_rRR.txt         rows "ax ay az unix_time" (K = 1..6)
      Time_stamps/time_stamps_img_sSS_aAA_rRR.txt             rows "frame unix_time" (camera frames)
      Camera/ClusterCC/CamKK/SSS/AAA/RRR/img_lCC_cKK_sSS_aAA_rRR_NNNNN.pgm   (optional)

The ``Camera/`` level may be omitted (``ROOT/Cluster01/Cam01/S01/...``). The ``Time_stamps``
files of the background and T-pose recordings (``time_stamps_img_s01_b01.txt``,
``..._t-pose.txt``) use three columns, ``frame seconds microseconds``; both forms are read.
Without any ``Camera`` folder the dataset is sensor-only: the manifest's ``video`` column is
``""`` everywhere and only the sensor stage can run (``--stages sensor``).

Preprocessing (cached at ``<cache_dir>/<cache_key(...)>/`` by
:func:`vsfusion.data.cache.build_cache`, in worker processes):

* sensor (:func:`read_sensor`): each unit's rows are sorted by timestamp (duplicates dropped);
  the common window is the overlap of the six units' time spans, intersected with the camera's
  span when the time stamps file exists; each unit is linearly interpolated onto one uniform
  :data:`GRID_HZ` grid over that window; the six units are concatenated
  (:data:`SENSOR_CHANNELS`, 18 channels, unit-major) and resampled to :data:`SENSOR_STEPS` with
  the anti-aliased :func:`vsfusion.data.sensor.resample`. Values are kept in g, spikes included.
* video (:func:`read_camera`): the frames of one camera (:data:`DEFAULT_CAMERA`, or
  ``camera=(cluster, cam)``) in frame-number order, restricted to the same time window when the
  time stamps file exists (so both streams cover the same interval); :data:`CACHE_FRAMES`
  frames sampled uniformly in time, demosaicked, shorter side resized to :data:`CACHE_SIZE`,
  centre crop: uint8 ``(CACHE_FRAMES, CACHE_SIZE, CACHE_SIZE, 3)``.

A recording with a missing Shimmer unit, or (when the camera folder exists) without frames of the
chosen camera, is skipped; all of them are reported in one warning. A file that cannot be parsed or
holds NaN/inf values makes its reader raise :class:`~vsfusion.data.errors.DataError` naming the
file; ``build_cache`` then drops that recording and reports it in its one warning (never kept).

Protocols (``protocol=``):

* ``"standard"`` (default): the cross-subject protocol of the dataset paper: subjects 1-7 train,
  8-12 test; validation subjects (about ``val_fraction`` of the training samples) are carved from
  subjects 1-7 with ``seed``.
* ``"original"``: per repetition across subjects 1-12: repetitions 1-3 train, 4 val, 5 test. The
  split used by the original self-learning-fusion code could not be found; this documented
  stand-in is *not* subject-disjoint (the same people are in train and test).
* ``"dev"``: subjects 1-5 train, 6 val, 7 test: for tuning on the released training subjects
  without touching subjects 8-12 (which are not even read).

``"standard"`` and ``"original"`` need subjects 8-12; when they are absent :func:`load` raises
:class:`DataError` pointing to ``--protocol dev``.

Command::

    python reproduce.py --dataset MHAD --root /data/BerkeleyMHAD --out runs/mhad

Example:
    >>> from vsfusion.data import berkeley_mhad
    >>> m = berkeley_mhad.load("/data/BerkeleyMHAD", protocol="dev")  # doctest: +SKIP
    >>> m.summary()["classes"]  # doctest: +SKIP
    11
    >>> berkeley_mhad.ACTIONS[4]
    'punching'
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from vsfusion.data import sensor as _sensor
from vsfusion.data import video as _video
from vsfusion.data.adapter import DatasetAdapter
from vsfusion.data.cache import Entry
from vsfusion.data.errors import DataError
from vsfusion.data.sensor import resample, validate_sensor
from vsfusion.data.video import (
    check_crop,
    crop_clip,
    crop_params,
    resize_shorter,
    uniform_indices,
)

__all__ = [
    "ACTIONS",
    "BAYER_PATTERN",
    "BerkeleyMHAD",
    "CACHE_FRAMES",
    "CACHE_SIZE",
    "DEFAULT_CAMERA",
    "GRID_HZ",
    "NAME",
    "PROTOCOLS",
    "REPETITIONS",
    "SENSOR_CHANNELS",
    "SENSOR_UNIT_CHANNELS",
    "SENSOR_STEPS",
    "SUBJECTS",
    "UNITS",
    "Recording",
    "load",
    "read_camera",
    "read_sensor",
    "read_shimmer",
    "read_time_stamps",
    "scan",
]

log = logging.getLogger(__name__)

NAME = "MHAD"
ACTIONS: dict[int, str] = {
    1: "jumping_in_place",
    2: "jumping_jacks",
    3: "bending",  # hands up all the way down
    4: "punching",  # boxing
    5: "waving_two_hands",
    6: "waving_right_hand",
    7: "clapping_hands",
    8: "throwing_a_ball",
    9: "sit_down_then_stand_up",
    10: "sit_down",
    11: "stand_up",
}
"""Action number (``aAA``) -> label."""
SUBJECTS: tuple[int, ...] = tuple(range(1, 13))
REPETITIONS: tuple[int, ...] = tuple(range(1, 6))
UNITS: tuple[int, ...] = tuple(range(1, 7))
"""Shimmer accelerometer units ``Shimmer01`` .. ``Shimmer06``."""
SENSOR_CHANNELS: tuple[str, ...] = tuple(
    f"h{k:02d}_{ax}" for k in UNITS for ax in ("ax", "ay", "az")
)
"""The 18 fused channels: each unit's x, y, z acceleration (g), unit by unit."""
SENSOR_UNIT_CHANNELS = 3
"""Channels of one rigid unit (a Shimmer's accelerometer xyz), rotated together in augmentation."""
DEFAULT_CAMERA: tuple[int, int] = (1, 1)
"""(cluster, camera) read by default: ``Cluster01/Cam01``, the front camera of the demo script."""
BAYER_PATTERN: str | None = "GRBG"
"""Bayer pattern of the raw PGM frames (what the dataset's demo script demosaics with)."""
CACHE_FRAMES = _video.CACHE_FRAMES
"""Frames kept per clip in the cache (the loader samples its ``num_frames`` from these)."""
CACHE_SIZE = _video.CACHE_SIZE
"""Side of the cached square frames (the loader crops its ``crop_size`` from these)."""
SENSOR_STEPS = _sensor.SENSOR_STEPS
"""Steps the fused 18-channel recording is resampled to."""
GRID_HZ = 64.0
"""Rate of the common time grid the units are interpolated onto (about twice their own rate)."""
PROTOCOLS: dict[str, dict[str, tuple[int, ...]]] = {
    "standard": {"train": tuple(range(1, 8)), "test": tuple(range(8, 13))},
    "original": {"train": SUBJECTS, "test": SUBJECTS},  # split by repetition, see _assign_splits
    "dev": {"train": (1, 2, 3, 4, 5), "val": (6,), "test": (7,)},
}
"""Protocol -> subjects per split (``"original"`` splits by repetition: 1-3, 4, 5)."""
ORIGINAL_REPETITIONS: dict[str, tuple[int, ...]] = {"train": (1, 2, 3), "val": (4,), "test": (5,)}
_MAX_LISTED = 20  # recordings named in the skipped-recordings warning
_FORMAT = 1  # bump when the readers below change what they store

_BAYER_CODES = {  # OpenCV names the pattern by the 2nd row's 2nd and 3rd pixels
    "GRBG": cv2.COLOR_BayerGB2RGB,
    "RGGB": cv2.COLOR_BayerBG2RGB,
    "BGGR": cv2.COLOR_BayerRG2RGB,
    "GBRG": cv2.COLOR_BayerGR2RGB,
}
_ACC_RX = re.compile(r"^acc_h(\d+)_s(\d+)_a(\d+)_r(\d+)\.txt$", re.IGNORECASE)
_TS_RX = re.compile(r"^time_stamps_img_s(\d+)_a(\d+)_r(\d+)\.txt$", re.IGNORECASE)
_FRAME_RX = re.compile(r"_(\d+)\.pgm$", re.IGNORECASE)


def _rec_name(s: int, a: int, r: int) -> str:
    return f"s{s:02d}_a{a:02d}_r{r:02d}"


# ---------------------------------------------------------------------------------------------
# native file readers


def _parse_table(path: str | os.PathLike, what: str) -> np.ndarray:
    """Whitespace- (or comma-) separated numbers as a float64 2-D array; DataError naming the file."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        raise DataError(f"{path}: {what} file not found; check the dataset root") from None
    lines = [ln.replace(",", " ").split() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise DataError(f"{path}: {what} file is empty; restore it from the release or drop it")
    width = len(lines[0])
    for i, ln in enumerate(lines):
        if len(ln) != width:
            raise DataError(
                f"{path}: line {i + 1} has {len(ln)} columns, line 1 has {width}; "
                "restore the file from the release"
            )
    try:
        return np.array(lines, dtype=np.float64)
    except ValueError:
        for i, ln in enumerate(lines):
            try:
                np.array(ln, dtype=np.float64)
            except ValueError:
                raise DataError(
                    f"{path}: non-numeric value on line {i + 1} ({' '.join(ln)[:60]!r}); "
                    "restore the file from the release"
                ) from None
        raise  # pragma: no cover - some line must have failed


def _monotonic(times: np.ndarray, values: np.ndarray, path: str | os.PathLike):
    """Sort rows by time (stable) and drop rows repeating an earlier timestamp."""
    if not np.isfinite(times).all():
        bad = int(np.flatnonzero(~np.isfinite(times))[0])
        raise DataError(f"{path}: timestamp on row {bad} is NaN/inf; clean or drop this recording")
    order = np.argsort(times, kind="stable")
    if (np.diff(order) != 1).any():
        log.debug("%s: timestamps out of order; rows sorted by time", path)
    times, values = times[order], values[order]
    keep = np.concatenate([[True], np.diff(times) > 0])
    if not keep.all():
        log.debug("%s: %d rows repeat a timestamp; first kept", path, int((~keep).sum()))
    times, values = times[keep], values[keep]
    if len(times) < 2:
        raise DataError(
            f"{path}: fewer than 2 distinct timestamps; too short to align, drop this recording"
        )
    return times, values


def read_shimmer(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one Shimmer file (rows ``ax ay az unix_time``), sorted by time, duplicates dropped.

    Args:
        path: ``Accelerometer/Shimmer0K/acc_h0K_sSS_aAA_rRR.txt``.

    Returns:
        ``(times, acc)``: float64 ``(n,)`` Unix seconds, strictly increasing, and float64
        ``(n, 3)`` accelerations in g.

    Raises:
        DataError: Missing, empty or malformed file, not 4 columns, NaN/inf values (naming the
            rows), or fewer than 2 distinct timestamps.

    Example:
        >>> t, acc = read_shimmer("Accelerometer/Shimmer01/acc_h01_s01_a01_r01.txt")
        ...  # doctest: +SKIP
        >>> acc.shape  # doctest: +SKIP
        (182, 3)
    """
    table = _parse_table(path, "accelerometer")
    if table.shape[1] != 4:
        raise DataError(
            f"{path}: {table.shape[1]} columns; a Shimmer file has 4 (ax ay az unix_time)"
        )
    validate_sensor(table[:, :3], path)  # NaN/inf -> DataError naming the rows
    return _monotonic(table[:, 3], table[:, :3], path)


def read_time_stamps(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a camera time stamps file: rows ``frame unix_time`` or ``frame seconds microseconds``.

    Args:
        path: ``Time_stamps/time_stamps_img_sSS_aAA_rRR.txt``.

    Returns:
        ``(frames, times)``: int64 frame numbers and float64 Unix seconds, in file order.

    Raises:
        DataError: Missing, empty or malformed file, or NaN/inf values.

    Example:
        >>> frames, t = read_time_stamps("Time_stamps/time_stamps_img_s01_a01_r01.txt")
        ...  # doctest: +SKIP
        >>> frames[:3].tolist()  # doctest: +SKIP
        [0, 1, 2]
    """
    table = _parse_table(path, "time stamps")
    if table.shape[1] == 2:
        times = table[:, 1]
    elif table.shape[1] == 3:
        times = table[:, 1] + table[:, 2] * 1e-6
    else:
        raise DataError(
            f"{path}: {table.shape[1]} columns; a time stamps file has 2 (frame unix_time) or "
            "3 (frame seconds microseconds)"
        )
    if not np.isfinite(table).all():
        raise DataError(f"{path}: NaN/inf values; restore the file from the release")
    return table[:, 0].astype(np.int64), times


def _window(
    source: dict[str, str],
) -> tuple[tuple[np.ndarray, np.ndarray] | None, list, float, float]:
    """Read the units (and camera times) of a source; return their common time window."""
    units = [read_shimmer(source[f"h{k:02d}"]) for k in UNITS]
    lo = max(float(t[0]) for t, _ in units)
    hi = min(float(t[-1]) for t, _ in units)
    if hi <= lo:
        raise DataError(
            f"{source['h01']}: the 6 Shimmer units of this recording do not overlap in time "
            f"(latest start {lo:.3f} s, earliest end {hi:.3f} s); drop it"
        )
    camera = None
    if source.get("timestamps"):
        camera = read_time_stamps(source["timestamps"])
        c_lo, c_hi = float(camera[1].min()), float(camera[1].max())
        if min(hi, c_hi) <= max(lo, c_lo):
            raise DataError(
                f"{source['timestamps']}: camera frames ({c_lo:.3f}..{c_hi:.3f} s) do not overlap "
                f"the Shimmer units ({lo:.3f}..{hi:.3f} s); check the file or drop the recording"
            )
        lo, hi = max(lo, c_lo), min(hi, c_hi)
    return camera, units, lo, hi


def read_sensor(
    source: dict[str, str], steps: int = SENSOR_STEPS, grid_hz: float = GRID_HZ
) -> np.ndarray:
    """Fuse the six Shimmer units of one recording into float32 ``(steps, 18)``.

    The units are aligned by their Unix timestamps: the window is the overlap of the six units'
    spans (and of the camera's when ``source["timestamps"]`` is set), each unit is linearly
    interpolated onto a uniform ``grid_hz`` grid over it, and the concatenation is resampled to
    ``steps`` with the anti-aliased :func:`vsfusion.data.sensor.resample`.

    Args:
        source: ``{"h01": path, ..., "h06": path, "timestamps": path or ""}``.
        steps: Output length.
        grid_hz: Rate of the common grid.

    Returns:
        float32 ``(steps, 18)``, channels :data:`SENSOR_CHANNELS`.

    Raises:
        DataError: A file is missing or malformed or holds NaN/inf (named), or the units do not
            overlap in time.

    Example:
        >>> src = {f"h{k:02d}": f"Accelerometer/Shimmer{k:02d}/acc_h{k:02d}_s01_a01_r01.txt"
        ...        for k in UNITS} | {"timestamps": ""}
        >>> read_sensor(src).shape  # doctest: +SKIP
        (128, 18)
    """
    _, units, lo, hi = _window(source)
    n = max(2, int(round((hi - lo) * grid_hz)) + 1)
    grid = np.linspace(0.0, hi - lo, n)
    cols = [np.interp(grid, t - lo, acc[:, c]) for t, acc in units for c in range(3)]
    return resample(np.stack(cols, axis=1), steps)


def _frame_files(folder: str | os.PathLike) -> list[tuple[int, str]]:
    """``(frame number, path)`` of the PGM files in a recording folder, by frame number."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        raise DataError(
            f"{folder}: camera frame folder not found; check the dataset root"
        ) from None
    found = []
    for name in names:
        m = _FRAME_RX.search(name)
        if m:
            found.append((int(m.group(1)), os.path.join(folder, name)))
    return sorted(found)


def _to_channels(img: np.ndarray | None, bayer: str | None, path: str) -> np.ndarray:
    if img is None:
        raise DataError(f"{path}: cannot read the PGM frame (corrupt or truncated); restore it")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) * (255.0 / 65535.0)).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"{path}: unsupported pixel type {img.dtype}; expected 8- or 16-bit PGM")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        return cv2.cvtColor(img, _BAYER_CODES[bayer]) if bayer else img[..., None]
    rgb = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    return rgb if bayer else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None]


def read_camera(
    source: dict[str, str],
    num_frames: int = CACHE_FRAMES,
    size: int = CACHE_SIZE,
    bayer: str | None = BAYER_PATTERN,
    crop: str = "centre",
    with_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict]:
    """Read one camera's PGM frames of a recording as a uint8 clip ``(num_frames, size, size, C)``.

    Frames are taken in frame-number order. When ``source["timestamps"]`` is set, only the frames
    inside the recording's common time window (the one :func:`read_sensor` uses) are kept, so
    video and sensor cover the same interval. ``num_frames`` frames are then sampled uniformly in
    time (:func:`vsfusion.data.video.uniform_indices`), converted, resized so the shorter side is
    ``size`` and centre-cropped.

    Args:
        source: ``{"frames": folder, "timestamps": path or "", "h01": path, ..., "h06": path}``.
        num_frames: Frames in the clip.
        size: Shorter side after resizing, and the side of the centre crop.
        bayer: Bayer pattern of single-channel frames (``"GRBG"``, ``"RGGB"``, ``"BGGR"`` or
            ``"GBRG"``): demosaicked to RGB (C = 3). ``None``: keep one grey channel (C = 1).
        crop: ``"centre"`` or ``"person"``: frames resized to twice ``size`` and the square
            around the clip's motion cut out (:func:`vsfusion.data.video.crop_clip`).
        with_info: Also return the crop info, as the cache's readers do.

    Returns:
        Contiguous uint8 ``(num_frames, size, size, 3)`` (or ``(..., 1)`` with ``bayer=None``),
        or ``(clip, info)`` with ``with_info``.

    Raises:
        DataError: No frames, an unreadable frame, or a bad time stamps/accelerometer file.

    Example:
        >>> read_camera({"frames": "Camera/Cluster01/Cam01/S01/A01/R01", "timestamps": "",
        ...              **{f"h{k:02d}": "" for k in UNITS}}).shape  # doctest: +SKIP
        (32, 128, 128, 3)
    """
    if bayer is not None and bayer not in _BAYER_CODES:
        raise ValueError(f"unknown Bayer pattern {bayer!r}; choose one of {sorted(_BAYER_CODES)}")
    frames = _frame_files(source["frames"])
    if not frames:
        raise DataError(f"{source['frames']}: no .pgm frames; restore the camera archive")
    if source.get("timestamps"):
        camera, _, lo, hi = _window(source)
        when = dict(zip(camera[0].tolist(), camera[1].tolist(), strict=True))
        inside = [f for f in frames if f[0] in when and lo <= when[f[0]] <= hi]
        if inside:
            frames = inside
        else:
            log.debug(
                "%s: no frame number matches the time window; all frames kept", source["frames"]
            )
    crop = check_crop(crop)
    decode = size if crop == "centre" else 2 * size
    idx = uniform_indices(len(frames), num_frames)
    decoded = {}
    for i in np.unique(idx):
        path = frames[int(i)][1]
        img = _to_channels(cv2.imread(path, cv2.IMREAD_UNCHANGED), bayer, path)
        decoded[int(i)] = resize_shorter(img[None], decode)[0]
    clip = np.stack([decoded[int(i)] for i in idx]).astype(np.uint8, copy=False)
    clip, info = crop_clip(clip, size, crop, source["frames"])
    return (clip, info) if with_info else clip


# ---------------------------------------------------------------------------------------------
# scanning the release


@dataclass
class Recording:
    """The native files of one recording ``sSS_aAA_rRR`` (``""`` / ``None`` where absent)."""

    subject: int
    action: int
    repetition: int
    units: dict[int, str] = field(default_factory=dict)
    timestamps: str = ""
    frames: str = ""

    @property
    def name(self) -> str:
        return _rec_name(self.subject, self.action, self.repetition)


def _camera_dir(root: Path, camera: tuple[int, int]) -> Path | None:
    """The chosen camera's folder, ``None`` when the release has no camera frames at all."""
    c, k = camera
    bases = [root / "Camera", root]
    for base in bases:
        d = base / f"Cluster{c:02d}" / f"Cam{k:02d}"
        if d.is_dir():
            return d
    present = sorted(
        f"{p.parent.name}/{p.name}"
        for base in bases
        if base.is_dir()
        for p in base.glob("Cluster*/Cam*")
        if p.is_dir()
    )
    if present:
        raise DataError(
            f"{root}: camera Cluster{c:02d}/Cam{k:02d} not found; available: {', '.join(present)}"
            "; pass camera=(cluster, cam) of one of them"
        )
    return None


def scan(
    root: str | os.PathLike,
    camera: tuple[int, int] = DEFAULT_CAMERA,
    subjects: Iterable[int] | None = None,
) -> tuple[list[Recording], bool]:
    """Find the recordings of a Berkeley MHAD release (no file is parsed).

    Args:
        root: The release root (``Accelerometer/``, ``Time_stamps/``, optional ``Camera/``).
        camera: ``(cluster, cam)`` whose frames are looked up.
        subjects: Only these subject numbers (default: all found).

    Returns:
        ``(recordings, has_camera)``: every recording with at least one file, sorted by
        subject, action, repetition; ``has_camera`` is False when the release has no camera
        frames at all.

    Raises:
        DataError: No ``Accelerometer`` folder, or the chosen camera is absent while others exist.

    Example:
        >>> recs, has_camera = scan("/data/BerkeleyMHAD", subjects=[1])  # doctest: +SKIP
        >>> len(recs), has_camera  # doctest: +SKIP
        (55, True)
    """
    root = Path(root)
    acc_root = root / "Accelerometer"
    if not acc_root.is_dir():
        raise DataError(
            f"{root}: no Accelerometer/ folder; expected the Berkeley MHAD layout "
            "ROOT/Accelerometer/Shimmer01/acc_h01_s01_a01_r01.txt (see vsfusion.data.berkeley_mhad)"
        )
    wanted = None if subjects is None else {int(s) for s in subjects}
    recs: dict[tuple[int, int, int], Recording] = {}

    def rec(s: int, a: int, r: int) -> Recording | None:
        if (wanted is not None and s not in wanted) or a not in ACTIONS:
            return None
        return recs.setdefault((s, a, r), Recording(s, a, r))

    for k in UNITS:
        unit_dir = acc_root / f"Shimmer{k:02d}"
        if not unit_dir.is_dir():
            continue
        for name in os.listdir(unit_dir):
            m = _ACC_RX.match(name)
            if m and int(m.group(1)) == k:
                r = rec(int(m.group(2)), int(m.group(3)), int(m.group(4)))
                if r is not None:
                    r.units[k] = str(unit_dir / name)
    ts_root = root / "Time_stamps"
    if ts_root.is_dir():
        for name in os.listdir(ts_root):
            m = _TS_RX.match(name)
            if m:
                r = rec(int(m.group(1)), int(m.group(2)), int(m.group(3)))
                if r is not None:
                    r.timestamps = str(ts_root / name)
    cam_dir = _camera_dir(root, camera)
    if cam_dir is not None:
        rx = re.compile(r"^([SAR])(\d+)$", re.IGNORECASE)
        for s_dir in cam_dir.iterdir():
            for a_dir in s_dir.iterdir() if s_dir.is_dir() else ():
                for r_dir in a_dir.iterdir() if a_dir.is_dir() else ():
                    ids = [rx.match(p.name) for p in (s_dir, a_dir, r_dir)]
                    if not all(ids) or not r_dir.is_dir():
                        continue
                    if not any(_FRAME_RX.search(e.name) for e in os.scandir(r_dir)):
                        continue
                    r = rec(*(int(m.group(2)) for m in ids))
                    if r is not None:
                        r.frames = str(r_dir)
    ordered = sorted(recs.values(), key=lambda x: (x.subject, x.action, x.repetition))
    return ordered, cam_dir is not None


# ---------------------------------------------------------------------------------------------
# protocols and the entry point


def _protocol_subjects(protocol: str) -> set[int]:
    return {s for subs in PROTOCOLS[protocol].values() for s in subs}


def _check_subjects(root: Path, protocol: str, present: set[int]) -> None:
    test = set(PROTOCOLS[protocol]["test"]) if protocol != "original" else set(range(8, 13))
    missing = sorted(test - present)
    found = ", ".join(str(s) for s in sorted(present)) or "none"
    if protocol in ("standard", "original") and missing == sorted(test):
        raise DataError(
            f"{root}: protocol {protocol!r} {'tests on' if protocol == 'standard' else 'needs'} "
            f"subjects 8-12, which are absent (subjects found: {found}); with only the released training subjects 1-7 use --protocol dev "
            "(train 1-5, val 6, test 7)"
        )
    if protocol == "dev" and missing:
        raise DataError(
            f"{root}: protocol 'dev' tests on subject 7, which is absent (subjects found: {found}); "
            "add subject 7's files"
        )
    if missing:
        log.warning("%s: test subjects %s of protocol %r are absent", root, missing, protocol)


def _split_of(protocol: str, subject: int, repetition: int) -> str:
    if protocol == "original":
        by = ORIGINAL_REPETITIONS
        return next((s for s, reps in by.items() if repetition in reps), "")
    return next((s for s, subs in PROTOCOLS[protocol].items() if subject in subs), "")


class BerkeleyMHAD(DatasetAdapter):
    """The Berkeley MHAD adapter (module docstring): six Shimmer accelerometers, one camera.

    Example:
        >>> BerkeleyMHAD.modalities["sensor"]["unit_channels"], list(BerkeleyMHAD.protocols)
        (3, ['standard', 'original', 'dev'])
    """

    name = NAME
    modalities = {
        "video": {"kind": "rgb"},
        "sensor": {
            "kind": "inertial",
            "unit_channels": SENSOR_UNIT_CHANNELS,
            "units": [f"Shimmer{k:02d}" for k in UNITS],
        },
    }
    protocols = {
        "standard": "cross-subject: subjects 1-7 train (validation carved), 8-12 test",
        "original": "per repetition across subjects 1-12: 1-3 train, 4 val, 5 test",
        "dev": "subjects 1-5 train, 6 val, 7 test",
    }
    default_protocol = "standard"
    options = {
        "cache_dir": "cache/MHAD",
        "protocol": None,
        "workers": 2,
        "camera": DEFAULT_CAMERA,
        "bayer": BAYER_PATTERN,
        "subjects": None,
        "video_crop": None,
    }
    root_hint = "pass the Berkeley MHAD release root (Accelerometer/, Time_stamps/, Camera/)"

    def check(self) -> None:
        bayer = self.opts["bayer"]
        if bayer is not None and bayer not in _BAYER_CODES:
            raise DataError(
                f"{NAME}: unknown Bayer pattern {bayer!r}; choose one of {sorted(_BAYER_CODES)}"
            )
        self.camera = (int(self.opts["camera"][0]), int(self.opts["camera"][1]))
        self.crop = check_crop(self.opts["video_crop"])
        if bayer is None:
            # one grey channel is neither kind the registry has for video (rgb: 3 channels,
            # depth: distances): left undeclared, the cache infers the column from the arrays
            self.modalities = {k: v for k, v in self.modalities.items() if k != "video"}
        super().check()

    def scan(self) -> list[Entry]:
        root, camera = self.root, self.camera
        use = _protocol_subjects(self.protocol)
        if self.opts["subjects"] is not None:
            use &= {int(s) for s in self.opts["subjects"]}
        recs, self.has_camera = scan(root, camera, use)
        _check_subjects(root, self.protocol, {r.subject for r in recs if r.units})
        if not self.has_camera:
            log.info("%s: no camera frames under %s: sensor-only preparation", NAME, root)
        found = {(r.subject, r.action, r.repetition) for r in recs}
        absent = [
            _rec_name(s, a, rep)
            for s in sorted({r.subject for r in recs})
            for a in ACTIONS
            for rep in REPETITIONS
            if (s, a, rep) not in found
        ]
        skipped: list[str] = []
        entries: list[Entry] = []
        self._repetition: dict[str, tuple[int, int]] = {}
        for r in recs:
            missing = [f"Shimmer{k:02d}" for k in UNITS if k not in r.units]
            why = []
            if missing:
                why.append(
                    "missing "
                    + ("all 6 Shimmer units" if len(missing) == 6 else ", ".join(missing))
                )
            if self.has_camera and not r.frames:
                why.append(f"no Cluster{camera[0]:02d}/Cam{camera[1]:02d} frames")
            if why:
                skipped.append(f"{r.name} ({'; '.join(why)})")
                continue
            sensor_src = {f"h{k:02d}": r.units[k] for k in UNITS} | {"timestamps": r.timestamps}
            sources: dict[str, Any] = {"sensor": sensor_src}
            if self.has_camera:
                sources["video"] = {"frames": r.frames, **sensor_src}
            sid = f"s{r.subject:02d}/a{r.action:02d}_r{r.repetition:02d}"
            self._repetition[sid] = (r.subject, r.repetition)
            entries.append(Entry(sid, ACTIONS[r.action], str(r.subject), "", sources))
        if skipped or absent:
            parts = skipped[:_MAX_LISTED] + (
                [f"... and {len(skipped) - _MAX_LISTED} more"] if len(skipped) > _MAX_LISTED else []
            )
            if absent:
                names = ", ".join(absent[:_MAX_LISTED]) + (
                    " ..." if len(absent) > _MAX_LISTED else ""
                )
                parts.append(f"{len(absent)} absent from the release ({names})")
            log.warning(
                "%s: %d recordings skipped: %s", NAME, len(skipped) + len(absent), "; ".join(parts)
            )
        if not entries:
            raise DataError(f"{root}: no complete recording found (all 6 Shimmer units needed)")
        return entries

    def split(self, entries: list[Entry]) -> list[Entry]:
        """Subject lists (``"standard"``, ``"dev"``) or repetitions (``"original"``)."""
        return [
            Entry(
                e.id,
                e.label,
                e.subject,
                _split_of(self.protocol, *self._repetition[e.id]),
                e.sources,
            )
            for e in entries
        ]

    def readers(self) -> dict[str, Any]:
        readers: dict[str, Any] = {
            "sensor": functools.partial(read_sensor, steps=SENSOR_STEPS, grid_hz=GRID_HZ)
        }
        if self.has_camera:
            readers["video"] = functools.partial(
                read_camera,
                num_frames=CACHE_FRAMES,
                size=CACHE_SIZE,
                bayer=self.opts["bayer"],
                crop=self.crop,
                with_info=True,
            )
        return readers

    def cache_params(self, modality: str, entries: list[Entry]) -> dict[str, Any]:
        return dict(
            dataset=NAME,
            root=str(self.root),
            camera=list(self.camera),
            bayer=self.opts["bayer"],
            frames=CACHE_FRAMES,
            size=CACHE_SIZE,
            steps=SENSOR_STEPS,
            grid_hz=GRID_HZ,
            format=_FORMAT,
            **crop_params(self.crop),
        )

    def carve(self, df: pd.DataFrame) -> pd.DataFrame:
        if (
            self.protocol != "standard"
            and self.val_fraction
            and not (df["split"] == "val").any()
            and (df["split"] == "train").any()
        ):
            log.warning(
                "%s: protocol %r has no validation samples here; carving them", NAME, self.protocol
            )
        return super().carve(df)


load = BerkeleyMHAD.load
"""``load(root, seed=0, val_fraction=0.25, *, cache_dir="cache/MHAD", protocol=None, workers=2,
camera=DEFAULT_CAMERA, bayer=BAYER_PATTERN, subjects=None, video_crop=None) -> Manifest``.

Prepare (once, cached) and load Berkeley MHAD under one protocol (:data:`PROTOCOLS`): ids are
``sSS/aAA_rRR``, subjects ``"1"`` .. ``"12"``, labels :data:`ACTIONS` values; ``video`` is ``""``
everywhere when the release has no camera frames. ``subjects`` restricts the preparation (quick
runs and tests); ``val_fraction`` of the training samples, as whole subjects, become validation
when the protocol gives none (0: no validation split). ``camera=(cluster, cam)`` picks the video
stream, ``bayer=None`` keeps one grey channel, ``video_crop="person"`` crops around the motion
(a separate cache).

Example:
    >>> m = load("/data/BerkeleyMHAD", protocol="dev", workers=2)  # doctest: +SKIP
    >>> m.summary()["test"]  # doctest: +SKIP
    55
"""
