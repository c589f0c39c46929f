"""UTD-MHAD adapter: synthetic files laid out as the official release, and the real training half."""

import logging
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

from vsfusion.data import utd_mhad
from vsfusion.data.cache import build_cache, cache_key
from vsfusion.data.errors import DataError
from vsfusion.data.utd_mhad import (
    ACTIONS,
    CACHE_FRAMES,
    CACHE_SIZE,
    CLASSES,
    SENSOR_STEPS,
    load,
    load_mat,
    make_entries,
    make_readers,
    mat_shape,
    read_depth,
    read_inertial,
    read_skeleton,
)
from vsfusion.data.video import uniform_indices

FOLDERS = {"color": "RGB", "depth": "Depth", "inertial": "Inertial", "skeleton": "Skeleton"}
EXT = {"color": "avi", "depth": "mat", "inertial": "mat", "skeleton": "mat"}


# ---------------------------------------------------------------------------------------------
# Synthetic release files
# ---------------------------------------------------------------------------------------------


def trial_path(root: Path, a: int, s: int, t: int, kind: str, layout: str = "folders") -> Path:
    name = f"a{a}_s{s}_t{t}_{kind}.{EXT[kind]}"
    if layout == "flat":
        return root / name
    folder = FOLDERS[kind].lower() if layout == "lower" else FOLDERS[kind]
    return root / folder / name


def synthetic_depth(n_frames: int, a: int = 1, s: int = 1) -> np.ndarray:
    """240x320xT uint16: background 0, a body at ~2500 mm, an arm moving nearer over time."""
    d = np.zeros((240, 320, n_frames), np.uint16)
    for k in range(n_frames):
        d[60:220, 140 + a : 180 + s, k] = 2500 + 10 * s
        d[80:100, 180 : 200 + 3 * k, k] = 2000 - 20 * k
    return d


def write_trial(
    root: Path,
    a: int,
    s: int,
    t: int,
    *,
    layout: str = "folders",
    kinds=("depth", "inertial", "skeleton"),
    n_frames: int = 12,
    n_iner: int = 90,
    nan: bool = False,
) -> None:
    rng = np.random.default_rng(100 * a + 10 * s + t)
    for kind in kinds:
        p = trial_path(root, a, s, t, kind, layout)
        p.parent.mkdir(parents=True, exist_ok=True)
        if kind == "depth":
            scipy.io.savemat(p, {"d_depth": synthetic_depth(n_frames, a, s)}, do_compression=True)
        elif kind == "inertial":
            x = rng.normal(size=(n_iner, 6))
            x[:, 2] += 1.0  # gravity on acc z, in g
            if nan:
                x[5:8, 1] = np.nan
            scipy.io.savemat(p, {"d_iner": x})
        elif kind == "skeleton":
            scipy.io.savemat(p, {"d_skel": rng.normal(size=(20, 3, n_frames))})
        elif kind == "color":
            w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
            assert w.isOpened()
            for k in range(n_frames):
                f = np.full((480, 640, 3), 20 + 5 * k, np.uint8)
                f[:, :320] = (0, 0, 230)  # BGR: red left half
                w.write(f)
            w.release()


def write_release(root: Path, subjects, actions=(1, 2), trials=(1, 2), **kw) -> Path:
    for a in actions:
        for s in subjects:
            for t in trials:
                write_trial(root, a, s, t, **kw)
    return root


def utd_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("vsfusion.data") and r.levelno >= logging.WARNING
    ]


@pytest.fixture(scope="module")
def release8(tmp_path_factory) -> Path:
    """All 8 subjects, actions 1-2, trials 1-2, per-modality folders as in the release zips."""
    return write_release(tmp_path_factory.mktemp("utd8"), subjects=range(1, 9))


# ---------------------------------------------------------------------------------------------
# Synthetic tests
# ---------------------------------------------------------------------------------------------


