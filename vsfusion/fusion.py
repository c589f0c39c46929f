"""Every fusion rule of vsfusion in one place, for any number of streams.

Stage 3 combines the class probabilities of several streams: the video stream and the (real or
generated) sensor stream in the self-learning pipeline, or any other set. Every rule takes a
mapping from stream name to probabilities, each of shape ``(N, K)`` (same samples, same classes),
and returns probabilities (each row sums to 1):

* :func:`fuse_sum` -- the mean of the streams;
* :func:`fuse_weighted` -- ``sum_s weights[s] * probs[s]``, one weight per stream on the simplex
  (non-negative, summing to 1), chosen on the validation / out-of-fold pool by
  :func:`choose_fusion_weight` (never on the test split) over :func:`fusion_weight_grid`;
* :func:`fuse_product` -- the renormalised product, computed in log space;
* :func:`fuse_max` -- the renormalised elementwise maximum.

The learned rule is a small MLP on the concatenated embeddings of any set of named inputs (in
the pipeline ``[h_v, u'_v]``; :func:`build_fusion_mlp`, trained by :func:`fit_fusion_mlp`), which
standardises its inputs with training-split statistics held in :class:`keras.layers.Normalization`
layers, so that a saved ``.keras`` file is self-contained.

Which rule is used, and the parameter of each (the weights, the MLP's epochs), is chosen by
:func:`select_fusion` on a *pool* of predictions no stream was fitted on: out-of-fold predictions
on the training subjects pooled with the validation split, grouped by subject; with the
validation split alone when no out-of-fold runs exist. :func:`apply_fusion` then applies every
rule to the test split, and :func:`build_fused_predictor` puts the chosen rule into a Keras graph
(:class:`vsfusion.models.fusion_layers.WeightedProbabilityFusion`, or the MLP) so one ``.keras``
file is the whole predictor.

With two streams every number is what the two-stream versions of these functions gave: the
video weight is searched on ``np.linspace(0, 1, 21)`` and ties go to the weight closest to 0.5.

Example:
    >>> import numpy as np
    >>> probs = {"video": np.array([[0.6, 0.3, 0.1]]), "sensor": np.array([[0.2, 0.5, 0.3]])}
    >>> fuse_sum(probs).round(3)
    array([[0.4, 0.4, 0.2]])
    >>> fuse_weighted(probs, {"video": 0.75, "sensor": 0.25}).round(3)
    array([[0.5 , 0.35, 0.15]])
    >>> sorted(FUSION_RULES)
    ['max', 'product', 'sum']
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

__all__ = [
    "FUSION_GRID_MAX_POINTS",
    "FUSION_RULES",
    "RULE_ORDER",
    "FusionSelection",
    "apply_fusion",
    "build_fused_predictor",
    "fuse_fixed",
    "fusion_weight_grid",
    "select_fusion",
    "SENSOR_INPUT",
    "VIDEO_INPUT",
    "build_fusion_mlp",
    "choose_fusion_weight",
    "fit_fusion_mlp",
    "fuse_max",
    "fuse_product",
    "fuse_sum",
    "fuse_weighted",
]

logger = logging.getLogger(__name__)

#: Input names of the pipeline's learned fusion model (video embedding and the second stream's).
VIDEO_INPUT = "video_embedding"
SENSOR_INPUT = "sensor_embedding"

#: Default epsilon added to probabilities before taking logs in :func:`fuse_product`.
PRODUCT_EPS = 1e-12

#: Most weight vectors :func:`fusion_weight_grid` makes by default (and allows for a given step).
FUSION_GRID_MAX_POINTS = 1000

#: Tolerance on the sum of a weight vector (it must be 1).
_SIMPLEX_TOL = 1e-6


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _as_probs(p: object, name: str) -> np.ndarray:
    """Returns ``p`` as a float64 2-D array after checking it is finite and non-negative."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (N, K) of probabilities, got shape {arr.shape}"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one class column, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(arr < 0):
        raise ValueError(
            f"{name} contains negative values (min {arr.min():.4g}); expected probabilities"
        )
    return arr


def _check_streams(probs: Mapping[str, object], what: str = "probs") -> dict[str, np.ndarray]:
    """Validates every stream of ``probs`` (in its order) and checks that their shapes agree."""
    if not isinstance(probs, Mapping):
        raise ValueError(
            f"{what} must be a mapping {{stream name: (N, K) probabilities}}, got "
            f"{type(probs).__name__}; e.g. {{'video': p_video, 'sensor': p_sensor}}"
        )
    if not probs:
        raise ValueError(f"{what} holds no stream; pass at least one (N, K) array by name")
    out: dict[str, np.ndarray] = {}
    for name, p in probs.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what}: stream names must be non-empty strings, got {name!r}")
        out[name] = _as_probs(p, f"stream {name!r}")
    first, ref = next(iter(out.items()))
    for name, arr in out.items():
        if arr.shape[1] != ref.shape[1]:
            raise ValueError(
                f"streams {first!r} and {name!r} differ in class count ({ref.shape[1]} vs "
                f"{arr.shape[1]}); fuse probabilities over the same classes"
            )
        if arr.shape[0] != ref.shape[0]:
            raise ValueError(
                f"streams {first!r} and {name!r} differ in sample count ({ref.shape[0]} vs "
                f"{arr.shape[0]}); fuse predictions of the same samples in the same order"
            )
    return out


