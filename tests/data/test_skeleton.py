"""Skeleton layouts and NumPy transforms: validation, resampling, normalisation, mirroring,
augmentation; the Kinect v1 layout against UTD-MHAD's joint order file (skipped without
../shared/data)."""

import re

import numpy as np
import pytest

from vsfusion.data.errors import DataError
from vsfusion.data.skeleton import (
    LAYOUTS,
    JointLayout,
    SkeletonAugment,
    body_size,
    layout,
    mirror_skeleton,
    normalize_skeleton,
    resample_skeleton,
    validate_skeleton,
)

KINECT = LAYOUTS["kinect-v1"]


def _body(frames=12, lay=KINECT, channels=3, seed=0):
    """A random walk of every joint around a random body, float32 (frames, J, channels)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 0.4, (1, lay.num_joints, channels))
    walk = np.cumsum(rng.normal(0.0, 0.02, (frames, lay.num_joints, channels)), axis=0)
    x = base + walk + np.array([0.3, -0.2, 2.5, 0.0][:channels])
    if channels == 4:
        x[..., 3] = rng.uniform(0.0, 1.0, x.shape[:2])
    return x.astype("float32")


def _reach(lay: JointLayout) -> set[int]:
    """Joints reachable along bones from the layout's graph centre joints."""
    seen, todo = set(lay.graph_centre), list(lay.graph_centre)
    while todo:
        j = todo.pop()
        for a, b in lay.edges:
            for u, v in ((a, b), (b, a)):
                if u == j and v not in seen:
                    seen.add(v)
                    todo.append(v)
    return seen


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_is_consistent(name):
    lay = layout(name)
    n = lay.num_joints
    assert lay.name == name and len(set(lay.joints)) == n
    assert all(0 <= i < n and 0 <= j < n and i != j for i, j in lay.edges)
    p = lay.mirror_permutation
    np.testing.assert_array_equal(p[p], np.arange(n))  # an involution
    edges = {frozenset(e) for e in lay.edges}
    assert {frozenset((p[a], p[b])) for a, b in edges} == edges  # mirror maps bones to bones
    for group in (lay.centre, lay.graph_centre):
        assert sorted(p[list(group)]) == sorted(group)  # centres are left-right symmetric
    pairs = {frozenset(e) for e in lay.scale_pairs}
    assert {frozenset((p[a], p[b])) for a, b in pairs} == pairs
    assert _reach(lay) == set(range(n))  # every joint reaches a graph centre
    for a, b in lay.mirror_pairs:  # names say which side
        left, right = lay.joints[a], lay.joints[b]
        assert "left" in left and left.replace("left", "right") == right


def test_layout_sizes_and_names():
    sizes = {name: lay.num_joints for name, lay in LAYOUTS.items()}
    assert sizes == {
        "kinect-v1": 20,
        "mediapipe-pose": 33,
        "mediapipe-hand": 21,
        "mediapipe-hands": 42,
        "mediapipe-holistic": 75,
    }
    pose, holistic = LAYOUTS["mediapipe-pose"], LAYOUTS["mediapipe-holistic"]
    assert holistic.joints[:33] == pose.joints
    assert holistic.index("left_hand_wrist") == 33 and holistic.index("right_hand_pinky_tip") == 74
    assert pose.joints[0] == "nose" and pose.joints[32] == "right_foot_index"
    assert layout(KINECT) is KINECT
    with pytest.raises(ValueError, match="kinect-v1.*mediapipe-pose"):
        layout("openpose")
    with pytest.raises(ValueError, match="no joint 'neck'"):
        KINECT.index("neck")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"edges": [(0, 3)]}, "edge index 3 out of range"),
        ({"edges": [(1, 1)]}, "itself"),
        ({"edges": [(0, 1), (1, 0)]}, "twice"),
        ({"edges": [(0, 1)], "mirror_pairs": [(0, 1), (1, 2)]}, "mirror pairs"),
        ({"edges": [(0, 1)], "centre": (5,)}, "centre index 5"),
    ],
)
def test_custom_layout_is_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        JointLayout(name="tiny", joints=("a", "b", "c"), **kwargs)


