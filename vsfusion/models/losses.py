"""Classification loss and accuracy that take hard labels or soft (mixed-up) targets.

The classifier stages feed integer labels ``(B,)`` for validation and, with mixup, soft targets
``(B, K)`` for training. :func:`soft_target_crossentropy` and :func:`top1_accuracy` accept both,
so one compiled model serves both loaders. Label smoothing mixes the target with the uniform
distribution: ``t' = (1 - eps) * t + eps / K`` (Szegedy et al., 2016).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["SoftTargetCrossentropy", "classification_loss", "top1_accuracy"]


def _as_distribution(y_true: Any, num_classes: int) -> Any:
    """Integer labels ``(B,)`` / ``(B, 1)`` to one-hot ``(B, K)``; soft targets pass through."""
    if len(y_true.shape) == 2 and y_true.shape[-1] == num_classes:
        return ops.cast(y_true, "float32")
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    return ops.one_hot(labels, num_classes)


@keras.saving.register_keras_serializable(package="vsfusion")
class SoftTargetCrossentropy(keras.losses.Loss):
    """Cross-entropy of softmax probabilities against hard labels or soft targets, with smoothing.

    Args:
        label_smoothing: ``eps`` in ``[0, 1)``; 0 is plain cross-entropy.
        name: Loss name.

    Example:
        >>> import numpy as np
        >>> loss = SoftTargetCrossentropy(label_smoothing=0.0)
        >>> p = np.array([[0.5, 0.25, 0.25]], "float32")
        >>> round(float(loss(np.array([0]), p)), 4), round(float(loss(np.array([[1.0, 0, 0]]), p)), 4)
        (0.6931, 0.6931)
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "soft_target_crossentropy"):
        super().__init__(name=name)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        k = int(y_pred.shape[-1])
        target = _as_distribution(y_true, k)
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / k
        probs = ops.clip(y_pred, keras.config.epsilon(), 1.0)
        return -ops.sum(target * ops.log(probs), axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {"label_smoothing": self.label_smoothing, "name": self.name}


@keras.saving.register_keras_serializable(package="vsfusion")
def top1_accuracy(y_true: Any, y_pred: Any) -> Any:
    """Per-sample 1.0/0.0: is the arg-max of ``y_pred`` the (arg-max of the) target?"""
    k = int(y_pred.shape[-1])
    if len(y_true.shape) == 2 and y_true.shape[-1] == k:
        labels = ops.argmax(y_true, axis=-1)
    else:
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    hit = ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), ops.cast(labels, "int32"))
    return ops.cast(hit, "float32")


def classification_loss(label_smoothing: float = 0.0) -> tuple[Any, list[Any]]:
    """``(loss, metrics)`` for ``model.compile`` of a softmax classifier; the metric logs as
    ``accuracy`` (``val_accuracy`` on validation), whatever the target format."""
    metric = keras.metrics.MeanMetricWrapper(top1_accuracy, name="accuracy")
    return SoftTargetCrossentropy(label_smoothing), [metric]