def test_constants():
    assert len(ACTIONS) == len(CLASSES) == 27
    assert ACTIONS[0] == "right arm swipe to the left"
    assert ACTIONS[26] == "squat (two arms stretch out)"
    assert list(CLASSES) == sorted(CLASSES)  # sorted classes keep the official order
    assert CLASSES[8] == "a09 right hand draw circle (clockwise)"
    assert utd_mhad.SUBJECTS == tuple(range(1, 9))
    assert set(utd_mhad.TRAIN_SUBJECTS) | set(utd_mhad.TEST_SUBJECTS) == set(utd_mhad.SUBJECTS)
    assert utd_mhad.SENSOR_RATE == 50 and len(utd_mhad.SENSOR_CHANNELS) == 6


def test_standard_protocol_per_modality_folders(release8, tmp_path):
    m = load(release8, cache_dir=tmp_path / "cache", workers=1)
    assert m.name == "UTD-MHAD" and len(m.samples) == 2 * 8 * 2
    assert m.classes == list(CLASSES[:2])
    subj = {s: set(m.split(s)["subject"]) for s in ("train", "val", "test")}
    assert subj["test"] == {"2", "4", "6", "8"}
    assert subj["val"] and subj["train"] and subj["val"] | subj["train"] == {"1", "3", "5", "7"}
    assert not subj["val"] & subj["train"]
    assert m.modalities == ("video", "sensor", "skeleton")  # Skeleton/ files present: cached
    key = cache_key(**utd_mhad.cache_params("depth", skeleton=True))
    for row in m.samples.itertuples():
        assert Path(row.video).parent == (tmp_path / "cache" / key / "video").resolve()
        v, s = np.load(row.video), np.load(row.sensor)
        assert v.shape == (CACHE_FRAMES, CACHE_SIZE, CACHE_SIZE, 1) and v.dtype == np.uint8
        assert s.shape == (SENSOR_STEPS, 6) and s.dtype == np.float32
        assert v.max() == 255 and v.min() == 0
        k = np.load(row.skeleton)
        assert k.shape == (CACHE_FRAMES, 20, 3) and k.dtype == np.float32


@pytest.mark.parametrize("layout", ["flat", "lower"])
def test_layouts_give_the_same_cache(release8, tmp_path, layout):
    root = write_release(tmp_path / "raw", subjects=(1, 2, 3), actions=(2,), layout=layout)
    m = load(root, cache_dir=tmp_path / "cache", workers=1, val_fraction=0.3)
    assert sorted(m.samples["id"]) == sorted(f"a2_s{s}_t{t}" for s in (1, 2, 3) for t in (1, 2))
    for row in m.samples.itertuples():
        ref = trial_path(release8, 2, int(row.subject), int(row.id[-1]), "depth")
        np.testing.assert_array_equal(np.load(row.video), read_depth(ref))


def test_depth_mapping_and_masked_resize(tmp_path):
    d = np.zeros((240, 320, 6), np.uint16)
    d[40:200, 80:150] = 1000  # near body part
    d[40:200, 170:240] = 3000  # far body part, separated by background
    p = tmp_path / "a1_s1_t1_depth.mat"
    scipy.io.savemat(p, {"d_depth": d})
    out = read_depth(p)
    assert out.shape == (CACHE_FRAMES, CACHE_SIZE, CACHE_SIZE, 1) and out.dtype == np.uint8
    # Masked area resize: no background/foreground blend, so only 0 (background), 255 (nearest)
    # and 1 (farthest) occur, even on the silhouettes' edges.
    assert set(np.unique(out).tolist()) == {0, 1, 255}
    frame = out[0, :, :, 0]
    # 240x320 -> 128x171, centre crop offset (171 - 128) // 2 = 21 columns.
    assert frame[64, round(115 * 128 / 240) - 21] == 255
    assert frame[64, round(205 * 128 / 240) - 21] == 1
    assert frame[5, 64] == 0


def test_depth_temporal_order(tmp_path):
    d = np.zeros((240, 320, 20), np.uint16)
    for k in range(20):
        d[60:180, 100:220, k] = 3000 - 50 * k  # approaching: brighter over time
    p = tmp_path / "a1_s1_t1_depth.mat"
    scipy.io.savemat(p, {"d_depth": d})
    centre = read_depth(p)[:, 64, 64, 0].astype(int)
    assert (np.diff(centre) >= 0).all() and centre[-1] > centre[0]


