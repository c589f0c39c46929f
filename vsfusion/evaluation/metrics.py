"""Classification metrics and the paired McNemar test.

Labels are integer class indices ``0 .. K-1``; ``probs`` are ``(N, K)`` class probabilities (or
any scores: only their order matters) and ``pred`` are predicted indices. Every function checks
its inputs and raises :class:`ValueError` with a clear message on bad shapes or labels.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 1, 2, 2])
    >>> probs = np.array([[.7, .2, .1], [.1, .3, .6], [.2, .2, .6], [.5, .1, .4]])
    >>> summary = classification_summary(y, probs, ["a", "b", "c"])
    >>> summary["top1"], summary["n"]
    (0.5, 4)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

__all__ = [
    "classification_summary",
    "confusion",
    "macro_f1",
    "mcnemar_exact",
    "per_class_recall_change",
    "per_class_report",
    "pooled_mcnemar",
    "top_k_accuracy",
]

logger = logging.getLogger(__name__)


def _labels(y: object, name: str, num_classes: int | None = None) -> np.ndarray:
    """Returns ``y`` as an int64 vector, checking it is 1-D, integral and in range."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.mod(arr, 1) == 0):
            raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} holds negative class indices (min {arr.min()})")
    if num_classes is not None and arr.size and arr.max() >= num_classes:
        raise ValueError(f"{name} holds class index {arr.max()}, outside [0, {num_classes})")
    return arr


def _pair(y: object, pred: object, num_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Checks a label/prediction pair of equal length."""
    if num_classes is not None and int(num_classes) < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes!r}")
    yt = _labels(y, "y", num_classes)
    yp = _labels(pred, "pred", num_classes)
    if yt.shape != yp.shape:
        raise ValueError(f"y and pred differ in length: {yt.shape[0]} vs {yp.shape[0]}")
    return yt, yp


def top_k_accuracy(y: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Fraction of samples whose true class is among the ``k`` highest-scoring classes.

    Ties between scores are broken towards the lower class index (as ``argmax`` does), so
    ``top_k_accuracy(y, probs, 1)`` equals the accuracy of ``probs.argmax(1)``. A ``k`` of at
    least ``K`` gives 1.0.

    Args:
        y: True labels, int ``(N,)``.
        probs: Scores, ``(N, K)``.
        k: Number of top classes, at least 1.

    Returns:
        The top-``k`` accuracy in ``[0, 1]``.

    Raises:
        ValueError: On empty input, mismatched shapes, labels outside ``[0, K)`` or ``k < 1``.

    Example:
        >>> top_k_accuracy([2, 0], np.array([[.5, .3, .2], [.1, .6, .3]]), k=2)
        0.0
        >>> top_k_accuracy([1, 2], np.array([[.5, .3, .2], [.1, .6, .3]]), k=2)
        1.0
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D (N, K), got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contains NaN or infinite values")
    yt = _labels(y, "y", p.shape[1])
    if yt.shape[0] != p.shape[0]:
        raise ValueError(f"y has {yt.shape[0]} labels but probs has {p.shape[0]} rows")
    if yt.size == 0:
        raise ValueError("cannot compute accuracy on an empty set")
    if int(k) < 1:
        raise ValueError(f"k must be at least 1, got {k!r}")
    k = min(int(k), p.shape[1])
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == yt[:, None], axis=1)))


def macro_f1(y: np.ndarray, pred: np.ndarray, num_classes: int) -> float:
    """Macro-averaged F1 over the classes that occur in ``y`` or ``pred``.

    Classes absent from both the labels and the predictions (possible on small test splits)
    are left out of the average rather than counted as F1 = 0; a class that is predicted but
    never true counts with F1 = 0. This is scikit-learn's ``f1_score(y, pred,
    average="macro")``; ``num_classes`` is used to check the label range.

    Args:
        y: True labels, int ``(N,)``.
        pred: Predicted labels, int ``(N,)``.
        num_classes: Number of classes ``K``.

    Returns:
        Macro F1 in ``[0, 1]``.

    Raises:
        ValueError: On empty input, mismatched lengths or labels outside ``[0, K)``.

    Example:
        >>> round(macro_f1([0, 0, 1, 1], [0, 1, 1, 1], num_classes=3), 4)
        0.7333
    """
    yt, yp = _pair(y, pred, num_classes)
    if yt.size == 0:
        raise ValueError("cannot compute macro-F1 on an empty set")
    present = np.union1d(yt, yp)
    return float(f1_score(yt, yp, labels=present, average="macro", zero_division=0))


def classification_summary(
    y: np.ndarray, probs: np.ndarray, class_names: Sequence[str]
) -> dict[str, float | int]:
    """Top-1, top-5 (``k = min(5, K)``), macro-F1 and sample count for one stream.

    Args:
        y: True labels, int ``(N,)``.
        probs: Class probabilities, ``(N, K)`` with ``K == len(class_names)``.
        class_names: Class names, one per column of ``probs``.

    Returns:
        ``{"top1": float, "top5": float, "macro_f1": float, "n": int}``.

    Raises:
        ValueError: If ``probs`` does not have one column per class name, or on bad input.

    Example:
        >>> s = classification_summary([0, 1], np.array([[.9, .1], [.8, .2]]), ["a", "b"])
        >>> s["top1"], s["top5"], s["n"]
        (0.5, 1.0, 2)
    """
    p = np.asarray(probs, dtype=np.float64)
    num_classes = len(class_names)
    if p.ndim != 2 or p.shape[1] != num_classes:
        raise ValueError(
            f"probs must have shape (N, {num_classes}) for {num_classes} class names, got {p.shape}"
        )
    top1 = top_k_accuracy(y, p, 1)
    return {
        "top1": top1,
        "top5": top_k_accuracy(y, p, min(5, num_classes)),
        "macro_f1": macro_f1(y, np.argmax(p, axis=1), num_classes),
        "n": int(p.shape[0]),
    }


def per_class_report(y: np.ndarray, pred: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support for every class.

    Every class in ``class_names`` gets a row, including classes absent from ``y`` (support
    0, recall 0) or never predicted (precision 0): undefined ratios are reported as 0.

    Args:
        y: True labels, int ``(N,)``.
        pred: Predicted labels, int ``(N,)``.
        class_names: Class names; row ``i`` describes class index ``i``.

    Returns:
        A DataFrame indexed by class name (index name ``"class"``) with float columns
        ``precision``, ``recall``, ``f1`` and int column ``support``.

    Raises:
        ValueError: On mismatched lengths or labels outside ``[0, len(class_names))``.

    Example:
        >>> per_class_report([0, 0, 1], [0, 1, 1], ["a", "b", "c"])["support"].tolist()
        [2, 1, 0]
    """
    num_classes = len(class_names)
    yt, yp = _pair(y, pred, num_classes)
    labels = np.arange(num_classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        yt, yp, labels=labels, average=None, zero_division=0
    )
    frame = pd.DataFrame(
        {
            "precision": np.asarray(precision, dtype=np.float64),
            "recall": np.asarray(recall, dtype=np.float64),
            "f1": np.asarray(f1, dtype=np.float64),
            "support": np.asarray(support, dtype=np.int64),
        },
        index=pd.Index([str(c) for c in class_names], name="class"),
    )
    return frame