def _check_weights(weights: object, streams: Sequence[str]) -> dict[str, float]:
    """Returns ``weights`` as floats in the order of ``streams``, checking they are on the simplex."""
    if not isinstance(weights, Mapping):
        raise ValueError(
            f"weights must be a mapping {{stream name: weight}} over the streams {list(streams)}, "
            f"got {type(weights).__name__}"
        )
    if set(weights) != set(streams):
        raise ValueError(
            f"weights name the streams {sorted(weights)} but the probabilities are of "
            f"{sorted(streams)}; give one weight per stream"
        )
    out = {}
    for name in streams:
        try:
            w = float(weights[name])
        except (TypeError, ValueError):
            raise ValueError(
                f"weight of stream {name!r} must be a number, got {weights[name]!r}"
            ) from None
        if not math.isfinite(w) or not 0.0 <= w <= 1.0:
            raise ValueError(f"weight of stream {name!r} must be in [0, 1], got {weights[name]!r}")
        out[name] = w
    total = sum(out.values())
    if abs(total - 1.0) > _SIMPLEX_TOL:
        raise ValueError(
            f"weights must sum to 1 (each in [0, 1]), got {out} summing to {total:.6g}"
        )
    return out


def _normalise(p: np.ndarray) -> np.ndarray:
    """Divides each row by its sum; a row summing to zero becomes uniform."""
    total = p.sum(axis=1, keepdims=True)
    uniform = np.full_like(p, 1.0 / p.shape[1])
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, p / safe, uniform)


def _check_labels(y: object, n: int, num_classes: int, name: str = "y") -> np.ndarray:
    """Returns ``y`` as an int64 vector of length ``n`` with values in ``[0, num_classes)``."""
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of {n} labels, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name} must hold integer class indices")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"{name} holds class indices outside [0, {num_classes}): min {arr.min()}, max {arr.max()}"
        )
    return arr


# --------------------------------------------------------------------------------------------
# Fixed rules
# --------------------------------------------------------------------------------------------


