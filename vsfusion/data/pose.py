"""Body-pose and hand keypoints from RGB video with MediaPipe Holistic (the optional ``pose`` extra).

Joint layout ``"mediapipe-holistic"``: :data:`POSE_JOINTS` = 75 joints per frame, in this order
(:data:`JOINT_NAMES` spells them out):

* ``0-32``  body: the 33 BlazePose landmarks (0 nose, 1-6 eyes, 7-8 ears, 9-10 mouth,
  11-12 shoulders, 13-14 elbows, 15-16 wrists, 17-22 pinky/index/thumb knuckles, 23-24 hips,
  25-26 knees, 27-28 ankles, 29-30 heels, 31-32 foot tips; odd = the person's left, even = right);
* ``33-53`` left hand, ``54-74`` right hand: the 21 hand landmarks each (0 wrist, 1-4 thumb,
  5-8 index, 9-12 middle, 13-16 ring, 17-20 pinky, base to tip). Left and right are the
  person's own, as in the body layout (MediaPipe Holistic attaches each hand to the body's wrist).

Channels (``C = 3``): ``x`` and ``y`` normalised to the frame (0 = left/top, 1 = right/bottom; a
joint just outside the frame can be slightly below 0 or above 1), and ``z``, MediaPipe's relative
depth on the same scale as ``x`` (smaller = nearer the camera): for body joints relative to the
midpoint of the hips, for hand joints relative to that hand's wrist. It is not metric.

Missing detections: a frame where no person is found, or a hand that is not found, gets exactly
``0.0`` in all channels of those joints, never NaN (the cache and the loaders reject NaN). A
detected landmark is never exactly ``(0, 0, 0)`` in practice, so :func:`presence_mask` recovers
which joints were detected; ``presence=True`` instead appends a fourth channel, 1.0 where detected
and 0.0 where filled, for models that want it as an input feature.

Frames are decoded and sampled by :func:`~vsfusion.data.video.read_video` (uniform sampling by
:func:`~vsfusion.data.video.uniform_indices`), exactly as the video cache does, so keypoint frame
``t`` is the cached clip's frame ``t`` when both use the same ``num_frames``. Coordinates refer to
the whole frame, before the cache's crop; :func:`to_clip_coords` maps them into the crop.

MediaPipe 0.10.21 pins ``numpy<2`` and ``protobuf<5``; TensorFlow 2.21 needs ``protobuf>=6.31.1``,
so the two do not install into one environment. Extraction therefore needs only NumPy, OpenCV and
MediaPipe (plus pandas/scipy/tqdm, which importing :mod:`vsfusion.data` loads), never TensorFlow or
Keras, and runs from its own environment (``make venv-pose``)::

    python -m vsfusion.data.pose --videos raw/VSL --out processed/VSL --frames 32

writes ``<out>/pose/<relative path>.npy`` float32 ``(T, 75, C)`` beside the
``<out>/video/<relative path>.npy`` clips of :func:`~vsfusion.data.processed.prepare_videos`, and
``<out>/pose.info.json`` with per-clip detection counts. :func:`read_pose` is the same extraction
as a picklable :func:`~vsfusion.data.cache.build_cache` reader (modality ``"pose"``).

Only model complexity 1 is offered: its model ships inside the wheel, while complexities 0 and 2
are downloaded on first use, which an offline machine cannot do.

Example:
    >>> kp = extract_keypoints("clip.mp4", num_frames=32)  # doctest: +SKIP
    >>> kp.shape, kp.dtype  # doctest: +SKIP
    ((32, 75, 3), dtype('float32'))
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsfusion.data.errors import DataError
from vsfusion.data.io import TMP_SUFFIX, atomic_save_npy, atomic_write_text
from vsfusion.data.skeleton import layout
from vsfusion.data.video import (
    VIDEO_PATTERNS,
    find_videos,
    read_video,
    resize_shorter,
    uniform_indices,
)

__all__ = [
    "BODY",
    "BODY_JOINTS",
    "CACHE_FRAMES",
    "HAND_JOINTS",
    "JOINT_NAMES",
    "LEFT_HAND",
    "MEDIAPIPE_VERSION",
    "MISSING_MEDIAPIPE",
    "POSE_JOINTS",
    "POSE_LAYOUT",
    "RIGHT_HAND",
    "extract_keypoints",
    "holistic_detector",
    "landmarks_to_array",
    "main",
    "pose_info",
    "presence_mask",
    "read_pose",
    "require_mediapipe",
    "to_clip_coords",
]

log = logging.getLogger(__name__)

POSE_LAYOUT = "mediapipe-holistic"
"""Name of the joint layout (body 33 + left hand 21 + right hand 21)."""
BODY_JOINTS = 33
HAND_JOINTS = 21
POSE_JOINTS = BODY_JOINTS + 2 * HAND_JOINTS  # 75
BODY = slice(0, BODY_JOINTS)
LEFT_HAND = slice(BODY_JOINTS, BODY_JOINTS + HAND_JOINTS)
RIGHT_HAND = slice(BODY_JOINTS + HAND_JOINTS, POSE_JOINTS)
CACHE_FRAMES = 32
"""Default frames per clip, the dataset adapters' ``CACHE_FRAMES`` (keypoints align with clips)."""
MEDIAPIPE_VERSION = "0.10.21"
"""The release the ``pose`` extra pins (newest with ``mediapipe.solutions`` and bundled models)."""
MISSING_MEDIAPIPE = (
    "pose extraction needs mediapipe: pip install .[pose] "
    "(or run python -m vsfusion.data.pose in an environment that has it)"
)

