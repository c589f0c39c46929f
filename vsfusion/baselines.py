"""Classical reference models: hand-made features and scikit-learn classifiers chosen by
leave-one-subject-out (LOSO) cross-validation on the training subjects only.

They are the sanity floor a deep stream must clear:

* sensor: :func:`sensor_features`, per-channel summary statistics (mean, standard deviation,
  minimum, maximum, 10/25/50/75/90th percentiles, energy) over the whole recording and over three
  equal segments, then an RBF-SVM or a random forest;
* depth video: :func:`depth_motion_maps` (Chen, Jafari and Kehtarnavaz 2015): front, side and top
  projections of every frame, absolute differences of consecutive projections accumulated over the
  clip, each map cropped to its non-zero box and resized;
* RGB video: :func:`motion_images`, the accumulated grayscale frame difference (motion energy)
  and a motion-history image, cropped to the moving box and resized;

then a linear SVM or a random forest. :func:`select_by_loso` fits every candidate family
(:func:`candidate_models`) with a grid of hyper-parameters, scores each by LOSO accuracy over the
subjects it is given and keeps the best; the caller gives it training subjects only.

Example:
    >>> x = np.tile(np.arange(4.0), (6, 1)).T   # 4 steps, 6 channels
    >>> sensor_features(x).shape
    (240,)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

__all__ = [
    "SENSOR_STATS",
    "DMM_SIZES",
    "MOTION_SIZE",
    "Selection",
    "sensor_features",
    "depth_motion_maps",
    "motion_images",
    "video_features",
    "candidate_models",
    "select_by_loso",
]

logger = logging.getLogger(__name__)

SENSOR_STATS: tuple[str, ...] = (
    "mean",
    "std",
    "min",
    "max",
    "p10",
    "p25",
    "p50",
    "p75",
    "p90",
    "energy",
)
"""The statistics :func:`sensor_features` computes per channel and segment, in output order."""

DMM_SIZES: dict[str, tuple[int, int]] = {"front": (48, 36), "side": (48, 24), "top": (24, 36)}
"""(height, width) each depth motion map is resized to (front: rows x columns of the image, side:
rows x depth bins, top: depth bins x columns)."""

MOTION_SIZE: tuple[int, int] = (32, 32)
"""(height, width) of the RGB motion-energy and motion-history images."""

_SEGMENTS = 3


def sensor_features(x: np.ndarray, segments: int = _SEGMENTS) -> np.ndarray:
    """Per-channel summary statistics of a recording, whole and in ``segments`` equal parts.

    Args:
        x: ``(steps, channels)`` recording (any real dtype); at least ``segments`` steps.
        segments: Number of equal consecutive segments besides the whole recording.

    Returns:
        float32 vector of length ``(1 + segments) * len(SENSOR_STATS) * channels``, ordered by
        part (whole first, then the segments in time), then statistic (:data:`SENSOR_STATS`), then
        channel. ``energy`` is the mean of the squared values.

    Raises:
        ValueError: ``x`` is not 2-D or is shorter than ``segments`` steps.

    Example:
        >>> f = sensor_features(np.full((9, 2), 3.0))
        >>> f[:8].tolist()   # mean, std, min, max of both channels over the whole recording
        [3.0, 3.0, 0.0, 0.0, 3.0, 3.0, 3.0, 3.0]
        >>> float(f[18])     # energy of channel 0: mean of 3**2
        9.0
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < segments or a.shape[1] == 0:
        raise ValueError(
            f"sensor_features needs a (steps >= {segments}, channels) array, got shape {a.shape}"
        )
    parts = [a, *np.array_split(a, segments, axis=0)]
    feats = []
    for p in parts:
        q = np.percentile(p, [10, 25, 50, 75, 90], axis=0)
        feats += [p.mean(0), p.std(0), p.min(0), p.max(0), *q, (p * p).mean(0)]
    return np.concatenate(feats).astype(np.float32)


