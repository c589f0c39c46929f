"""Berkeley MHAD adapter: real Shimmer files (skipped without ../shared/data) and synthetic releases
laid out exactly like the official archives (Shimmer txt files, time stamps, Bayer PGM frames)."""

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsfusion.data import DataError, berkeley_mhad
from vsfusion.data.berkeley_mhad import (
    UNITS,
    load,
    read_camera,
    read_sensor,
    read_shimmer,
    read_time_stamps,
    scan,
)
from vsfusion.data.video import uniform_indices

T_BASE = 1309539264.0
FPS = 16.0  # synthetic camera: frame i at T0 + i / FPS
N_FRAMES = 48
UNIT_START = 0.05  # unit k starts at T0 + UNIT_START * k ...
UNIT_END = 3.0  # ... and ends at T0 + UNIT_END - 0.03 * k
RED, BLUE = 200, 30


def mhad(root: Path) -> Path:
    return root / "berkeley-mhad"


def _ax(t: np.ndarray, t0: float) -> np.ndarray:
    return np.sin(2 * np.pi * 0.4 * (t - t0))


def _t0(s: int, a: int, r: int) -> float:
    return T_BASE + 100.0 * (100 * s + 10 * a + r)


def write_recording(
    root: Path, s: int, a: int, r: int, camera=True, layout="Camera", size=(80, 60)
):
    """One recording in the release layout; unit k samples ax = sin(.) of absolute time,
    ay = k / 2, az = 1; frame i is the constant colour (RED, 5 i, BLUE) as a GRBG mosaic."""
    t0 = _t0(s, a, r)
    name = f"s{s:02d}_a{a:02d}_r{r:02d}"
    for k in UNITS:
        rate = 29.0 + k  # each unit on its own clock and rate
        t = np.arange(t0 + UNIT_START * k, t0 + UNIT_END - 0.03 * k, 1.0 / rate)
        rows = np.column_stack([_ax(t, t0), np.full_like(t, k / 2), np.ones_like(t), t])
        d = root / "Accelerometer" / f"Shimmer{k:02d}"
        d.mkdir(parents=True, exist_ok=True)
        np.savetxt(d / f"acc_h{k:02d}_{name}.txt", rows, fmt=["%.6f", "%.6f", "%.6f", "%.6f"])
    ts = root / "Time_stamps"
    ts.mkdir(parents=True, exist_ok=True)
    lines = [f"{i} {t0 + i / FPS:.6f}" for i in range(N_FRAMES)]
    (ts / f"time_stamps_img_{name}.txt").write_text("\n".join(lines) + "\n")
    if camera:
        base = root / "Camera" if layout == "Camera" else root
        d = base / "Cluster01" / "Cam01" / f"S{s:02d}" / f"A{a:02d}" / f"R{r:02d}"
        d.mkdir(parents=True, exist_ok=True)
        w, h = size
        for i in range(N_FRAMES):
            mosaic = np.full((h, w), 5 * i, np.uint8)  # G at (even, even) and (odd, odd)
            mosaic[0::2, 1::2] = RED
            mosaic[1::2, 0::2] = BLUE
            cv2.imwrite(str(d / f"img_l01_c01_{name}_{i:05d}.pgm"), mosaic)


def write_release(root: Path, subjects, actions=(1, 2), reps=(1,), **kw) -> Path:
    for s in subjects:
        for a in actions:
            for r in reps:
                write_recording(root, s, a, r, **kw)
    return root


def source(root: Path, s=1, a=1, r=1, timestamps=True) -> dict:
    name = f"s{s:02d}_a{a:02d}_r{r:02d}"
    src = {
        f"h{k:02d}": str(root / "Accelerometer" / f"Shimmer{k:02d}" / f"acc_h{k:02d}_{name}.txt")
        for k in UNITS
    }
    src["timestamps"] = (
        str(root / "Time_stamps" / f"time_stamps_img_{name}.txt") if timestamps else ""
    )
    return src


# ---------------------------------------------------------------------------------------------
# real accelerometer files