def confusion(y: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion matrix with rows = true class and columns = predicted class.

    Args:
        y: True labels, int ``(N,)``.
        pred: Predicted labels, int ``(N,)``.
        num_classes: Number of classes ``K``; absent classes give zero rows/columns.

    Returns:
        An int64 ``(K, K)`` count matrix.

    Raises:
        ValueError: On mismatched lengths or labels outside ``[0, K)``.

    Example:
        >>> confusion([0, 1, 1], [0, 0, 1], num_classes=3)
        array([[1, 0, 0],
               [1, 1, 0],
               [0, 0, 0]])
    """
    yt, yp = _pair(y, pred, num_classes)
    if yt.size == 0:
        return np.zeros((num_classes, num_classes), dtype=np.int64)
    return confusion_matrix(yt, yp, labels=np.arange(num_classes)).astype(np.int64)


def mcnemar_exact(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, float | int]:
    """Exact (binomial) two-sided McNemar test comparing two classifiers on the same samples.

    ``b`` counts samples where A is right and B is wrong, ``c`` where A is wrong and B is
    right. Under the null hypothesis (equal error rates) ``b ~ Bin(b + c, 1/2)`` and the
    two-sided p-value is ``min(1, 2 * P(X <= min(b, c)))``, which equals
    ``scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue``. With ``b + c == 0`` the
    classifiers never disagree on correctness and ``p = 1.0``.

    Args:
        y: True labels, int ``(N,)``.
        pred_a: Predictions of classifier A (e.g. video only), int ``(N,)``.
        pred_b: Predictions of classifier B (e.g. a fusion), int ``(N,)``.

    Returns:
        ``{"b": int, "c": int, "n": int, "p_value": float}``.

    Raises:
        ValueError: On mismatched lengths or non-integer labels.

    Example:
        >>> y = np.zeros(12, dtype=int)
        >>> a = np.r_[np.zeros(10), np.ones(2)].astype(int)   # right on the first 10
        >>> b = np.r_[np.ones(10), np.zeros(2)].astype(int)   # right on the last 2
        >>> r = mcnemar_exact(y, a, b)
        >>> r["b"], r["c"], round(r["p_value"], 4)
        (10, 2, 0.0386)
    """
    yt = _labels(y, "y")
    pa = _labels(pred_a, "pred_a")
    pb = _labels(pred_b, "pred_b")
    if not yt.shape == pa.shape == pb.shape:
        raise ValueError(
            f"y, pred_a and pred_b differ in length: {yt.shape[0]}, {pa.shape[0]}, {pb.shape[0]}"
        )
    right_a = pa == yt
    right_b = pb == yt
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    p_value = _mcnemar_p(b, c)
    logger.debug("McNemar exact: b=%d c=%d p=%.4g", b, c, p_value)
    return {"b": b, "c": c, "n": int(yt.shape[0]), "p_value": p_value}


def _mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value of the discordant counts ``b`` and ``c``."""
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2.0 * stats.binom.cdf(min(b, c), b + c, 0.5)))


