"""UTD-MHAD: 27 actions by 8 subjects, Kinect RGB/depth/skeleton + a wearable inertial sensor.

C. Chen, R. Jafari and N. Kehtarnavaz, "UTD-MHAD: A Multimodal Dataset for Human Action Recognition
Utilizing a Depth Camera and a Wearable Inertial Sensor", ICIP 2015. Download the zip files (RGB,
Depth, Inertial, Skeleton) from the dataset's page at the University of Texas at Dallas,
https://personal.utdallas.edu/~kehtar/UTD-MHAD.html , and unzip them into one folder.

Facts (module constants): 27 actions :data:`ACTIONS` (``a1`` .. ``a27``), 8 subjects (4 women, 4
men), 4 trials each, 861 trials in all: three are absent from the official release
(:data:`MISSING_TRIALS`: ``a8_s1_t4``, ``a23_s6_t4``, ``a27_s8_t4``). Per trial ``aA_sS_tT``:

* ``aA_sS_tT_color.avi``: Kinect v1 RGB, 640x480, 30 fps;
* ``aA_sS_tT_depth.mat``: variable ``d_depth``, 240x320xT uint16 depth (mm, background removed,
  i.e. 0), about 30 fps (:data:`DEPTH_FPS`);
* ``aA_sS_tT_inertial.mat``: variable ``d_iner``, Nx6 float64 at 50 Hz (:data:`SENSOR_RATE`):
  accelerometer x, y, z in g and gyroscope x, y, z in deg/s (:data:`SENSOR_CHANNELS`), one unit on
  the right wrist (on the right thigh for actions 22-27);
* ``aA_sS_tT_skeleton.mat``: variable ``d_skel``, 20x3xT Kinect v1 joints in metres
  (:data:`SKELETON_JOINTS`, the release's ``Skeleton_joint_order.txt``), one per depth frame.

Expected layout (files are found recursively by name, so per-modality folders in any case, or all
files in one folder, both work)::

    ROOT/
      RGB/a1_s1_t1_color.avi ...        (only for --video-modality rgb)
      Depth/a1_s1_t1_depth.mat ...      (for --video-modality depth, the default)
      Inertial/a1_s1_t1_inertial.mat ...
      Skeleton/a1_s1_t1_skeleton.mat ... (the "skeleton" column, when present)

Preprocessing (cached under ``<cache_dir>/<cache_key>/`` by :func:`vsfusion.data.cache.build_cache`):

* video, depth (default): :data:`CACHE_FRAMES` frames sampled uniformly in time
  (:func:`~vsfusion.data.video.uniform_indices`), resized so the shorter side is
  :data:`CACHE_SIZE` with *masked area interpolation* (depth and foreground mask are both
  area-averaged and divided, so background zeros never blend into the body's depth and
  silhouettes stay anti-aliased; an output pixel is foreground when at least half its area is),
  centre-cropped to ``CACHE_SIZE`` x ``CACHE_SIZE``, then mapped to uint8 ``(T, S, S, 1)``:
  background 0, foreground 1..255 with **nearer = brighter**, linearly between the clip's 1st and
  99th percentiles of non-zero depth (:data:`DEPTH_PERCENTILES`; values beyond are clipped);
* video, rgb: :func:`~vsfusion.data.video.read_video` (uniform sampling, shorter side
  ``CACHE_SIZE``) and a centre crop, uint8 ``(T, S, S, 3)``;
* sensor: checked for NaN/inf (a :class:`~vsfusion.data.errors.DataError` naming the file), then
  resampled by normalised time to :data:`SENSOR_STEPS` steps with the anti-aliased
  :func:`~vsfusion.data.sensor.resample`; float32 ``(SENSOR_STEPS, 6)`` in the native units
  (normalisation lives in the sensor model);
* skeleton (``skeleton=None``: whenever ``Skeleton/`` files exist; ``True``/``False`` to force):
  :func:`read_skeleton`, float32 ``(CACHE_FRAMES, 20, 3)`` time first, the frames the depth clip
  samples (same rule, same frame count). A trial whose skeleton has not 20 joints, has NaN/inf
  joints, or a frame count more than :data:`SKELETON_FRAME_TOLERANCE` from its depth file's is
  dropped and named in the preparation's one warning. Whether it is cached enters the cache key.

A trial's depth and inertial streams both span the trial but have no fixed length ratio, so they
are aligned by normalised time: frame ``k`` of ``CACHE_FRAMES`` sits at ``(k + 0.5) / CACHE_FRAMES``
of the clip and sensor step ``j`` at ``j / (SENSOR_STEPS - 1)`` of the recording. The loader later
samples e.g. 16 of the cached frames and crops.

Protocols (``protocol=``):

* ``"standard"`` (default): the paper's cross-subject split, train on subjects 1, 3, 5, 7 (a
  validation split of whole subjects, about ``val_fraction`` of them, is carved from these with
  :func:`~vsfusion.data.splits.carve_validation`) and test on subjects 2, 4, 6, 8;
* ``"dev"``: train 1, 3 / validate 5 / test 7, for tuning on the released training half without
  touching the held-out subjects (``val_fraction`` is not used).

Command::

    python reproduce.py --dataset UTD-MHAD --root /data/UTD-MHAD --video-modality depth --out runs/utd

Example:
    >>> from vsfusion.data import utd_mhad
    >>> m = utd_mhad.load("/data/UTD-MHAD", protocol="dev")  # doctest: +SKIP
    >>> m.summary()["train"], m.samples["video"][0]  # doctest: +SKIP
    (215, '.../cache/UTD-MHAD/3f2a9c1e0b7d/video/a1_s1_t1.npy')
    >>> CLASSES[0]
    'a01 right arm swipe to the left'
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vsfusion.data import sensor as _sensor
from vsfusion.data import video as _video
from vsfusion.data.adapter import DatasetAdapter, split_by_subjects
from vsfusion.data.cache import Entry
from vsfusion.data.errors import DataError
from vsfusion.data.sensor import resample, validate_sensor
from vsfusion.data.skeleton import layout
from vsfusion.data.video import (
    CROP_MARGIN,
    DEPTH_BAND_MM,
    center_crop,
    check_crop,
    crop_box,
    crop_params,
    foreground_box,
    read_clip,
    square_box,
    uniform_indices,
)

__all__ = [
    "ACTIONS",
    "CACHE_FRAMES",
    "CACHE_SIZE",
    "CLASSES",
    "DEFAULT_PROTOCOL",
    "DEFAULT_VIDEO_MODALITY",
    "DEPTH_FPS",
    "DEPTH_PERCENTILES",
    "DEPTH_SHAPE",
    "MISSING_TRIALS",
    "NAME",
    "PROTOCOLS",
    "RGB_FPS",
    "RGB_SHAPE",
    "SENSOR_CHANNELS",
    "SENSOR_UNIT_CHANNELS",
    "SENSOR_RATE",
    "SENSOR_STEPS",
    "SUBJECTS",
    "TEST_SUBJECTS",
    "TRAIN_SUBJECTS",
    "TRIALS",
    "VIDEO_MODALITIES",
    "SKELETON_FRAME_TOLERANCE",
    "SKELETON_JOINTS",
    "SKELETON_LAYOUT",
    "UTDMHAD",
    "cache_params",
    "find_trials",
    "load",
    "load_mat",
    "make_entries",
    "make_readers",
    "mat_shape",
    "read_depth",
    "read_inertial",
    "read_rgb",
    "read_skeleton",
    "trial_id",
]

log = logging.getLogger(__name__)

NAME = "UTD-MHAD"
ACTIONS: tuple[str, ...] = (
    "right arm swipe to the left",
    "right arm swipe to the right",
    "right hand wave",
    "two hand front clap",
    "right arm throw",
    "cross arms in the chest",
    "basketball shoot",
    "right hand draw x",
    "right hand draw circle (clockwise)",
    "right hand draw circle (counter clockwise)",
    "draw triangle",
    "bowling (right hand)",
    "front boxing",
    "baseball swing from right",
    "tennis right hand forehand swing",
    "arm curl (two arms)",
    "tennis serve",
    "two hand push",
    "right hand knock on door",
    "right hand catch an object",
    "right hand pick up and throw",
    "jogging in place",
    "walking in place",
    "sit to stand",
    "stand to sit",
    "forward lunge (left foot forward)",
    "squat (two arms stretch out)",
)
"""The official action names, ``a1`` .. ``a27`` in order."""
CLASSES: tuple[str, ...] = tuple(f"a{i:02d} {a}" for i, a in enumerate(ACTIONS, 1))
"""Manifest labels: ``"a01 right arm swipe to the left"`` ...; sorted order = official order."""
SUBJECTS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
TRIALS: tuple[int, ...] = (1, 2, 3, 4)
MISSING_TRIALS: tuple[str, ...] = ("a8_s1_t4", "a23_s6_t4", "a27_s8_t4")
"""Trials absent from the official release (27 x 8 x 4 = 864 expected, 861 released)."""
TRAIN_SUBJECTS: tuple[int, ...] = (1, 3, 5, 7)
TEST_SUBJECTS: tuple[int, ...] = (2, 4, 6, 8)
PROTOCOLS: dict[str, dict[str, tuple[int, ...]]] = {
    "standard": {"train": TRAIN_SUBJECTS, "test": TEST_SUBJECTS},
    "dev": {"train": (1, 3), "val": (5,), "test": (7,)},
}
DEFAULT_PROTOCOL = "standard"

RGB_SHAPE: tuple[int, int] = (480, 640)
"""Colour frame height, width."""
RGB_FPS = 30
DEPTH_SHAPE: tuple[int, int] = (240, 320)
"""Depth frame height, width."""
DEPTH_FPS = 30
"""Nominal; a trial's depth frame count and inertial sample count have no fixed ratio."""
SENSOR_RATE = 50
SENSOR_CHANNELS: tuple[str, ...] = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
SENSOR_UNIT_CHANNELS = 6
"""Channels of one rigid unit (accelerometer xyz + gyroscope xyz), rotated together in augmentation."""
"""Accelerometer in g, gyroscope in deg/s."""

