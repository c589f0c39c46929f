"""Skeleton (body-joint) sequences: joint layouts, validation, resampling, normalisation, mirroring
and train-time augmentation, all in NumPy.

A skeleton sequence is a float32 array ``(frames, joints, channels)``, channels-last like the
sensor ``(steps, channels)`` and video ``(frames, height, width, channels)`` arrays:

* ``channels == 2``: ``x, y`` (2-D keypoints from a pose estimator, e.g. MediaPipe image coordinates);
* ``channels == 3``: ``x, y, z`` (Kinect camera space in metres, MediaPipe with depth);
* ``channels == 4``: ``x, y, z, visibility`` (MediaPipe's per-landmark visibility/confidence in
  ``[0, 1]``). The last channel is carried along untouched by every transform here; only the first
  ``min(channels, 3)`` channels are coordinates.

``x`` is the horizontal axis (mirroring negates it) and :attr:`JointLayout.vertical_axis` (``y``
for every built-in layout) the vertical one (augmentation rotates about it). Kinect's ``y`` points
up and MediaPipe's down; nothing here depends on the sign.

Layouts (:data:`LAYOUTS`, :func:`layout`):

====================  ======  =====================================================================
name                  joints  source
====================  ======  =====================================================================
``kinect-v1``         20      Kinect v1 SDK skeleton, UTD-MHAD ``d_skel`` order (20x3xT, transpose
                              to ``(T, 20, 3)``)
``mediapipe-pose``    33      MediaPipe Pose / BlazePose landmarks
``mediapipe-hand``    21      MediaPipe Hands, one hand
``mediapipe-hands``   42      MediaPipe Hands, left hand (0-20) then right hand (21-41)
``mediapipe-holistic`` 75     pose (0-32), left hand (33-53), right hand (54-74)
====================  ======  =====================================================================

Example:
    >>> kinect = layout("kinect-v1")
    >>> x = validate_skeleton(np.random.default_rng(0).normal(size=(50, 20, 3)), "a1_s1_t1", kinect)
    >>> y = normalize_skeleton(resample_skeleton(x, 32), kinect)
    >>> y.shape, np.allclose(mirror_skeleton(mirror_skeleton(y, kinect), kinect), y)
    ((32, 20, 3), True)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vsfusion.data.errors import DataError
from vsfusion.data.sensor import resample

__all__ = [
    "LAYOUTS",
    "JointLayout",
    "SkeletonAugment",
    "body_size",
    "layout",
    "mirror_skeleton",
    "normalize_skeleton",
    "resample_skeleton",
    "validate_skeleton",
]

log = logging.getLogger(__name__)

CHANNELS: tuple[int, ...] = (2, 3, 4)
"""Accepted channel counts: ``xy``, ``xyz``, ``xyz`` + visibility."""

_EPS = 1e-6


def _pairs(pairs: Any) -> tuple[tuple[int, int], ...]:
    return tuple((int(a), int(b)) for a, b in pairs)


@dataclass(frozen=True)
class JointLayout:
    """The joints of one skeleton format, its bones and its left/right symmetry.

    Attributes:
        name: Registry key, e.g. ``"kinect-v1"``.
        joints: Joint names, in array order.
        edges: Bones as ``(i, j)`` joint-index pairs (undirected, no self-loops); the graph of
            the ST-GCN (:func:`vsfusion.models.stgcn.graph_adjacency`).
        mirror_pairs: ``(left, right)`` joint-index pairs swapped by a left-right mirror; joints in
            no pair (head, spine) map to themselves.
        centre: Joints whose mean is the origin after :func:`normalize_skeleton` (one joint, e.g.
            Kinect's hip centre, or two, e.g. MediaPipe's hips for the mid-hip point).
        graph_centre: Joints the ST-GCN spatial partition measures hop distances from (the
            distance to the nearest of them): the "centre of gravity" of Yan et al. (2018), the
            neck / spine-shoulder joint in their OpenPose and NTU graphs.
        scale_pairs: Joint pairs whose mean length (the median over frames) is the body size
            :func:`normalize_skeleton` divides by: torso or palm lengths, which arm and leg
            movements do not change.
        vertical_axis: Coordinate axis (0 = x, 1 = y, 2 = z) that points along the body, up or
            down; :class:`SkeletonAugment` rotates about it.
        description: One line on the format and its coordinates.

    Example:
        >>> lay = layout("kinect-v1")
        >>> lay.num_joints, lay.joints[lay.centre[0]], len(lay.edges)
        (20, 'hip_center', 19)
    """

    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    mirror_pairs: tuple[tuple[int, int], ...] = ()
    centre: tuple[int, ...] = (0,)
    graph_centre: tuple[int, ...] = (0,)
    scale_pairs: tuple[tuple[int, int], ...] = ()
    vertical_axis: int = 1
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "joints", tuple(str(j) for j in self.joints))
        set_(self, "edges", _pairs(self.edges))
        set_(self, "mirror_pairs", _pairs(self.mirror_pairs))
        set_(self, "scale_pairs", _pairs(self.scale_pairs))
        set_(self, "centre", tuple(int(c) for c in np.atleast_1d(self.centre)))
        set_(self, "graph_centre", tuple(int(c) for c in np.atleast_1d(self.graph_centre)))
        n = len(self.joints)
        if n < 1 or len(set(self.joints)) != n:
            raise ValueError(f"layout {self.name!r}: joint names must be non-empty and unique")

        def check(what: str, idx: Sequence[int]) -> None:
            bad = [i for i in idx if not 0 <= i < n]
            if bad:
                raise ValueError(
                    f"layout {self.name!r}: {what} index {bad[0]} out of range for {n} joints"
                )

        check("edge", [i for e in self.edges for i in e])
        check("mirror pair", [i for p in self.mirror_pairs for i in p])
        check("scale pair", [i for p in self.scale_pairs for i in p])
        check("centre", self.centre)
        check("graph_centre", self.graph_centre)
        if not self.centre or not self.graph_centre:
            raise ValueError(f"layout {self.name!r}: centre and graph_centre need a joint")
        if any(a == b for a, b in self.edges):
            raise ValueError(f"layout {self.name!r}: an edge joins a joint to itself")
        if len({frozenset(e) for e in self.edges}) != len(self.edges):
            raise ValueError(f"layout {self.name!r}: an edge is listed twice")
        flat = [i for p in self.mirror_pairs for i in p]
        if len(set(flat)) != len(flat) or any(a == b for a, b in self.mirror_pairs):
            raise ValueError(
                f"layout {self.name!r}: mirror pairs must join distinct joints, each at most once"
            )
        if self.vertical_axis not in (0, 1, 2):
            raise ValueError(f"layout {self.name!r}: vertical_axis must be 0, 1 or 2")

    @property
    def num_joints(self) -> int:
        """Number of joints."""
        return len(self.joints)

    @property
    def mirror_permutation(self) -> np.ndarray:
        """Index array ``p`` with ``x[:, p]`` the joints of the mirrored body (left and right
        swapped); an involution (``p[p] == arange(J)``)."""
        perm = np.arange(self.num_joints)
        for a, b in self.mirror_pairs:
            perm[a], perm[b] = b, a
        return perm

    def index(self, joint: str) -> int:
        """The array index of the joint named ``joint``."""
        try:
            return self.joints.index(joint)
        except ValueError:
            raise ValueError(f"layout {self.name!r} has no joint {joint!r}") from None


# --- Kinect v1 (UTD-MHAD, MSR Action3D, ...) -----------------------------------------------------

_KINECT_V1_JOINTS = (
    "head",
    "shoulder_center",
    "spine",
    "hip_center",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "left_hand",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "right_hand",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_foot",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_foot",
)
_KINECT_V1_EDGES = (
    (0, 1), (1, 2), (2, 3),
    (1, 4), (4, 5), (5, 6), (6, 7),
    (1, 8), (8, 9), (9, 10), (10, 11),
    (3, 12), (12, 13), (13, 14), (14, 15),
    (3, 16), (16, 17), (17, 18), (18, 19),
)  # fmt: skip

KINECT_V1 = JointLayout(
    name="kinect-v1",
    joints=_KINECT_V1_JOINTS,
    edges=_KINECT_V1_EDGES,
    mirror_pairs=((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19)),
    centre=(3,),  # hip_center
    graph_centre=(1,),  # shoulder_center, the spine-shoulder centre of ST-GCN's NTU graph
    scale_pairs=((1, 3), (4, 12), (8, 16)),  # spine and the two shoulder-hip sides
    vertical_axis=1,
    description="Kinect v1 SDK skeleton, camera space in metres (x, y up, z away from the camera)",
)

# --- MediaPipe ------------------------------------------------------------------------------------

_POSE_JOINTS = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
# mediapipe.solutions.pose.POSE_CONNECTIONS
_POSE_CONNECTIONS = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
    (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
    (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
    (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)  # fmt: skip
# POSE_CONNECTIONS leave the face, the mouth and the body as three separate pieces; these "neck"
# bones (nose-mouth corners, mouth corners-shoulders) join them so graph convolutions pass between.
_POSE_NECK = ((0, 9), (0, 10), (9, 11), (10, 12))
_POSE_MIRROR = tuple((k, k + 3) for k in (1, 2, 3)) + tuple(
    (k, k + 1) for k in range(7, 33, 2)
)  # (1,4) (2,5) (3,6) (7,8) (9,10) (11,12) ... (31,32)

_HAND_JOINTS = (
    "wrist",
    "thumb_cmc",
    "thumb_mcp",
    "thumb_ip",
    "thumb_tip",
    "index_finger_mcp",
    "index_finger_pip",
    "index_finger_dip",
    "index_finger_tip",
    "middle_finger_mcp",
    "middle_finger_pip",
    "middle_finger_dip",
    "middle_finger_tip",
    "ring_finger_mcp",
    "ring_finger_pip",
    "ring_finger_dip",
    "ring_finger_tip",
    "pinky_mcp",
    "pinky_pip",
    "pinky_dip",
    "pinky_tip",
)
# mediapipe.solutions.hands.HAND_CONNECTIONS
_HAND_CONNECTIONS = (
    (0, 1), (1, 2), (2, 3), (3, 4),
    (0, 5), (5, 6), (6, 7), (7, 8),
    (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16),
    (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)  # fmt: skip
_PALM = ((0, 5), (0, 9), (0, 13), (0, 17))  # wrist to each finger's knuckle
_H = len(_HAND_JOINTS)


def _shift(pairs: Sequence[tuple[int, int]], k: int) -> tuple[tuple[int, int], ...]:
    return tuple((a + k, b + k) for a, b in pairs)


MEDIAPIPE_POSE = JointLayout(
    name="mediapipe-pose",
    joints=_POSE_JOINTS,
    edges=_POSE_CONNECTIONS + _POSE_NECK,
    mirror_pairs=_POSE_MIRROR,
    centre=(23, 24),  # mid-hip, the origin of MediaPipe's world landmarks
    graph_centre=(11, 12),  # the shoulders, nearest to ST-GCN's neck centre
    scale_pairs=((11, 23), (12, 24)),  # torso sides
    vertical_axis=1,
    description="MediaPipe Pose (BlazePose) 33 landmarks; image x right, y down, z depth",
)
MEDIAPIPE_HAND = JointLayout(
    name="mediapipe-hand",
    joints=_HAND_JOINTS,
    edges=_HAND_CONNECTIONS,
    mirror_pairs=(),  # a mirrored hand has the same joints (it becomes the other hand)
    centre=(0,),
    graph_centre=(0,),
    scale_pairs=_PALM,
    vertical_axis=1,
    description="MediaPipe Hands 21 landmarks of one hand; image x right, y down, z depth",
)
MEDIAPIPE_HANDS = JointLayout(
    name="mediapipe-hands",
    joints=tuple(f"left_{j}" for j in _HAND_JOINTS) + tuple(f"right_{j}" for j in _HAND_JOINTS),
    edges=_HAND_CONNECTIONS + _shift(_HAND_CONNECTIONS, _H),
    mirror_pairs=tuple((k, k + _H) for k in range(_H)),
    centre=(0, _H),  # between the wrists
    graph_centre=(0, _H),  # each hand measured from its own wrist; the hands stay two graphs
    scale_pairs=_PALM + _shift(_PALM, _H),
    vertical_axis=1,
    description="MediaPipe Hands, left hand then right hand (21 each)",
)
MEDIAPIPE_HOLISTIC = JointLayout(
    name="mediapipe-holistic",
    joints=_POSE_JOINTS
    + tuple(f"left_hand_{j}" for j in _HAND_JOINTS)
    + tuple(f"right_hand_{j}" for j in _HAND_JOINTS),
    edges=_POSE_CONNECTIONS
    + _POSE_NECK
    + _shift(_HAND_CONNECTIONS, 33)
    + _shift(_HAND_CONNECTIONS, 33 + _H)
    + ((15, 33), (16, 33 + _H)),  # pose wrist to hand wrist
    mirror_pairs=_POSE_MIRROR + tuple((33 + k, 33 + _H + k) for k in range(_H)),
    centre=(11, 12),  # mid-shoulder: signing clips often cut off the hips
    graph_centre=(11, 12),
    scale_pairs=((11, 12),),  # shoulder width
    vertical_axis=1,
    description="MediaPipe Holistic: pose 33, left hand 21, right hand 21 (signing, upper body)",
)

LAYOUTS: dict[str, JointLayout] = {
    lay.name: lay
    for lay in (KINECT_V1, MEDIAPIPE_POSE, MEDIAPIPE_HAND, MEDIAPIPE_HANDS, MEDIAPIPE_HOLISTIC)
}
"""The joint layouts by name."""


def layout(name: str | JointLayout) -> JointLayout:
    """The registered :class:`JointLayout` called ``name`` (a layout is returned as is).

    Raises:
        ValueError: If no layout has that name; the message lists the known ones.

    Example:
        >>> layout("mediapipe-pose").num_joints
        33
    """
    if isinstance(name, JointLayout):
        return name
    try:
        return LAYOUTS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown skeleton layout {name!r}; known: {', '.join(sorted(LAYOUTS))}"
        ) from None


def _joint_name(lay: JointLayout | None, j: int) -> str:
    return f"joint {j} ({lay.joints[j]})" if lay is not None else f"joint {j}"


def validate_skeleton(
    array: Any,
    where: str | os.PathLike,
    joints: int | str | JointLayout | None = None,
) -> np.ndarray:
    """Check a skeleton sequence and return it as float32 ``(frames, joints, channels)``.

    Args:
        array: The sequence: 3-D, numeric, at least one frame, ``channels`` in ``{2, 3, 4}``
            (``xy``, ``xyz``, ``xyz`` + visibility), finite.
        where: The file or sample it came from, named first in the error message.
        joints: The joint count it must have, or a layout (object or name) whose count it must
            match; ``None`` accepts any.

    Returns:
        The array as float32 (no copy when it already is).

    Raises:
        DataError: One line naming ``where`` and what differs: rank, dtype, empty, channel count,
            joint count against the layout, or NaN/inf (the first bad frame and joint, and how many
            more).

    Example:
        >>> validate_skeleton(np.zeros((10, 20, 3)), "a1_s1_t1", "kinect-v1").dtype
        dtype('float32')
        >>> validate_skeleton(np.zeros((10, 19, 3)), "a1_s1_t1", "kinect-v1")
        Traceback (most recent call last):
        ...
        vsfusion.data.errors.DataError: a1_s1_t1: skeleton has 19 joints, layout 'kinect-v1' has 20; give frames of the layout's joints in its order
    """
    lay = layout(joints) if isinstance(joints, (str, JointLayout)) else None
    want = lay.num_joints if lay is not None else (None if joints is None else int(joints))
    a = np.asarray(array)
    if a.ndim != 3:
        raise DataError(
            f"{where}: skeleton must be 3-D (frames, joints, channels), got shape {a.shape}; "
            "stack one (joints, channels) array per frame"
        )
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise DataError(f"{where}: skeleton dtype {a.dtype} is not numeric; store float32")
    if a.shape[2] not in CHANNELS:
        hint = (
            "; it looks like (joints, channels, frames), e.g. UTD-MHAD's d_skel: transpose with "
            "array.transpose(2, 0, 1)"
            if a.shape[1] in CHANNELS and (want is None or a.shape[0] == want)
            else ""
        )
        raise DataError(
            f"{where}: skeleton has {a.shape[2]} channels per joint (shape {a.shape}), expected "
            f"2 (xy), 3 (xyz) or 4 (xyz + visibility){hint}"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{where}: skeleton is empty (shape {a.shape}); drop this sample")
    if want is not None and a.shape[1] != want:
        of = f"layout {lay.name!r} has" if lay is not None else "expected"
        raise DataError(
            f"{where}: skeleton has {a.shape[1]} joints, {of} {want}; "
            "give frames of the layout's joints in its order"
        )
    a = a.astype(np.float32, copy=False)
    bad = ~np.isfinite(a).all(axis=2)
    if bad.any():
        frames, js = np.nonzero(bad)
        more = len(frames) - 1
        raise DataError(
            f"{where}: skeleton has NaN/inf at frame {frames[0]} {_joint_name(lay, int(js[0]))}"
            + (f" (and {more} more frame-joint pairs in {len(set(frames.tolist()))} frames)"
               if more else "")
            + "; fill missing joints (e.g. interpolate over time) or drop those frames"
        )  # fmt: skip
    return a


def resample_skeleton(x: np.ndarray, frames: int, antialias: bool = False) -> np.ndarray:
    """Resample ``(T, J, C)`` to ``frames`` frames by linear interpolation in normalised time.

    Output frame ``k`` sits at input position ``k * (T - 1) / (frames - 1)``: first and last frames
    aligned, as :func:`vsfusion.data.sensor.resample` aligns a sensor recording with its trial, so
    joints and sensor samples of one trial line up. One frame out is the mean pose.

    Args:
        x: ``(T, J, C)`` sequence.
        frames: Output frame count (> 0).
        antialias: When downsampling, low-pass first (the zero-phase Butterworth filter of
            :func:`~vsfusion.data.sensor.resample`). Off by default: plain interpolation keeps
            the poses the camera saw at those instants, as the sampled video frames do.

    Returns:
        float32 ``(frames, J, C)``.

    Example:
        >>> x = np.arange(3, dtype="float32").reshape(3, 1, 1) * np.ones((1, 2, 3), "float32")
        >>> resample_skeleton(x, 5)[:, 0, 0].tolist()
        [0.0, 0.5, 1.0, 1.5, 2.0]
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"skeleton must be (frames, joints, channels), got shape {x.shape}")
    t, j, c = x.shape
    if antialias:
        return resample(x.reshape(t, j * c), frames).reshape(frames, j, c)
    if frames <= 0:
        raise ValueError(f"frames must be positive, got {frames}")
    if t == 0:
        raise ValueError("cannot resample an empty skeleton sequence")
    x = x.astype(np.float64)
    if frames == t:
        return x.astype(np.float32)
    if frames == 1:
        return x.mean(axis=0, keepdims=True).astype(np.float32)
    if t == 1:
        return np.repeat(x, frames, axis=0).astype(np.float32)
    pos = np.linspace(0.0, t - 1, frames)
    lo = np.minimum(np.floor(pos).astype(np.int64), t - 2)
    frac = (pos - lo)[:, None, None]
    return (x[lo] * (1.0 - frac) + x[lo + 1] * frac).astype(np.float32)


