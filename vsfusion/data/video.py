"""Video decoding, temporal sampling, spatial transforms and the shared RGB clip reader.

Decoding reads sequentially: every frame is ``grab()``-ed and only the kept frames are
``retrieve()``-d (colour-converted and copied). Seeking with ``CAP_PROP_POS_FRAMES`` is avoided: it
is 2.5-7x slower, worst on H.264 with long keyframe intervals. Frames come out as RGB uint8
``(T, H, W, 3)``.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vsfusion.data.errors import DataError

__all__ = [
    "CACHE_FRAMES",
    "CACHE_SIZE",
    "CROPS",
    "CROP_MARGIN",
    "DEPTH_BAND_MM",
    "DEFAULT_CROP",
    "VIDEO_EXTENSIONS",
    "VIDEO_PATTERNS",
    "Box",
    "bgr_to_rgb",
    "center_crop",
    "check_crop",
    "clip_from_frames",
    "crop_box",
    "crop_clip",
    "crop_params",
    "find_videos",
    "foreground_box",
    "log_crop",
    "motion_box",
    "hflip",
    "random_crop",
    "read_clip",
    "read_video",
    "resize_shorter",
    "square_box",
    "uniform_indices",
]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv")
"""Video containers the adapters recognise (any case)."""
VIDEO_PATTERNS = ",".join(f"*{e}" for e in VIDEO_EXTENSIONS)
"""The same as file name patterns: ``"*.mp4,*.avi,*.mov,*.mkv"``."""
CACHE_FRAMES = 32
"""Frames every adapter keeps per cached clip (the loader samples its ``num_frames`` from these)."""
CACHE_SIZE = 128
"""Side of every adapter's cached square frames (the loader crops its ``crop_size`` from these)."""


