"""Tests for vsfusion.evaluation.metrics against hand-computed and scikit-learn/scipy values."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, top_k_accuracy_score

from vsfusion.evaluation.metrics import (
    classification_summary,
    confusion,
    macro_f1,
    mcnemar_exact,
    per_class_recall_change,
    per_class_report,
    pooled_mcnemar,
    top_k_accuracy,
)

PROBS = np.array(
    [
        [0.5, 0.3, 0.2],  # y=2: top-1 wrong, top-2 wrong, top-3 right
        [0.1, 0.6, 0.3],  # y=2: top-1 wrong, top-2 right
        [0.7, 0.2, 0.1],  # y=0: right
        [0.2, 0.5, 0.3],  # y=1: right
    ]
)
Y = np.array([2, 2, 0, 1])


def test_top_k_by_hand():
    assert top_k_accuracy(Y, PROBS, 1) == 0.5
    assert top_k_accuracy(Y, PROBS, 2) == 0.75
    assert top_k_accuracy(Y, PROBS, 3) == 1.0
    assert top_k_accuracy(Y, PROBS, 10) == 1.0  # k beyond K


def test_top_k_matches_sklearn():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(8), size=200)
    y = rng.integers(0, 8, size=200)
    for k in (1, 3, 5):
        expected = top_k_accuracy_score(y, probs, k=k, labels=np.arange(8))
        assert top_k_accuracy(y, probs, k) == pytest.approx(expected)


def test_top_1_ties_follow_argmax():
    probs = np.array([[0.4, 0.4, 0.2], [0.4, 0.4, 0.2]])
    assert top_k_accuracy([0, 1], probs, 1) == 0.5  # argmax picks class 0


@pytest.mark.parametrize(
    ("y", "probs", "k", "message"),
    [
        ([0, 1], np.ones((3, 2)) / 2, 1, "rows"),
        ([0, 2], np.ones((2, 2)) / 2, 1, "outside"),
        ([], np.ones((0, 2)), 1, "empty"),
        ([0], np.ones((1, 2)) / 2, 0, "k must"),
        ([0], np.ones(2) / 2, 1, "2-D"),
    ],
)
def test_top_k_bad_input(y, probs, k, message):
    with pytest.raises(ValueError, match=message):
        top_k_accuracy(y, probs, k)


def test_macro_f1_by_hand():
    # class 0: P=1, R=1/2, F1=2/3; class 1: P=2/3, R=1, F1=4/5 -> mean 11/15
    assert macro_f1([0, 0, 1, 1], [0, 1, 1, 1], num_classes=2) == pytest.approx(11 / 15)


def test_macro_f1_with_classes_absent_from_y():
    # class 3 is absent from y and pred: left out. class 2 is predicted but never true: F1 0.
    # class 0: F1 1; class 1: P=1, R=1/2, F1=2/3 -> (1 + 2/3 + 0) / 3 = 5/9
    y, pred = [0, 0, 1, 1], [0, 0, 1, 2]
    assert macro_f1(y, pred, num_classes=4) == pytest.approx(5 / 9)
    assert macro_f1(y, pred, num_classes=4) == pytest.approx(f1_score(y, pred, average="macro"))


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 6, size=300)
    pred = np.where(rng.random(300) < 0.6, y, rng.integers(0, 6, size=300))
    assert macro_f1(y, pred, 6) == pytest.approx(f1_score(y, pred, average="macro"))


def test_macro_f1_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        macro_f1([0, 1], [0], num_classes=2)
    with pytest.raises(ValueError, match="outside"):
        macro_f1([0, 1], [0, 5], num_classes=2)
    with pytest.raises(ValueError, match="integer"):
        macro_f1([0, 1], [0.5, 1.0], num_classes=2)


def test_classification_summary():
    summary = classification_summary(Y, PROBS, ["a", "b", "c"])
    assert set(summary) == {"top1", "top5", "macro_f1", "n"}
    assert summary["top1"] == 0.5
    assert summary["top5"] == 1.0  # k = min(5, 3)
    assert summary["n"] == 4
    # pred = [0, 1, 0, 1]: class 0 P=1/2 R=1 F1=2/3; class 1 P=1/2 R=1 F1=2/3; class 2 F1=0
    assert summary["macro_f1"] == pytest.approx(4 / 9)


def test_classification_summary_top5_with_many_classes():
    probs = np.tile(np.arange(7, 0, -1, dtype=float), (2, 1))  # ranking 0, 1, 2, ..., 6
    summary = classification_summary([4, 5], probs / probs.sum(1, keepdims=True), list("abcdefg"))
    assert summary["top5"] == 0.5  # class 4 is 5th, class 5 is 6th
    with pytest.raises(ValueError, match="class names"):
        classification_summary([0], probs[:1], ["a", "b"])


def test_per_class_report_by_hand():
    report = per_class_report([0, 0, 1, 1], [0, 1, 1, 1], ["walk", "run", "sit"])
    assert list(report.columns) == ["precision", "recall", "f1", "support"]
    assert list(report.index) == ["walk", "run", "sit"]
    np.testing.assert_allclose(report["precision"], [1.0, 2 / 3, 0.0])
    np.testing.assert_allclose(report["recall"], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(report["f1"], [2 / 3, 0.8, 0.0])
    assert report["support"].tolist() == [2, 2, 0]


def test_confusion_by_hand():
    cm = confusion([0, 1, 1, 2], [0, 0, 1, 1], num_classes=4)
    expected = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(confusion([], [], 2), np.zeros((2, 2), dtype=np.int64))


def _mcnemar_case(b, c, both_right=5, both_wrong=3):
    """Labels and predictions with exactly b (A right, B wrong) and c (A wrong, B right)."""
    n = b + c + both_right + both_wrong
    y = np.zeros(n, dtype=int)
    a_right = np.r_[np.ones(b), np.zeros(c), np.ones(both_right), np.zeros(both_wrong)]
    b_right = np.r_[np.zeros(b), np.ones(c), np.ones(both_right), np.zeros(both_wrong)]
    pred_a = np.where(a_right == 1, 0, 1)
    pred_b = np.where(b_right == 1, 0, 2)
    return y, pred_a, pred_b


def test_mcnemar_known_case():
    y, pred_a, pred_b = _mcnemar_case(10, 2)
    result = mcnemar_exact(y, pred_a, pred_b)
    assert (result["b"], result["c"], result["n"]) == (10, 2, 20)
    # 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096 = 79 / 2048
    assert result["p_value"] == pytest.approx(79 / 2048)
    assert result["p_value"] == pytest.approx(0.0386, abs=1e-4)
    assert result["p_value"] == pytest.approx(stats.binomtest(2, 12, 0.5).pvalue)
    swapped = mcnemar_exact(y, pred_b, pred_a)
    assert (swapped["b"], swapped["c"]) == (2, 10)
    assert swapped["p_value"] == pytest.approx(result["p_value"])


@pytest.mark.parametrize(("b", "c"), [(0, 0), (4, 4), (0, 1), (3, 7), (25, 11)])
def test_mcnemar_matches_scipy(b, c):
    result = mcnemar_exact(*_mcnemar_case(b, c))
    expected = 1.0 if b + c == 0 else stats.binomtest(min(b, c), b + c, 0.5).pvalue
    assert result["p_value"] == pytest.approx(expected)
    assert 0.0 <= result["p_value"] <= 1.0


def test_mcnemar_no_disagreement_is_one():
    y = np.array([0, 1, 2])
    result = mcnemar_exact(y, y, y)
    assert (result["b"], result["c"], result["p_value"]) == (0, 0, 1.0)


def test_mcnemar_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        mcnemar_exact([0, 1], [0, 1], [0])


def _random_predictions(seed, n, k=4):
    """Labels and two classifiers' predictions, each right about 60% of the time."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    pred_a = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, size=n))
    pred_b = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, size=n))
    return y, pred_a, pred_b