def _coords(c: int) -> int:
    return min(c, 3)


def _centre(x: np.ndarray, lay: JointLayout) -> np.ndarray:
    """``(T, 1, D)`` mean position of the layout's centre joints in each frame."""
    return x[:, list(lay.centre), : _coords(x.shape[2])].mean(axis=1, keepdims=True)


def body_size(x: np.ndarray, lay: JointLayout | str) -> float:
    """A robust body size of a ``(T, J, C)`` sequence: per frame the mean length of the layout's
    ``scale_pairs`` (its ``edges`` when it has none), then the median over the frames where it is
    positive; 0 when no frame has one (an all-zero sequence).

    Example:
        >>> x = np.zeros((4, 20, 3)); x[:, [1, 4, 8], 1] = 0.5  # shoulders 0.5 above the hips
        >>> round(body_size(x, "kinect-v1"), 3)
        0.5
    """
    lay = layout(lay)
    pairs = np.asarray(lay.scale_pairs or lay.edges, dtype=np.int64)
    d = _coords(x.shape[2])
    pts = np.asarray(x, dtype=np.float64)[..., :d]
    lengths = np.linalg.norm(pts[:, pairs[:, 0]] - pts[:, pairs[:, 1]], axis=-1).mean(axis=1)
    lengths = lengths[lengths > _EPS]
    return float(np.median(lengths)) if lengths.size else 0.0