def _crop_resize(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop ``m`` to the box of its non-zero values, resize to ``size`` (h, w), scale max to 1.

    An all-zero map has no box: it is resized whole and stays all zero.
    """
    rows, cols = np.nonzero(m)
    if rows.size:
        m = m[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    out = cv2.resize(m.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    peak = float(out.max())
    return out / peak if peak > 0 else out


def depth_motion_maps(
    clip: np.ndarray,
    bins: int = 64,
    sizes: dict[str, tuple[int, int]] | None = None,
) -> dict[str, np.ndarray]:
    """Depth motion maps (DMM): accumulated absolute differences of consecutive projections.

    Every depth frame is projected three ways: the front view is the depth image itself; the side
    view marks, per image row and depth bin, whether any pixel of that row has a depth in that bin;
    the top view the same per depth bin and image column. The absolute differences of consecutive
    projections are summed over the clip (Chen, Jafari and Kehtarnavaz, 2015), each sum is cropped
    to its non-zero box, resized to ``sizes[view]`` and scaled so its maximum is 1.

    Args:
        clip: uint8 ``(T, H, W, 1)`` (or ``(T, H, W)``) depth clip as the caches store it:
            0 = background, nearer = brighter.
        bins: Number of depth bins of the side and top projections.
        sizes: ``{"front", "side", "top"}`` -> (height, width); default :data:`DMM_SIZES`.

    Returns:
        ``{"front", "side", "top"}`` float32 maps in ``[0, 1]``. A clip with no motion (fewer than
        two frames, all zero or constant) gives all-zero maps: a valid, motionless feature.

    Raises:
        ValueError: ``clip`` is not a 3-D or one-channel 4-D array.

    Example:
        >>> clip = np.zeros((3, 8, 8, 1), np.uint8)
        >>> for t in range(3):
        ...     clip[t, 2:4, 2 * t : 2 * t + 2] = 200   # a box moving right
        >>> maps = depth_motion_maps(clip, bins=4, sizes={"front": (2, 6), "side": (2, 1), "top": (1, 6)})
        >>> maps["front"].tolist()   # cropped to rows 2-3, columns 0-5; middle columns changed twice
        [[0.5, 0.5, 1.0, 1.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0, 0.5, 0.5]]
    """
    a = np.asarray(clip)
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 3:
        raise ValueError(f"depth_motion_maps needs a (T, H, W, 1) clip, got shape {clip.shape}")
    sizes = sizes or DMM_SIZES
    t, h, w = a.shape
    if t < 2:
        return {k: np.zeros(s, np.float32) for k, s in sizes.items()}
    front = np.abs(np.diff(a.astype(np.int16), axis=0)).sum(axis=0)
    ti, hi, wi = np.nonzero(a)
    b = a[ti, hi, wi].astype(np.int64) * bins // 256
    side = np.bincount((ti * h + hi) * bins + b, minlength=t * h * bins) > 0
    top = np.bincount((ti * bins + b) * w + wi, minlength=t * bins * w) > 0
    side = side.reshape(t, h, bins).astype(np.int8)
    top = top.reshape(t, bins, w).astype(np.int8)
    maps = {
        "front": front,
        "side": np.abs(np.diff(side, axis=0)).sum(axis=0),
        "top": np.abs(np.diff(top, axis=0)).sum(axis=0),
    }
    if not front.any():
        logger.debug("depth clip without motion (all zero or constant): all-zero motion maps")
    return {k: _crop_resize(maps[k], sizes[k]) for k in ("front", "side", "top")}


def motion_images(
    clip: np.ndarray, size: tuple[int, int] = MOTION_SIZE, threshold: float = 12.0
) -> dict[str, np.ndarray]:
    """Motion-energy and motion-history images of an RGB clip.

    Frames are converted to grayscale; ``energy`` is the sum of absolute differences of consecutive
    frames, ``history`` the motion-history image: a pixel whose difference exceeds ``threshold``
    at step ``k`` (of ``T - 1``) takes the value ``k / (T - 1)``, so recent motion is brightest.
    Both are cropped to the box where the energy is non-zero, resized to ``size`` and scaled so
    their maximum is 1.

    Args:
        clip: uint8 ``(T, H, W, 3)`` RGB clip.
        size: (height, width) of the output images.
        threshold: Grey-level difference counted as motion in the history image.

    Returns:
        ``{"energy", "history"}`` float32 images in ``[0, 1]``; all zero for a still clip.

    Raises:
        ValueError: ``clip`` is not ``(T, H, W, 3)``.

    Example:
        >>> clip = np.zeros((3, 8, 8, 3), np.uint8)
        >>> clip[1, 0:2, 0:2] = 255
        >>> clip[2, 6:8, 6:8] = 255
        >>> m = motion_images(clip, size=(8, 8))
        >>> float(m["history"][7, 7]), float(m["history"][0, 0])
        (1.0, 1.0)
    """
    a = np.asarray(clip)
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"motion_images needs a (T, H, W, 3) clip, got shape {a.shape}")
    grey = a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if grey.shape[0] < 2:
        return {k: np.zeros(size, np.float32) for k in ("energy", "history")}
    diff = np.abs(np.diff(grey, axis=0))
    energy = diff.sum(axis=0)
    steps = np.arange(1, diff.shape[0] + 1, dtype=np.float32)[:, None, None] / diff.shape[0]
    history = np.where(diff > threshold, steps, 0.0).max(axis=0)
    rows, cols = np.nonzero(energy > 0)
    if rows.size:
        box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        energy, history = energy[box], history[box]
    out = {}
    for name, m in (("energy", energy), ("history", history)):
        r = cv2.resize(m.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA)
        peak = float(r.max())
        out[name] = r / peak if peak > 0 else r
    return out


def video_features(clip: np.ndarray) -> tuple[np.ndarray, str]:
    """One feature vector per clip: DMMs for one-channel (depth) clips, motion images for RGB.

    Args:
        clip: uint8 ``(T, H, W, C)`` with ``C`` 1 (depth) or 3 (RGB).

    Returns:
        ``(features, kind)`` with ``kind`` ``"depth_motion_maps"`` or ``"motion_images"``.

    Raises:
        ValueError: Any other shape.

    Example:
        >>> f, kind = video_features(np.zeros((4, 16, 16, 1), np.uint8))
        >>> kind, f.shape
        ('depth_motion_maps', (3744,))
    """
    a = np.asarray(clip)
    if a.ndim == 4 and a.shape[-1] == 1:
        maps, kind = depth_motion_maps(a), "depth_motion_maps"
    elif a.ndim == 4 and a.shape[-1] == 3:
        maps, kind = motion_images(a), "motion_images"
    else:
        raise ValueError(f"video clip must be (T, H, W, 1) or (T, H, W, 3), got shape {a.shape}")
    return np.concatenate([m.ravel() for m in maps.values()]).astype(np.float32), kind


def candidate_models(
    stream: str, n_features: int, *, n_trees: int = 300, seed: int = 0
) -> dict[str, tuple[Any, dict[str, list[Any]]]]:
    """The model families and hyper-parameter grids tried for a stream.

    * ``"sensor"`` and ``"skeleton"``: ``rbf_svm`` (StandardScaler -> SVC, C in 0.1, 1, 10, 100, 1000; gamma in
      1/16, 1/4, 1, 4 over the number of features) and ``random_forest`` (``n_trees`` trees;
      max_features log2 or sqrt of the number of features);
    * ``"video"``: ``linear_svm`` (L2 normalisation -> LinearSVC, C in 0.1, 1, 10) and the
      same ``random_forest``.

    Args:
        stream: ``"sensor"``, ``"skeleton"`` or ``"video"``.
        n_features: Feature dimension (scales the RBF gamma grid).
        n_trees: Trees of the random forest.
        seed: Random state of the forest and the linear SVM.

    Returns:
        ``{family: (unfitted estimator, param_grid)}`` in preference order (ties keep the first).

    Example:
        >>> sorted(candidate_models("sensor", 240))
        ['random_forest', 'rbf_svm']
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler
    from sklearn.svm import SVC, LinearSVC

    forest = (
        RandomForestClassifier(n_estimators=n_trees, random_state=seed, n_jobs=1),
        {"max_features": ["log2", "sqrt"]},
    )
    if stream in ("sensor", "skeleton"):  # summary statistics of sequences either way
        svm = make_pipeline(StandardScaler(), SVC(kernel="rbf"))
        grid = {
            "svc__C": [0.1, 1.0, 10.0, 100.0, 1000.0],
            "svc__gamma": [g / n_features for g in (0.0625, 0.25, 1.0, 4.0)],
        }
        return {"rbf_svm": (svm, grid), "random_forest": forest}
    if stream == "video":
        # L2-normalised maps: on UTD-MHAD depth motion maps (dev protocol, LOSO over subjects
        # 1, 3, 5) this scored higher than standardised features and fitted 2-5x faster
        svm = make_pipeline(Normalizer(), LinearSVC(random_state=seed, max_iter=5000))
        return {
            "linear_svm": (svm, {"linearsvc__C": [0.1, 1.0, 10.0]}),
            "random_forest": forest,
        }
    raise ValueError(f"unknown baseline stream {stream!r}; use sensor, skeleton or video")


@dataclass
class Selection:
    """What :func:`select_by_loso` chose and how every family scored.

    Attributes:
        family: The chosen family (best LOSO accuracy; ties keep the earlier candidate).
        model: The chosen estimator, refitted on all the given samples.
        params: Its hyper-parameters from the grid.
        loso_accuracy: Its mean accuracy over the held-out subjects.
        folds: The held-out subject of each fold, in order.
        families: Per family: ``params``, ``loso_accuracy``, ``loso_per_subject``, ``seconds``
            and the refitted ``model``.
    """

    family: str
    model: Any
    params: dict[str, Any]
    loso_accuracy: float
    folds: list[str]
    families: dict[str, dict[str, Any]] = field(default_factory=dict)


def select_by_loso(
    x: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    candidates: dict[str, tuple[Any, dict[str, list[Any]]]],
    *,
    n_jobs: int = 2,
) -> Selection:
    """Choose a family and its hyper-parameters by leave-one-subject-out accuracy, then refit.

    Every grid point of every family is scored by :class:`~sklearn.model_selection.LeaveOneGroupOut`
    over ``groups`` (one fold per subject: fit on the others, score on it); the best grid point of
    each family is refitted on all of ``x``; the family with the best LOSO accuracy is chosen. Give
    it training subjects only: nothing else is seen.

    Args:
        x: ``(n, d)`` features of the training subjects.
        y: ``(n,)`` integer labels.
        groups: ``n`` subject ids; at least two distinct subjects.
        candidates: From :func:`candidate_models`.
        n_jobs: Parallel fits (at most the cores to use).

    Returns:
        The :class:`Selection`.

    Raises:
        ValueError: Fewer than two subjects, or lengths that disagree.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = np.tile([0, 1], 6)
        >>> x = y[:, None] + rng.normal(0, 0.1, (12, 3))
        >>> groups = np.repeat(["a", "b", "c"], 4)
        >>> sel = select_by_loso(x, y, groups, candidate_models("video", 3, n_trees=5), n_jobs=1)
        >>> sel.folds, sel.loso_accuracy
        (['a', 'b', 'c'], 1.0)
    """
    from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut

    groups = np.asarray([str(g) for g in groups])
    if not len(x) == len(y) == len(groups):
        raise ValueError(f"x, y and groups differ in length: {len(x)}, {len(y)}, {len(groups)}")
    subjects = sorted(set(groups.tolist()))
    if len(subjects) < 2:
        raise ValueError(
            f"leave-one-subject-out needs at least two training subjects, got {subjects}"
        )
    logo = LeaveOneGroupOut()
    folds = [str(groups[test][0]) for _, test in logo.split(x, y, groups)]
    families: dict[str, dict[str, Any]] = {}
    for name, (estimator, grid) in candidates.items():
        start = time.time()
        search = GridSearchCV(
            estimator, grid, scoring="accuracy", cv=logo, n_jobs=n_jobs, refit=True
        )
        search.fit(x, y, groups=groups)
        best = search.best_index_
        per_subject = {
            s: float(search.cv_results_[f"split{k}_test_score"][best]) for k, s in enumerate(folds)
        }
        families[name] = {
            "params": dict(search.best_params_),
            "loso_accuracy": float(search.best_score_),
            "loso_per_subject": per_subject,
            "seconds": round(time.time() - start, 1),
            "model": search.best_estimator_,
        }
        logger.info(
            "%s: LOSO accuracy %.3f with %s (%.1f s)",
            name,
            search.best_score_,
            search.best_params_,
            time.time() - start,
        )
    chosen = max(families, key=lambda k: (families[k]["loso_accuracy"], -list(families).index(k)))
    f = families[chosen]
    return Selection(chosen, f["model"], f["params"], f["loso_accuracy"], folds, families)