def test_kinect_layout_matches_utd_mhad_joint_order_file(shared_data):
    path = shared_data / "utd-mhad" / "Skeleton_joint_order.txt"
    if not path.is_file():
        pytest.skip("../shared/data/utd-mhad/Skeleton_joint_order.txt is not present")
    names = re.findall(r"^\s*\d+\.\s*([a-z_]+)\s*;", path.read_text(), flags=re.M)
    assert tuple(names) == KINECT.joints


def test_kinect_layout_fits_a_real_utd_mhad_skeleton(shared_data):
    files = sorted((shared_data / "utd-mhad" / "Skeleton").glob("a1_s1_t1_skeleton.mat"))
    if not files:
        pytest.skip("../shared/data/utd-mhad/Skeleton is not present")
    from scipy.io import loadmat

    raw = loadmat(files[0])["d_skel"]  # (20, 3, T)
    with pytest.raises(DataError, match=r"transpose\(2, 0, 1\)"):
        validate_skeleton(raw, files[0].name, KINECT)
    x = normalize_skeleton(validate_skeleton(raw.transpose(2, 0, 1), files[0].name, KINECT), KINECT)
    up = KINECT.vertical_axis
    head, hip, foot = (KINECT.index(j) for j in ("head", "hip_center", "left_foot"))
    assert x[0, head, up] > x[0, hip, up] > x[0, foot, up]  # Kinect's y points up
    bones = np.linalg.norm(x[:, [4, 5, 12, 13]] - x[:, [5, 6, 13, 14]], axis=-1)
    mirrored = np.linalg.norm(x[:, [8, 9, 16, 17]] - x[:, [9, 10, 17, 18]], axis=-1)
    np.testing.assert_allclose(np.median(bones, 0), np.median(mirrored, 0), rtol=0.25)
    assert 0.8 < body_size(x, KINECT) < 1.2


def test_validate_skeleton_accepts_and_converts():
    a = validate_skeleton(np.zeros((5, 20, 3)), "a.npy", KINECT)
    assert a.dtype == np.float32 and a.shape == (5, 20, 3)
    assert validate_skeleton(np.zeros((1, 33, 4), np.int16), "b", "mediapipe-pose").shape == (
        1,
        33,
        4,
    )
    assert validate_skeleton(np.zeros((2, 7, 2)), "c").shape == (2, 7, 2)
    x = np.zeros((3, 20, 3), np.float32)
    assert validate_skeleton(x, "d", 20) is x


@pytest.mark.parametrize(
    "array, joints, match",
    [
        (np.zeros((5, 60)), None, r"^s1\.npy: skeleton must be 3-D .* shape \(5, 60\)"),
        (np.zeros((5, 20, 5)), None, "5 channels per joint"),
        (np.zeros((20, 3, 40)), KINECT, r"looks like \(joints, channels, frames\)"),
        (np.zeros((0, 20, 3)), KINECT, "empty"),
        (np.zeros((4, 19, 3)), KINECT, "19 joints, layout 'kinect-v1' has 20"),
        (np.zeros((4, 19, 3)), 21, "19 joints, expected 21"),
        (np.array([[["a", "b"]]]), None, "not numeric"),
    ],
)
def test_validate_skeleton_errors(array, joints, match):
    with pytest.raises(DataError, match=match) as e:
        validate_skeleton(array, "s1.npy", joints)
    assert str(e.value).startswith("s1.npy: ") and "\n" not in str(e.value)


def test_validate_skeleton_names_the_nan_frame_and_joint():
    x = np.zeros((10, 20, 3))
    x[4, 6, 1] = np.nan
    x[7, 2:4, 0] = np.inf
    with pytest.raises(DataError) as e:
        validate_skeleton(x, "a3_s2_t1_skeleton.mat", KINECT)
    msg = str(e.value)
    assert msg.startswith(
        "a3_s2_t1_skeleton.mat: skeleton has NaN/inf at frame 4 joint 6 (left_wrist)"
    )
    assert "2 more frame-joint pairs in 2 frames" in msg
    with pytest.raises(DataError, match="frame 4 joint 6;"):
        validate_skeleton(np.where(np.arange(20)[None, :, None] == 6, x, 0.0), "s", None)