def normalize_skeleton(
    x: np.ndarray, lay: JointLayout | str, per_frame: bool = False
) -> np.ndarray:
    """Translate the layout's centre to the origin and divide by the body size.

    By default the origin is the centre (mean of :attr:`JointLayout.centre`) *in the first frame*
    and the same shift is applied to every frame: the camera's placement and the subject's spot
    are removed, while whole-body motion (a squat lowering the hips, a step, a jump) stays in the
    sequence, which per-frame centring would erase. ``per_frame=True`` centres every frame on its
    own centre, for a moving camera or a subject who walks out of place.

    The scale is :func:`body_size` (torso or palm lengths, median over frames), so a child and an
    adult, near and far from the camera, come out at the same size (about 1 torso = 1). Degenerate
    input is safe: with no measurable size (all zeros, one point) the scale is left at 1, so an
    all-zero sequence stays all zeros. A 4th (visibility) channel is passed through unchanged.

    Args:
        x: ``(T, J, C)`` sequence, ``C`` in ``{2, 3, 4}``.
        lay: Its layout (or name).
        per_frame: Centre each frame on its own centre instead of the first frame's.

    Returns:
        float32 ``(T, J, C)``.

    Example:
        >>> x = np.zeros((2, 20, 3)); x[:, :, 2] = 3.0; x[:, [1, 4, 8], 1] = 0.5
        >>> y = normalize_skeleton(x, "kinect-v1")
        >>> float(y[0, 3, 2]), float(y[0, 1, 1])  # hip centre at the origin, torso length 1
        (0.0, 1.0)
    """
    lay = layout(lay)
    x = np.array(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] != lay.num_joints:
        raise ValueError(
            f"skeleton of shape {x.shape} does not fit layout {lay.name!r} "
            f"({lay.num_joints} joints)"
        )
    d = _coords(x.shape[2])
    origin = _centre(x, lay) if per_frame else _centre(x[:1], lay)
    x[..., :d] -= origin
    size = body_size(x, lay)
    if size > _EPS:
        x[..., :d] /= size
    return x.astype(np.float32)


