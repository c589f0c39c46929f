"""Training augmentations: what each transformation keeps and changes."""

import numpy as np
import pytest

from vsfusion.data.augment import SensorAugment, mixup, random_erase, scale_jitter_crop


def _off(**kw):
    base = {"rotate_deg": 0.0, "unit_channels": 0, "warp": 0.0, "scale": 0.0, "jitter": 0.0}
    return SensorAugment(**{**base, **kw})


def test_all_off_is_identity():
    x = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    np.testing.assert_array_equal(_off()(x, np.random.default_rng(1)), x)


def test_rotation_turns_acc_and_gyro_of_a_unit_together_and_keeps_norms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 12)).astype(np.float32)  # two 6-channel units
    y = _off(rotate_deg=30, unit_channels=6)(x, np.random.default_rng(3))
    for start in (0, 3, 6, 9):  # every xyz triplet keeps its length sample by sample
        np.testing.assert_allclose(
            np.linalg.norm(y[:, start : start + 3], axis=1),
            np.linalg.norm(x[:, start : start + 3], axis=1),
            rtol=1e-5,
        )
    # one rotation per unit: acc and gyro of unit 0 share it, unit 1 gets another
    r0 = np.linalg.lstsq(x[:, 0:3], y[:, 0:3], rcond=None)[0]
    np.testing.assert_allclose(x[:, 3:6] @ r0, y[:, 3:6], atol=1e-4)
    r1 = np.linalg.lstsq(x[:, 6:9], y[:, 6:9], rcond=None)[0]
    assert not np.allclose(r0, r1, atol=1e-3)
    angle = np.degrees(np.arccos((np.trace(r0) - 1) / 2))
    assert 0 < angle <= 30 + 1e-3


def test_rotation_unit_must_fit_the_channels():
    with pytest.raises(ValueError, match="multiple of 3 that divides"):
        _off(rotate_deg=10, unit_channels=6)(np.zeros((10, 9)), np.random.default_rng(0))


def test_time_warp_keeps_ends_and_order_of_a_monotone_signal():
    x = np.linspace(0, 1, 100, dtype=np.float32)[:, None]
    y = _off(warp=0.3)(x, np.random.default_rng(2))
    assert y[0, 0] == pytest.approx(0.0) and y[-1, 0] == pytest.approx(1.0)
    assert np.all(np.diff(y[:, 0]) >= 0)
    assert np.abs(y - x).max() > 0.01


def test_gain_and_jitter_scale_with_the_channel():
    x = np.stack([np.sin(np.linspace(0, 6, 200)), 100 * np.sin(np.linspace(0, 6, 200))], 1)
    y = _off(scale=0.2)(x, np.random.default_rng(0))
    ratio = y / np.where(x == 0, 1, x)
    assert np.ptp(ratio[np.abs(x) > 1e-3].reshape(-1)) > 0  # channels get different gains
    noise = _off(jitter=0.1)(x, np.random.default_rng(0)) - x
    np.testing.assert_allclose(noise.std(0) / x.std(0), 0.1, rtol=0.25)


def test_same_generator_state_gives_same_augmentation():
    x = np.random.default_rng(0).normal(size=(40, 6))
    aug = SensorAugment(unit_channels=6)
    np.testing.assert_array_equal(
        aug(x, np.random.default_rng(5)), aug(x, np.random.default_rng(5))
    )


def test_scale_jitter_crop_zooms_and_keeps_shape_and_dtype():
    clip = np.zeros((3, 128, 128, 1), np.uint8)
    clip[:, 60:68, 60:68] = 200
    sides = set()
    for seed in range(20):
        out = scale_jitter_crop(clip, 64, 0.5, np.random.default_rng(seed))
        assert out.shape == (3, 64, 64, 1) and out.dtype == np.uint8
        sides.add(int((out[0, ..., 0] > 100).sum()))
    assert len(sides) > 3  # the square's apparent size varies
    plain = scale_jitter_crop(clip, 64, 0.0, np.random.default_rng(0))
    assert plain.shape == (3, 64, 64, 1) and np.shares_memory(plain, clip)  # a plain crop


def test_random_erase_blanks_one_rectangle_in_every_frame():
    clip = np.full((4, 40, 40, 1), 7, np.uint8)
    out = random_erase(clip, np.random.default_rng(0))
    zero = out[..., 0] == 0
    assert zero.any() and (clip == 7).all()  # input untouched
    assert all((zero[t] == zero[0]).all() for t in range(4))
    rows, cols = np.nonzero(zero[0])
    assert zero[0, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()


def test_mixup_targets_match_the_mixed_inputs():
    x = np.eye(4, dtype=np.float32)[[0, 1, 2, 3]] * 10
    mixed, t = mixup(x, np.array([0, 1, 2, 3]), 4, 0.4, np.random.default_rng(0))
    np.testing.assert_allclose(t.sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(mixed / 10, t, rtol=1e-6)
    assert (t.max(1) >= 0.5).all()