VIDEO_MODALITIES: tuple[str, ...] = ("depth", "rgb")
DEFAULT_VIDEO_MODALITY = "depth"
CACHE_FRAMES = _video.CACHE_FRAMES
CACHE_SIZE = _video.CACHE_SIZE
SENSOR_STEPS = _sensor.SENSOR_STEPS
DEPTH_PERCENTILES: tuple[float, float] = (1.0, 99.0)
SKELETON_LAYOUT = "kinect-v1"
"""The joint layout of ``d_skel`` (:func:`vsfusion.data.skeleton.layout`)."""
SKELETON_JOINTS: tuple[str, ...] = tuple(layout(SKELETON_LAYOUT).joints)
"""The 20 Kinect v1 joints in ``d_skel`` row order (``Skeleton_joint_order.txt`` of the release)."""
SKELETON_FRAME_TOLERANCE = 2
"""Largest accepted ``|T_skeleton - T_depth|`` of a trial, in frames. Measured on the 431 released
trials of subjects 1, 3, 5, 7: the difference is 0 for every trial (depth lengths 47 to 102 frames,
median 67), as both streams come from one Kinect; 2 frames (about 67 ms at 30 fps) allows for a
dropped frame at either end while catching a skeleton file of another trial."""

_KINDS = {"color": "avi", "depth": "mat", "inertial": "mat", "skeleton": "mat"}
_FILE_RE = re.compile(r"^a(\d+)_s(\d+)_t(\d+)_(color|depth|inertial|skeleton)\.(avi|mat)$", re.I)
_VIDEO_KIND = {"depth": "depth", "rgb": "color"}
_MAX_LISTED = 50  # missing trials named in the warning