def mirror_skeleton(x: np.ndarray, lay: JointLayout | str) -> np.ndarray:
    """Left-right mirror image: swap the layout's mirror pairs and negate ``x`` (channel 0).

    The reflection is in the plane ``x = 0``; after :func:`normalize_skeleton` that is the plane
    through the body's centre, so the body stays in place. Mirroring twice is the identity.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(4, 33, 2))
        >>> y = mirror_skeleton(x, "mediapipe-pose")
        >>> bool(np.allclose(y[:, 11, 0], -x[:, 12, 0])), bool(np.allclose(mirror_skeleton(y, "mediapipe-pose"), x))
        (True, True)
    """
    lay = layout(lay)
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1] != lay.num_joints:
        raise ValueError(
            f"skeleton of shape {x.shape} does not fit layout {lay.name!r} "
            f"({lay.num_joints} joints)"
        )
    y = np.array(x[:, lay.mirror_permutation], dtype=np.float32)
    y[..., 0] = -y[..., 0]
    return y


@dataclass(frozen=True)
class SkeletonAugment:
    """Random transformations of one training skeleton sequence ``(T, J, C)``, in the order listed.

    Every call draws the same three numbers from ``rng`` (angle, scale, mirror coin), whatever
    is switched off, so a batch's augmentation is reproducible from the loader's generator.

    Attributes:
        layout: The sequence's layout (or its name): its mirror pairs, centre and vertical axis.
        rotate_deg: Rotate about the vertical axis through the centre of the first frame by an
            angle uniform in ``[-rotate_deg, rotate_deg]`` (a camera a little to the side). For 2-D
            input, which has no depth, this is the horizontal foreshortening the rotation gives
            under orthographic projection: ``x`` about the centre times ``cos(angle)``. 0: off.
        scale: Scale about the same centre by ``exp(N(0, scale))`` (a taller or shorter subject,
            a camera nearer or farther). 0: off.
        mirror: Probability of a left-right mirror (:func:`mirror_skeleton`, about the centre).
            Mirroring swaps left and right joints, so keep it off where handedness is the label
            (e.g. UTD-MHAD's right-hand actions, or signs that differ only by the hand used).

    Example:
        >>> aug = SkeletonAugment("kinect-v1")
        >>> x = np.random.default_rng(0).normal(size=(32, 20, 3)).astype("float32")
        >>> np.array_equal(aug(x, np.random.default_rng(1)), aug(x, np.random.default_rng(1)))
        True
    """

    layout: JointLayout | str
    rotate_deg: float = 15.0
    scale: float = 0.1
    mirror: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "layout", layout(self.layout))
        if not 0.0 <= self.mirror <= 1.0:
            raise ValueError(f"mirror is a probability in [0, 1], got {self.mirror}")

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lay: JointLayout = self.layout  # type: ignore[assignment]
        angle = np.deg2rad(rng.uniform(-1.0, 1.0) * self.rotate_deg)
        factor = float(np.exp(rng.normal(0.0, 1.0) * self.scale))
        flip = rng.random() < self.mirror
        x = np.array(x, dtype=np.float64)
        d = _coords(x.shape[2])
        origin = _centre(x[:1], lay)
        p = x[..., :d] - origin
        h = 0  # the horizontal axis
        if d == 3:
            # the horizontal plane: x and the axis that is neither x nor vertical
            depth = 3 - lay.vertical_axis - h if lay.vertical_axis != h else 2
            c, s = np.cos(angle), np.sin(angle)
            ph, pd = p[..., h].copy(), p[..., depth].copy()
            p[..., h] = c * ph + s * pd
            p[..., depth] = -s * ph + c * pd
        elif lay.vertical_axis != h:
            p[..., h] *= np.cos(angle)
        p *= factor
        if flip:
            p = p[:, lay.mirror_permutation]
            p[..., h] = -p[..., h]
            x = x[:, lay.mirror_permutation]
        x[..., :d] = p + origin
        return x.astype(np.float32)