def _sum(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Left-to-right sum of the arrays (``a + b`` for two, as the two-stream rules computed)."""
    total = arrays[0]
    for arr in arrays[1:]:
        total = total + arr
    return total


def _weighted(arrays: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """``_normalise(w0 * p0 + w1 * p1 + ...)`` without input checks."""
    return _normalise(_sum([w * p for w, p in zip(weights, arrays, strict=True)]))


def fuse_sum(probs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Sum rule: the mean of the streams' probabilities.

    Rows are renormalised, so inputs that do not sum exactly to 1 still give probabilities.

    Args:
        probs: ``{stream name: (N, K) probabilities}``, one or more streams.

    Returns:
        Fused probabilities, float64 ``(N, K)``, rows summing to 1.

    Raises:
        ValueError: If ``probs`` is empty, an array is not 2-D or holds NaN/inf/negative values,
            or two streams differ in sample or class count (the message names them).

    Example:
        >>> fuse_sum({"video": [[0.6, 0.3, 0.1]], "sensor": [[0.2, 0.5, 0.3]]}).round(3)
        array([[0.4, 0.4, 0.2]])
    """
    arrays = list(_check_streams(probs).values())
    return _normalise(_sum(arrays) * (1.0 / len(arrays)))


def fuse_weighted(probs: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted sum rule: ``sum_s weights[s] * probs[s]``, weights on the simplex.

    Choose ``weights`` on the validation / out-of-fold pool with :func:`choose_fusion_weight`.

    Args:
        probs: ``{stream name: (N, K) probabilities}``, one or more streams.
        weights: ``{stream name: weight}`` with the same names; each in ``[0, 1]``, summing to 1.

    Returns:
        Fused probabilities, float64 ``(N, K)``, rows summing to 1.

    Raises:
        ValueError: On invalid probabilities, or weights that name other streams, lie outside
            ``[0, 1]`` or do not sum to 1.

    Example:
        >>> probs = {"video": [[0.6, 0.3, 0.1]], "sensor": [[0.2, 0.5, 0.3]]}
        >>> fuse_weighted(probs, {"video": 0.75, "sensor": 0.25}).round(3)
        array([[0.5 , 0.35, 0.15]])
    """
    arrays = _check_streams(probs)
    w = _check_weights(weights, list(arrays))
    return _weighted(list(arrays.values()), list(w.values()))


def fuse_product(probs: Mapping[str, np.ndarray], eps: float = PRODUCT_EPS) -> np.ndarray:
    """Product rule: the renormalised elementwise product of the streams.

    Computed in log space, ``softmax(sum_s log(probs[s] + eps))``, so zeros never give
    ``log(0)`` or a division by zero: a row where every class has zero product becomes (close
    to) the normalised product of the epsilons, never NaN.

    Args:
        probs: ``{stream name: (N, K) probabilities}``, one or more streams.
        eps: Small positive constant added before the logarithm.

    Returns:
        Fused probabilities, float64 ``(N, K)``, rows summing to 1.

    Raises:
        ValueError: On invalid probabilities or a non-positive ``eps``.

    Example:
        >>> fuse_product({"video": [[0.6, 0.3, 0.1]], "sensor": [[0.2, 0.5, 0.3]]}).round(4)
        array([[0.4, 0.5, 0.1]])
    """
    arrays = list(_check_streams(probs).values())
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    logits = _sum([np.log(p + eps) for p in arrays])
    logits -= logits.max(axis=1, keepdims=True)
    return _normalise(np.exp(logits))


def fuse_max(probs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Max rule: the renormalised elementwise maximum of the streams.

    Args:
        probs: ``{stream name: (N, K) probabilities}``, one or more streams.

    Returns:
        Fused probabilities, float64 ``(N, K)``, rows summing to 1 (a row that is zero in every
        stream becomes uniform).

    Raises:
        ValueError: On invalid probabilities or streams that differ in shape.

    Example:
        >>> fuse_max({"video": [[0.6, 0.3, 0.1]], "sensor": [[0.2, 0.5, 0.3]]}).round(4)
        array([[0.4286, 0.3571, 0.2143]])
    """
    arrays = list(_check_streams(probs).values())
    top = arrays[0]
    for arr in arrays[1:]:
        top = np.maximum(top, arr)
    return _normalise(top)


#: The parameter-free rules by name (the weighted rule needs weights and the learned rule a
#: model, so they are called directly).
FUSION_RULES: dict[str, Callable[[Mapping[str, np.ndarray]], np.ndarray]] = {
    "sum": fuse_sum,
    "product": fuse_product,
    "max": fuse_max,
}


# --------------------------------------------------------------------------------------------
# Weights on the simplex
# --------------------------------------------------------------------------------------------


def _grid_size(n_streams: int, divisions: int) -> int:
    """Number of points of the simplex grid with ``divisions`` steps per unit."""
    return math.comb(divisions + n_streams - 1, n_streams - 1)


def fusion_weight_grid(
    n_streams: int, step: float | None = None, max_points: int = FUSION_GRID_MAX_POINTS
) -> np.ndarray:
    """The candidate weight vectors of :func:`choose_fusion_weight`: a grid on the simplex.

    Every vector has ``n_streams`` non-negative weights summing to 1, each of the first
    ``n_streams - 1`` a multiple of ``step`` (``np.linspace(0, 1, 1 / step + 1)`` values) and the
    last one the rest. The default step is 0.05 for two streams (21 points, the video weights
    ``np.linspace(0, 1, 21)`` of the two-stream search) and 0.1 for three or more, made coarser
    (1/9, 1/8, ...) until the grid has at most ``max_points`` points: 66 points for three
    streams, 286 for four, 715 (step 1/9) for five. A grid of ``n`` streams and ``M = 1/step``
    steps has ``C(M + n - 1, n - 1)`` points.

    Args:
        n_streams: Number of streams, at least 1.
        step: Grid step; ``1 / step`` must be a whole number. None: the default above.
        max_points: Most points allowed; an explicit ``step`` that gives more is an error.

    Returns:
        ``(G, n_streams)`` float64 weight vectors.

    Raises:
        ValueError: On ``n_streams < 1``, a step that does not divide 1, or too many points.

    Example:
        >>> fusion_weight_grid(2).shape, fusion_weight_grid(3).shape
        ((21, 2), (66, 3))
        >>> fusion_weight_grid(3, step=0.5).tolist()
        [[0.0, 0.0, 1.0], [0.0, 0.5, 0.5], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]
    """
    n = int(n_streams)
    if n < 1:
        raise ValueError(f"n_streams must be at least 1, got {n_streams!r}")
    if n == 1:
        return np.ones((1, 1))
    if step is None:
        divisions = 20 if n == 2 else 10
        while divisions > 1 and _grid_size(n, divisions) > max_points:
            divisions -= 1
    else:
        if not 0 < float(step) <= 1:
            raise ValueError(f"step must be in (0, 1], got {step!r}")
        divisions = round(1.0 / float(step))
        if abs(divisions * float(step) - 1.0) > 1e-9:
            raise ValueError(f"step must divide 1 (e.g. 0.05, 0.1, 0.25), got {step!r}")
        size = _grid_size(n, divisions)
        if size > max_points:
            raise ValueError(
                f"a step of {step} on {n} streams makes {size} grid points, more than "
                f"max_points={max_points}; use a coarser step or raise max_points"
            )
    table = np.linspace(0.0, 1.0, divisions + 1)
    rows: list[list[float]] = []

    def walk(prefix: list[int], left: int) -> None:
        if len(prefix) == n - 1:
            free = [float(table[i]) for i in prefix]
            rest = 1.0 - free[0] if n == 2 else max(0.0, 1.0 - float(np.sum(free)))
            rows.append([*free, rest])
            return
        for i in range(left + 1):
            walk([*prefix, i], left - i)

    walk([], divisions)
    return np.asarray(rows, dtype=np.float64)


def _tie_key(w: np.ndarray) -> tuple[Any, ...]:
    """Closest to equal weights first, then the lexicographically smaller vector.

    The distance is the L1 distance to equal weights; for two streams it is computed as
    ``|w_first - 0.5|`` (half of it), exactly as the two-stream search did.
    """
    n = w.size
    # sorted before summing, so that permuted vectors tie exactly
    dist = abs(float(w[0]) - 0.5) if n == 2 else float(np.sort(np.abs(w - 1.0 / n)).sum())
    return (dist, *(float(v) for v in w))


def _as_grid(grid: object, n: int, names: Sequence[str]) -> np.ndarray:
    """``grid`` as ``(G, n)`` weight vectors (a 1-D grid holds the first of two streams' weights)."""
    arr = np.asarray(grid, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("grid must contain at least one weight")
    if arr.ndim <= 1:
        if n != 2:
            raise ValueError(
                f"a 1-D grid gives the first of two streams' weights; with {n} streams "
                f"({', '.join(names)}) pass (G, {n}) weight vectors or a step"
            )
        arr = arr.ravel()
        if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"grid weights must lie in [0, 1], got {arr.tolist()}")
        return np.stack([arr, 1.0 - arr], axis=1)
    if arr.ndim != 2 or arr.shape[1] != n:
        raise ValueError(
            f"grid must be (G, {n}) weight vectors for the streams {list(names)}, got {arr.shape}"
        )
    bad = (
        ~np.all(np.isfinite(arr), axis=1)
        | np.any(arr < 0, axis=1)
        | np.any(arr > 1, axis=1)
        | (np.abs(arr.sum(axis=1) - 1.0) > _SIMPLEX_TOL)
    )
    if np.any(bad):
        row = arr[np.flatnonzero(bad)[0]].tolist()
        raise ValueError(f"grid weights must lie in [0, 1] and sum to 1 per row, got {row}")
    return arr


def choose_fusion_weight(
    probs_val: Mapping[str, np.ndarray],
    y_val: np.ndarray,
    grid: Sequence[float] | np.ndarray | None = None,
    *,
    step: float | None = None,
    max_points: int = FUSION_GRID_MAX_POINTS,
) -> dict[str, float]:
    """Chooses the weights of :func:`fuse_weighted` on the validation (or out-of-fold) pool.

    Every weight vector of the grid is scored by the top-1 accuracy of the fused validation
    probabilities. The highest accuracy wins; ties are broken by the lower mean log-loss
    (negative log-likelihood of the true class, probabilities clipped at 1e-12; log-losses
    within a relative 1e-9 count as equal), then by the weights closest to equal (L1 distance;
    for two streams ``|w_video - 0.5|``), then by the lexicographically smaller weight vector
    (for two streams: the smaller first-stream weight). The function only takes validation
    arrays: it never sees the test split.

    Args:
        probs_val: ``{stream name: (N, K) validation probabilities}``, one or more streams.
        y_val: Validation labels, int ``(N,)`` with values in ``[0, K)``.
        grid: Candidate weights: ``(G, S)`` vectors on the simplex in the order of
            ``probs_val``, or for two streams a 1-D grid of the first stream's weight (the
            second gets ``1 - w``). Default: :func:`fusion_weight_grid` (step 0.05 for two
            streams, at most ``max_points`` points).
        step: Step of the default grid (see :func:`fusion_weight_grid`).
        max_points: Most points of the default grid.

    Returns:
        ``{stream name: weight}`` as Python floats, in the order of ``probs_val``.

    Raises:
        ValueError: On invalid probabilities or labels, an empty validation set, or an empty
            grid or one with weights outside ``[0, 1]`` or rows not summing to 1.

    Example:
        >>> p_v = np.array([[0.9, 0.1], [0.4, 0.6]])
        >>> p_s = np.array([[0.4, 0.6], [0.9, 0.1]])
        >>> choose_fusion_weight({"video": p_v, "sensor": p_s}, np.array([0, 1]),
        ...                      grid=[0.0, 0.5, 1.0])
        {'video': 1.0, 'sensor': 0.0}
    """
    arrays = _check_streams(probs_val, "probs_val")
    names = list(arrays)
    ps = list(arrays.values())
    n, k = ps[0].shape
    if n == 0:
        raise ValueError("the validation set is empty; cannot choose fusion weights")
    y = _check_labels(y_val, n, k, "y_val")
    if grid is None:
        candidates = fusion_weight_grid(len(names), step=step, max_points=max_points)
    else:
        candidates = _as_grid(grid, len(names), names)

    rows = np.arange(n)
    correct = np.empty(len(candidates), dtype=np.int64)
    logloss = np.empty(len(candidates), dtype=np.float64)
    for i, w in enumerate(candidates):
        fused = _weighted(ps, [float(v) for v in w])
        correct[i] = int(np.sum(np.argmax(fused, axis=1) == y))
        logloss[i] = float(-np.mean(np.log(np.clip(fused[rows, y], 1e-12, None))))

    best = np.flatnonzero(correct == correct.max())
    best_loss = logloss[best].min()
    best = best[np.isclose(logloss[best], best_loss, rtol=1e-9, atol=1e-12)]
    chosen_i = min(best, key=lambda i: _tie_key(candidates[i]))
    chosen = {name: float(v) for name, v in zip(names, candidates[chosen_i], strict=True)}
    logger.info(
        "fusion weights %s chosen on %d validation samples from %d candidates (val accuracy "
        "%.4f, log-loss %.4f)",
        {name: round(v, 3) for name, v in chosen.items()},
        n,
        len(candidates),
        correct[chosen_i] / n,
        logloss[chosen_i],
    )
    return chosen


# --------------------------------------------------------------------------------------------
# Learned rule
# --------------------------------------------------------------------------------------------


def build_fusion_mlp(
    input_dims: Mapping[str, int],
    num_classes: int,
    hidden: int = 256,
    dropout: float = 0.3,
    normalization: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    name: str = "fusion_mlp",
) -> keras.Model:
    """Builds the learned fusion rule: an MLP on the concatenated embeddings of named inputs.

    Layout: one input per key of ``input_dims`` (in its order; the pipeline uses
    ``"video_embedding"`` and ``"sensor_embedding"``) -> optional per-input
    :class:`keras.layers.Normalization` -> concatenation -> Dense(hidden) + ReLU -> Dropout ->
    Dense(num_classes) softmax.

    Args:
        input_dims: ``{input name: embedding size}``, one or more inputs.
        num_classes: Number of classes.
        hidden: Width of the hidden layer.
        dropout: Dropout rate after the hidden layer.
        normalization: Optional ``{input name: (mean, variance)}`` with training-split
            statistics; inputs may be left out.
        name: Model name.

    Returns:
        An uncompiled Keras functional model whose output is ``(B, num_classes)`` probabilities.

    Raises:
        ValueError: On no inputs, non-positive sizes, a dropout outside ``[0, 1)``, or
            normalization keys that are not inputs.

    Example:
        >>> model = build_fusion_mlp({"video_embedding": 1024, "sensor_embedding": 128}, 10)
        >>> model.output_shape
        (None, 10)
    """
    import keras

    if not isinstance(input_dims, Mapping) or not input_dims:
        raise ValueError(
            f"input_dims must be a non-empty mapping {{input name: size}}, got {input_dims!r}"
        )
    sizes = {f"input_dims[{key!r}]": value for key, value in input_dims.items()}
    sizes.update(num_classes=num_classes, hidden=hidden)
    for arg, value in sizes.items():
        if int(value) <= 0:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    normalization = dict(normalization or {})
    unknown = set(normalization) - set(input_dims)
    if unknown:
        raise ValueError(
            f"unknown normalization keys {sorted(unknown)}; expected some of {list(input_dims)}"
        )

    inputs = {key: keras.Input(shape=(int(dim),), name=key) for key, dim in input_dims.items()}
    branches = []
    for key, tensor in inputs.items():
        if key in normalization:
            mean, variance = normalization[key]
            tensor = keras.layers.Normalization(
                mean=np.asarray(mean, dtype=np.float32),
                variance=np.asarray(variance, dtype=np.float32),
                name=f"{key}_norm",
            )(tensor)
        branches.append(tensor)
    x = keras.layers.Concatenate(name="concat")(branches) if len(branches) > 1 else branches[0]
    x = keras.layers.Dense(int(hidden), activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(int(num_classes), activation="softmax", name="probs")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name=name)


def _check_features(
    features: Mapping[str, np.ndarray], name: str, keys: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Returns the embedding arrays of ``features`` as float32, checking keys and shapes.

    With ``keys`` the features must have exactly those keys and come back in that order.
    """
    if not isinstance(features, Mapping) or not features:
        raise ValueError(f"{name} must be a non-empty mapping {{input name: (N, dim) embeddings}}")
    if keys is not None:
        missing = [k for k in keys if k not in features]
        extra = [k for k in features if k not in keys]
        if missing or extra:
            raise ValueError(
                f"{name} lacks the keys {missing} / has extra keys {extra}; expected exactly "
                f"{list(keys)}"
            )
    out = {}
    for key in keys if keys is not None else list(features):
        arr = np.asarray(features[key], dtype=np.float32)
        if arr.ndim != 2:
            raise ValueError(f"{name}[{key!r}] must be 2-D (N, dim), got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}[{key!r}] contains NaN or infinite values")
        out[key] = arr
    first, ref = next(iter(out.items()))
    for key, arr in out.items():
        if arr.shape[0] != ref.shape[0]:
            raise ValueError(
                f"{name}: embeddings {first!r} and {key!r} differ in sample count "
                f"({ref.shape[0]} vs {arr.shape[0]}); give the same samples in the same order"
            )
    return out


def _standardisation(train: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-feature mean and variance of the training features (zero variance becomes 1)."""
    out = {}
    for key, arr in train.items():
        mean = arr.mean(axis=0, dtype=np.float64)
        variance = arr.var(axis=0, dtype=np.float64)
        variance = np.where(variance > 1e-12, variance, 1.0)
        out[key] = (mean.astype(np.float32), variance.astype(np.float32))
    return out


def _checked_sets(
    train_features: Mapping[str, np.ndarray],
    y_train: np.ndarray,
    val_features: Mapping[str, np.ndarray] | None,
    y_val: np.ndarray | None,
    num_classes: int,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray] | None, np.ndarray | None]:
    train = _check_features(train_features, "train_features")
    n_train = next(iter(train.values())).shape[0]
    if n_train == 0:
        raise ValueError("need a non-empty training set for the fusion MLP")
    y_tr = _check_labels(y_train, n_train, num_classes, "y_train")
    if val_features is None:
        return train, y_tr, None, None
    val = _check_features(val_features, "val_features", keys=list(train))
    for key in train:
        if train[key].shape[1] != val[key].shape[1]:
            raise ValueError(
                f"{key}: training width {train[key].shape[1]} differs from validation width "
                f"{val[key].shape[1]}"
            )
    n_val = next(iter(val.values())).shape[0]
    if n_val == 0:
        raise ValueError(f"need non-empty training and validation sets, got {n_train} and {n_val}")
    return train, y_tr, val, _check_labels(y_val, n_val, num_classes, "y_val")


def fit_fusion_mlp(
    train_features: Mapping[str, np.ndarray],
    y_train: np.ndarray,
    val_features: Mapping[str, np.ndarray] | None,
    y_val: np.ndarray | None,
    *,
    num_classes: int,
    epochs: int = 100,
    batch_size: int = 32,
    lr: float = 1e-3,
    patience: int | None = 10,
    seed: int = 0,
    hidden: int = 256,
    dropout: float = 0.3,
    verbose: int = 0,
    history: list[float] | None = None,
) -> keras.Model:
    """Trains the learned fusion MLP.

    Inputs are standardised with the mean and variance of the *training* features (features
    with zero training variance get variance 1), held in :class:`keras.layers.Normalization`
    layers inside the model so that the saved model is self-contained. Training uses Adam and
    sparse categorical cross-entropy. With validation features and a ``patience``, training
    stops early on ``val_accuracy`` and restores the weights of the best validation epoch; with
    ``patience=None`` it runs all ``epochs`` (the validation accuracy of every epoch is still
    recorded); without validation features it simply runs ``epochs`` epochs (the final fit of
    :func:`select_fusion`). ``keras.utils.set_random_seed(seed)`` is called first, which
    reseeds Python, numpy and the backend globally.

    Args:
        train_features: ``{input name: (N, D)}`` embeddings, one or more inputs (the
            pipeline's ``{"video_embedding": (N, Dv), "sensor_embedding": (N, Ds)}``); the
            model's inputs have these names, in this order.
        y_train: Training labels, int ``(N,)``.
        val_features: Validation features with the same keys and widths, or None.
        y_val: Validation labels, int ``(M,)``, or None.
        num_classes: Number of classes.
        epochs: Maximum number of epochs.
        batch_size: Batch size.
        lr: Adam learning rate.
        patience: Epochs without validation-accuracy improvement before stopping; None: no
            early stopping.
        seed: Random seed (weights initialisation, dropout, shuffling).
        hidden: Width of the hidden layer.
        dropout: Dropout rate.
        verbose: Keras ``fit`` verbosity (0 silent, 1 progress bar, 2 one line per epoch).
        history: When a list is given, the validation accuracy of every epoch run is appended.

    Returns:
        The trained, compiled model (probabilities out).

    Raises:
        ValueError: On validation keys that differ from the training keys, mismatched
            shapes, or out-of-range labels.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> feats = {"video_embedding": rng.normal(size=(40, 8)),
        ...          "sensor_embedding": rng.normal(size=(40, 4))}
        >>> y = (feats["video_embedding"][:, 0] > 0).astype(int)
        >>> model = fit_fusion_mlp(feats, y, feats, y, num_classes=2, epochs=2)
        >>> model.predict(feats, verbose=0).shape
        (40, 2)
    """
    import keras

    train, y_tr, val, y_va = _checked_sets(
        train_features, y_train, val_features, y_val, num_classes
    )
    keras.utils.set_random_seed(seed)
    model = build_fusion_mlp(
        {key: arr.shape[1] for key, arr in train.items()},
        num_classes,
        hidden=hidden,
        dropout=dropout,
        normalization=_standardisation(train),
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = []
    if val is not None and patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True
            )
        )
    fitted = model.fit(
        train,
        y_tr,
        validation_data=(val, y_va) if val is not None else None,
        epochs=int(epochs),
        batch_size=batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose=verbose,
    )
    val_acc = fitted.history.get("val_accuracy", [])
    if history is not None:
        history.extend(float(a) for a in val_acc)
    if val_acc:
        best = int(np.argmax(val_acc))
        logger.info(
            "fusion MLP: best val accuracy %.4f at epoch %d of %d",
            val_acc[best],
            best + 1,
            len(val_acc),
        )
    return model


# --------------------------------------------------------------------------------------------
# Selection without the test split
# --------------------------------------------------------------------------------------------

#: Candidate rules in tie-break order: parameter-free rules first, then the fitted ones.
RULE_ORDER: tuple[str, ...] = ("sum", "product", "max", "weighted", "learned")


@dataclass
class FusionSelection:
    """What :func:`select_fusion` chose, and on what.

    Attributes:
        best: The rule with the highest selection accuracy (ties: earlier in :data:`RULE_ORDER`).
        scores: Selection accuracy of every rule on the pool (``"learned"`` only when the pool
            had embeddings).
        weights: ``{stream name: weight}`` of the weighted rule, chosen on the pool; its keys
            are the fused streams, in order.
        mlp: The learned rule's model (None without embeddings).
        mlp_epochs: Epochs of the learned rule's final fit (None when early-stopped).
        pool: ``"out-of-fold + validation"`` or ``"validation"``.
        groups: The pool's groups (subjects) and their sizes.
    """

    best: str
    scores: dict[str, float]
    weights: dict[str, float]
    mlp: keras.Model | None
    mlp_epochs: int | None
    pool: str
    groups: dict[str, int]

    @property
    def streams(self) -> tuple[str, ...]:
        """The fused streams' names, in order (the first is the video stream in the pipeline)."""
        return tuple(self.weights)

    @property
    def weight(self) -> float:
        """The first stream's weight: the video weight of a two-stream (video + other) fusion."""
        return self.weights[self.streams[0]]

    def describe(self, rule: str | None = None) -> str:
        """A short text naming a rule and its chosen parameter, e.g. ``"weighted (w = 0.65)"``.

        With two streams the weighted rule shows the first stream's weight ``w``; with other
        counts every stream's, e.g. ``"weighted (video 0.50, imu 0.30, depth 0.20)"``.
        """
        rule = rule or self.best
        if rule == "weighted":
            if len(self.weights) == 2:
                return f"weighted (w = {self.weight:.2f})"
            return "weighted (" + ", ".join(f"{s} {w:.2f}" for s, w in self.weights.items()) + ")"
        if rule == "learned" and self.mlp_epochs:
            return f"learned ({self.mlp_epochs} epochs)"
        return rule

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (everything but the model); ``weight`` is :attr:`weight`."""
        return {
            "best": self.best,
            "scores": self.scores,
            "weight": self.weight,
            "weights": dict(self.weights),
            "mlp_epochs": self.mlp_epochs,
            "pool": self.pool,
            "groups": self.groups,
        }


def _pool_arrays(pool: Mapping[str, Any], name: str) -> dict[str, Any]:
    missing = {"probs", "labels", "groups"} - set(pool)
    if missing:
        raise ValueError(
            f"{name} lacks {sorted(missing)}; expected {{'probs': {{stream: (N, K)}}, "
            "'embeddings': {input: (N, D)} (optional), 'labels': (N,), 'groups': (N,)}"
        )
    probs = _check_streams(pool["probs"], f"{name}['probs']")
    n, k = next(iter(probs.values())).shape
    if n == 0:
        raise ValueError(f"{name} is empty; cannot select a fusion rule")
    feats = None
    if pool.get("embeddings"):
        feats = _check_features(pool["embeddings"], f"{name}['embeddings']")
        count = next(iter(feats.values())).shape[0]
        if count != n:
            raise ValueError(f"{name}: {count} embeddings for {n} probabilities")
    groups = np.asarray(pool["groups"]).astype(str)
    if groups.shape != (n,):
        raise ValueError(f"{name}: groups must be a vector of {n} entries, got {groups.shape}")
    return {
        "probs": probs,
        "embeddings": feats,
        "labels": _check_labels(pool["labels"], n, k, f"{name} labels"),
        "groups": groups,
    }


def fuse_fixed(
    probs: Mapping[str, np.ndarray], weights: Mapping[str, float]
) -> dict[str, np.ndarray]:
    """Every rule but the learned one: ``{"sum", "product", "max", "weighted"}`` probabilities.

    Example:
        >>> out = fuse_fixed({"video": [[0.6, 0.4]], "sensor": [[0.2, 0.8]]},
        ...                  {"video": 0.5, "sensor": 0.5})
        >>> sorted(out), out["weighted"].round(2).tolist()
        (['max', 'product', 'sum', 'weighted'], [[0.4, 0.6]])
    """
    out = {rule: fn(probs) for rule, fn in FUSION_RULES.items()}
    out["weighted"] = fuse_weighted(probs, weights)
    return out


def select_fusion(
    pool: Mapping[str, Any],
    *,
    num_classes: int,
    train_features: Mapping[str, np.ndarray] | None = None,
    y_train: np.ndarray | None = None,
    max_epochs: int = 200,
    hidden: int = 256,
    seed: int = 0,
    step: float | None = None,
    max_points: int = FUSION_GRID_MAX_POINTS,
) -> FusionSelection:
    """Chooses how to fuse any number of streams without looking at a test split.

    ``pool`` holds predictions that no model in the streams was fitted on: out-of-fold
    predictions on the training subjects (from models trained with those subjects held out)
    pooled with the validation split, grouped by subject (``groups``). Every rule's free
    parameter is chosen on the pool and its score is the pool accuracy at that choice:

    * ``sum``, ``product``, ``max``: no parameter;
    * ``weighted``: the weights (:func:`choose_fusion_weight` on the pool, grid
      :func:`fusion_weight_grid` with ``step`` and ``max_points``);
    * ``learned`` (only when the pool has ``embeddings``): the MLP is trained leaving one group
      out at a time for ``max_epochs`` epochs; the epoch count with the best pooled held-out
      accuracy is chosen, and that accuracy is the rule's score. The final MLP is trained on the
      whole pool for that many epochs.

    With a single group (only a validation subject, no out-of-fold runs), leaving a group out is
    impossible: the MLP is then trained on ``train_features`` (the training split, which the
    trunks have fitted) and early-stopped on the pool, and the pool is reported as
    ``"validation"``.

    Args:
        pool: ``{"probs": {stream: (N, K)}, "embeddings": {input name: (N, D)},
            "labels": (N,), "groups": (N,)}``; ``"embeddings"`` (the learned rule's inputs,
            e.g. ``{"video_embedding": h_v, "sensor_embedding": u}``) may be left out.
        num_classes: Number of classes.
        train_features: Training-split embeddings (same keys), used only with a single group.
        y_train: Their labels.
        max_epochs: Epochs of the MLP's curves (and the early-stopping limit with one group).
        hidden: Width of the MLP's hidden layer.
        seed: Seed of the MLP fits.
        step: Step of the weight grid (default: 0.05 for two streams, coarser for more).
        max_points: Most points of the weight grid.

    Returns:
        A :class:`FusionSelection`.

    Raises:
        ValueError: On inconsistent arrays, or a single group without training features.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 3, 60)
        >>> pv = np.eye(3)[y] * 0.5 + 0.5 / 3
        >>> pool = {"probs": {"video": pv, "sensor": np.full((60, 3), 1 / 3)}, "labels": y,
        ...         "embeddings": {"video_embedding": pv,
        ...                        "sensor_embedding": rng.normal(size=(60, 2))},
        ...         "groups": np.repeat(["a", "b", "c"], 20)}
        >>> choice = select_fusion(pool, num_classes=3, max_epochs=3)
        >>> choice.best, choice.scores["sum"]
        ('sum', 1.0)
    """
    data = _pool_arrays(pool, "pool")
    probs, feats = data["probs"], data["embeddings"]
    y, groups = data["labels"], data["groups"]
    names = sorted(set(groups.tolist()))
    weights = choose_fusion_weight(probs, y, step=step, max_points=max_points)
    fixed = fuse_fixed(probs, weights)
    scores = {rule: float(np.mean(np.argmax(p, axis=1) == y)) for rule, p in fixed.items()}
    kw = {"num_classes": num_classes, "hidden": hidden, "seed": seed}
    mlp, epochs = None, None
    pool_name = "out-of-fold + validation" if len(names) >= 2 else "validation"
    if feats is not None and len(names) >= 2:
        correct = np.zeros(int(max_epochs))
        for g in names:
            held = groups == g
            curve: list[float] = []
            fit_fusion_mlp(
                {k: v[~held] for k, v in feats.items()},
                y[~held],
                {k: v[held] for k, v in feats.items()},
                y[held],
                epochs=max_epochs,
                patience=None,
                history=curve,
                **kw,
            )
            correct += np.asarray(curve) * int(held.sum())
        epochs = int(np.argmax(correct)) + 1  # the earliest of the best epochs
        scores["learned"] = float(correct[epochs - 1] / len(y))
        mlp = fit_fusion_mlp(feats, y, None, None, epochs=epochs, **kw)
    elif feats is not None:
        if train_features is None or y_train is None:
            raise ValueError(
                "a pool with one group needs train_features and y_train for the learned rule"
            )
        mlp = fit_fusion_mlp(train_features, y_train, feats, y, epochs=max_epochs, **kw)
        p = np.asarray(mlp.predict(feats, verbose=0))
        scores["learned"] = float(np.mean(np.argmax(p, axis=1) == y))
    rules = [r for r in RULE_ORDER if r in scores]
    best = max(rules, key=lambda r: (scores[r], -RULE_ORDER.index(r)))
    logger.info(
        "fusion of %s chosen on %d %s samples (%d groups): %s, scores %s",
        ", ".join(probs),
        len(y),
        pool_name,
        len(names),
        best,
        {r: round(s, 4) for r, s in scores.items()},
    )
    return FusionSelection(
        best=best,
        scores={r: scores[r] for r in rules},
        weights=weights,
        mlp=mlp,
        mlp_epochs=epochs,
        pool=pool_name,
        groups={g: int(np.sum(groups == g)) for g in names},
    )


def _check_selection_streams(selection: FusionSelection, probs: Mapping[str, Any]) -> None:
    if not isinstance(probs, Mapping) or set(probs) != set(selection.streams):
        got = sorted(probs) if isinstance(probs, Mapping) else type(probs).__name__
        raise ValueError(
            f"the selection fuses the streams {list(selection.streams)}, got {got}; pass "
            "probabilities of the same streams"
        )


def apply_fusion(
    selection: FusionSelection,
    probs: Mapping[str, np.ndarray],
    features: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Every rule of ``selection`` applied to new predictions: ``{rule: (N, K)}`` plus ``"best"``.

    Args:
        selection: From :func:`select_fusion`.
        probs: ``{stream: (N, K)}`` of the streams the selection fused.
        features: The learned rule's embeddings ``{input name: (N, D)}`` (needed when the
            selection has an MLP).

    Returns:
        ``{"sum", "product", "max", "weighted", ("learned",) "best"}`` probabilities.

    Raises:
        ValueError: On other streams than the selection's, or missing embeddings.

    Example:
        >>> out = apply_fusion(choice, {"video": p_video, "generated_sensor": p_gen}, feats)  # doctest: +SKIP
        >>> sorted(out)  # doctest: +SKIP
        ['best', 'learned', 'max', 'product', 'sum', 'weighted']
    """
    import keras

    _check_selection_streams(selection, probs)
    out = fuse_fixed({s: probs[s] for s in selection.streams}, selection.weights)
    if selection.mlp is not None:
        if features is None:
            raise ValueError("this selection has a learned rule; pass its embeddings as features")
        names = [t.name for t in selection.mlp.inputs]
        feats = _check_features(features, "features", keys=names)
        out["learned"] = np.asarray(
            keras.ops.convert_to_numpy(selection.mlp(feats, training=False)), dtype=np.float64
        )
    out["best"] = out[selection.best]
    return out


