"""Sensor trunks: InceptionTime, and per-channel normalisation statistics for it.

InceptionTime is the network of Ismail Fawaz et al., "InceptionTime: Finding AlexNet for Time
Series Classification" (Data Mining and Knowledge Discovery, 2020): a stack of inception modules
(a 1x1 bottleneck, parallel wide 1D convolutions, and a max-pool + 1x1 branch, concatenated, then
BatchNorm and ReLU) with a residual shortcut every three modules, then global average pooling.

Raw sensor windows are fed to the model; normalisation lives in the model as a
``keras.layers.Normalization`` layer (``"sensor_norm"``) whose statistics come from the training
split (:func:`fit_normalization`), so a saved model carries them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import keras
import numpy as np
from keras import layers

from vsfusion.models.heads import build_classifier, build_classifier_head

__all__ = [
    "SegmentPooling1D",
    "StatisticsPooling1D",
    "build_inception_time",
    "fit_normalization",
]

logger = logging.getLogger(__name__)


def _inception_module(
    x: keras.KerasTensor,
    *,
    filters: int,
    kernel_sizes: Sequence[int],
    bottleneck: int,
    name: str,
) -> keras.KerasTensor:
    """One inception module: bottleneck, parallel convolutions, pool branch, concat, BN, ReLU."""
    if bottleneck and x.shape[-1] > 1:
        z = layers.Conv1D(bottleneck, 1, padding="same", use_bias=False, name=f"{name}_bottleneck")(
            x
        )
    else:
        z = x
    branches = [
        layers.Conv1D(filters, int(k), padding="same", use_bias=False, name=f"{name}_conv{k}")(z)
        for k in kernel_sizes
    ]
    pool = layers.MaxPooling1D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    branches.append(
        layers.Conv1D(filters, 1, padding="same", use_bias=False, name=f"{name}_pool_conv")(pool)
    )
    x = layers.Concatenate(axis=-1, name=f"{name}_concat")(branches)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _shortcut(residual: keras.KerasTensor, x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """Residual connection: 1x1 conv + BN projection of ``residual``, added to ``x``, ReLU."""
    s = layers.Conv1D(x.shape[-1], 1, padding="same", use_bias=False, name=f"{name}_conv")(residual)
    s = layers.BatchNormalization(name=f"{name}_bn")(s)
    x = layers.Add(name=f"{name}_add")([s, x])
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _segment_spans(steps: int, segments: int) -> list[tuple[int, int]]:
    """``segments`` consecutive spans ``[floor(k * steps / segments), floor((k + 1) * ...))``."""
    bounds = [k * steps // segments for k in range(segments + 1)]
    return list(zip(bounds, bounds[1:], strict=False))


@keras.saving.register_keras_serializable(package="vsfusion")
class SegmentPooling1D(layers.Layer):
    """Average ``(B, steps, C)`` over ``segments`` equal spans of time and concatenate:
    ``(B, segments * C)``, segment by segment. Span ``k`` covers steps
    ``[floor(k * steps / segments), floor((k + 1) * steps / segments))``.

    Example:
        >>> x = np.arange(6, dtype="float32").reshape(1, 6, 1)
        >>> np.asarray(SegmentPooling1D(3)(x)).tolist()
        [[0.5, 2.5, 4.5]]
    """

    def __init__(self, segments: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.segments = int(segments)

    def call(self, x: Any) -> Any:
        spans = _segment_spans(int(x.shape[1]), self.segments)
        parts = [keras.ops.mean(x[:, lo:hi], axis=1) for lo, hi in spans]
        return keras.ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (input_shape[0], self.segments * input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "segments": self.segments}


@keras.saving.register_keras_serializable(package="vsfusion")
class StatisticsPooling1D(layers.Layer):
    """Per-channel mean, standard deviation, minimum and maximum of ``(B, steps, C)``, over the
    whole sequence and over ``segments`` equal spans of it: ``(B, 4 * C * (1 + segments))``,
    ordered by part (whole first), then statistic, then channel.

    Fed the normalised input, it hands the classifier the summary statistics that classical
    sensor pipelines are built on, next to the learned features (a wide-and-deep design).

    Example:
        >>> x = np.array([[[0.0], [2.0], [4.0], [6.0]]], dtype="float32")
        >>> [round(float(v), 3) for v in np.asarray(StatisticsPooling1D(segments=0)(x))[0]]
        [3.0, 2.236, 0.0, 6.0]
    """

    def __init__(self, segments: int = 3, **kwargs: Any):
        super().__init__(**kwargs)
        self.segments = int(segments)

    def call(self, x: Any) -> Any:
        steps = int(x.shape[1])
        spans = [(0, steps), *(_segment_spans(steps, self.segments) if self.segments else [])]
        parts = []
        for lo, hi in spans:
            p = x[:, lo:hi]
            mean = keras.ops.mean(p, axis=1)
            std = keras.ops.sqrt(keras.ops.mean(keras.ops.square(p - mean[:, None]), axis=1) + 1e-6)
            parts += [mean, std, keras.ops.min(p, axis=1), keras.ops.max(p, axis=1)]
        return keras.ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (input_shape[0], 4 * (1 + self.segments) * input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "segments": self.segments}


def build_inception_time(
    input_shape: Sequence[int | None] = (None, 6),
    num_classes: int | None = None,
    dropout: float = 0.0,
    depth: int = 6,
    filters: int = 32,
    kernel_sizes: Sequence[int] = (10, 20, 40),
    bottleneck: int = 32,
    use_residual: bool = True,
    normalization: tuple[Any, Any] | None = None,
    segments: int = 1,
    stats: bool = False,
    name: str = "inception_time",
    input_name: str = "sensor",
) -> keras.Model:
    """Builds the InceptionTime trunk, or the trunk plus a softmax classifier head.

    Args:
        input_shape: ``(steps, channels)``, channels last; ``steps`` may be ``None``.
        num_classes: Without it the trunk is returned: a model named ``name`` with input
            ``"sensor"`` and output layer ``"embedding"`` of width ``(len(kernel_sizes) + 1) *
            filters`` (128 by default). With it, the trunk (renamed ``f"{name}_trunk"``) and a
            classifier head (``f"{name}_head"``) are composed into one model named ``name``.
        dropout: Dropout rate of the classifier head (unused without ``num_classes``).
        depth: Number of inception modules.
        filters: Filters of each branch.
        kernel_sizes: Kernel sizes of the parallel convolutions.
        bottleneck: Filters of the 1x1 bottleneck (0 disables it; it is also skipped when the
            module input has a single channel, as in the reference implementation).
        use_residual: Add a residual shortcut every three modules.
        normalization: Optional ``(mean, variance)`` per-channel arrays, e.g. from
            :func:`fit_normalization`; adds a ``keras.layers.Normalization`` named
            ``"sensor_norm"`` right after the input.
        segments: Pool the feature sequence over this many equal time segments and concatenate
            them (the embedding is ``segments`` times wider). 1 is InceptionTime's global average
            pooling, which cannot tell "sit down, then stand up" from the reverse; 3 keeps the
            order of beginning, middle and end. Needs a known number of steps.
        stats: Also pool the normalised input's per-channel mean, std, min and max, over the
            whole recording and each segment (:class:`StatisticsPooling1D`), and concatenate them
            to the embedding (``4 * channels * (1 + segments)`` wider; with ``segments=1``, over
            the whole recording only). Needs a known number of steps.
        name: Name of the returned model.
        input_name: Name of the input (the dict key of the stream in a batch).

    Returns:
        A functional ``keras.Model``.

    Raises:
        ValueError: If an argument is malformed.

    Example:
        >>> windows = np.random.default_rng(0).normal(size=(8, 128, 6)).astype("float32")
        >>> trunk = build_inception_time((128, 6), normalization=fit_normalization(windows))
        >>> trunk.output_shape
        (None, 128)
    """
    shape = tuple(input_shape)
    if len(shape) != 2 or not isinstance(shape[1], (int, np.integer)) or shape[1] < 1:
        raise ValueError(
            f"InceptionTime input_shape must be (steps, channels) with integer channels, "
            f"got {shape!r}"
        )
    if shape[0] is not None and int(shape[0]) < 1:
        raise ValueError(f"InceptionTime input_shape needs at least 1 step, got {shape!r}")
    if depth < 1 or filters < 1 or not kernel_sizes:
        raise ValueError("depth, filters and kernel_sizes must be positive / non-empty")
    if segments < 1 or (
        (segments > 1 or stats) and (shape[0] is None or int(shape[0]) < max(segments, 2))
    ):
        raise ValueError(
            f"segments={segments} (stats={stats}) needs a known number of steps of at least "
            f"{max(segments, 2)}, "
            f"got input_shape {shape!r}"
        )
    channels = int(shape[1])
    trunk_name = name if num_classes is None else f"{name}_trunk"

    inputs = keras.Input(shape=(shape[0], channels), name=input_name)
    x = inputs
    if normalization is not None:
        mean, variance = (np.asarray(a, dtype="float64").reshape(-1) for a in normalization)
        if mean.shape != (channels,) or variance.shape != (channels,):
            raise ValueError(
                f"normalization mean/variance must have {channels} values, "
                f"got {mean.shape} and {variance.shape}"
            )
        x = layers.Normalization(
            axis=-1, mean=mean.tolist(), variance=variance.tolist(), name="sensor_norm"
        )(x)

    normalised = x
    residual = x
    for d in range(depth):
        x = _inception_module(
            x,
            filters=filters,
            kernel_sizes=kernel_sizes,
            bottleneck=bottleneck,
            name=f"inception_{d}",
        )
        if use_residual and d % 3 == 2:
            x = _shortcut(residual, x, name=f"shortcut_{d}")
            residual = x
    pool_name = "deep_pool" if stats else "embedding"
    if segments == 1:
        x = layers.GlobalAveragePooling1D(name=pool_name)(x)
    else:
        x = SegmentPooling1D(segments, name=pool_name)(x)
    if stats:
        summary = StatisticsPooling1D(segments if segments > 1 else 0, name="stats_pool")(
            normalised
        )
        x = layers.Concatenate(name="embedding")([x, summary])
    trunk = keras.Model({input_name: inputs}, x, name=trunk_name)
    logger.debug(
        "built InceptionTime %s for %s: %d params", trunk_name, shape, trunk.count_params()
    )

    if num_classes is None:
        return trunk
    head = build_classifier_head(x.shape[-1], num_classes, dropout=dropout, name=f"{name}_head")
    return build_classifier(trunk, head, name=name)


def _as_array(item: Any) -> np.ndarray:
    """A sensor array from an array, an ``(x, y)`` batch tuple or an ``{"sensor": ...}`` dict."""
    if isinstance(item, tuple):
        item = item[0]
    if isinstance(item, dict):
        if "sensor" not in item:
            raise ValueError(f"batch dict has no 'sensor' key (keys: {sorted(item)})")
        item = item["sensor"]
    return np.asarray(item)


def fit_normalization(arrays_or_batches: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance over every time step of the training sensor data.

    Statistics are accumulated in float64 (Chan et al.'s pairwise combination of means and sums
    of squared deviations), one array at a time, so a loader can be streamed through.

    Args:
        arrays_or_batches: One array ``(..., channels)`` (e.g. ``(N, steps, channels)``), or an
            iterable of such arrays, of ``(x, y)`` batches or of ``{"sensor": array}`` dicts.

    Returns:
        ``(mean, variance)``, float64 arrays of shape ``(channels,)`` (population variance).

    Raises:
        ValueError: If there is no data, the channel counts differ, or a value is NaN or inf.

    Example:
        >>> mean, var = fit_normalization(np.random.rand(10, 50, 6).astype("float32"))
        >>> mean.shape, var.shape
        ((6,), (6,))
    """
    if isinstance(arrays_or_batches, (np.ndarray, dict, tuple)):
        items: Iterable[Any] = [arrays_or_batches]
    else:
        items = arrays_or_batches
    count = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None
    for i, item in enumerate(items):
        arr = _as_array(item)
        if arr.ndim < 1 or arr.size == 0:
            continue
        flat = arr.reshape(-1, arr.shape[-1]).astype(np.float64)
        if not np.all(np.isfinite(flat)):
            raise ValueError(f"sensor data item {i} contains NaN or infinite values")
        if mean is not None and flat.shape[1] != mean.shape[0]:
            raise ValueError(
                f"sensor data item {i} has {flat.shape[1]} channels, earlier ones {mean.shape[0]}"
            )
        n_b = flat.shape[0]
        mean_b = flat.mean(axis=0)
        m2_b = ((flat - mean_b) ** 2).sum(axis=0)
        if mean is None or m2 is None:
            count, mean, m2 = n_b, mean_b, m2_b
            continue
        total = count + n_b
        delta = mean_b - mean
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + delta**2 * (count * n_b / total)
        count = total
    if mean is None or m2 is None or count == 0:
        raise ValueError("fit_normalization got no sensor data")
    variance = m2 / count
    logger.debug("sensor normalisation over %d steps: mean %s variance %s", count, mean, variance)
    return mean, variance