def trial_id(action: int, subject: int, trial: int) -> str:
    """The release's trial id, e.g. ``trial_id(8, 1, 4) == "a8_s1_t4"``.

    Example:
        >>> trial_id(27, 8, 4)
        'a27_s8_t4'
    """
    return f"a{action}_s{subject}_t{trial}"


# ---------------------------------------------------------------------------------------------
# Readers (top-level functions: picklable for the preparation worker processes)
# ---------------------------------------------------------------------------------------------


def load_mat(path: str | os.PathLike, var: str) -> np.ndarray:
    """Read one variable of a MATLAB file (v4-v7 with scipy; v7.3/HDF5 with h5py).

    Args:
        path: The ``.mat`` file.
        var: Variable name, e.g. ``"d_depth"``.

    Returns:
        The array, in MATLAB's axis order (HDF5 files are transposed back).

    Raises:
        DataError: Missing or unreadable file, or no such variable (listing the ones found).

    Example:
        >>> load_mat("Inertial/a1_s1_t1_inertial.mat", "d_iner").shape  # doctest: +SKIP
        (160, 6)
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the dataset root")
    scipy_error: Exception | None = None
    try:
        data = scipy.io.loadmat(str(path), variable_names=[var])
    except Exception as e:  # v7.3 (HDF5) raises NotImplementedError; corrupt files others
        data, scipy_error = None, e
    if data is None:
        import h5py

        if not h5py.is_hdf5(path):
            raise DataError(
                f"{path}: not a readable MATLAB file ({type(scipy_error).__name__}: "
                f"{scipy_error}); re-download it"
            ) from None
        try:
            with h5py.File(path, "r") as f:
                if var not in f:
                    raise DataError(
                        f"{path}: no variable {var!r} in this MATLAB v7.3 file "
                        f"(found {sorted(f.keys())}); is it a UTD-MHAD file?"
                    )
                # MATLAB writes column-major: h5py sees the axes reversed.
                return np.asarray(f[var][()]).T
        except DataError:
            raise
        except Exception as e:
            raise DataError(
                f"{path}: neither scipy nor h5py can read this MATLAB file "
                f"({type(e).__name__}: {e}); re-download it"
            ) from None
    if var not in data:
        try:
            found = [name for name, _, _ in scipy.io.whosmat(str(path))]
        except Exception:  # the listing is only for the message
            found = []
        raise DataError(
            f"{path}: no variable {var!r} (found {found}); is it a UTD-MHAD "
            f"{path.stem.rsplit('_', 1)[-1]} file?"
        )
    return np.asarray(data[var])


def _masked_area_resize(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(T, H, W)`` depth (0 = background) so the shorter side is ``size``.

    Depth and foreground mask are area-averaged separately and divided, so background never
    blends into foreground depth; a pixel is foreground when at least half its area is.
    """
    t, h, w = frames.shape
    if min(h, w) == size:
        return frames
    nh, nw = (size, max(1, round(w * size / h))) if h <= w else (max(1, round(h * size / w)), size)
    out = np.zeros((t, nh, nw), np.float32)
    for k in range(t):
        d = frames[k]
        m = (d > 0).astype(np.float32)
        num = cv2.resize(d, (nw, nh), interpolation=cv2.INTER_AREA)
        den = cv2.resize(m, (nw, nh), interpolation=cv2.INTER_AREA)
        fg = den >= 0.5
        out[k][fg] = num[fg] / den[fg]
    return out