JOINT_NAMES: tuple[str, ...] = tuple(layout(POSE_LAYOUT).joints)
"""The 75 joint names in array order (see the module docstring)."""

Detector = Callable[[np.ndarray], Any]
"""Frame (RGB uint8 ``(H, W, 3)``) -> result with ``pose_landmarks``, ``left_hand_landmarks`` and
``right_hand_landmarks``, each ``None`` or holding ``.landmark`` points with ``x, y, z``."""


def require_mediapipe() -> Any:
    """Import MediaPipe's legacy Holistic solution, or fail with one line saying how to get it.

    Returns:
        The ``mediapipe.solutions.holistic`` module.

    Raises:
        ImportError: :data:`MISSING_MEDIAPIPE` (plus the cause when mediapipe is installed but
            broken, e.g. by a protobuf another package needs, or too new to have the solution).
    """
    try:
        import mediapipe as mp
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.split(".")[0] != "mediapipe":
            raise ImportError(f"{MISSING_MEDIAPIPE} [mediapipe is broken here: {e}]") from None
        raise ImportError(MISSING_MEDIAPIPE) from None
    except ImportError as e:  # e.g. TensorFlow's protobuf beside mediapipe's
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImportError(f"{MISSING_MEDIAPIPE} [mediapipe is broken here: {first}]") from None
    try:
        return mp.solutions.holistic
    except AttributeError:
        version = getattr(mp, "__version__", "?")
        raise ImportError(
            f"{MISSING_MEDIAPIPE} [mediapipe {version} has no mediapipe.solutions; "
            f"the extra pins {MEDIAPIPE_VERSION}]"
        ) from None


def holistic_detector(
    static_image_mode: bool = False,
    min_detection_confidence: float = 0.5,
    min_tracking_confidence: float = 0.5,
) -> Any:
    """A MediaPipe Holistic instance (model complexity 1, the one bundled in the wheel).

    Its ``process(frame)`` is a :data:`Detector`; call ``close()`` when done.

    Args:
        static_image_mode: Detect afresh in every frame instead of tracking from the last one.
        min_detection_confidence: Person detection threshold.
        min_tracking_confidence: Below this the tracker re-detects.

    Raises:
        ImportError: mediapipe is missing (see :func:`require_mediapipe`).
    """
    holistic = require_mediapipe()
    return holistic.Holistic(
        static_image_mode=static_image_mode,
        model_complexity=1,
        smooth_landmarks=not static_image_mode,
        enable_segmentation=False,
        refine_face_landmarks=False,
        min_detection_confidence=min_detection_confidence,
        min_tracking_confidence=min_tracking_confidence,
    )