def test_rgb_modality(tmp_path):
    root = write_release(tmp_path / "raw", subjects=(1, 2, 3), actions=(1,), trials=(1,))
    write_release(root, subjects=(1, 2, 3), actions=(1,), trials=(1,), kinds=("color",))
    m = load(root, cache_dir=tmp_path / "cache", workers=1, video_modality="rgb", val_fraction=0.3)
    v = np.load(m.samples["video"][0])
    assert v.shape == (CACHE_FRAMES, CACHE_SIZE, CACHE_SIZE, 3) and v.dtype == np.uint8
    left = v[:, :, :40].reshape(-1, 3).mean(axis=0)
    assert left[0] > 150 > left[2]  # RGB order: the red half is red
    depth = load(root, cache_dir=tmp_path / "cache", workers=1, val_fraction=0.3)
    assert Path(depth.samples["video"][0]).parents[1] != Path(m.samples["video"][0]).parents[1]


def test_missing_video_modality_is_clear(tmp_path):
    root = write_release(tmp_path / "raw", subjects=(1, 2), actions=(1,), trials=(1,))
    with pytest.raises(DataError, match=r"no UTD-MHAD rgb files .*--video-modality depth"):
        load(root, cache_dir=tmp_path / "c", video_modality="rgb", workers=1)
    with pytest.raises(DataError, match="video modality"):
        load(root, cache_dir=tmp_path / "c", video_modality="ir", workers=1)
    with pytest.raises(DataError, match="protocol"):
        load(root, cache_dir=tmp_path / "c", protocol="loso", workers=1)
    with pytest.raises(DataError, match="dataset folder not found"):
        load(tmp_path / "nope", cache_dir=tmp_path / "c", workers=1)


def test_nan_inertial_names_the_file(tmp_path, caplog):
    root = write_release(tmp_path / "raw", subjects=(1, 2, 3), actions=(1,), trials=(1, 2))
    bad = trial_path(root, 1, 3, 2, "inertial")
    write_trial(root, 1, 3, 2, kinds=("inertial",), nan=True)
    with pytest.raises(DataError, match=rf"{bad}: sensor has NaN/inf values at rows 5\.\.7"):
        read_inertial(bad)
    with caplog.at_level(logging.WARNING):
        m = load(root, cache_dir=tmp_path / "cache", workers=1, val_fraction=0.3)
    assert "a1_s3_t2" not in set(m.samples["id"]) and len(m.samples) == 5
    msgs = [w for w in utd_warnings(caplog) if str(bad) in w]
    assert len(msgs) == 1 and "NaN" in msgs[0]


def test_standard_protocol_without_test_subjects(tmp_path):
    root = write_release(tmp_path / "raw", subjects=(1, 3, 5, 7), actions=(1,), trials=(1,))
    with pytest.raises(
        DataError,
        match=r"subjects 2,4,6,8 not found under .*; use --protocol dev to evaluate on "
        r"subjects 1,3,5,7",
    ):
        load(root, cache_dir=tmp_path / "cache", workers=1)
    assert not (tmp_path / "cache").exists()  # checked before any preparation


def test_dev_protocol_and_parallel_equals_sequential(tmp_path):
    root = write_release(tmp_path / "raw", subjects=(1, 3, 5, 7), actions=(1, 2), trials=(1,))
    seq = load(root, cache_dir=tmp_path / "seq", protocol="dev", workers=1)
    par = load(root, cache_dir=tmp_path / "par", protocol="dev", workers=2)
    for m in (seq, par):
        assert {s: sorted(set(m.split(s)["subject"])) for s in ("train", "val", "test")} == {
            "train": ["1", "3"],
            "val": ["5"],
            "test": ["7"],
        }
    assert seq.samples["id"].tolist() == par.samples["id"].tolist()
    for col in ("video", "sensor"):
        for a, b in zip(seq.samples[col], par.samples[col], strict=True):
            np.testing.assert_array_equal(np.load(a), np.load(b))