def _depth_to_uint8(clip: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Map depth (0 = background) to uint8: background 0, nearer = brighter in 1..255."""
    fg = clip > 0
    out = np.zeros(clip.shape, np.uint8)
    if not fg.any():
        return out
    lo, hi = np.percentile(clip[fg], percentiles)
    hi = max(float(hi), float(lo) + 1.0)
    v = 1.0 + 254.0 * np.clip((hi - clip[fg]) / (hi - lo), 0.0, 1.0)
    out[fg] = np.rint(v).astype(np.uint8)
    return out


def read_depth(
    path: str | os.PathLike,
    *,
    num_frames: int = CACHE_FRAMES,
    size: int = CACHE_SIZE,
    percentiles: tuple[float, float] = DEPTH_PERCENTILES,
    crop: str = "centre",
    with_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict]:
    """Read a ``_depth.mat`` file into a uint8 ``(num_frames, size, size, 1)`` clip.

    Uniform temporal sampling, masked area resize of the shorter side to ``size``, centre crop,
    then background 0 and foreground 1..255 (nearer = brighter) between the clip's
    ``percentiles`` of non-zero depth. See the module docstring.

    With ``crop="person"`` the centre crop is replaced by the square around the person: the box
    of the nearest depth band united over the sampled frames
    (:func:`~vsfusion.data.video.foreground_box`), squared with a margin
    (:func:`~vsfusion.data.video.square_box`, zero padding where it must reach past the frame),
    then masked-area resized to ``size`` x ``size``. A clip without foreground falls back to the
    centre crop (the info's ``"warning"`` names the file).

    Args:
        path: ``aA_sS_tT_depth.mat`` (variable ``d_depth``, H x W x T).
        num_frames: Frames to keep.
        size: Output side.
        percentiles: Depth percentiles mapped to brightest (255) and darkest (1) foreground.
        crop: ``"centre"`` or ``"person"``.
        with_info: Also return the crop info (``{"crop", "box", "frame"}``, and ``"warning"``
            after a fallback), as the cache's readers do.

    Returns:
        uint8 ``(num_frames, size, size, 1)``, or ``(clip, info)`` with ``with_info``.

    Raises:
        DataError: Unreadable file, wrong shape, or no frames.

    Example:
        >>> read_depth("Depth/a1_s1_t1_depth.mat").shape  # doctest: +SKIP
        (32, 128, 128, 1)
    """
    d = load_mat(path, "d_depth")
    if d.ndim == 2:
        d = d[:, :, None]
    if d.ndim != 3 or d.shape[2] == 0 or min(d.shape[:2]) < 1:
        raise DataError(f"{path}: d_depth has shape {d.shape}; expected H x W x T depth frames")
    if not (np.issubdtype(d.dtype, np.integer) or np.issubdtype(d.dtype, np.floating)):
        raise DataError(f"{path}: d_depth has dtype {d.dtype}; expected uint16 depth")
    idx = uniform_indices(d.shape[2], num_frames)
    frames = np.moveaxis(d[:, :, idx], 2, 0).astype(np.float32)
    frames[~np.isfinite(frames) | (frames < 0)] = 0.0
    if min(frames.shape[1:]) < size:
        raise DataError(
            f"{path}: depth frames {frames.shape[1]}x{frames.shape[2]} are smaller than "
            f"the cache size {size}"
        )
    crop = check_crop(crop)
    info: dict[str, Any] = {"crop": "centre", "box": None, "frame": list(frames.shape[1:])}
    box = foreground_box(frames) if crop == "person" else None
    if box is not None:
        sq = square_box(box, frames.shape[1:], CROP_MARGIN)
        frames = _masked_area_resize(crop_box(frames, sq), size)
        info.update(crop="person", box=[int(b) for b in sq])
    else:
        if crop == "person":
            info["warning"] = f"{path}: no foreground (person) found, centre crop used"
        frames = center_crop(_masked_area_resize(frames, size)[..., None], size)[..., 0]
    clip = np.ascontiguousarray(_depth_to_uint8(frames, percentiles)[..., None])
    return (clip, info) if with_info else clip


def read_rgb(
    path: str | os.PathLike,
    *,
    num_frames: int = CACHE_FRAMES,
    size: int = CACHE_SIZE,
    crop: str = "centre",
    with_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict]:
    """Read a ``_color.avi`` file into a uint8 RGB ``(num_frames, size, size, 3)`` clip.

    The same reader as the folder and VSL datasets use (:func:`vsfusion.data.video.read_clip`).

    Args:
        path: ``aA_sS_tT_color.avi``.
        num_frames: Frames to keep (uniform temporal sampling).
        size: Output side (shorter-side resize, then centre crop).
        crop: ``"centre"`` or ``"person"`` (the square around the clip's motion, see
            :func:`~vsfusion.data.video.crop_clip`).
        with_info: Also return the crop info.

    Returns:
        uint8 ``(num_frames, size, size, 3)``, or ``(clip, info)`` with ``with_info``.

    Raises:
        DataError: Missing or undecodable video.

    Example:
        >>> read_rgb("RGB/a1_s1_t1_color.avi").shape  # doctest: +SKIP
        (32, 128, 128, 3)
    """
    return read_clip(str(path), num_frames, size, crop=crop, with_info=with_info)


def read_inertial(path: str | os.PathLike, *, steps: int = SENSOR_STEPS) -> np.ndarray:
    """Read an ``_inertial.mat`` file into float32 ``(steps, 6)``, resampled by normalised time.

    Args:
        path: ``aA_sS_tT_inertial.mat`` (variable ``d_iner``, N x 6).
        steps: Output length (anti-aliased :func:`~vsfusion.data.sensor.resample`).

    Returns:
        float32 ``(steps, 6)``: acc x, y, z (g), gyro x, y, z (deg/s).

    Raises:
        DataError: Unreadable file, not N x 6, or NaN/inf values (naming the rows).

    Example:
        >>> read_inertial("Inertial/a1_s1_t1_inertial.mat").shape  # doctest: +SKIP
        (128, 6)
    """
    x = validate_sensor(load_mat(path, "d_iner"), path)
    if x.shape[1] != len(SENSOR_CHANNELS):
        raise DataError(
            f"{path}: d_iner has shape {x.shape}; expected N x {len(SENSOR_CHANNELS)} "
            "(acc xyz, gyro xyz)"
        )
    return resample(x, steps)


def mat_shape(path: str | os.PathLike, var: str) -> tuple[int, ...]:
    """The shape of one MATLAB variable without reading its data (``scipy.io.whosmat``; h5py
    for v7.3 files).

    Raises:
        DataError: Missing or unreadable file, or no such variable.

    Example:
        >>> mat_shape("Depth/a1_s1_t1_depth.mat", "d_depth")  # doctest: +SKIP
        (240, 320, 74)
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the dataset root")
    try:
        found = {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(str(path))}
    except Exception:  # v7.3 (HDF5) or corrupt: h5py knows the former
        import h5py

        try:
            with h5py.File(path, "r") as f:
                found = {k: tuple(reversed(f[k].shape)) for k in f.keys() if hasattr(f[k], "shape")}
        except Exception as e:
            raise DataError(
                f"{path}: not a readable MATLAB file ({type(e).__name__}); re-download it"
            ) from None
    if var not in found:
        raise DataError(f"{path}: no variable {var!r} (found {sorted(found)}); re-download it")
    return found[var]


def read_skeleton(
    source: dict[str, str] | str | os.PathLike,
    *,
    num_frames: int = CACHE_FRAMES,
    tolerance: int = SKELETON_FRAME_TOLERANCE,
) -> np.ndarray:
    """Read a ``_skeleton.mat`` file into float32 ``(num_frames, 20, 3)`` Kinect v1 joints.

    ``d_skel`` (20 x 3 x T, metres in camera space, joints in :data:`SKELETON_JOINTS` order) is put
    time first and ``num_frames`` frames are sampled uniformly in time
    (:func:`~vsfusion.data.video.uniform_indices`, the depth clip's rule: with equal frame counts
    skeleton frame ``k`` is depth frame ``k``).

    Args:
        source: ``{"skeleton": path, "depth": path or ""}`` (the trial's depth file, whose frame
            count is checked with :func:`mat_shape`), or the skeleton path alone (no check).
        num_frames: Frames to keep.
        tolerance: Largest accepted ``|T_skeleton - T_depth|`` (see
            :data:`SKELETON_FRAME_TOLERANCE`).

    Returns:
        float32 ``(num_frames, 20, 3)``.

    Raises:
        DataError: Unreadable file, not 20 joints of 3 coordinates, NaN/inf joints, or a frame
            count more than ``tolerance`` from the depth file's (each one line naming the file).

    Example:
        >>> read_skeleton({"skeleton": "Skeleton/a1_s1_t1_skeleton.mat",
        ...                "depth": "Depth/a1_s1_t1_depth.mat"}).shape  # doctest: +SKIP
        (32, 20, 3)
    """
    if isinstance(source, dict):
        path, depth = source["skeleton"], source.get("depth") or ""
    else:
        path, depth = source, ""
    d = load_mat(path, "d_skel")
    joints = len(SKELETON_JOINTS)
    if d.ndim == 2:
        d = d[:, :, None]
    if d.ndim != 3 or d.shape[1] != 3 or d.shape[2] == 0:
        raise DataError(
            f"{path}: d_skel has shape {d.shape}; expected {joints} x 3 x T joint coordinates, "
            "re-download the file"
        )
    if d.shape[0] != joints:
        raise DataError(
            f"{path}: d_skel has {d.shape[0]} joints; expected the {joints} Kinect v1 joints "
            f"({joints} x 3 x T), re-download the file or drop the trial"
        )
    if not np.issubdtype(d.dtype, np.number):
        raise DataError(f"{path}: d_skel has dtype {d.dtype}; expected numbers, re-download it")
    x = np.moveaxis(d, 2, 0).astype(np.float32)
    bad = ~np.isfinite(x).all(axis=(1, 2))
    if bad.any():
        frames = np.flatnonzero(bad)
        raise DataError(
            f"{path}: NaN/inf joints in {len(frames)} of {len(x)} frames (first: frame "
            f"{int(frames[0])}); re-download the file or drop the trial"
        )
    if depth:
        t_depth = mat_shape(depth, "d_depth")
        t_depth = t_depth[2] if len(t_depth) == 3 else 1
        if abs(len(x) - t_depth) > tolerance:
            raise DataError(
                f"{path}: {len(x)} skeleton frames but {depth} has {t_depth} depth frames (more "
                f"than {tolerance} apart); re-download both files or drop the trial"
            )
    return np.ascontiguousarray(x[uniform_indices(len(x), num_frames)])


# ---------------------------------------------------------------------------------------------
# Discovery, entries, protocol
# ---------------------------------------------------------------------------------------------


def find_trials(root: str | os.PathLike) -> dict[tuple[int, int, int], dict[str, Path]]:
    """Find the release's files under ``root`` (recursively, any folder names, any case).

    Args:
        root: Dataset folder.

    Returns:
        ``{(action, subject, trial): {"color" | "depth" | "inertial" | "skeleton": path}}``,
        sorted by action, subject, trial.

    Raises:
        DataError: ``root`` is not a folder.

    Example:
        >>> find_trials("/data/UTD-MHAD")[(1, 1, 1)]["depth"]  # doctest: +SKIP
        PosixPath('/data/UTD-MHAD/Depth/a1_s1_t1_depth.mat')
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: dataset folder not found; download UTD-MHAD and pass the folder holding "
            "Depth/ and Inertial/ (see vsfusion.data.utd_mhad)"
        )
    found: dict[tuple[int, int, int], dict[str, Path]] = {}
    dupes: list[str] = []
    ignored: list[str] = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            m = _FILE_RE.match(f)
            if not m:
                continue
            a, s, t = (int(g) for g in m.groups()[:3])
            kind, ext = m.group(4).lower(), m.group(5).lower()
            if _KINDS[kind] != ext or not (
                1 <= a <= len(ACTIONS) and s in SUBJECTS and t in TRIALS
            ):
                ignored.append(f)
                continue
            slot = found.setdefault((a, s, t), {})
            if kind in slot:
                dupes.append(str(Path(dirpath) / f))
                continue
            slot[kind] = Path(dirpath) / f
    if ignored:
        log.warning(
            "%s: ignored %d file(s) with out-of-range action/subject/trial or extension: %s",
            root,
            len(ignored),
            ", ".join(ignored[:10]),
        )
    if dupes:
        log.warning(
            "%s: %d duplicate trial file(s), the first found is used; ignored: %s",
            root,
            len(dupes),
            ", ".join(dupes[:10]),
        )
    return dict(sorted(found.items()))


def _subject_list(subjects: Iterable[int]) -> str:
    return ",".join(str(s) for s in subjects)


def make_entries(
    root: str | os.PathLike,
    video_modality: str = DEFAULT_VIDEO_MODALITY,
    trials: dict[tuple[int, int, int], dict[str, Path]] | None = None,
    skeleton: bool = False,
) -> list[Entry]:
    """Cache entries for every trial with both its video file and its inertial file.

    Trials expected for the subjects present but missing (entirely or one of the two files) are
    listed in one warning; the three trials absent from the official release are marked so.

    Args:
        root: Dataset folder.
        video_modality: ``"depth"`` or ``"rgb"``.
        trials: Output of :func:`find_trials` (found again when omitted).
        skeleton: Also give each trial that has a skeleton file the source
            ``"skeleton": {"skeleton": path, "depth": path or ""}`` (:func:`read_skeleton`).

    Returns:
        Entries with id ``aA_sS_tT``, label from :data:`CLASSES`, subject ``"S"``, split ``""``
        and sources ``{"video": path, "sensor": path}`` (plus ``"skeleton"``).

    Raises:
        DataError: Unknown modality, no usable trial under ``root``, or ``skeleton`` without any
            skeleton file.

    Example:
        >>> [e.id for e in make_entries("/data/UTD-MHAD")][:2]  # doctest: +SKIP
        ['a1_s1_t1', 'a1_s1_t2']
    """
    if video_modality not in VIDEO_MODALITIES:
        raise DataError(
            f"unknown UTD-MHAD video modality {video_modality!r}; use one of {VIDEO_MODALITIES}"
        )
    root = Path(root)
    trials = find_trials(root) if trials is None else trials
    vkind = _VIDEO_KIND[video_modality]
    if not any(vkind in f for f in trials.values()):
        other = next(
            (m for m, k in _VIDEO_KIND.items() if any(k in f for f in trials.values())), None
        )
        hint = f"; use --video-modality {other}" if other and other != video_modality else ""
        raise DataError(
            f"{root}: no UTD-MHAD {video_modality} files (aA_sS_tT_{vkind}.{_KINDS[vkind]}) "
            f"found{hint}; download them from the UTD-MHAD page and unzip them under {root}"
        )
    if skeleton and not any("skeleton" in f for f in trials.values()):
        raise DataError(
            f"{root}: no UTD-MHAD skeleton files (aA_sS_tT_skeleton.mat) found; download "
            f"Skeleton.zip from the UTD-MHAD page and unzip it under {root}, or pass "
            "skeleton=False"
        )
    if not any("inertial" in f for f in trials.values()):
        raise DataError(
            f"{root}: no UTD-MHAD inertial files (aA_sS_tT_inertial.mat) found; download "
            f"Inertial.zip from the UTD-MHAD page and unzip it under {root}"
        )
    used = [k for k, f in trials.items() if vkind in f or "inertial" in f]
    subjects = sorted({s for _, s, _ in used})
    actions = sorted({a for a, _, _ in used})
    absent_actions = [a for a in range(1, len(ACTIONS) + 1) if a not in actions]
    entries: list[Entry] = []
    missing: list[str] = []
    for a in actions:
        for s in subjects:
            for t in TRIALS:
                tid = trial_id(a, s, t)
                files = trials.get((a, s, t), {})
                lacks = [k for k in (vkind, "inertial") if k not in files]
                if lacks:
                    if tid in MISSING_TRIALS:
                        missing.append(f"{tid} (absent from the official release)")
                    elif len(lacks) == 2:
                        missing.append(tid)
                    else:
                        missing.append(f"{tid} (no {lacks[0]} file)")
                    continue
                sources: dict[str, Any] = {
                    "video": str(files[vkind]),
                    "sensor": str(files["inertial"]),
                }
                if skeleton and "skeleton" in files:
                    sources["skeleton"] = {
                        "skeleton": str(files["skeleton"]),
                        "depth": str(files.get("depth", "")),
                    }
                entries.append(
                    Entry(id=tid, label=CLASSES[a - 1], subject=str(s), split="", sources=sources)
                )
    if missing or absent_actions:
        more = len(missing) - _MAX_LISTED
        listed = ", ".join(missing[:_MAX_LISTED]) + (f", ... and {more} more" if more > 0 else "")
        log.warning(
            "%s: %d trial(s) of subjects %s missing, skipped%s%s",
            root,
            len(missing),
            _subject_list(subjects),
            f": {listed}" if missing else "",
            f"; no file at all for action(s) {', '.join(f'a{a}' for a in absent_actions)}"
            if absent_actions
            else "",
        )
    if not entries:
        raise DataError(
            f"{root}: no trial has both its {vkind} and inertial file; check the download"
        )
    return entries


def cache_params(
    video_modality: str = DEFAULT_VIDEO_MODALITY, crop: str = "centre", skeleton: bool = False
) -> dict[str, Any]:
    """The preprocessing parameters that name the cache (:func:`~vsfusion.data.cache.cache_key`).

    ``crop`` enters the parameters only when it is not ``"centre"``, and ``skeleton`` only when
    the skeleton is cached, so caches made before these options existed stay valid and the
    variants' caches live side by side.

    Example:
        >>> cache_params("depth")["frames"]
        32
        >>> cache_params("depth", "person")["crop"]
        'person'
        >>> cache_params("depth", skeleton=True)["skeleton"]["tolerance"]
        2
    """
    params: dict[str, Any] = {
        "dataset": NAME,
        "video_modality": video_modality,
        "frames": CACHE_FRAMES,
        "size": CACHE_SIZE,
        "sensor_steps": SENSOR_STEPS,
    }
    if video_modality == "depth":
        params["depth_percentiles"] = list(DEPTH_PERCENTILES)
        params["depth_resize"] = "masked_area"
    params.update(crop_params(crop))
    if params.get("crop") and video_modality == "depth":
        params["depth_band_mm"] = DEPTH_BAND_MM
    if skeleton:
        params["skeleton"] = {
            "frames": CACHE_FRAMES,
            "joints": len(SKELETON_JOINTS),
            "tolerance": SKELETON_FRAME_TOLERANCE,
        }
    return params


def make_readers(
    video_modality: str = DEFAULT_VIDEO_MODALITY, crop: str = "centre"
) -> dict[str, Any]:
    """The picklable video and sensor readers for :func:`~vsfusion.data.cache.build_cache`
    (the adapter adds :func:`read_skeleton` when it caches the skeleton).

    Example:
        >>> sorted(make_readers("depth", crop="person"))
        ['sensor', 'video']
    """
    crop = check_crop(crop)
    if video_modality == "depth":
        video = functools.partial(
            read_depth,
            num_frames=CACHE_FRAMES,
            size=CACHE_SIZE,
            percentiles=DEPTH_PERCENTILES,
            crop=crop,
            with_info=True,
        )
    elif video_modality == "rgb":
        video = functools.partial(
            read_rgb, num_frames=CACHE_FRAMES, size=CACHE_SIZE, crop=crop, with_info=True
        )
    else:
        raise DataError(
            f"unknown UTD-MHAD video modality {video_modality!r}; use one of {VIDEO_MODALITIES}"
        )
    return {"video": video, "sensor": functools.partial(read_inertial, steps=SENSOR_STEPS)}


def _check_protocol(protocol: str, root: Path, present: set[str]) -> dict[str, tuple[int, ...]]:
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown UTD-MHAD protocol {protocol!r}; use one of {sorted(PROTOCOLS)}")
    spec = PROTOCOLS[protocol]
    for part in ("train", "val", "test"):
        subs = spec.get(part, ())
        if subs and not present & {str(s) for s in subs}:
            if protocol == "standard" and part == "test":
                raise DataError(
                    f"subjects {_subject_list(subs)} not found under {root}; use --protocol dev "
                    f"to evaluate on subjects {_subject_list(TRAIN_SUBJECTS)}"
                )
            raise DataError(
                f"{part} subjects {_subject_list(subs)} of protocol {protocol!r} not found under "
                f"{root} (found subjects {', '.join(sorted(present, key=int))})"
            )
    absent = sorted({str(s) for p in spec.values() for s in p} - present, key=int)
    if absent:
        log.warning("%s: subjects %s of protocol %r have no files", root, absent, protocol)
    return spec


class UTDMHAD(DatasetAdapter):
    """The UTD-MHAD adapter (module docstring): depth (or RGB) video, inertial, skeleton.

    Example:
        >>> UTDMHAD.modalities["skeleton"]["layout"], list(UTDMHAD.protocols)
        ('kinect-v1', ['standard', 'dev'])
    """

    name = NAME
    modalities = {
        "video": {"kind": "depth"},
        "sensor": {"kind": "inertial", "unit_channels": SENSOR_UNIT_CHANNELS},
        "skeleton": {"kind": "skeleton", "layout": SKELETON_LAYOUT, "joints": len(SKELETON_JOINTS)},
    }
    protocols = {
        "standard": "train subjects 1, 3, 5, 7 (validation subjects carved), test 2, 4, 6, 8",
        "dev": "train 1, 3 / validate 5 / test 7: tuning on the released training half",
    }
    default_protocol = DEFAULT_PROTOCOL
    options = {
        "cache_dir": "cache/UTD-MHAD",
        "video_modality": None,
        "protocol": None,
        "workers": 2,
        "video_crop": None,
        "skeleton": None,
    }
    root_hint = (
        "download UTD-MHAD and pass the folder holding Depth/ and Inertial/ "
        "(see vsfusion.data.utd_mhad)"
    )

    def check(self) -> None:
        self.video_modality = self.opts["video_modality"] or DEFAULT_VIDEO_MODALITY
        if self.video_modality not in VIDEO_MODALITIES:
            raise DataError(
                f"unknown UTD-MHAD video modality {self.video_modality!r}; use one of "
                f"{VIDEO_MODALITIES}"
            )
        self.crop = check_crop(self.opts["video_crop"])
        if self.video_modality == "rgb":
            self.modalities = {**self.modalities, "video": {"kind": "rgb"}}
        super().check()

    def scan(self) -> list[Entry]:
        trials = find_trials(self.root)
        skeleton = self.opts["skeleton"]
        if skeleton is None:  # cached whenever the release's skeleton files are there
            skeleton = any("skeleton" in f for f in trials.values())
        self.skeleton = bool(skeleton)
        return make_entries(self.root, self.video_modality, trials, skeleton=self.skeleton)

    def split(self, entries: list[Entry]) -> list[Entry]:
        spec = _check_protocol(self.protocol, self.root, {e.subject for e in entries})
        return split_by_subjects(entries, spec, NAME)

    def readers(self) -> dict[str, Any]:
        readers = dict(make_readers(self.video_modality, self.crop))
        if self.skeleton:
            readers["skeleton"] = functools.partial(
                read_skeleton, num_frames=CACHE_FRAMES, tolerance=SKELETON_FRAME_TOLERANCE
            )
        return readers

    def cache_params(self, modality: str, entries: list[Entry]) -> dict[str, Any]:
        return cache_params(self.video_modality, self.crop, skeleton=self.skeleton)


load = UTDMHAD.load
"""``load(root, seed=0, val_fraction=0.25, *, cache_dir="cache/UTD-MHAD", video_modality=None,
protocol=None, workers=2, video_crop=None, skeleton=None) -> Manifest``.

Finds the trials, prepares the cache (first run only) and returns the validated manifest:
``video`` ``(32, 128, 128, 1)`` uint8 for depth (``(..., 3)`` for rgb), ``sensor`` ``(128, 6)``
float32 and, when ``skeleton`` (default: whenever ``Skeleton/`` files exist), ``skeleton``
``(32, 20, 3)`` float32 per sample. ``val_fraction`` is used by ``"standard"`` only (``"dev"``
has a fixed validation subject). Raises :class:`DataError` for missing folders or files, or a
protocol's subjects absent (the standard test subjects 2, 4, 6, 8 are not in a training-half
download: use ``protocol="dev"``).

Example:
    >>> m = load("/data/UTD-MHAD", protocol="dev", workers=2)  # doctest: +SKIP
    >>> sorted(set(m.split("test")["subject"]))  # doctest: +SKIP
    ['7']
"""