def landmarks_to_array(result: Any, presence: bool = False) -> np.ndarray:
    """One frame's Holistic result as float32 ``(75, C)`` in the ``"mediapipe-holistic"`` order.

    Parts that were not detected (``None``), and any part with a non-finite coordinate, are
    filled with zeros (and presence 0).

    Args:
        result: Object with ``pose_landmarks``, ``left_hand_landmarks``, ``right_hand_landmarks``
            (each ``None`` or with a ``landmark`` sequence of points having ``x, y, z``).
        presence: Append a fourth channel: 1.0 detected, 0.0 filled.

    Returns:
        float32 ``(75, 3)``, or ``(75, 4)`` with ``presence``.

    Raises:
        ValueError: A detected part has the wrong number of landmarks.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> hand = NS(landmark=[NS(x=0.5, y=0.5, z=-0.1)] * 21)
        >>> res = NS(pose_landmarks=None, left_hand_landmarks=None, right_hand_landmarks=hand)
        >>> a = landmarks_to_array(res, presence=True)
        >>> a.shape, bool(a[:54].any()), float(a[54:, 3].min())
        ((75, 4), False, 1.0)
    """
    out = np.zeros((POSE_JOINTS, 4), np.float32)
    for name, joints in (
        ("pose_landmarks", BODY),
        ("left_hand_landmarks", LEFT_HAND),
        ("right_hand_landmarks", RIGHT_HAND),
    ):
        part = getattr(result, name, None)
        if part is None:
            continue
        pts = np.asarray([(p.x, p.y, p.z) for p in part.landmark], np.float32)
        want = joints.stop - joints.start
        if pts.shape != (want, 3):
            raise ValueError(f"{name}: expected {want} landmarks, got {len(pts)}")
        if not np.isfinite(pts).all():
            continue  # treated as not detected: the cache rejects NaN
        out[joints, :3] = pts
        out[joints, 3] = 1.0
    return out if presence else out[:, :3].copy()


def presence_mask(keypoints: np.ndarray) -> np.ndarray:
    """Which joints were detected: bool ``(..., J)``.

    Uses the presence channel when there is one (``C == 4``), else "not all channels are 0".

    Example:
        >>> kp = np.zeros((2, 75, 3), np.float32); kp[1, :33] = 0.5
        >>> presence_mask(kp).sum(axis=1).tolist()
        [0, 33]
    """
    kp = np.asarray(keypoints)
    if kp.shape[-1] == 4:
        return kp[..., 3] > 0.5
    return np.any(kp != 0, axis=-1)


def _frames(
    source: str | os.PathLike | np.ndarray, num_frames: int | None, size: int | None
) -> np.ndarray:
    if isinstance(source, str | os.PathLike):
        return read_video(source, num_frames=num_frames, size=size)
    frames = np.asarray(source)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(
            f"frames must be uint8 RGB (T, H, W, 3), got {frames.dtype} {frames.shape}"
        )
    if num_frames is not None:
        frames = frames[uniform_indices(len(frames), num_frames)]
    if size is not None:
        frames = resize_shorter(frames, size)
    return frames


def extract_keypoints(
    source: str | os.PathLike | np.ndarray,
    num_frames: int | None = None,
    *,
    size: int | None = None,
    presence: bool = False,
    detector: Detector | None = None,
    static_image_mode: bool = False,
    min_detection_confidence: float = 0.5,
    min_tracking_confidence: float = 0.5,
) -> np.ndarray:
    """Body and hand keypoints of every (sampled) frame: float32 ``(T, 75, C)``.

    Args:
        source: A video file (decoded by :func:`~vsfusion.data.video.read_video`) or RGB uint8
            frames ``(T, H, W, 3)``.
        num_frames: Sample this many frames with :func:`~vsfusion.data.video.uniform_indices`, as
            the video cache does (``None``: every frame).
        size: Resize frames so the shorter side is ``size`` before detection (``None``: native
            resolution; normalised coordinates do not depend on it, hand accuracy does).
        presence: Append the presence channel (``C = 4``; see the module docstring).
        detector: A :data:`Detector` to use instead of a fresh MediaPipe Holistic (tests, or
            one Holistic shared across clips; a shared tracker carries state between clips).
        static_image_mode: Detect in every frame independently instead of tracking.
        min_detection_confidence: Holistic's person detection threshold.
        min_tracking_confidence: Holistic's tracking threshold.

    Returns:
        float32 ``(T, 75, 3)`` (``(T, 75, 4)`` with ``presence``); no NaN: undetected joints are 0.

    Raises:
        ImportError: No ``detector`` given and mediapipe is missing (one line saying how to get it).
        DataError: The video is missing or cannot be decoded.
        ValueError: ``source`` frames are not uint8 RGB ``(T, H, W, 3)``.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> nobody = lambda frame: NS(pose_landmarks=None, left_hand_landmarks=None,
        ...                           right_hand_landmarks=None)
        >>> kp = extract_keypoints(np.zeros((10, 32, 32, 3), np.uint8), 4, detector=nobody)
        >>> kp.shape, kp.dtype, float(np.abs(kp).sum())
        ((4, 75, 3), dtype('float32'), 0.0)
    """
    close = None
    if detector is None:
        holistic = holistic_detector(
            static_image_mode, min_detection_confidence, min_tracking_confidence
        )
        detector, close = holistic.process, holistic.close
    try:
        frames = _frames(source, num_frames, size)
        out = np.stack(
            [landmarks_to_array(detector(np.ascontiguousarray(f)), presence) for f in frames]
        )
    finally:
        if close is not None:
            close()
    return out.astype(np.float32, copy=False)


