"""The classification loss and accuracy accept hard labels and soft targets alike."""

import numpy as np
import pytest

from vsfusion.models.losses import SoftTargetCrossentropy, top1_accuracy

pytestmark = pytest.mark.backend


def test_hard_labels_equal_one_hot_targets_and_plain_cross_entropy():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], "float32")
    loss = SoftTargetCrossentropy()
    hard = float(loss(np.array([0, 2]), p))
    soft = float(loss(np.eye(3, dtype="float32")[[0, 2]], p))
    assert hard == pytest.approx(soft, rel=1e-6)
    assert hard == pytest.approx(-(np.log(0.7) + np.log(0.6)) / 2, rel=1e-5)


def test_label_smoothing_mixes_in_the_uniform_distribution():
    p = np.array([[0.7, 0.2, 0.1]], "float32")
    eps = 0.3
    target = (1 - eps) * np.array([1.0, 0, 0]) + eps / 3
    expected = -(target * np.log(p[0])).sum()
    assert float(SoftTargetCrossentropy(eps)(np.array([0]), p)) == pytest.approx(expected, 1e-5)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        SoftTargetCrossentropy(1.0)


def test_top1_accuracy_for_labels_and_soft_targets():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], "float32")
    np.testing.assert_array_equal(np.asarray(top1_accuracy(np.array([0, 1]), p)), [1.0, 0.0])
    soft = np.array([[0.6, 0.4, 0.0], [0.0, 0.45, 0.55]], "float32")
    np.testing.assert_array_equal(np.asarray(top1_accuracy(soft, p)), [1.0, 1.0])


def test_loss_round_trips_through_its_config():
    loss = SoftTargetCrossentropy(0.1)
    again = SoftTargetCrossentropy.from_config(loss.get_config())
    assert again.label_smoothing == 0.1