def test_missing_trials_in_one_warning(tmp_path, caplog):
    root = write_release(tmp_path / "raw", subjects=(1, 2, 3), actions=(1,), trials=(1, 2, 3, 4))
    trial_path(root, 1, 2, 3, "inertial").unlink()
    for kind in ("depth", "inertial", "skeleton"):
        trial_path(root, 1, 3, 1, kind).unlink()
    with caplog.at_level(logging.WARNING):
        entries = make_entries(root)
    assert len(entries) == 10
    msgs = utd_warnings(caplog)
    assert len(msgs) == 1
    assert "a1_s2_t3 (no inertial file)" in msgs[0] and "a1_s3_t1" in msgs[0]
    assert "2 trial(s)" in msgs[0] and "official release" not in msgs[0]
    assert "no file at all for action(s) a2, a3," in msgs[0]  # actions 2..27 not written
    e = entries[0]
    assert (e.id, e.label, e.subject, e.split) == ("a1_s1_t1", CLASSES[0], "1", "")
    assert set(e.sources) == {"video", "sensor"}


def test_cache_reused_without_reader_calls(release8, tmp_path, monkeypatch):
    first = load(release8, cache_dir=tmp_path / "cache", workers=1)

    def boom(*args, **kwargs):
        raise AssertionError("reader called on a cached sample")

    monkeypatch.setattr(utd_mhad, "read_depth", boom)
    monkeypatch.setattr(utd_mhad, "read_inertial", boom)
    again = load(release8, cache_dir=tmp_path / "cache", workers=1)
    assert again.samples.equals(first.samples)


def test_load_mat_formats_and_errors(tmp_path):
    x = np.arange(12.0).reshape(4, 3)
    v5 = tmp_path / "a1_s1_t1_inertial.mat"
    scipy.io.savemat(v5, {"d_iner": x})
    np.testing.assert_array_equal(load_mat(v5, "d_iner"), x)
    with pytest.raises(DataError, match=r"no variable 'd_depth' \(found \['d_iner'\]\)"):
        load_mat(v5, "d_depth")
    v73 = tmp_path / "v73.mat"  # MATLAB v7.3 is HDF5, column-major: h5py sees x.T
    with h5py.File(v73, "w") as f:
        f["d_iner"] = x.T
    np.testing.assert_array_equal(load_mat(v73, "d_iner"), x)
    with pytest.raises(DataError, match="v7.3"):
        load_mat(v73, "d_depth")
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"this is not a MATLAB file at all" * 10)
    with pytest.raises(DataError, match=rf"{junk}: not a readable MATLAB file"):
        load_mat(junk, "d_iner")
    with pytest.raises(DataError, match="file not found"):
        load_mat(tmp_path / "none.mat", "d_iner")
    scipy.io.savemat(v5, {"d_iner": np.zeros((10, 5))})
    with pytest.raises(DataError, match="expected N x 6"):
        read_inertial(v5)


# ---------------------------------------------------------------------------------------------
# Skeleton: the third modality
# ---------------------------------------------------------------------------------------------


def test_skeleton_reader_time_first_and_aligned_with_depth(tmp_path):
    t = 50
    skel = np.zeros((20, 3, t))
    skel[:, 0, :] = np.arange(t)  # x of every joint = frame number
    skel[:, 1, :] = np.arange(20)[:, None]  # y = joint number
    p = tmp_path / "a1_s1_t1_skeleton.mat"
    scipy.io.savemat(p, {"d_skel": skel})
    depth = tmp_path / "a1_s1_t1_depth.mat"
    scipy.io.savemat(depth, {"d_depth": synthetic_depth(t)})
    x = read_skeleton({"skeleton": str(p), "depth": str(depth)})
    assert x.shape == (CACHE_FRAMES, 20, 3) and x.dtype == np.float32
    # the depth clip's frames: uniform_indices over the same frame count
    np.testing.assert_array_equal(x[:, 0, 0], uniform_indices(t, CACHE_FRAMES))
    np.testing.assert_array_equal(x[0, :, 1], np.arange(20))
    assert read_skeleton(str(p), num_frames=8).shape == (8, 20, 3)  # path alone: no depth check