def pose_info(keypoints: np.ndarray, source: Any = "", min_fraction: float = 0.5) -> dict:
    """Detection counts of a clip's keypoints, as the cache's per-sample info.

    Args:
        keypoints: ``(T, 75, C)`` from :func:`extract_keypoints`.
        source: The file, named in the warning.
        min_fraction: Below this fraction of frames with a body, the info carries a ``"warning"``.

    Returns:
        ``{"layout", "frames", "body", "left_hand", "right_hand"}`` (frames with that part
        detected), plus ``"warning"`` when a person was found in too few frames.

    Example:
        >>> kp = np.zeros((4, 75, 3), np.float32); kp[:1, :33] = 0.5
        >>> info = pose_info(kp, "a.mp4")
        >>> info["body"], info["warning"]
        (1, 'a.mp4: a person was detected in only 1 of 4 frames (keypoints are 0 elsewhere)')
    """
    mask = presence_mask(keypoints)
    n = int(mask.shape[0])
    info: dict[str, Any] = {
        "layout": POSE_LAYOUT,
        "frames": n,
        "body": int(mask[:, BODY].any(axis=1).sum()),
        "left_hand": int(mask[:, LEFT_HAND].any(axis=1).sum()),
        "right_hand": int(mask[:, RIGHT_HAND].any(axis=1).sum()),
    }
    if info["body"] < min_fraction * n:
        info["warning"] = (
            f"{source}: a person was detected in only {info['body']} of {n} frames "
            "(keypoints are 0 elsewhere)"
        )
    return info


def read_pose(
    path: str,
    num_frames: int | None = CACHE_FRAMES,
    size: int | None = None,
    presence: bool = False,
    with_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict]:
    """The :func:`~vsfusion.data.cache.build_cache` reader of modality ``"pose"``.

    Top-level, so ``functools.partial(read_pose, num_frames=32, with_info=True)`` pickles into the
    cache's worker processes. Each call builds its own Holistic tracker (no state across clips).

    Args:
        path: Video file.
        num_frames: Frames sampled uniformly, as the clip's video reader samples them.
        size: Shorter side frames are resized to before detection (``None``: native).
        presence: Append the presence channel.
        with_info: Also return :func:`pose_info`'s counts (the cache warns about clips with few
            detections).

    Returns:
        float32 ``(num_frames, 75, C)``, or ``(keypoints, info)`` with ``with_info``.
    """
    kp = extract_keypoints(path, num_frames, size=size, presence=presence)
    return (kp, pose_info(kp, path)) if with_info else kp


def to_clip_coords(keypoints: np.ndarray, info: dict) -> np.ndarray:
    """Map whole-frame keypoints into the cached clip's crop (normalised to the crop).

    Args:
        keypoints: ``(T, J, C)`` from :func:`extract_keypoints` of the same video.
        info: The video cache's info of that clip (``{"crop", "box", "frame"}``, see
            :func:`~vsfusion.data.video.crop_clip`): ``box`` ``(top, left, bottom, right)`` in the
            pixels of ``frame`` ``(H, W)``, or ``None`` for the centre square.

    Returns:
        float32 array like ``keypoints``: ``x, y`` relative to the crop (outside ``[0, 1]`` when
        the joint lies outside it), ``z`` rescaled with ``x``; undetected joints stay 0, the
        presence channel is kept.

    Example:
        >>> kp = np.zeros((1, 75, 3), np.float32); kp[0, 0] = (0.5, 0.5, 0.1)
        >>> to_clip_coords(kp, {"box": None, "frame": [100, 200]})[0, 0].astype(float).round(3).tolist()
        [0.5, 0.5, 0.2]
    """
    kp = np.array(keypoints, np.float32, copy=True)
    h, w = (float(v) for v in info["frame"])
    box = info.get("box")
    if box is None:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2  # as center_crop
        box = (top, left, top + side, left + side)
    top, left, bottom, right = (float(b) for b in box)
    mask = presence_mask(kp)
    kp[..., 0] = (kp[..., 0] * w - left) / (right - left)
    kp[..., 1] = (kp[..., 1] * h - top) / (bottom - top)
    kp[..., 2] = kp[..., 2] * w / (right - left)
    kp[..., :3][~mask] = 0.0
    return kp