def test_resample_is_linear_in_normalised_time():
    t = np.arange(7, dtype=np.float64)
    x = t[:, None, None] * np.ones((1, 4, 3)) + np.arange(4)[None, :, None]
    y = resample_skeleton(x, 13)
    assert y.shape == (13, 4, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y[:, 2, 0], np.linspace(0, 6, 13) + 2, atol=1e-6)
    np.testing.assert_allclose(resample_skeleton(x, 4)[:, 0, 0], [0, 2, 4, 6], atol=1e-6)
    np.testing.assert_array_equal(resample_skeleton(x, 7), x.astype(np.float32))
    np.testing.assert_allclose(resample_skeleton(x, 1)[0], x.mean(0), atol=1e-6)
    np.testing.assert_allclose(resample_skeleton(x[:1], 5), np.repeat(x[:1], 5, 0))
    smooth = resample_skeleton(_body(80), 20, antialias=True)
    assert smooth.shape == (20, 20, 3) and np.isfinite(smooth).all()
    with pytest.raises(ValueError, match="positive"):
        resample_skeleton(x, 0)


def test_normalize_centres_scales_and_forgets_the_camera():
    x = _body(16)
    y = normalize_skeleton(x, KINECT)
    np.testing.assert_allclose(y[0, KINECT.centre[0]], 0.0, atol=1e-6)
    assert abs(body_size(y, KINECT) - 1.0) < 1e-5
    # another camera: rotated about the vertical, farther away (smaller), elsewhere
    c, s = np.cos(0.7), np.sin(0.7)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    other = 0.6 * x @ rot.T + np.array([1.0, -0.5, 3.0])
    np.testing.assert_allclose(normalize_skeleton(other, KINECT), y @ rot.T, atol=1e-5)
    # whole-body motion is kept by default, removed per frame
    moved = x + np.linspace(0, 1, 16)[:, None, None] * np.array([0, -0.5, 0])
    assert not np.allclose(normalize_skeleton(moved, KINECT)[-1], y[-1], atol=1e-3)
    per_frame = normalize_skeleton(moved, KINECT, per_frame=True)
    np.testing.assert_allclose(per_frame[:, KINECT.centre[0]], 0.0, atol=1e-6)
    np.testing.assert_allclose(per_frame, normalize_skeleton(x, KINECT, per_frame=True), atol=1e-5)


def test_normalize_is_safe_on_degenerate_input_and_keeps_visibility():
    zeros = np.zeros((5, 33, 3), np.float32)
    out = normalize_skeleton(zeros, "mediapipe-pose")
    assert out.dtype == np.float32 and np.array_equal(out, zeros)
    point = np.ones((3, 20, 3))  # every joint at one spot: size 0, no division
    np.testing.assert_array_equal(normalize_skeleton(point, KINECT), 0.0)
    pose = LAYOUTS["mediapipe-pose"]
    x = _body(6, pose, channels=4)
    y = normalize_skeleton(x, pose)
    np.testing.assert_array_equal(y[..., 3], x[..., 3])
    np.testing.assert_allclose(y[0, list(pose.centre), :3].mean(0), 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="does not fit layout 'mediapipe-pose'"):
        normalize_skeleton(np.zeros((5, 20, 3)), pose)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
@pytest.mark.parametrize("channels", [2, 3, 4])
def test_mirror_twice_is_identity_and_commutes_with_normalize(name, channels):
    lay = LAYOUTS[name]
    x = _body(5, lay, channels)
    y = mirror_skeleton(x, lay)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(mirror_skeleton(y, lay), x)
    for a, b in lay.mirror_pairs:
        np.testing.assert_array_equal(y[:, a, 0], -x[:, b, 0])
        np.testing.assert_array_equal(y[:, a, 1:], x[:, b, 1:])
    np.testing.assert_allclose(
        normalize_skeleton(y, lay), mirror_skeleton(normalize_skeleton(x, lay), lay), atol=1e-5
    )


