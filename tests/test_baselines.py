"""Classical baseline features and leave-one-subject-out selection on hand-checkable arrays."""

import numpy as np
import pytest

from vsfusion.baselines import (
    DMM_SIZES,
    SENSOR_STATS,
    candidate_models,
    depth_motion_maps,
    motion_images,
    select_by_loso,
    sensor_features,
    video_features,
)


def _stat(f: np.ndarray, part: int, stat: str, channel: int, channels: int) -> float:
    per_part = len(SENSOR_STATS) * channels
    return float(f[part * per_part + SENSOR_STATS.index(stat) * channels + channel])


def test_sensor_features_of_a_constant_signal():
    f = sensor_features(np.full((12, 2), -2.0))
    assert f.shape == (4 * len(SENSOR_STATS) * 2,) and f.dtype == np.float32
    for part in range(4):
        for ch in range(2):
            assert _stat(f, part, "mean", ch, 2) == -2.0
            assert _stat(f, part, "std", ch, 2) == 0.0
            assert _stat(f, part, "p50", ch, 2) == -2.0
            assert _stat(f, part, "energy", ch, 2) == 4.0


def test_sensor_features_segments_are_the_three_equal_thirds():
    x = np.repeat([[0.0], [3.0], [6.0]], 4, axis=0)  # 12 steps: 0 x4, 3 x4, 6 x4
    f = sensor_features(x)
    assert _stat(f, 0, "mean", 0, 1) == 3.0 and _stat(f, 0, "max", 0, 1) == 6.0
    assert [_stat(f, p, "mean", 0, 1) for p in (1, 2, 3)] == [0.0, 3.0, 6.0]
    assert _stat(f, 3, "energy", 0, 1) == 36.0


def test_sensor_features_rejects_a_too_short_recording():
    with pytest.raises(ValueError, match="steps >= 3"):
        sensor_features(np.zeros((2, 6)))


def _moving_box(frames: int = 4, size: int = 16) -> np.ndarray:
    """A depth-200 box, rows 4-7, moving 2 columns right per frame from column 2."""
    clip = np.zeros((frames, size, size, 1), np.uint8)
    for t in range(frames):
        clip[t, 4:8, 2 + 2 * t : 6 + 2 * t] = 200
    return clip


def test_front_dmm_is_non_zero_exactly_where_the_box_moved():
    clip = _moving_box()  # columns 2-5, 4-7, 6-9, 8-11 over the 4 frames
    sizes = {"front": (4, 10), "side": (4, 4), "top": (4, 10)}  # the exact box: no resampling
    front = depth_motion_maps(clip, bins=8, sizes=sizes)["front"]
    moved = np.abs(np.diff(clip[..., 0].astype(int), axis=0)).sum(0)
    rows, cols = np.nonzero(moved)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 7, 2, 11)
    # cropped to exactly the box where something changed, scaled so the maximum is 1
    np.testing.assert_allclose(front, moved[4:8, 2:12] / moved.max())
    # columns the box passed once changed once; 6-7 were entered and later left
    assert front[0].tolist() == [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]


def test_side_and_top_dmm_see_a_constant_depth_box_only_where_it_moved():
    maps = depth_motion_maps(_moving_box(), bins=8, sizes={"front": (2, 2), **_EXACT})
    # the depth never changes, so rows 4..7 x the one bin of depth 200 never change: side is zero
    assert not maps["side"].any()
    # the top view sees the columns the box entered and left
    assert maps["top"].any()


_EXACT = {"side": (4, 1), "top": (1, 12)}


def test_dmm_of_an_approaching_box_lights_the_side_view():
    clip = np.zeros((3, 8, 8, 1), np.uint8)
    for t, depth in enumerate((60, 120, 200)):  # same place, coming nearer
        clip[t, 2:5, 2:5] = depth
    maps = depth_motion_maps(clip, bins=4, sizes={"front": (3, 3), "side": (3, 3), "top": (3, 3)})
    assert maps["side"].max() == 1.0 and maps["top"].max() == 1.0
    assert maps["front"].min() > 0  # every box pixel changed


@pytest.mark.parametrize(
    "clip", [np.zeros((5, 8, 8, 1), np.uint8), np.zeros((1, 8, 8, 1), np.uint8)]
)
def test_all_zero_or_single_frame_depth_clip_gives_zero_maps(clip):
    maps = depth_motion_maps(clip)
    assert {k: m.shape for k, m in maps.items()} == DMM_SIZES
    assert all(not m.any() for m in maps.values())