# ---------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vsfusion.data.pose",
        description=(
            "Extract MediaPipe Holistic body + hand keypoints (layout mediapipe-holistic, 75 "
            "joints) from every video under --videos into <out>/pose/<relative path>.npy. "
            "Needs numpy, opencv and mediapipe only (pip install .[pose]), not TensorFlow."
        ),
    )
    p.add_argument("--videos", required=True, help="folder searched recursively for videos")
    p.add_argument("--out", required=True, help="output root (pose/ and pose.info.json go here)")
    p.add_argument(
        "--frames",
        type=int,
        default=CACHE_FRAMES,
        help="frames sampled uniformly per video, as the video cache (0 = every frame)",
    )
    p.add_argument("--size", type=int, default=None, help="shorter side before detection")
    p.add_argument("--presence", action="store_true", help="append the presence channel (C=4)")
    p.add_argument("--static", action="store_true", help="detect in every frame, no tracking")
    p.add_argument("--pattern", default=VIDEO_PATTERNS, help="comma-separated file patterns")
    return p


def declare_pose_stream(root: str | os.PathLike, presence: bool = False) -> Path:
    """Add the ``pose`` column to ``<root>/modalities.json`` (kept entries stay): a skeleton stream
    of layout ``mediapipe-holistic``, so a processed-layout dataset at ``root`` reads ``pose/``.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> json.loads(declare_pose_stream(d).read_text())["pose"]["kind"]
        'skeleton'
    """
    from vsfusion.data.modality import STREAMS_NAME, StreamInfo, read_streams, write_streams

    path = Path(root) / STREAMS_NAME
    streams = {
        c: StreamInfo.from_json({"kind": "array", **d}) for c, d in read_streams(path).items()
    }
    channels = 4 if presence else 3
    streams["pose"] = StreamInfo(
        "skeleton", (None, POSE_JOINTS, channels), channels, {"layout": POSE_LAYOUT}
    )
    return write_streams(path, streams)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: extract keypoints for a folder of videos; resumes, skipping finished files.

    Returns:
        0 when every video was extracted (or already was), 1 when some failed, 2 when mediapipe
        is missing or ``--videos`` is not a folder.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        require_mediapipe()
    except ImportError as e:
        print(str(e), file=sys.stderr)
        return 2
    src, out_root = Path(args.videos), Path(args.out)
    if not src.is_dir():
        print(f"{src}: not a folder; pass the folder holding the videos", file=sys.stderr)
        return 2
    info_path = out_root / "pose.info.json"
    infos: dict[str, dict] = {}
    if info_path.is_file():
        try:
            infos = json.loads(info_path.read_text(encoding="utf-8"))
        except ValueError:
            infos = {}
    done = skipped = 0
    failed: dict[str, str] = {}
    frames_total, seconds = 0, 0.0
    for video in find_videos(src, args.pattern):
        rel = video.relative_to(src).with_suffix("")
        out = out_root / "pose" / (rel.as_posix() + ".npy")
        stale = out.with_name(out.name + TMP_SUFFIX)
        if stale.exists():
            stale.unlink()
        if out.exists():
            skipped += 1
            continue
        t0 = time.perf_counter()
        try:
            kp = extract_keypoints(
                video,
                args.frames or None,
                size=args.size,
                presence=args.presence,
                static_image_mode=args.static,
            )
        except (DataError, ValueError, RuntimeError) as e:
            failed[rel.as_posix()] = str(e).splitlines()[0] if str(e) else type(e).__name__
            log.warning("skipped %s: %s", video, failed[rel.as_posix()])
            continue
        seconds += time.perf_counter() - t0
        frames_total += len(kp)
        atomic_save_npy(out, kp)
        infos[rel.as_posix()] = info = pose_info(kp, video)
        if "warning" in info:
            log.warning("%s", info["warning"])
        done += 1
        atomic_write_text(info_path, json.dumps(infos, sort_keys=True) + "\n")
    declare_pose_stream(out_root, presence=args.presence)
    speed = f", {frames_total / seconds:.1f} frames/s" if seconds else ""
    log.info(
        "pose: wrote %d, skipped %d existing, %d failed, in %s%s",
        done,
        skipped,
        len(failed),
        out_root / "pose",
        speed,
    )
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