def uniform_indices(
    n_total: int,
    num_frames: int | None,
    jitter: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Frame indices sampling a clip of ``n_total`` frames uniformly in time.

    The clip is cut into ``num_frames`` equal segments; without jitter the centre frame of each is
    taken, with jitter a random frame within each (TSN-style). A clip shorter than ``num_frames``
    repeats frames evenly. The result is non-decreasing.

    Args:
        n_total: Number of frames in the clip (> 0).
        num_frames: Frames wanted; ``None`` keeps all frames.
        jitter: Random position within each segment instead of its centre.
        rng: Generator for the jitter (default: a fresh unseeded one).

    Returns:
        int64 indices of shape ``(num_frames,)``.

    Example:
        >>> uniform_indices(10, 5).tolist()
        [1, 3, 5, 7, 9]
        >>> uniform_indices(2, 4).tolist()
        [0, 0, 1, 1]
    """
    if n_total <= 0:
        raise ValueError(f"n_total must be positive, got {n_total}")
    if num_frames is None:
        return np.arange(n_total, dtype=np.int64)
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if jitter:
        rng = rng if rng is not None else np.random.default_rng()
        offsets = rng.random(num_frames)
    else:
        offsets = np.full(num_frames, 0.5)
    pos = (np.arange(num_frames) + offsets) * (n_total / num_frames)
    return np.clip(np.floor(pos).astype(np.int64), 0, n_total - 1)


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def _resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    h, w = frame.shape[:2]
    s = min(h, w)
    if s == size:
        return frame
    nh, nw = (size, max(1, round(w * size / h))) if h <= w else (max(1, round(h * size / w)), size)
    interp = cv2.INTER_AREA if size < s else cv2.INTER_LINEAR
    out = cv2.resize(frame, (nw, nh), interpolation=interp)
    return out[..., None] if frame.ndim == 3 and out.ndim == 2 else out


def resize_shorter(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize every frame so its shorter side is ``size``, keeping the aspect ratio.

    Uses area interpolation when shrinking and bilinear when enlarging.

    Args:
        frames: ``(T, H, W, C)`` array (uint8 or float).
        size: Target length of the shorter side.

    Returns:
        ``(T, H', W', C)`` array of the same dtype with ``min(H', W') == size``.

    Example:
        >>> resize_shorter(np.zeros((2, 240, 320, 3), np.uint8), 120).shape
        (2, 120, 160, 3)
    """
    frames = np.asarray(frames)
    if min(frames.shape[1:3]) == size:
        return frames
    return np.stack([_resize_frame(f, size) for f in frames])


def _check_crop(frames: np.ndarray, h: int, w: int) -> None:
    if frames.shape[1] < h or frames.shape[2] < w:
        raise ValueError(
            f"crop {h}x{w} is larger than the frames {frames.shape[1]}x{frames.shape[2]}; "
            "resize_shorter first"
        )


def center_crop(frames: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Crop the centre ``size`` x ``size`` (or ``(h, w)``) region of every frame.

    Args:
        frames: ``(T, H, W, C)`` array with ``H >= h`` and ``W >= w``.
        size: Crop side, or ``(h, w)``.

    Returns:
        ``(T, h, w, C)`` view.

    Example:
        >>> center_crop(np.zeros((2, 120, 160, 3), np.uint8), 112).shape
        (2, 112, 112, 3)
    """
    h, w = _size_hw(size)
    _check_crop(frames, h, w)
    top = (frames.shape[1] - h) // 2
    left = (frames.shape[2] - w) // 2
    return frames[:, top : top + h, left : left + w]


def random_crop(
    frames: np.ndarray, size: int | tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Crop a random ``size`` x ``size`` (or ``(h, w)``) region, the same for every frame.

    Args:
        frames: ``(T, H, W, C)`` array with ``H >= h`` and ``W >= w``.
        size: Crop side, or ``(h, w)``.
        rng: Random generator choosing the offset.

    Returns:
        ``(T, h, w, C)`` view.

    Example:
        >>> random_crop(np.zeros((2, 120, 160, 3)), 112, np.random.default_rng(0)).shape
        (2, 112, 112, 3)
    """
    h, w = _size_hw(size)
    _check_crop(frames, h, w)
    top = int(rng.integers(0, frames.shape[1] - h + 1))
    left = int(rng.integers(0, frames.shape[2] - w + 1))
    return frames[:, top : top + h, left : left + w]


def hflip(frames: np.ndarray) -> np.ndarray:
    """Mirror every frame left-right.

    Args:
        frames: ``(T, H, W, C)`` array.

    Returns:
        The flipped array (a view).

    Example:
        >>> hflip(np.arange(4).reshape(1, 1, 4, 1))[0, 0, :, 0].tolist()
        [3, 2, 1, 0]
    """
    return np.asarray(frames)[:, :, ::-1]


def _open(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise DataError(
            f"{path}: cannot open video (corrupt or unsupported container/codec); "
            "re-encode it (e.g. ffmpeg -i in -c:v libx264 out.mp4) or drop it"
        )
    return cap


def bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    """An OpenCV frame (BGR, or grey 2-D) as RGB uint8 ``(H, W, 3)``: what the decoder keeps.

    Example:
        >>> bgr_to_rgb(np.array([[[1, 2, 3]]], np.uint8)).tolist()
        [[[3, 2, 1]]]
    """
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _decode(path: Path, keep: np.ndarray | None, size: int | None) -> tuple[list, int]:
    """Decode sequentially, retrieving frames at sorted indices ``keep`` (all when None).

    Returns the retrieved RGB frames (one per distinct kept index, in order) and the number of
    frames grabbed.
    """
    cap = _open(path)
    wanted = None if keep is None else np.unique(keep)
    last = None if wanted is None else int(wanted[-1])
    frames: list[np.ndarray] = []
    j = 0
    i = 0
    try:
        while last is None or i <= last:
            if not cap.grab():
                break
            if wanted is None or (j < len(wanted) and wanted[j] == i):
                ok, frame = cap.retrieve()
                if not ok or frame is None:
                    break
                frame = bgr_to_rgb(frame)
                if size is not None:
                    frame = _resize_frame(frame, size)
                frames.append(frame)
                j += 1
            i += 1
    finally:
        cap.release()
    return frames, i


def read_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    size: int | None = None,
    jitter: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Decode a video file to RGB uint8 frames, optionally sampling ``num_frames`` uniformly.

    Frames are read sequentially (grab every frame, retrieve only the kept ones). The frame count
    comes from the container; when it is missing or wrong, the clip is counted by a first pass and
    decoded again.

    Args:
        path: Video file (any container/codec OpenCV's FFmpeg backend reads).
        num_frames: Frames to return, sampled with :func:`uniform_indices`; ``None`` for all.
        size: If given, resize each kept frame so its shorter side is ``size``.
        jitter: Jittered instead of centred temporal sampling.
        rng: Generator for the jitter.

    Returns:
        uint8 array ``(T, H, W, 3)`` in RGB order.

    Raises:
        DataError: The file is missing or no frame can be decoded.

    Example:
        >>> clip = read_video("video-samples/short_clip_340x256.mp4", num_frames=16, size=128)
        ...  # doctest: +SKIP
        >>> clip.shape  # doctest: +SKIP
        (16, 128, 170, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video file not found; check the path")
    if num_frames is None:
        frames, _ = _decode(path, None, size)
        idx = np.arange(len(frames))
    else:
        cap = _open(path)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        cap.release()
        frames: list[np.ndarray] = []
        idx = np.zeros(0, dtype=np.int64)
        if n > 0:
            idx = uniform_indices(n, num_frames, jitter, rng)
            frames, grabbed = _decode(path, idx, size)
            if len(frames) < len(np.unique(idx)):
                # The container overstated the frame count: ``grabbed`` is the true count.
                log.debug("%s: container says %d frames, decoded %d", path, n, grabbed)
                n, frames = grabbed, []
        else:
            # No frame count in the container: count with a grab-only pass.
            _, n = _decode(path, np.array([np.iinfo(np.int64).max]), None)
        if not frames and n > 0:
            idx = uniform_indices(n, num_frames, jitter, rng)
            frames, _ = _decode(path, idx, size)
        # Map each (possibly repeated) index to its retrieved frame; a frame that failed to
        # decode at the very end is replaced by the last good one.
        idx = np.minimum(np.searchsorted(np.unique(idx), idx), max(len(frames) - 1, 0))
    if not frames:
        raise DataError(
            f"{path}: no frame could be decoded (corrupt or unsupported codec); "
            "re-encode it (e.g. ffmpeg -i in -c:v libx264 out.mp4) or drop it"
        )
    return np.stack([frames[k] for k in idx]).astype(np.uint8, copy=False)


# ---------------------------------------------------------------------------------------------
# Person-centred cropping
# ---------------------------------------------------------------------------------------------

CROPS: tuple[str, ...] = ("centre", "person")
"""Spatial crops of the cache: the centre square, or a square around the person."""
DEFAULT_CROP = "centre"
DEPTH_BAND_MM = 1000.0
"""Depth band (mm) behind the clip's near percentile that counts as the person."""
CROP_MARGIN = 0.06
"""Margin added on each side of the person box (fraction of its longer side; 12% in all). The box
is already the union over the clip; on UTD-MHAD depth a person 165-210 px tall in 240 rows leaves
little room, and a larger margin mostly adds background."""

Box = tuple[int, int, int, int]
"""``(top, left, bottom, right)`` in pixels, bottom and right exclusive."""


def check_crop(crop: str | None, where: str = "video_crop") -> str:
    """Validate a crop name (``None`` means :data:`DEFAULT_CROP`) and return it.

    Raises:
        DataError: Unknown crop name.

    Example:
        >>> check_crop(None), check_crop("person")
        ('centre', 'person')
    """
    crop = DEFAULT_CROP if crop is None else crop
    if crop not in CROPS:
        raise DataError(f"unknown {where} {crop!r}; choose one of {', '.join(CROPS)}")
    return crop


def crop_params(crop: str) -> dict[str, Any]:
    """The crop's cache-key parameters: none for ``"centre"`` (older caches stay valid).

    Example:
        >>> crop_params("centre"), crop_params("person")["crop"]
        ({}, 'person')
    """
    if check_crop(crop) == "centre":
        return {}
    return {"crop": crop, "crop_margin": CROP_MARGIN, "motion": "framediff15"}


def _mass_range(profile: np.ndarray, coverage: tuple[float, float]) -> tuple[int, int]:
    """Index range ``[lo, hi)`` of a 1-D mass profile between two percentiles of its mass."""
    cum = np.cumsum(profile, dtype=np.float64)
    total = cum[-1]
    lo = int(np.searchsorted(cum, total * coverage[0] / 100.0, side="right"))
    hi = int(np.searchsorted(cum, total * coverage[1] / 100.0, side="left")) + 1
    return min(lo, len(profile) - 1), max(min(hi, len(profile)), lo + 1)


def _mass_box(mass: np.ndarray, coverage: tuple[float, float]) -> Box:
    top, bottom = _mass_range(mass.sum(axis=1), coverage)
    left, right = _mass_range(mass.sum(axis=0), coverage)
    return top, left, bottom, right


def _union(a: Box | None, b: Box) -> Box:
    if a is None:
        return b
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def foreground_box(
    depth: np.ndarray,
    band: float = DEPTH_BAND_MM,
    near_percentile: float = 1.0,
    min_pixels: int = 100,
    coverage: tuple[float, float] = (0.5, 99.5),
) -> Box | None:
    """Box of the nearest depth band (the person), united over the frames of a clip.

    Background is 0 (non-finite and negative values count as background). The band starts at the
    ``near_percentile`` of the clip's non-zero depth (robust to a few stray near pixels) and is
    ``band`` deep; farther objects are excluded. Per frame, the box spans ``coverage`` percentiles
    of the band's pixel mass along each axis (dropping stray pixels); frames with fewer than
    ``min_pixels`` band pixels are ignored. The result is the union of the per-frame boxes.

    Args:
        depth: ``(T, H, W)`` or ``(T, H, W, 1)`` depth, e.g. raw uint16 millimetres.
        band: Depth of the person band, in the units of ``depth``.
        near_percentile: Percentile of non-zero depth where the band starts.
        min_pixels: Band pixels a frame needs to contribute.
        coverage: Mass percentiles (low, high) bounding each frame's box.

    Returns:
        ``(top, left, bottom, right)``, or ``None`` when no frame has a foreground.

    Example:
        >>> d = np.zeros((2, 60, 80), np.uint16)
        >>> d[:, 10:50, 20:30] = 2500  # the person
        >>> d[:, 5:15, 60:75] = 5000   # a far object
        >>> foreground_box(d)
        (10, 20, 50, 30)
        >>> foreground_box(np.zeros((2, 60, 80))) is None
        True
    """
    d = np.asarray(depth)
    if d.ndim == 4:
        d = d[..., 0]
    if d.ndim != 3:
        raise ValueError(f"depth must be (T, H, W) or (T, H, W, 1), got shape {d.shape}")
    d = d.astype(np.float32, copy=False)
    valid = np.isfinite(d) & (d > 0)
    if not valid.any():
        return None
    near = float(np.percentile(d[valid], near_percentile))
    fg = valid & (d <= near + band)
    box: Box | None = None
    for k in range(fg.shape[0]):
        mass = fg[k]
        if int(mass.sum()) < min_pixels:
            continue
        box = _union(box, _mass_box(mass.astype(np.float32), coverage))
    return box


def motion_box(
    frames: np.ndarray,
    threshold: float = 15.0,
    min_pixels: int = 100,
    coverage: tuple[float, float] = (1.0, 99.0),
) -> Box | None:
    """Box of where a clip moves: thresholded grey frame differences, accumulated over the clip.

    Every pixel whose grey level changes by more than ``threshold`` between consecutive frames adds
    one to a motion map; the box spans ``coverage`` percentiles of the map's mass along each axis
    (robust to sparse noise and compression artefacts).

    Args:
        frames: ``(T, H, W, C)`` uint8 frames, C = 3 (RGB) or 1 (grey).
        threshold: Grey-level change that counts as motion.
        min_pixels: Moving pixel-frames the whole clip needs; fewer gives ``None``.
        coverage: Mass percentiles (low, high) bounding the box.

    Returns:
        ``(top, left, bottom, right)``, or ``None`` for a still clip (or fewer than 2 frames).

    Example:
        >>> v = np.zeros((4, 64, 64, 3), np.uint8)
        >>> for k in range(4):
        ...     v[k, 20:36, 10 + 4 * k : 26 + 4 * k] = 255
        >>> motion_box(v)
        (20, 10, 36, 38)
        >>> motion_box(np.zeros((4, 64, 64, 3), np.uint8)) is None
        True
    """
    v = np.asarray(frames)
    if v.ndim != 4:
        raise ValueError(f"frames must be (T, H, W, C), got shape {v.shape}")
    if v.shape[0] < 2:
        return None
    if v.shape[3] == 3:
        grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in v.astype(np.uint8)])
    else:
        grey = v[..., 0]
    grey = grey.astype(np.int16)
    mass = np.zeros(grey.shape[1:], np.float32)
    for k in range(1, grey.shape[0]):
        mass += np.abs(grey[k] - grey[k - 1]) > threshold
    if float(mass.sum()) < min_pixels:
        return None
    return _mass_box(mass, coverage)


def square_box(box: Box, frame_shape: tuple[int, ...], margin: float = CROP_MARGIN) -> Box:
    """Enlarge ``box`` to a square around its centre with a margin, placed in the frame.

    The side is the box's longer side plus ``margin`` of it on each side, reduced (down to the
    longer side itself) so the square fits the frame when it can, and shifted to lie inside the
    frame. Only a box longer than the frame's shorter side gives a square reaching outside the
    frame (:func:`crop_box` pads it); the aspect ratio is never changed.

    Args:
        box: ``(top, left, bottom, right)``.
        frame_shape: ``(H, W, ...)`` of the frames.
        margin: Fraction of the longer side added on each side.

    Returns:
        The square ``(top, left, bottom, right)``; it may extend past the frame (see above).

    Example:
        >>> square_box((10, 20, 50, 30), (60, 80), margin=0.1)
        (6, 1, 54, 49)
        >>> square_box((0, 0, 60, 10), (60, 80))
        (0, 0, 60, 60)
    """
    h, w = int(frame_shape[0]), int(frame_shape[1])
    top, left, bottom, right = (int(b) for b in box)
    longer = max(bottom - top, right - left, 1)
    side = max(longer, min(int(round(longer * (1 + 2 * margin))), min(h, w)))

    def place(lo: int, hi: int, dim: int) -> int:
        start = int(round((lo + hi - side) / 2))
        if side <= dim:
            start = min(max(start, 0), dim - side)
        return start

    t, le = place(top, bottom, h), place(left, right, w)
    return t, le, t + side, le + side


def crop_box(frames: np.ndarray, box: Box, pad: str = "constant") -> np.ndarray:
    """Cut ``box`` out of every frame, padding where it reaches past the frame.

    Args:
        frames: ``(T, H, W, ...)`` array.
        box: ``(top, left, bottom, right)``, possibly outside the frame.
        pad: ``"constant"`` (zeros) or ``"edge"`` (repeat the border pixels).

    Returns:
        ``(T, bottom - top, right - left, ...)`` array.

    Example:
        >>> crop_box(np.ones((1, 4, 4, 1)), (-1, 0, 3, 4))[0, :, 0, 0].tolist()
        [0.0, 1.0, 1.0, 1.0]
    """
    top, left, bottom, right = box
    h, w = frames.shape[1:3]
    t0, l0 = max(top, 0), max(left, 0)
    b0, r0 = min(bottom, h), min(right, w)
    if b0 <= t0 or r0 <= l0:
        raise ValueError(f"box {box} does not overlap the {h}x{w} frame")
    inner = frames[:, t0:b0, l0:r0]
    widths = [(0, 0), (t0 - top, bottom - b0), (l0 - left, right - r0)]
    widths += [(0, 0)] * (frames.ndim - 3)
    if not any(a or b for a, b in widths):
        return inner
    return np.pad(inner, widths, mode=pad)


def crop_clip(
    frames: np.ndarray,
    size: int,
    crop: str = DEFAULT_CROP,
    source: str = "",
    margin: float = CROP_MARGIN,
) -> tuple[np.ndarray, dict]:
    """Crop a colour or grey clip to ``size`` x ``size``: centre square, or around the motion.

    ``"centre"`` resizes so the shorter side is ``size`` and crops the centre. ``"person"`` takes
    :func:`motion_box` of the clip, squares it (:func:`square_box`, edge padding where it must
    reach past the frame), and resizes the square to ``size`` (area interpolation when shrinking,
    bilinear when enlarging, as :func:`resize_shorter`). A still clip (no motion box) falls back to
    the centre crop; the returned info says so, for the cache's one warning.

    Args:
        frames: ``(T, H, W, C)`` uint8 frames at any resolution.
        size: Output side.
        crop: ``"centre"`` or ``"person"``.
        source: The file, named in the fallback message.
        margin: Margin of the person square (see :func:`square_box`).

    Returns:
        ``(clip, info)``: uint8 ``(T, size, size, C)`` and ``{"crop", "box", "frame"}`` (the box
        in the input frames' pixels; ``None`` for the centre crop) plus ``"warning"`` when the
        person crop fell back to the centre.

    Example:
        >>> clip, info = crop_clip(np.zeros((4, 96, 128, 3), np.uint8), 32, "person", "a.mp4")
        >>> clip.shape, info["crop"], info["warning"]
        ((4, 32, 32, 3), 'centre', 'a.mp4: no motion found, centre crop used')
    """
    crop = check_crop(crop)
    frames = np.asarray(frames)
    info: dict = {"crop": "centre", "box": None, "frame": list(frames.shape[1:3])}
    box = motion_box(frames) if crop == "person" else None
    if box is None:
        if crop == "person":
            info["warning"] = f"{source}: no motion found, centre crop used"
        out = center_crop(resize_shorter(frames, size), size)
        return np.ascontiguousarray(out), info
    sq = square_box(box, frames.shape[1:3], margin)
    out = resize_shorter(crop_box(frames, sq, pad="edge"), size)
    info.update(crop="person", box=[int(b) for b in sq])
    return np.ascontiguousarray(out), info


def log_crop(desc: str, crop: str, samples: Any) -> int:
    """Log the crop of a prepared cache and how many clips fell back to the centre crop.

    Args:
        desc: Dataset name for the log line.
        crop: The crop asked for.
        samples: :func:`~vsfusion.data.cache.build_cache`'s table (its ``attrs["info"]``).

    Returns:
        The number of clips that fell back (0 for the centre crop).

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"id": ["a"]})
        >>> df.attrs["info"] = {"video": {"a": {"crop": "centre", "box": None}}}
        >>> log_crop("demo", "person", df)
        1
    """
    infos = getattr(samples, "attrs", {}).get("info", {}).get("video", {})
    fell = sum(1 for i in infos.values() if i.get("crop") != crop) if crop != "centre" else 0
    log.info(
        "%s: video crop %s (%d clips with crop info, %d fell back to the centre crop)",
        desc,
        crop,
        len(infos),
        fell,
    )
    return fell


# ---------------------------------------------------------------------------------------------
# The shared RGB clip reader and the video file scan (preparation itself is build_cache's)
# ---------------------------------------------------------------------------------------------


def read_clip(
    path: str,
    num_frames: int = CACHE_FRAMES,
    size: int = CACHE_SIZE,
    crop: str = "centre",
    with_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict]:
    """Decode a video to uint8 ``(num_frames, size, size, 3)``: uniform sampling, resize, crop.

    The RGB video reader of every adapter (folder, VSL raw, UTD-MHAD rgb) and of
    ``utils/videoprocess.py``. With ``crop="person"`` frames are decoded at twice ``size``
    (shorter side) and the square around the clip's motion is cut and resized to ``size``
    (:func:`crop_clip`); a still clip falls back to the centre crop.

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


def clip_from_frames(
    frames: Any,
    num_frames: int = CACHE_FRAMES,
    size: int = CACHE_SIZE,
    crop: str = "centre",
    with_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict]:
    """:func:`read_clip` on frames already decoded (a webcam, a browser), with the same result.

    ``read_clip(path, ...)`` equals ``clip_from_frames(all RGB frames of path, ...)``: the same
    uniform sampling (:func:`uniform_indices` over the frames given), the same per-frame resize
    of the kept frames (shorter side ``size``, or ``2 * size`` for the person crop) and the same
    :func:`crop_clip`.

    Args:
        frames: RGB uint8 frames, a sequence of ``(H, W, 3)`` arrays or one ``(T, H, W, 3)`` array
            (convert OpenCV's BGR frames with :func:`bgr_to_rgb`).
        num_frames: Frames sampled uniformly in time.
        size: Output side.
        crop: ``"centre"`` or ``"person"``.
        with_info: Also return the crop info.

    Returns:
        uint8 ``(num_frames, size, size, 3)``, or ``(clip, info)`` with ``with_info``.

    Raises:
        DataError: No frames, or frames that are not uint8 ``(H, W, 3)`` of one size.

    Example:
        >>> clip_from_frames([np.zeros((48, 64, 3), np.uint8)] * 10, 4, 32).shape
        (4, 32, 32, 3)
    """
    crop = check_crop(crop)
    n = len(frames)
    if n == 0:
        raise DataError("no frames to read a clip from; capture at least one frame")
    idx = uniform_indices(n, num_frames)
    kept = []
    for i in np.unique(idx):
        frame = np.asarray(frames[int(i)])
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise DataError(
                f"frame {int(i)} is {frame.dtype} {frame.shape}; frames must be uint8 RGB (H, W, 3)"
            )
        kept.append(_resize_frame(frame, size if crop == "centre" else 2 * size))
    if len({f.shape for f in kept}) > 1:
        raise DataError("frames differ in size; capture every frame at one resolution")
    pos = np.searchsorted(np.unique(idx), idx)
    decoded = np.stack([kept[k] for k in pos])
    clip, info = crop_clip(decoded, size, crop, "frames")
    return (clip, info) if with_info else clip


def find_videos(src: str | os.PathLike, pattern: str = VIDEO_PATTERNS) -> list[Path]:
    """Video files under ``src`` (recursively, sorted), by comma-separated name patterns.

    Args:
        src: Folder to search.
        pattern: Comma-separated, case-insensitive file name patterns.

    Returns:
        The files, in sorted folder-walk order.

    Example:
        >>> find_videos("/nonexistent")
        []
    """
    pats = [p.strip().lower() for p in pattern.split(",") if p.strip()]
    found = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for f in sorted(files):
            if any(fnmatch.fnmatch(f.lower(), p) for p in pats):
                found.append(Path(root) / f)
    return found