@pytest.mark.parametrize(
    "skel, depth_frames, message",
    [
        (np.zeros((15, 3, 12)), 12, r"d_skel has 15 joints; expected the 20 Kinect v1 joints"),
        (np.zeros((20, 2, 12)), 12, r"d_skel has shape \(20, 2, 12\); expected 20 x 3 x T"),
        ("nan", 12, r"NaN/inf joints in 2 of 12 frames \(first: frame 3\)"),
        (np.zeros((20, 3, 12)), 20, r"12 skeleton frames but .*a1_s1_t1_depth\.mat has 20 depth "
         r"frames \(more than 2 apart\)"),
    ],
)  # fmt: skip
def test_skeleton_bad_input_one_line_naming_the_file(tmp_path, skel, depth_frames, message):
    if isinstance(skel, str):
        skel = np.zeros((20, 3, 12))
        skel[4, 1, 3] = np.nan
        skel[0, 0, 7] = np.inf
    p = tmp_path / "a1_s1_t1_skeleton.mat"
    scipy.io.savemat(p, {"d_skel": skel})
    depth = tmp_path / "a1_s1_t1_depth.mat"
    scipy.io.savemat(depth, {"d_depth": synthetic_depth(depth_frames)})
    with pytest.raises(DataError, match=rf"^{p}: {message}") as e:
        read_skeleton({"skeleton": str(p), "depth": str(depth)})
    assert "\n" not in str(e.value)
    near = np.zeros((20, 3, depth_frames + 2))  # within the tolerance: accepted
    scipy.io.savemat(p, {"d_skel": near})
    assert read_skeleton({"skeleton": str(p), "depth": str(depth)}).shape == (CACHE_FRAMES, 20, 3)


def test_bad_skeleton_drops_the_trial_with_one_warning(tmp_path, caplog):
    root = write_release(tmp_path / "raw", subjects=(1, 2, 3), actions=(1,), trials=(1, 2))
    bad = trial_path(root, 1, 2, 2, "skeleton")
    scipy.io.savemat(bad, {"d_skel": np.zeros((20, 3, 30))})  # depth has 12 frames
    with caplog.at_level(logging.WARNING):
        m = load(root, cache_dir=tmp_path / "cache", workers=1, val_fraction=0.3)
    assert "a1_s2_t2" not in set(m.samples["id"]) and len(m.samples) == 5
    msgs = [w for w in utd_warnings(caplog) if str(bad) in w]
    assert len(msgs) == 1 and "30 skeleton frames" in msgs[0]


def test_skeleton_option_and_cache_key(tmp_path):
    root = write_release(tmp_path / "raw", subjects=(1, 2, 3), actions=(1,), trials=(1,))
    off = load(root, cache_dir=tmp_path / "cache", workers=1, val_fraction=0.3, skeleton=False)
    on = load(root, cache_dir=tmp_path / "cache", workers=1, val_fraction=0.3)
    assert off.modalities == ("video", "sensor") and on.modalities[-1] == "skeleton"
    key_off, key_on = (Path(m.samples["video"][0]).parents[1].name for m in (off, on))
    assert key_off == cache_key(**utd_mhad.cache_params("depth"))  # older caches stay valid
    assert key_on == cache_key(**utd_mhad.cache_params("depth", skeleton=True)) != key_off
    for t in (1, 2, 3):
        trial_path(root, 1, t, 1, "skeleton").unlink()
    none = load(root, cache_dir=tmp_path / "cache", workers=1, val_fraction=0.3)
    assert none.modalities == ("video", "sensor")  # default: only when the files exist
    with pytest.raises(DataError, match=r"no UTD-MHAD skeleton files .*skeleton=False"):
        load(root, cache_dir=tmp_path / "cache", workers=1, skeleton=True)