def test_real_shimmer_and_time_stamps_files(shared_data):
    root = mhad(shared_data)
    t, acc = read_shimmer(root / "Accelerometer/Shimmer01/acc_h01_s01_a01_r01.txt")
    assert acc.shape == (len(t), 3) and len(t) > 100
    assert (np.diff(t) > 0).all() and 1.2e9 < t[0] < 1.4e9  # Unix seconds
    assert 0.7 < np.median(np.linalg.norm(acc, axis=1)) < 1.3  # in g
    frames, ct = read_time_stamps(root / "Time_stamps/time_stamps_img_s01_a01_r01.txt")
    assert frames[:3].tolist() == [0, 1, 2] and (np.diff(ct) > 0).all()
    assert abs(ct[0] - t[0]) < 2.0 and 15 < (len(ct) - 1) / (ct[-1] - ct[0]) < 23  # ~22 fps
    # the background/T-pose files split seconds and microseconds into two columns
    bframes, bt = read_time_stamps(root / "Time_stamps/time_stamps_img_s01_b01.txt")
    assert bframes[0] == 0 and 1.2e9 < bt[0] < 1.4e9 and 0.03 < np.median(np.diff(bt)) < 0.07


def test_real_recording_fuses_to_finite_18_channels(shared_data):
    x = read_sensor(source(mhad(shared_data), 1, 1, 1))
    assert x.shape == (berkeley_mhad.SENSOR_STEPS, 18) and x.dtype == np.float32
    assert np.isfinite(x).all()
    mag = np.linalg.norm(x.reshape(len(x), 6, 3), axis=2)
    assert 0.5 < np.median(mag) < 1.5  # every unit reads about 1 g


