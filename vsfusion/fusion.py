"""Every fusion rule of vsfusion in one place.

Stage 3 combines the video stream's class probabilities with those of the (real or generated)
sensor stream. The fixed rules are small numpy functions on probability arrays of shape
``(N, K)`` that return probabilities (each row sums to 1):

* :func:`fuse_sum` -- the mean of the two streams;
* :func:`fuse_weighted` -- ``weight * p_video + (1 - weight) * p_sensor``, with ``weight`` chosen
  on the validation split by :func:`choose_fusion_weight` (never on the test split);
* :func:`fuse_product` -- the renormalised product, computed in log space;
* :func:`fuse_max` -- the renormalised elementwise maximum.

The learned rule is a small MLP on the concatenated embeddings ``[h_v, u'_v]``
(:func:`build_fusion_mlp`, trained by :func:`fit_fusion_mlp`), which standardises its inputs with
training-split statistics held in :class:`keras.layers.Normalization` layers, so that a saved
``.keras`` file is self-contained.

Which rule is used, and the parameter of each (the weight, the MLP's epochs), is chosen by
:func:`select_fusion` on a *pool* of predictions no stream was fitted on: out-of-fold predictions
on the training subjects pooled with the validation split, grouped by subject; with the
validation split alone when no out-of-fold runs exist. :func:`apply_fusion` then applies every
rule to the test split.

Example:
    >>> import numpy as np
    >>> p_v = np.array([[0.6, 0.3, 0.1]])
    >>> p_s = np.array([[0.2, 0.5, 0.3]])
    >>> fuse_sum(p_v, p_s).round(3)
    array([[0.4, 0.4, 0.2]])
    >>> sorted(FUSION_RULES)
    ['max', 'product', 'sum']
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

__all__ = [
    "FUSION_RULES",
    "RULE_ORDER",
    "FusionSelection",
    "apply_fusion",
    "fuse_fixed",
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

#: Input names of the learned fusion model (and keys of the feature dicts it is trained on).
VIDEO_INPUT = "video_embedding"
SENSOR_INPUT = "sensor_embedding"

#: Default epsilon added to probabilities before taking logs in :func:`fuse_product`.
PRODUCT_EPS = 1e-12


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


def _check_pair(p_video: object, p_sensor: object) -> tuple[np.ndarray, np.ndarray]:
    """Validates both streams and checks that their shapes agree."""
    pv = _as_probs(p_video, "p_video")
    ps = _as_probs(p_sensor, "p_sensor")
    if pv.shape != ps.shape:
        raise ValueError(
            f"p_video and p_sensor must have the same shape, got {pv.shape} and {ps.shape}"
        )
    return pv, ps


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


def fuse_sum(p_video: np.ndarray, p_sensor: np.ndarray) -> np.ndarray:
    """Sum rule: the mean of the two streams' probabilities.

    Rows are renormalised, so inputs that do not sum exactly to 1 still give probabilities.

    Args:
        p_video: Video-stream probabilities, shape ``(N, K)``.
        p_sensor: Sensor-stream (real or generated) probabilities, shape ``(N, K)``.

    Returns:
        Fused probabilities, float64 ``(N, K)``, rows summing to 1.

    Raises:
        ValueError: If the inputs are not 2-D, differ in shape, or hold NaN/inf/negative values.

    Example:
        >>> fuse_sum([[0.6, 0.3, 0.1]], [[0.2, 0.5, 0.3]]).round(3)
        array([[0.4, 0.4, 0.2]])
    """
    pv, ps = _check_pair(p_video, p_sensor)
    return _normalise(0.5 * (pv + ps))


def fuse_weighted(p_video: np.ndarray, p_sensor: np.ndarray, weight: float) -> np.ndarray:
    """Weighted sum rule: ``weight * p_video + (1 - weight) * p_sensor``.

    Choose ``weight`` on the validation split with :func:`choose_fusion_weight`.

    Args:
        p_video: Video-stream probabilities, shape ``(N, K)``.
        p_sensor: Sensor-stream probabilities, shape ``(N, K)``.
        weight: Weight of the video stream, in ``[0, 1]``.

    Returns:
        Fused probabilities, float64 ``(N, K)``, rows summing to 1.

    Raises:
        ValueError: On invalid probabilities or a weight outside ``[0, 1]``.

    Example:
        >>> fuse_weighted([[0.6, 0.3, 0.1]], [[0.2, 0.5, 0.3]], 0.75).round(3)
        array([[0.5 , 0.35, 0.15]])
    """
    pv, ps = _check_pair(p_video, p_sensor)
    w = float(weight)
    if not np.isfinite(w) or not 0.0 <= w <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight!r}")
    return _normalise(w * pv + (1.0 - w) * ps)


def fuse_product(p_video: np.ndarray, p_sensor: np.ndarray, eps: float = PRODUCT_EPS) -> np.ndarray:
    """Product rule: the renormalised elementwise product of the two streams.

    Computed in log space, ``softmax(log(p_video + eps) + log(p_sensor + eps))``, so zeros never
    give ``log(0)`` or a division by zero: a row where every class has zero product becomes
    (close to) the normalised product of the epsilons, never NaN.

    Args:
        p_video: Video-stream probabilities, shape ``(N, K)``.
        p_sensor: Sensor-stream probabilities, shape ``(N, K)``.
        eps: Small positive constant added before the logarithm.

    Returns:
        Fused probabilities, float64 ``(N, K)``, rows summing to 1.

    Raises:
        ValueError: On invalid probabilities or a non-positive ``eps``.

    Example:
        >>> fuse_product([[0.6, 0.3, 0.1]], [[0.2, 0.5, 0.3]]).round(4)
        array([[0.4, 0.5, 0.1]])
    """
    pv, ps = _check_pair(p_video, p_sensor)
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    logits = np.log(pv + eps) + np.log(ps + eps)
    logits -= logits.max(axis=1, keepdims=True)
    return _normalise(np.exp(logits))


def fuse_max(p_video: np.ndarray, p_sensor: np.ndarray) -> np.ndarray:
    """Max rule: the renormalised elementwise maximum of the two streams.

    Args:
        p_video: Video-stream probabilities, shape ``(N, K)``.
        p_sensor: Sensor-stream probabilities, shape ``(N, K)``.

    Returns:
        Fused probabilities, float64 ``(N, K)``, rows summing to 1 (a row that is zero in both
        streams becomes uniform).

    Raises:
        ValueError: If the inputs are not 2-D, differ in shape, or hold NaN/inf/negative values.

    Example:
        >>> fuse_max([[0.6, 0.3, 0.1]], [[0.2, 0.5, 0.3]]).round(4)
        array([[0.4286, 0.3571, 0.2143]])
    """
    pv, ps = _check_pair(p_video, p_sensor)
    return _normalise(np.maximum(pv, ps))


#: The parameter-free rules by name (the weighted rule needs a weight and the learned rule a
#: model, so they are called directly).
FUSION_RULES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "sum": fuse_sum,
    "product": fuse_product,
    "max": fuse_max,
}


def choose_fusion_weight(
    p_video_val: np.ndarray,
    p_sensor_val: np.ndarray,
    y_val: np.ndarray,
    grid: Sequence[float] | np.ndarray | None = None,
) -> float:
    """Chooses the video weight of :func:`fuse_weighted` on the validation split.

    Every weight in ``grid`` is scored by the top-1 accuracy of the fused validation
    probabilities. The highest accuracy wins; ties are broken by the lower mean log-loss
    (negative log-likelihood of the true class, probabilities clipped at 1e-12; log-losses
    within a relative 1e-9 count as equal), then by the weight closest to 0.5, then by the
    smaller weight. The function only takes validation arrays: it never sees the test split.

    Args:
        p_video_val: Video-stream validation probabilities, shape ``(N, K)``.
        p_sensor_val: Sensor-stream validation probabilities, shape ``(N, K)``.
        y_val: Validation labels, int ``(N,)`` with values in ``[0, K)``.
        grid: Candidate weights in ``[0, 1]``; defaults to ``np.linspace(0, 1, 21)``.

    Returns:
        The chosen weight as a Python float.

    Raises:
        ValueError: On invalid probabilities or labels, an empty validation set, or an empty
            grid or one with values outside ``[0, 1]``.

    Example:
        >>> p_v = np.array([[0.9, 0.1], [0.4, 0.6]])
        >>> p_s = np.array([[0.4, 0.6], [0.9, 0.1]])
        >>> choose_fusion_weight(p_v, p_s, np.array([0, 1]), grid=[0.0, 0.5, 1.0])
        1.0
    """
    pv, ps = _check_pair(p_video_val, p_sensor_val)
    n, k = pv.shape
    if n == 0:
        raise ValueError("the validation set is empty; cannot choose a fusion weight")
    y = _check_labels(y_val, n, k, "y_val")
    weights = np.linspace(0.0, 1.0, 21) if grid is None else np.asarray(grid, dtype=np.float64)
    weights = weights.ravel()
    if weights.size == 0:
        raise ValueError("grid must contain at least one weight")
    if not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.max() > 1:
        raise ValueError(f"grid weights must lie in [0, 1], got {weights.tolist()}")

    rows = np.arange(n)
    correct = np.empty(weights.size, dtype=np.int64)
    logloss = np.empty(weights.size, dtype=np.float64)
    for i, w in enumerate(weights):
        fused = fuse_weighted(pv, ps, float(w))
        correct[i] = int(np.sum(np.argmax(fused, axis=1) == y))
        logloss[i] = float(-np.mean(np.log(np.clip(fused[rows, y], 1e-12, None))))

    candidates = np.flatnonzero(correct == correct.max())
    best_loss = logloss[candidates].min()
    candidates = candidates[np.isclose(logloss[candidates], best_loss, rtol=1e-9, atol=1e-12)]
    order = sorted(candidates, key=lambda i: (abs(weights[i] - 0.5), weights[i]))
    chosen = float(weights[order[0]])
    logger.info(
        "fusion weight %.3f chosen on %d validation samples (val accuracy %.4f, log-loss %.4f)",
        chosen,
        n,
        correct[order[0]] / n,
        logloss[order[0]],
    )
    return chosen


# --------------------------------------------------------------------------------------------
# Learned rule
# --------------------------------------------------------------------------------------------


def build_fusion_mlp(
    video_dim: int,
    sensor_dim: int,
    num_classes: int,
    hidden: int = 256,
    dropout: float = 0.3,
    normalization: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    name: str = "fusion_mlp",
) -> keras.Model:
    """Builds the learned fusion rule: an MLP on the concatenated embeddings ``[h_v, u'_v]``.

    Layout: inputs ``"video_embedding"`` ``(B, video_dim)`` and ``"sensor_embedding"``
    ``(B, sensor_dim)`` -> optional per-input :class:`keras.layers.Normalization` ->
    concatenation -> Dense(hidden) + ReLU -> Dropout -> Dense(num_classes) softmax.

    Args:
        video_dim: Size of the video embedding ``h_v``.
        sensor_dim: Size of the (generated) sensor embedding ``u'_v``.
        num_classes: Number of classes.
        hidden: Width of the hidden layer.
        dropout: Dropout rate after the hidden layer.
        normalization: Optional ``{"video_embedding": (mean, variance), "sensor_embedding":
            (mean, variance)}`` with training-split statistics; either key may be omitted.
        name: Model name.

    Returns:
        An uncompiled Keras functional model whose output is ``(B, num_classes)`` probabilities.

    Raises:
        ValueError: On non-positive sizes, a dropout outside ``[0, 1)``, or unknown
            normalization keys.

    Example:
        >>> model = build_fusion_mlp(1024, 128, num_classes=10)
        >>> model.output_shape
        (None, 10)
    """
    import keras

    sizes = {"video_dim": video_dim, "sensor_dim": sensor_dim, "num_classes": num_classes}
    sizes["hidden"] = hidden
    for arg, value in sizes.items():
        if int(value) <= 0:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    normalization = dict(normalization or {})
    unknown = set(normalization) - {VIDEO_INPUT, SENSOR_INPUT}
    if unknown:
        raise ValueError(
            f"unknown normalization keys {sorted(unknown)}; expected {VIDEO_INPUT!r}, {SENSOR_INPUT!r}"
        )

    inputs = {
        VIDEO_INPUT: keras.Input(shape=(int(video_dim),), name=VIDEO_INPUT),
        SENSOR_INPUT: keras.Input(shape=(int(sensor_dim),), name=SENSOR_INPUT),
    }
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
    x = keras.layers.Concatenate(name="concat")(branches)
    x = keras.layers.Dense(int(hidden), activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(int(num_classes), activation="softmax", name="probs")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name=name)


def _check_features(features: Mapping[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """Returns the two embedding arrays of ``features`` as float32, checking keys and shapes."""
    missing = {VIDEO_INPUT, SENSOR_INPUT} - set(features)
    if missing:
        raise ValueError(
            f"{name} lacks the keys {sorted(missing)}; expected {VIDEO_INPUT!r} and {SENSOR_INPUT!r}"
        )
    out = {}
    for key in (VIDEO_INPUT, SENSOR_INPUT):
        arr = np.asarray(features[key], dtype=np.float32)
        if arr.ndim != 2:
            raise ValueError(f"{name}[{key!r}] must be 2-D (N, dim), got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}[{key!r}] contains NaN or infinite values")
        out[key] = arr
    if out[VIDEO_INPUT].shape[0] != out[SENSOR_INPUT].shape[0]:
        raise ValueError(
            f"{name}: video and sensor embeddings differ in sample count "
            f"({out[VIDEO_INPUT].shape[0]} vs {out[SENSOR_INPUT].shape[0]})"
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


def _checked_pair(
    train_features: Mapping[str, np.ndarray],
    y_train: np.ndarray,
    val_features: Mapping[str, np.ndarray] | None,
    y_val: np.ndarray | None,
    num_classes: int,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray] | None, np.ndarray | None]:
    train = _check_features(train_features, "train_features")
    n_train = train[VIDEO_INPUT].shape[0]
    if n_train == 0:
        raise ValueError("need a non-empty training set for the fusion MLP")
    y_tr = _check_labels(y_train, n_train, num_classes, "y_train")
    if val_features is None:
        return train, y_tr, None, None
    val = _check_features(val_features, "val_features")
    for key in (VIDEO_INPUT, SENSOR_INPUT):
        if train[key].shape[1] != val[key].shape[1]:
            raise ValueError(
                f"{key}: training width {train[key].shape[1]} differs from validation width "
                f"{val[key].shape[1]}"
            )
    n_val = val[VIDEO_INPUT].shape[0]
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
        train_features: ``{"video_embedding": (N, Dv), "sensor_embedding": (N, Ds)}``.
        y_train: Training labels, int ``(N,)``.
        val_features: Validation features, same keys and widths, or None.
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
        ValueError: On missing feature keys, mismatched shapes, or out-of-range labels.

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

    train, y_tr, val, y_va = _checked_pair(
        train_features, y_train, val_features, y_val, num_classes
    )
    keras.utils.set_random_seed(seed)
    model = build_fusion_mlp(
        train[VIDEO_INPUT].shape[1],
        train[SENSOR_INPUT].shape[1],
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
        scores: Selection accuracy of every rule on the pool.
        weight: Video weight of the weighted rule, chosen on the pool.
        mlp: The learned rule's model.
        mlp_epochs: Epochs of the learned rule's final fit (None when early-stopped).
        pool: ``"out-of-fold + validation"`` or ``"validation"``.
        groups: The pool's groups (subjects) and their sizes.
    """

    best: str
    scores: dict[str, float]
    weight: float
    mlp: keras.Model
    mlp_epochs: int | None
    pool: str
    groups: dict[str, int]

    def describe(self, rule: str | None = None) -> str:
        """A short text naming a rule and its chosen parameter, e.g. ``"weighted (w = 0.65)"``."""
        rule = rule or self.best
        if rule == "weighted":
            return f"weighted (w = {self.weight:.2f})"
        if rule == "learned" and self.mlp_epochs:
            return f"learned ({self.mlp_epochs} epochs)"
        return rule

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (everything but the model)."""
        return {
            "best": self.best,
            "scores": self.scores,
            "weight": self.weight,
            "mlp_epochs": self.mlp_epochs,
            "pool": self.pool,
            "groups": self.groups,
        }


def _pool_arrays(pool: Mapping[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    missing = {"video_probs", "other_probs", VIDEO_INPUT, SENSOR_INPUT, "labels", "groups"} - set(
        pool
    )
    if missing:
        raise ValueError(f"{name} lacks {sorted(missing)}")
    pv, po = _check_pair(pool["video_probs"], pool["other_probs"])
    feats = _check_features(pool, name)
    n, k = pv.shape
    if n == 0:
        raise ValueError(f"{name} is empty; cannot select a fusion rule")
    if feats[VIDEO_INPUT].shape[0] != n:
        raise ValueError(f"{name}: {feats[VIDEO_INPUT].shape[0]} embeddings for {n} probabilities")
    groups = np.asarray(pool["groups"]).astype(str)
    if groups.shape != (n,):
        raise ValueError(f"{name}: groups must be a vector of {n} entries, got {groups.shape}")
    return {
        "video_probs": pv,
        "other_probs": po,
        **feats,
        "labels": _check_labels(pool["labels"], n, k, f"{name} labels"),
        "groups": groups,
    }


def fuse_fixed(p_video: np.ndarray, p_other: np.ndarray, weight: float) -> dict[str, np.ndarray]:
    """Every rule but the learned one: ``{"sum", "product", "max", "weighted"}`` probabilities."""
    out = {rule: fn(p_video, p_other) for rule, fn in FUSION_RULES.items()}
    out["weighted"] = fuse_weighted(p_video, p_other, weight)
    return out


def select_fusion(
    pool: Mapping[str, np.ndarray],
    *,
    num_classes: int,
    train_features: Mapping[str, np.ndarray] | None = None,
    y_train: np.ndarray | None = None,
    max_epochs: int = 200,
    hidden: int = 256,
    seed: int = 0,
) -> FusionSelection:
    """Chooses the fusion of a video stream with a second stream without looking at a test split.

    ``pool`` holds predictions that no model in the streams was fitted on: out-of-fold
    predictions on the training subjects (from models trained with those subjects held out)
    pooled with the validation split, grouped by subject (``groups``). Every rule's single free
    parameter is chosen on the pool and its score is the pool accuracy at that choice:

    * ``sum``, ``product``, ``max``: no parameter;
    * ``weighted``: the video weight (:func:`choose_fusion_weight` on the pool);
    * ``learned``: the MLP is trained leaving one group out at a time for ``max_epochs`` epochs;
      the epoch count with the best pooled held-out accuracy is chosen, and that accuracy is the
      rule's score. The final MLP is trained on the whole pool for that many epochs.

    With a single group (only a validation subject, no out-of-fold runs), leaving a group out is
    impossible: the MLP is then trained on ``train_features`` (the training split, which the
    trunks have fitted) and early-stopped on the pool, as older versions did, and the pool is
    reported as ``"validation"``.

    Args:
        pool: ``{"video_probs": (N, K), "other_probs": (N, K), "video_embedding": (N, Dv),
            "sensor_embedding": (N, Ds), "labels": (N,), "groups": (N,)}``; the
            ``"sensor_embedding"`` key holds the second stream's embedding (generated sensor,
            real sensor or a control head's).
        num_classes: Number of classes.
        train_features: Training-split features, used only with a single group.
        y_train: Their labels.
        max_epochs: Epochs of the MLP's curves (and the early-stopping limit with one group).
        hidden: Width of the MLP's hidden layer.
        seed: Seed of the MLP fits.

    Returns:
        A :class:`FusionSelection`.

    Raises:
        ValueError: On inconsistent arrays, or a single group without training features.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 3, 60)
        >>> pv = np.eye(3)[y] * 0.5 + 0.5 / 3
        >>> pool = {"video_probs": pv, "other_probs": np.full((60, 3), 1 / 3), "labels": y,
        ...         "video_embedding": pv, "sensor_embedding": rng.normal(size=(60, 2)),
        ...         "groups": np.repeat(["a", "b", "c"], 20)}
        >>> choice = select_fusion(pool, num_classes=3, max_epochs=3)
        >>> choice.best, choice.scores["sum"]
        ('sum', 1.0)
    """
    data = _pool_arrays(pool, "pool")
    y, groups = data["labels"], data["groups"]
    names = sorted(set(groups.tolist()))
    weight = choose_fusion_weight(data["video_probs"], data["other_probs"], y)
    fixed = fuse_fixed(data["video_probs"], data["other_probs"], weight)
    scores = {rule: float(np.mean(np.argmax(p, axis=1) == y)) for rule, p in fixed.items()}
    feats = {VIDEO_INPUT: data[VIDEO_INPUT], SENSOR_INPUT: data[SENSOR_INPUT]}
    kw = {"num_classes": num_classes, "hidden": hidden, "seed": seed}
    if len(names) >= 2:
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
        pool_name = "out-of-fold + validation"
    else:
        if train_features is None or y_train is None:
            raise ValueError(
                "a pool with one group needs train_features and y_train for the learned rule"
            )
        mlp = fit_fusion_mlp(train_features, y_train, feats, y, epochs=max_epochs, **kw)
        p = np.asarray(mlp.predict(feats, verbose=0))
        scores["learned"] = float(np.mean(np.argmax(p, axis=1) == y))
        epochs = None
        pool_name = "validation"
    best = max(RULE_ORDER, key=lambda r: (scores[r], -RULE_ORDER.index(r)))
    logger.info(
        "fusion chosen on %d %s samples (%d groups): %s, scores %s",
        len(y),
        pool_name,
        len(names),
        best,
        {r: round(s, 4) for r, s in scores.items()},
    )
    return FusionSelection(
        best=best,
        scores={r: scores[r] for r in RULE_ORDER},
        weight=weight,
        mlp=mlp,
        mlp_epochs=epochs,
        pool=pool_name,
        groups={g: int(np.sum(groups == g)) for g in names},
    )


def apply_fusion(
    selection: FusionSelection,
    p_video: np.ndarray,
    p_other: np.ndarray,
    features: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Every rule of ``selection`` applied to new predictions: ``{rule: (N, K)}`` plus ``"best"``.

    Example:
        >>> out = apply_fusion(choice, p_video, p_gen, feats)  # doctest: +SKIP
        >>> sorted(out)  # doctest: +SKIP
        ['best', 'learned', 'max', 'product', 'sum', 'weighted']
    """
    import keras

    out = fuse_fixed(p_video, p_other, selection.weight)
    feats = _check_features(features, "features")
    out["learned"] = np.asarray(
        keras.ops.convert_to_numpy(selection.mlp(feats, training=False)), dtype=np.float64
    )
    out["best"] = out[selection.best]
    return out