def test_pooled_mcnemar_equals_the_test_on_concatenated_groups():
    groups = [_random_predictions(seed, n) for seed, n in [(0, 40), (1, 40), (2, 25)]]
    pooled = pooled_mcnemar(groups)
    concatenated = mcnemar_exact(*(np.concatenate(arrays) for arrays in zip(*groups, strict=True)))
    for key in ("b", "c", "n"):
        assert pooled[key] == concatenated[key]
    assert pooled["p_value"] == pytest.approx(concatenated["p_value"])
    assert pooled["n_groups"] == 3
    assert len(pooled["per_group"]) == 3
    assert pooled["per_group"] == [mcnemar_exact(*group) for group in groups]
    assert pooled["b"] == sum(r["b"] for r in pooled["per_group"])
    assert set(pooled) == {"b", "c", "n", "p_value", "n_groups", "per_group"}


def test_pooled_mcnemar_by_hand():
    # each group: b = 10, c = 2 -> pooled b = 20, c = 4, p = binomtest(4, 24).pvalue
    group = _mcnemar_case(10, 2)
    pooled = pooled_mcnemar([group, group])
    assert (pooled["b"], pooled["c"], pooled["n"]) == (20, 4, 40)
    assert pooled["p_value"] == pytest.approx(stats.binomtest(4, 24, 0.5).pvalue)
    assert pooled["p_value"] < pooled["per_group"][0]["p_value"]
    single = pooled_mcnemar([group])
    assert single["p_value"] == pytest.approx(mcnemar_exact(*group)["p_value"])


def test_pooled_mcnemar_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        pooled_mcnemar([])
    with pytest.raises(ValueError, match="triple"):
        pooled_mcnemar([([0, 1], [0, 1])])
    with pytest.raises(ValueError, match="group 1: .*differ in length"):
        pooled_mcnemar([([0], [0], [0]), ([0, 1], [0, 1], [0])])


def test_per_class_recall_change_by_hand():
    y = np.array([0, 0, 0, 0, 1, 1, 2])
    base = np.array([0, 0, 1, 1, 1, 1, 0])  # recall: class 0 2/4, class 1 2/2, class 2 0/1
    new = np.array([0, 0, 0, 1, 1, 0, 2])  # recall: class 0 3/4, class 1 1/2, class 2 1/1
    change = per_class_recall_change(y, base, new, num_classes=4)  # class 3 absent from y
    assert change.shape == (4,) and change.dtype == np.float64
    np.testing.assert_allclose(change[:3], [0.25, -0.5, 1.0])
    assert np.isnan(change[3])
    np.testing.assert_array_equal(per_class_recall_change(y, base, base, 3), np.zeros(3))


def test_per_class_recall_change_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        per_class_recall_change([0, 1], [0, 1], [0], num_classes=2)
    with pytest.raises(ValueError, match="outside"):
        per_class_recall_change([0, 1], [0, 1], [0, 2], num_classes=2)