def pooled_mcnemar(groups: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Exact McNemar test on the discordant counts pooled over several groups (e.g. seeds).

    Each group is a ``(y, pred_a, pred_b)`` triple, e.g. one seed's test predictions of the two
    classifiers. The counts ``b`` (A right, B wrong) and ``c`` (A wrong, B right) are summed over
    the groups and tested as in :func:`mcnemar_exact`; summing is the same as testing the
    concatenation of all groups. Groups may share samples (every seed evaluates the same test
    set), so the pooled test treats each (seed, sample) pair as one paired observation.

    Args:
        groups: ``(y, pred_a, pred_b)`` triples of int label vectors; the three vectors of a
            triple have equal length, different triples may differ in length.

    Returns:
        ``{"b": int, "c": int, "n": int, "p_value": float, "n_groups": int,
        "per_group": [mcnemar_exact dict, ...]}`` where ``b``, ``c`` and ``n`` are sums over
        the groups and ``p_value`` is the exact test on the pooled ``b`` and ``c``.

    Raises:
        ValueError: On no groups, a group that is not a triple, or a triple of unequal lengths
            or non-integer labels.

    Example:
        >>> y = np.zeros(6, dtype=int)
        >>> a = np.array([0, 0, 0, 0, 0, 1])   # right on the first 5
        >>> b = np.array([1, 1, 0, 0, 0, 0])   # wrong on the first 2
        >>> r = pooled_mcnemar([(y, a, b), (y, a, b)])
        >>> r["b"], r["c"], r["n"], r["n_groups"], round(r["p_value"], 4)
        (4, 2, 12, 2, 0.6875)
    """
    triples = list(groups)
    if not triples:
        raise ValueError("pooled_mcnemar needs at least one (y, pred_a, pred_b) group")
    per_group = []
    for index, group in enumerate(triples):
        if isinstance(group, (str, bytes)) or len(group) != 3:
            raise ValueError(
                f"group {index} must be a (y, pred_a, pred_b) triple, got "
                f"{type(group).__name__} of length {len(group)}"
            )
        try:
            per_group.append(mcnemar_exact(*group))
        except ValueError as error:
            raise ValueError(f"group {index}: {error}") from None
    b = sum(int(r["b"]) for r in per_group)
    c = sum(int(r["c"]) for r in per_group)
    n = sum(int(r["n"]) for r in per_group)
    p_value = _mcnemar_p(b, c)
    logger.debug("pooled McNemar over %d groups: b=%d c=%d p=%.4g", len(per_group), b, c, p_value)
    return {
        "b": b,
        "c": c,
        "n": n,
        "p_value": p_value,
        "n_groups": len(per_group),
        "per_group": per_group,
    }


def per_class_recall_change(
    y: np.ndarray, pred_base: np.ndarray, pred_new: np.ndarray, num_classes: int
) -> np.ndarray:
    """Per-class recall of ``pred_new`` minus that of ``pred_base``.

    The recall of a class is the accuracy on the samples of that true class, so this is the
    per-class change in accuracy from the base to the new classifier.

    Args:
        y: True labels, int ``(N,)``.
        pred_base: Predictions of the reference classifier (e.g. video only), int ``(N,)``.
        pred_new: Predictions of the compared classifier (e.g. the best fusion), int ``(N,)``.
        num_classes: Number of classes ``K``.

    Returns:
        A float64 ``(K,)`` array of recall differences in ``[-1, 1]``; classes absent from ``y``
        (recall undefined) are NaN.

    Raises:
        ValueError: On mismatched lengths or labels outside ``[0, K)``.

    Example:
        >>> per_class_recall_change([0, 0, 1], [0, 1, 1], [0, 0, 0], num_classes=3)
        array([ 0.5, -1. ,  nan])
    """
    yt, base = _pair(y, pred_base, num_classes)
    _, new = _pair(yt, pred_new, num_classes)
    support = np.bincount(yt, minlength=num_classes).astype(np.float64)
    gained = (new == yt).astype(np.float64) - (base == yt).astype(np.float64)
    change = np.bincount(yt, weights=gained, minlength=num_classes)
    return np.divide(
        change, support, out=np.full(num_classes, np.nan, dtype=np.float64), where=support > 0
    )