# ---------------------------------------------------------------------------------------------
# Real data: the released training half (subjects 1, 3, 5, 7), skipped when absent
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def utd_root(shared_data) -> Path:
    root = shared_data / "utd-mhad"
    if not root.is_dir():
        pytest.skip("../shared/data/utd-mhad is not present")
    return root


def test_real_entries_and_missing_trial_warning(utd_root, caplog):
    with caplog.at_level(logging.WARNING):
        entries = make_entries(utd_root)
    assert len(entries) == 27 * 4 * 4 - 1 == 431
    assert {e.subject for e in entries} == {"1", "3", "5", "7"}
    assert {e.label for e in entries} == set(CLASSES)
    msgs = utd_warnings(caplog)
    assert len(msgs) == 1 and "a8_s1_t4 (absent from the official release)" in msgs[0]
    assert "a8_s1_t4" not in {e.id for e in entries}


def test_real_cache_a_few_trials(utd_root, tmp_path):
    ids = {"a1_s1_t1", "a8_s3_t2", "a22_s5_t3", "a27_s7_t4"}
    entries = [e for e in make_entries(utd_root) if e.id in ids]
    df = build_cache(entries, tmp_path / "c", make_readers("depth"), workers=1)
    assert sorted(df["id"]) == sorted(ids)
    for row in df.itertuples():
        v, s = np.load(row.video), np.load(row.sensor)
        assert v.shape == (CACHE_FRAMES, CACHE_SIZE, CACHE_SIZE, 1) and v.dtype == np.uint8
        fg = (v > 0).mean()
        assert 0.01 < fg < 0.5, fg  # a person on a removed background
        assert v.max() == 255
        assert s.shape == (SENSOR_STEPS, 6) and s.dtype == np.float32 and np.isfinite(s).all()
        g = np.linalg.norm(s[:, :3], axis=1).mean()  # accelerometer in g
        assert 0.5 < g < 2.0, g


def test_real_dev_protocol_split(utd_root, tmp_path, monkeypatch):
    def fake_video(src):
        return np.zeros((2, 4, 4, 1), np.uint8)

    def fake_sensor(src):
        return np.zeros((4, 6), np.float32)

    monkeypatch.setattr(
        utd_mhad,
        "make_readers",
        lambda m, crop="centre": {"video": fake_video, "sensor": fake_sensor},
    )
    m = load(utd_root, cache_dir=tmp_path / "c", protocol="dev", workers=1)
    counts = {s: len(m.split(s)) for s in ("train", "val", "test")}
    assert counts == {"train": 107 + 108, "val": 108, "test": 108}
    assert sorted(set(m.split("train")["subject"])) == ["1", "3"]
    assert set(m.split("val")["subject"]) == {"5"} and set(m.split("test")["subject"]) == {"7"}
    assert m.classes == list(CLASSES)


def test_real_standard_protocol_needs_test_subjects(utd_root, tmp_path):
    with pytest.raises(DataError, match="subjects 2,4,6,8 not found under .*--protocol dev"):
        load(utd_root, cache_dir=tmp_path / "c", workers=1)


def test_real_skeleton_frames_match_depth(utd_root):
    """The measurement behind SKELETON_FRAME_TOLERANCE: |T_skeleton - T_depth| over all trials."""
    trials = utd_mhad.find_trials(utd_root)
    diffs = [
        mat_shape(f["skeleton"], "d_skel")[2] - mat_shape(f["depth"], "d_depth")[2]
        for f in trials.values()
    ]
    assert len(diffs) == 431 and max(abs(d) for d in diffs) == 0
    assert max(abs(d) for d in diffs) <= utd_mhad.SKELETON_FRAME_TOLERANCE
    f = trials[(27, 7, 4)]
    x = read_skeleton({"skeleton": str(f["skeleton"]), "depth": str(f["depth"])})
    assert x.shape == (CACHE_FRAMES, 20, 3) and np.isfinite(x).all()
    assert 1.0 < float(np.median(x[..., 2])) < 5.0  # metres in front of the Kinect
    head, foot = x[:, 0, 1].mean(), x[:, 15, 1].mean()
    assert head > foot  # joint order: the head is above the left foot