def build_fused_predictor(
    streams_model: keras.Model,
    selection: FusionSelection,
    probs: Mapping[str, str],
    embeddings: Mapping[str, str] | None = None,
    *,
    rule: str | None = None,
    name: str = "deploy",
) -> keras.Model:
    """One Keras model from the test-time inputs to the fused class probabilities.

    ``streams_model`` computes every stream from the inputs available at test time (for
    self-learning fusion: video in; video and generated-sensor probabilities and embeddings
    out). The chosen rule is put on top as Keras layers: the fixed rules as a
    :class:`~vsfusion.models.fusion_layers.WeightedProbabilityFusion` layer (the weighted rule
    with the chosen weights, the others with equal ones), the learned rule as the selection's
    MLP (its standardisation inside). The result saves to and loads from one ``.keras`` file.

    Args:
        streams_model: A functional model with dict outputs.
        selection: From :func:`select_fusion`.
        probs: ``{stream name: output key of streams_model}`` for every stream the selection
            fused.
        embeddings: ``{MLP input name: output key}``; needed when the rule is ``"learned"``.
        rule: The rule to deploy; default the selection's best.
        name: Model name.

    Returns:
        A functional model with the inputs of ``streams_model`` and one ``(B, K)`` output.

    Raises:
        ValueError: On streams or output keys that do not match, or an unknown rule.

    Example:
        >>> deploy = build_fused_predictor(fused, choice,
        ...     {"video": "video_probs", "generated_sensor": "generated_probs"},
        ...     {"video_embedding": "video_embedding", "sensor_embedding": "generated_embedding"})  # doctest: +SKIP
        >>> deploy.output_shape  # doctest: +SKIP
        (None, 27)
    """
    import keras

    from vsfusion.models.fusion_layers import WeightedProbabilityFusion
    from vsfusion.models.heads import model_inputs_like

    rule = rule or selection.best
    if rule not in RULE_ORDER:
        raise ValueError(f"unknown fusion rule {rule!r}; expected one of {list(RULE_ORDER)}")
    _check_selection_streams(selection, probs)
    inputs = model_inputs_like(streams_model)
    outputs = streams_model(inputs)
    if not isinstance(outputs, Mapping):
        raise ValueError(f"streams_model {streams_model.name!r} must have dict outputs")

    def output(key: str) -> Any:
        if key not in outputs:
            raise ValueError(
                f"streams_model {streams_model.name!r} has no output {key!r}; it has "
                f"{sorted(outputs)}"
            )
        return outputs[key]

    if rule == "learned":
        if selection.mlp is None or not embeddings:
            raise ValueError(
                "the learned rule needs the selection's MLP and its embeddings' output keys"
            )
        names = [t.name for t in selection.mlp.inputs]
        if set(embeddings) != set(names):
            raise ValueError(
                f"the fusion MLP takes {names}, got embeddings for {sorted(embeddings)}"
            )
        fused = selection.mlp({key: output(embeddings[key]) for key in names})
    else:
        streams = selection.streams
        weights = (
            selection.weights if rule == "weighted" else {s: 1.0 / len(streams) for s in streams}
        )
        layer = WeightedProbabilityFusion(weights=weights, rule=rule, name="fusion")
        fused = layer({s: output(probs[s]) for s in streams})
    return keras.Model(inputs, fused, name=name)