def test_real_dev_protocol_sensor_only(shared_data, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    m = load(mhad(shared_data), protocol="dev", subjects=(2, 6, 7), cache_dir=tmp_path, workers=2)
    df = m.samples
    assert m.name == "MHAD" and m.modalities == ("sensor",) and (df["video"] == "").all()
    assert {s: set(df.loc[df["split"] == s, "subject"]) for s in ("train", "val", "test")} == {
        "train": {"2"},
        "val": {"6"},
        "test": {"7"},
    }
    assert m.classes == sorted(berkeley_mhad.ACTIONS.values())
    # s02_a07_r05 has time stamps but no Shimmer file in the release: reported and skipped
    assert "s02_a07_r05" in caplog.text and "s02/a07_r05" not in set(df["id"])
    assert len(df) == 3 * 55 - 1
    x = np.load(df["sensor"].iloc[0])
    assert x.shape == (128, 18) and np.isfinite(x).all()

    from vsfusion.data import ClipLoader  # the sensor stage's input works without any video

    xb, yb = ClipLoader(m.split("train"), m.classes, modalities=("sensor",), batch_size=4)[0]
    assert xb["sensor"].shape == (4, 128, 18) and yb.shape == (4,)


def test_real_standard_protocol_without_test_subjects_says_use_dev(shared_data, tmp_path):
    for protocol in (None, "standard", "original"):
        with pytest.raises(DataError, match="--protocol dev"):
            load(mhad(shared_data), protocol=protocol, cache_dir=tmp_path, workers=1)


# ---------------------------------------------------------------------------------------------
# synthetic releases


def test_units_are_aligned_by_timestamps_within_the_camera_window(tmp_path):
    write_release(tmp_path, [1], actions=(1,), camera=False)
    src = source(tmp_path)
    x = read_sensor(src, steps=64)
    assert x.shape == (64, 18)
    ax = x[:, 0::3]  # every unit samples the same sin of absolute time
    np.testing.assert_allclose(ax, ax[:, :1].repeat(6, axis=1), atol=0.03)
    np.testing.assert_allclose(x[:, 1::3], np.tile(np.arange(1, 7) / 2, (64, 1)), atol=1e-5)
    # window: latest unit start .. min(earliest unit end, last camera frame)
    t0 = _t0(1, 1, 1)
    lo, hi = t0 + 6 * UNIT_START, min(t0 + UNIT_END - 0.03 * 6, t0 + (N_FRAMES - 1) / FPS)
    expect = _ax(np.linspace(lo, hi, 64), t0)
    np.testing.assert_allclose(ax.mean(axis=1), expect, atol=0.05)
    # without time stamps only the units' overlap counts
    hi2 = t0 + UNIT_END - 0.03 * 6
    x2 = read_sensor(source(tmp_path, timestamps=False), steps=64)
    np.testing.assert_allclose(x2[:, 0], _ax(np.linspace(lo, hi2, 64), t0), atol=0.05)


def test_unsorted_and_repeated_timestamps_are_handled(tmp_path):
    write_release(tmp_path, [1], actions=(1,), camera=False)
    src = source(tmp_path)
    before = read_sensor(src)
    path = Path(src["h03"])
    lines = path.read_text().splitlines()
    rng = np.random.default_rng(0)
    shuffled = [lines[i] for i in rng.permutation(len(lines))] + lines[5:8]  # + 3 duplicates
    path.write_text("\n".join(shuffled) + "\n")
    t, acc = read_shimmer(path)
    assert len(t) == len(lines) and (np.diff(t) > 0).all()
    np.testing.assert_allclose(read_sensor(src), before, atol=1e-6)
    path.write_text(lines[0] + "\n" + lines[0] + "\n")
    with pytest.raises(DataError, match="fewer than 2 distinct timestamps"):
        read_shimmer(path)


@pytest.mark.parametrize("layout", ["Camera", "bare"])
def test_camera_reader_orders_frames_demosaics_and_trims_to_window(tmp_path, layout):
    write_release(tmp_path, [1], actions=(1,), layout=layout)
    recs, has_camera = scan(tmp_path)
    assert has_camera and len(recs) == 1 and recs[0].frames
    src = {"frames": recs[0].frames, **source(tmp_path)}
    clip = read_camera(src, num_frames=8, size=32)
    assert clip.shape == (8, 32, 32, 3) and clip.dtype == np.uint8
    centre = clip[:, 8:24, 8:24].reshape(8, -1, 3).mean(axis=1)
    np.testing.assert_allclose(centre[:, 0], RED, atol=2)  # GRBG demosaicked to RGB
    np.testing.assert_allclose(centre[:, 2], BLUE, atol=2)
    index = np.round(centre[:, 1] / 5).astype(int)  # frame number encoded in green
    assert (np.diff(index) > 0).all()
    # only frames inside the units' overlap (T0 + 0.3 s .. T0 + 2.82 s) are kept
    assert index.min() >= int(np.ceil(6 * UNIT_START * FPS))
    assert index.max() <= int((UNIT_END - 0.03 * 6) * FPS)
    no_ts = read_camera({**src, "timestamps": ""}, num_frames=8, size=32)
    idx = np.round(no_ts[:, 16, 16, 1] / 5).astype(int)
    assert idx.tolist() == uniform_indices(N_FRAMES, 8).tolist()  # no time base: every frame
    grey = read_camera(src, num_frames=4, size=32, bayer=None)
    assert grey.shape == (4, 32, 32, 1)


def test_video_and_sensor_entries_standard_protocol(tmp_path, caplog):
    root = write_release(tmp_path / "mhad", range(1, 13))
    m = load(root, cache_dir=tmp_path / "cache", workers=1, val_fraction=0.3, seed=1)
    df = m.samples
    assert m.modalities == ("video", "sensor") and len(df) == 24
    assert m.classes == ["jumping_in_place", "jumping_jacks"]
    split_subjects = {
        s: set(df.loc[df["split"] == s, "subject"].astype(int)) for s in ("train", "val", "test")
    }
    assert split_subjects["test"] == set(range(8, 13))
    assert split_subjects["train"] | split_subjects["val"] == set(range(1, 8))
    assert split_subjects["val"] and not split_subjects["train"] & split_subjects["val"]
    row = df[df["id"] == "s03/a02_r01"].iloc[0]
    assert row["label"] == "jumping_jacks" and row["subject"] == "3"
    v, s = np.load(row["video"]), np.load(row["sensor"])
    assert v.shape == (berkeley_mhad.CACHE_FRAMES, 128, 128, 3) and v.dtype == np.uint8
    assert s.shape == (128, 18) and s.dtype == np.float32
    # cached: a second load calls no reader (it would fail on the now unreadable file)
    (root / "Accelerometer/Shimmer01/acc_h01_s03_a02_r01.txt").write_text("garbage\n")
    again = load(root, cache_dir=tmp_path / "cache", workers=1, val_fraction=0.3, seed=1)
    assert again.samples.equals(df)


def test_missing_unit_or_camera_reported_once_and_skipped(tmp_path, caplog):
    root = write_release(tmp_path / "mhad", range(1, 13), actions=(1,))
    (root / "Accelerometer/Shimmer03/acc_h03_s02_a01_r01.txt").unlink()
    for p in (root / "Camera/Cluster01/Cam01/S04/A01/R01").iterdir():
        p.unlink()
    caplog.set_level(logging.WARNING)
    m = load(root, cache_dir=tmp_path / "cache", workers=2)
    assert "s02/a01_r01" not in set(m.samples["id"]) and "s04/a01_r01" not in set(m.samples["id"])
    assert len(m.samples) == 10
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1
    assert "s02_a01_r01 (missing Shimmer03)" in warnings[0]
    assert "s04_a01_r01 (no Cluster01/Cam01 frames)" in warnings[0]


def test_nan_in_a_unit_names_the_file_and_drops_the_recording(tmp_path, caplog):
    root = write_release(tmp_path / "mhad", range(1, 13), actions=(1,), camera=False)
    bad = root / "Accelerometer/Shimmer05/acc_h05_s09_a01_r01.txt"
    lines = bad.read_text().splitlines()
    lines[4] = "nan " + " ".join(lines[4].split()[1:])
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"acc_h05_s09_a01_r01\.txt: .*NaN/inf values at row 4"):
        read_sensor(source(root, 9, 1, 1))
    caplog.set_level(logging.WARNING)
    m = load(root, cache_dir=tmp_path / "cache", workers=1)
    assert "s09/a01_r01" not in set(m.samples["id"]) and len(m.samples) == 11
    assert "acc_h05_s09_a01_r01.txt" in caplog.text
    assert m.modalities == ("sensor",)