def test_motion_images_history_is_brightest_where_motion_was_last():
    clip = np.zeros((4, 10, 10, 3), np.uint8)
    clip[1, 0:2, 0:2] = 255  # appears at step 1, gone at step 2
    clip[3, 8:10, 8:10] = 255  # appears at step 3
    m = motion_images(clip, size=(10, 10))
    assert m["energy"][0, 0] == 1.0 and m["energy"][9, 9] == 0.5  # changed twice / once
    assert m["history"][9, 9] == 1.0  # last step
    assert m["history"][0, 0] == pytest.approx(2 / 3)  # step 2 of 3
    assert m["history"][5, 5] == 0.0


def test_video_features_dispatch_on_channels_and_reject_other_shapes():
    assert video_features(np.zeros((3, 8, 8, 3), np.uint8))[1] == "motion_images"
    assert video_features(_moving_box())[1] == "depth_motion_maps"
    with pytest.raises(ValueError, match=r"\(T, H, W, 1\) or \(T, H, W, 3\)"):
        video_features(np.zeros((3, 8, 8, 2), np.uint8))


def _separable(n_per: int = 4, subjects=("a", "b", "c")):
    rng = np.random.default_rng(0)
    y = np.tile(np.arange(3), n_per * len(subjects))
    groups = np.repeat(subjects, 3 * n_per)
    x = np.eye(3)[y] * 3 + rng.normal(0, 0.3, (len(y), 3))
    return x, y, groups


def test_loso_selection_folds_are_the_given_subjects_and_refit_on_all():
    x, y, groups = _separable()
    sel = select_by_loso(x, y, groups, candidate_models("sensor", 3, n_trees=10), n_jobs=1)
    assert sel.folds == ["a", "b", "c"]
    assert set(sel.families) == {"rbf_svm", "random_forest"}
    assert sel.family in sel.families and sel.loso_accuracy == 1.0
    fam = sel.families[sel.family]
    assert set(fam["loso_per_subject"]) == {"a", "b", "c"}
    assert sel.params == fam["params"]
    assert hasattr(sel.model, "predict") and sel.model.predict(x).shape == y.shape


def test_loso_selection_needs_two_subjects():
    x, y, groups = _separable(subjects=("a",))
    with pytest.raises(ValueError, match="at least two training subjects"):
        select_by_loso(x, y, groups, candidate_models("video", 3, n_trees=5), n_jobs=1)


def test_unknown_stream_has_no_candidates():
    with pytest.raises(ValueError, match="use sensor, skeleton or video"):
        candidate_models("depth", 10)
    assert set(candidate_models("skeleton", 10)) == set(candidate_models("sensor", 10))


# ---------------------------------------------------------------------------------------------
# Real data: a few UTD-MHAD trials (released training subjects), skipped when absent
# ---------------------------------------------------------------------------------------------


def test_real_utd_mhad_features_and_loso_on_a_few_trials(shared_data):
    from vsfusion.data.utd_mhad import read_depth, read_inertial

    root = shared_data / "utd-mhad"
    if not root.is_dir():
        pytest.skip("../shared/data/utd-mhad is not present")
    xs, xv, y, groups = [], [], [], []
    for label, action in enumerate((1, 7, 14)):
        for subject in (1, 3, 5):
            for trial in (1, 2):
                tid = f"a{action}_s{subject}_t{trial}"
                xs.append(sensor_features(read_inertial(root / "Inertial" / f"{tid}_inertial.mat")))
                clip = read_depth(root / "Depth" / f"{tid}_depth.mat", num_frames=16, size=64)
                features, kind = video_features(clip)
                assert kind == "depth_motion_maps" and features.max() == 1.0  # a moving person
                xv.append(features)
                y.append(label)
                groups.append(str(subject))
    y = np.array(y)
    sel = select_by_loso(np.stack(xs), y, groups, candidate_models("sensor", 240, n_trees=50))
    assert sel.folds == ["1", "3", "5"]
    assert sel.loso_accuracy > 0.6  # three distinct arm actions; chance is 1/3
    sel = select_by_loso(np.stack(xv), y, groups, candidate_models("video", 3744, n_trees=50))
    assert sel.loso_accuracy > 0.5