def test_mirror_of_kinect_swaps_hands():
    x = np.zeros((1, 20, 3), np.float32)
    x[0, KINECT.index("left_hand")] = [-0.4, 0.1, 2.0]
    y = mirror_skeleton(x, KINECT)
    np.testing.assert_allclose(y[0, KINECT.index("right_hand")], [0.4, 0.1, 2.0], rtol=1e-6)
    np.testing.assert_array_equal(y[0, KINECT.index("left_hand")], 0.0)


def test_augment_is_deterministic_for_a_seed():
    x = _body(32)
    aug = SkeletonAugment("kinect-v1")
    a = aug(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, aug(x, np.random.default_rng(7)))
    assert a.dtype == np.float32 and a.shape == x.shape
    outs = [aug(x, np.random.default_rng(s)) for s in range(6)]
    assert not any(np.allclose(outs[0], o) for o in outs[1:])
    off = SkeletonAugment(KINECT, rotate_deg=0, scale=0, mirror=0)
    np.testing.assert_allclose(off(x, np.random.default_rng(0)), x, atol=1e-6)
    # the same draws whatever is switched off: a generator ends in the same state
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    aug(x, r1), off(x, r2)
    assert r1.random() == r2.random()


def test_augment_rotation_is_rigid_about_the_vertical_and_mirror_is_about_the_centre():
    x = _body(8)
    up, hip = KINECT.vertical_axis, KINECT.centre[0]
    rot = SkeletonAugment(KINECT, rotate_deg=40, scale=0, mirror=0)(x, np.random.default_rng(1))
    bones = np.asarray(KINECT.edges)
    length = lambda z: np.linalg.norm(z[:, bones[:, 0]] - z[:, bones[:, 1]], axis=-1)  # noqa: E731
    np.testing.assert_allclose(length(rot), length(x), rtol=1e-5)
    np.testing.assert_allclose(rot[..., up], x[..., up], atol=1e-6)  # heights unchanged
    np.testing.assert_allclose(rot[0, hip], x[0, hip], atol=1e-6)  # turns in place
    assert not np.allclose(rot, x, atol=1e-3)
    flip = SkeletonAugment(KINECT, rotate_deg=0, scale=0, mirror=1.0)(x, np.random.default_rng(1))
    centre = x[0, hip, 0]
    expected = mirror_skeleton(x - [centre, 0, 0], KINECT) + [centre, 0, 0]
    np.testing.assert_allclose(flip, expected, atol=1e-5)
    scaled = SkeletonAugment(KINECT, rotate_deg=0, scale=0.3, mirror=0)(x, np.random.default_rng(2))
    ratio = body_size(scaled, KINECT) / body_size(x, KINECT)
    assert ratio != pytest.approx(1.0) and np.allclose(length(scaled), ratio * length(x))


def test_augment_2d_and_visibility():
    pose = LAYOUTS["mediapipe-pose"]
    x = _body(8, pose, channels=2)
    y = SkeletonAugment(pose, rotate_deg=30, scale=0, mirror=0)(x, np.random.default_rng(0))
    np.testing.assert_allclose(y[..., 1], x[..., 1], atol=1e-6)  # foreshortening only
    dx, dy = (np.ptp(y[..., 0]) / np.ptp(x[..., 0])), np.ptp(y[..., 1]) / np.ptp(x[..., 1])
    assert np.cos(np.deg2rad(30)) - 1e-6 <= dx <= 1.0 and dy == pytest.approx(1.0)
    x4 = _body(8, pose, channels=4)
    y4 = SkeletonAugment(pose, mirror=1.0)(x4, np.random.default_rng(0))
    np.testing.assert_array_equal(y4[..., 3], x4[:, pose.mirror_permutation, 3])
    with pytest.raises(ValueError, match="probability"):
        SkeletonAugment(pose, mirror=2.0)