def test_missing_test_subjects_and_bad_options(tmp_path):
    root = write_release(tmp_path / "mhad", range(1, 8), actions=(1,), camera=False)
    with pytest.raises(DataError, match="subjects 8-12, which are absent.*--protocol dev"):
        load(root, cache_dir=tmp_path / "cache")
    m = load(root, protocol="dev", cache_dir=tmp_path / "cache", workers=1)
    assert sorted(set(m.samples["split"])) == ["test", "train", "val"]
    with pytest.raises(DataError, match="unknown protocol"):
        load(root, protocol="loso", cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="subject 7"):
        load(root, protocol="dev", subjects=(1, 6), cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="no Accelerometer"):
        load(tmp_path, cache_dir=tmp_path / "cache")


def test_unknown_camera_lists_the_available_ones(tmp_path):
    root = write_release(tmp_path / "mhad", [1], actions=(1,))
    with pytest.raises(DataError, match=r"Cluster02/Cam03 not found; available: Cluster01/Cam01"):
        scan(root, camera=(2, 3))


def test_original_protocol_splits_by_repetition(tmp_path):
    root = write_release(
        tmp_path / "mhad", range(1, 13), actions=(1,), reps=range(1, 6), camera=False
    )
    m = load(root, protocol="original", cache_dir=tmp_path / "cache", workers=1)
    df = m.samples
    reps = df["id"].str[-2:].astype(int)
    assert set(reps[df["split"] == "train"]) == {1, 2, 3}
    assert set(reps[df["split"] == "val"]) == {4} and set(reps[df["split"] == "test"]) == {5}
    assert set(df.loc[df["split"] == "test", "subject"]) == {str(s) for s in range(1, 13)}


@pytest.mark.parametrize("protocol", ["standard", "dev"])
def test_val_fraction_zero_means_no_validation_split(tmp_path, protocol):
    """Like the other adapters: val_fraction=0 gives an empty validation split (it raised a
    ValueError from carve_validation before), unless the protocol fixes validation subjects."""
    subjects = range(1, 13) if protocol == "standard" else (1, 2, 7)
    root = write_release(tmp_path / "mhad", subjects, actions=(1,), camera=False)
    m = load(root, protocol=protocol, val_fraction=0, cache_dir=tmp_path / "cache", workers=1)
    assert not (m.samples["split"] == "val").any()
    assert set(m.split("test")["subject"]) == ({"8", "9", "10", "11", "12"} if protocol ==
                                               "standard" else {"7"})  # fmt: skip
    assert len(m.split("train")) == (7 if protocol == "standard" else 2)


def test_grey_frames_without_bayer_are_kept(tmp_path):
    root = write_release(tmp_path / "mhad", (1, 2, 7), actions=(1,))
    m = load(root, protocol="dev", bayer=None, cache_dir=tmp_path / "cache", workers=1)
    assert len(m.samples) == 3 and m.modalities == ("video", "sensor")
    assert np.load(m.samples["video"][0]).shape == (berkeley_mhad.CACHE_FRAMES, 128, 128, 1)
