"""Fusion rules as Keras layers, so a deployed ``.keras`` file holds the chosen decision.

:class:`WeightedProbabilityFusion` is the in-graph twin of the fixed rules of
:mod:`vsfusion.fusion` (``sum``, ``weighted``, ``product``, ``max``): it takes a dict of class
probabilities keyed by stream name and returns the fused probabilities, with the rule and the
weights in its config. It uses ``keras.ops`` only (TensorFlow, JAX and PyTorch backends) and is
registered as serialisable, so ``keras.saving.load_model`` restores it after
``import vsfusion.models``.

Example:
    >>> import numpy as np
    >>> layer = WeightedProbabilityFusion(weights={"video": 0.75, "sensor": 0.25})
    >>> out = layer({"video": np.array([[0.6, 0.3, 0.1]], "float32"),
    ...              "sensor": np.array([[0.2, 0.5, 0.3]], "float32")})
    >>> keras.ops.convert_to_numpy(out).astype(float).round(3)
    array([[0.5 , 0.35, 0.15]])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

__all__ = ["FUSION_LAYER_RULES", "WeightedProbabilityFusion"]

#: The rules :class:`WeightedProbabilityFusion` computes.
FUSION_LAYER_RULES: tuple[str, ...] = ("sum", "weighted", "product", "max")


@keras.saving.register_keras_serializable(package="vsfusion")
class WeightedProbabilityFusion(keras.layers.Layer):
    """Fuses the class probabilities of named streams by a fixed rule.

    The same numbers as :mod:`vsfusion.fusion`'s numpy rules (computed in the layer's dtype,
    float32 by default):

    * ``"weighted"``: ``sum_s weights[s] * p[s]``;
    * ``"sum"``: the mean of the streams;
    * ``"product"``: ``softmax(sum_s log(p[s] + eps))``;
    * ``"max"``: the elementwise maximum;

    each renormalised so rows sum to 1 (a row summing to zero becomes uniform).

    Args:
        weights: ``{stream name: weight}``, each in ``[0, 1]``, summing to 1. The keys name the
            streams (the keys of the input dict); the values are used by the ``"weighted"``
            rule only.
        rule: One of ``"sum"``, ``"weighted"``, ``"product"``, ``"max"``.
        eps: Positive constant added before the logarithm of the product rule.
        **kwargs: Base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``{stream name: (B, K) probabilities}`` with every stream of ``weights``
            (others are ignored).

    Returns:
        ``(B, K)`` fused probabilities.

    Raises:
        ValueError: On an unknown rule, weights off the simplex, or a missing stream at call.

    Example:
        >>> layer = WeightedProbabilityFusion(weights={"video": 0.5, "sensor": 0.5}, rule="max")
        >>> layer.get_config()["rule"]
        'max'
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        rule: str = "weighted",
        eps: float = 1e-12,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if rule not in FUSION_LAYER_RULES:
            raise ValueError(
                f"WeightedProbabilityFusion: unknown rule {rule!r}; expected one of "
                f"{list(FUSION_LAYER_RULES)}"
            )
        if not isinstance(weights, Mapping) or not weights:
            raise ValueError(
                "WeightedProbabilityFusion: weights must be a non-empty mapping "
                f"{{stream name: weight}}, got {weights!r}"
            )
        clean = {}
        for stream, value in weights.items():
            w = float(value)
            if not isinstance(stream, str) or not stream or not math.isfinite(w) or not 0 <= w <= 1:
                raise ValueError(
                    f"WeightedProbabilityFusion: weight of stream {stream!r} must be in [0, 1], "
                    f"got {value!r}"
                )
            clean[stream] = w
        if abs(sum(clean.values()) - 1.0) > 1e-6:
            raise ValueError(
                f"WeightedProbabilityFusion: weights must sum to 1, got {clean} summing to "
                f"{sum(clean.values()):.6g}"
            )
        if not eps > 0:
            raise ValueError(f"WeightedProbabilityFusion: eps must be positive, got {eps!r}")
        self.stream_weights = clean
        self.rule = rule
        self.eps = float(eps)

    @property
    def streams(self) -> tuple[str, ...]:
        """The fused streams' names, in order."""
        return tuple(self.stream_weights)

    def _stream_inputs(self, inputs: Any) -> list[Any]:
        if not isinstance(inputs, Mapping):
            raise ValueError(
                f"{self.name}: call with a dict {{stream name: probabilities}} of the streams "
                f"{list(self.streams)}, got {type(inputs).__name__}"
            )
        missing = [s for s in self.streams if s not in inputs]
        if missing:
            raise ValueError(
                f"{self.name}: the input dict lacks the stream(s) {missing}; it has "
                f"{sorted(inputs)}"
            )
        return [inputs[s] for s in self.streams]

    def call(self, inputs: Mapping[str, Any]) -> Any:
        ps = [ops.cast(p, self.compute_dtype) for p in self._stream_inputs(inputs)]
        if self.rule == "weighted":
            total = ps[0] * self.stream_weights[self.streams[0]]
            for stream, p in zip(self.streams[1:], ps[1:], strict=True):
                total = total + p * self.stream_weights[stream]
        elif self.rule == "sum":
            total = ps[0]
            for p in ps[1:]:
                total = total + p
            total = total * (1.0 / len(ps))
        elif self.rule == "max":
            total = ps[0]
            for p in ps[1:]:
                total = ops.maximum(total, p)
        else:  # product, in log space
            logits = ops.log(ps[0] + self.eps)
            for p in ps[1:]:
                logits = logits + ops.log(p + self.eps)
            logits = logits - ops.max(logits, axis=-1, keepdims=True)
            total = ops.exp(logits)
        row = ops.sum(total, axis=-1, keepdims=True)
        positive = row > 0
        safe = ops.where(positive, row, ops.ones_like(row))
        uniform = ops.ones_like(total) / ops.cast(ops.shape(total)[-1], total.dtype)
        return ops.where(positive, total / safe, uniform)

    def compute_output_shape(self, input_shape: Mapping[str, tuple]) -> tuple:
        return tuple(input_shape[self.streams[0]])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"weights": dict(self.stream_weights), "rule": self.rule, "eps": self.eps})
        return config
