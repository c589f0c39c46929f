"""The synthetic demo dataset: determinism, layout, physics, regeneration and loading."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import cumulative_trapezoid
from scipy.spatial.transform import Rotation

from vsfusion.data import demo
from vsfusion.data.errors import DataError

SMALL = {"n_subjects": 3, "reps": 1}


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    return demo.generate(tmp_path_factory.mktemp("demo") / "d", seed=0, **SMALL)


def test_same_seed_gives_identical_files_and_other_seed_differs(small_root, tmp_path):
    again = _files(demo.generate(tmp_path / "again", seed=0, **SMALL))
    assert again == _files(small_root)
    other = demo.generate(tmp_path / "other", seed=1, **SMALL)
    rel = "s01/circle_high_0.npy"
    for m in ("video", "sensor"):
        assert not np.array_equal(np.load(small_root / m / rel), np.load(other / m / rel))


def test_shapes_dtypes_and_finite(small_root):
    man = pd.read_csv(small_root / "manifest.csv")
    assert len(man) == len(demo.CLASSES) * SMALL["n_subjects"] * SMALL["reps"]
    for rel in man["file"]:
        v = np.load(small_root / "video" / rel)
        s = np.load(small_root / "sensor" / rel)
        assert v.dtype == np.uint8 and v.shape == (demo.NUM_FRAMES, demo.SIZE, demo.SIZE, 3)
        assert s.dtype == np.float32 and s.shape == (demo.SENSOR_STEPS, len(demo.SENSOR_CHANNELS))
        assert np.isfinite(s).all()
    assert not list(small_root.rglob("*.tmp"))


def test_other_sizes(tmp_path):
    root = demo.generate(tmp_path, num_frames=8, size=32, sensor_steps=50, **SMALL)
    assert np.load(root / "video/s02/wave_0.npy").shape == (8, 32, 32, 3)
    assert np.load(root / "sensor/s02/wave_0.npy").shape == (50, 6)


def test_csvs_split_by_subject_and_balanced(small_root):
    train = pd.read_csv(small_root / "train.csv", dtype=str)
    test = pd.read_csv(small_root / "test.csv", dtype=str)
    man = pd.read_csv(small_root / "manifest.csv", dtype=str)
    assert list(train.columns) == list(test.columns) == ["file", "label", "subject"]
    assert list(man.columns) == ["file", "label", "subject", "split"]
    assert not (small_root / "val.csv").exists()
    assert set(test["subject"]) == {"s03"}  # the last third
    assert set(train["subject"]) == {"s01", "s02"}
    assert len(man) == len(train) + len(test)
    counts = man.groupby(["subject", "label"]).size()
    assert len(counts) == 3 * len(demo.CLASSES) and (counts == SMALL["reps"]).all()
    info = json.loads((small_root / "demo.json").read_text())
    assert info["params"]["seed"] == 0 and info["params"]["format_version"] == demo.FORMAT_VERSION
    assert info["classes"] == list(demo.CLASSES) == sorted(demo.CLASSES)


def test_still_segments_read_gravity_and_no_rotation():
    for label in demo.CLASSES:
        s = demo.synthesize(label, subject=1, rep=0)
        still = s.sensor[:8].astype(np.float64)  # the hand rests for the first 0.12 s at least
        assert np.linalg.norm(still[:, :3].mean(0)) == pytest.approx(demo.GRAVITY, abs=0.5)
        assert np.abs(still[:, 3:].mean(0)).max() < 0.1
        exact = demo.synthesize(label, subject=1, rep=0, noise=0.0).sensor[:8]
        np.testing.assert_allclose(np.linalg.norm(exact[:, :3], axis=1), demo.GRAVITY, rtol=1e-5)
        np.testing.assert_allclose(exact[:, 3:], 0.0, atol=1e-6)


def _centroids(s: demo.DemoSample) -> np.ndarray:
    diff = np.abs(s.video.astype(int) - s.background.astype(int)).sum(-1)
    mask = diff > 30
    yy, xx = np.mgrid[: mask.shape[1], : mask.shape[2]]
    n = mask.sum((1, 2))
    assert (n > 10).all()
    return np.stack([(mask * xx).sum((1, 2)) / n, (mask * yy).sum((1, 2)) / n], -1)


@pytest.mark.parametrize("label", ["swipe_horizontal_twist", "circle_low", "figure_eight"])
def test_double_integrated_accelerometer_matches_rendered_hand(label):
    s = demo.synthesize(label, subject=2, rep=1, noise=0.0)
    measured = _centroids(s)
    # accelerometer -> world frame, remove gravity, integrate twice from rest
    acc = np.einsum("nij,nj->ni", s.rotation, s.sensor[:, :3].astype(np.float64))
    acc -= [0.0, demo.GRAVITY, 0.0]
    dt = s.t_sensor[1] - s.t_sensor[0]
    pos = cumulative_trapezoid(
        cumulative_trapezoid(acc, dx=dt, axis=0, initial=0), dx=dt, axis=0, initial=0
    )
    idx = np.searchsorted(s.t_sensor, s.t_video)
    np.testing.assert_allclose(s.t_sensor[idx], s.t_video)
    ppm = demo.SIZE / demo.FIELD_OF_VIEW_M
    predicted = measured[0] + np.stack([pos[idx, 0], -pos[idx, 1]], -1) * ppm
    travel = np.ptp(measured, axis=0).max()
    assert travel > 8  # the hand really moves
    np.testing.assert_allclose(predicted, measured, atol=1.0)
    np.testing.assert_allclose(s.centre_px, measured, atol=1.0)


def test_gyroscope_is_the_body_angular_velocity():
    s = demo.synthesize("swipe_horizontal_twist", subject=0, rep=0, noise=0.0)
    step = np.einsum("nji,njk->nik", s.rotation[:-1], s.rotation[1:])
    rotvec = Rotation.from_matrix(step).as_rotvec()
    gyro = s.sensor[:, 3:].astype(np.float64)
    dt = s.t_sensor[1] - s.t_sensor[0]
    np.testing.assert_allclose(rotvec, (gyro[:-1] + gyro[1:]) / 2 * dt, atol=0.01)
    assert np.abs(gyro[:, 2]).max() > 5  # the twist is fast in the gyroscope


def _same_motion(label: str, other: str) -> tuple[demo.DemoSample, demo.DemoSample]:
    """Two noise-free samples with identical random draws, differing only in the class."""
    subj = demo._subject(0, 0, demo.SIZE, 0.0)
    motion = demo._motion(np.random.default_rng(0), label, subj, demo.DURATION_S)
    out = []
    for m in (motion, dataclasses.replace(motion, label=other)):
        kin_v = demo._kinematics(m, subj, np.arange(16) / 8)
        kin_s = demo._kinematics(m, subj, np.arange(128) / 64)
        video, _, centres = demo._render(kin_v, subj, np.random.default_rng(1), demo.SIZE, 0.0)
        sensor, _ = demo._imu(kin_s, subj, np.random.default_rng(2), 0.0)
        out.append((video, sensor, centres))
    return out


def test_twist_and_tap_are_strong_in_sensor_but_weak_in_video():
    (v0, s0, c0), (v1, s1, c1) = _same_motion("swipe_horizontal", "swipe_horizontal_twist")
    np.testing.assert_allclose(c0, c1)  # the same path
    assert np.abs(s1[:, 5]).max() > 4 * np.abs(s0[:, 5]).max()  # gyro about the forearm
    changed = np.abs(v0.astype(int) - v1.astype(int)).sum(-1) > 30
    assert 0 < changed.mean() < 0.01  # only the thumb moves: a few pixels per frame
    (v0, s0, c0), (v1, s1, c1) = _same_motion("swipe_vertical", "swipe_vertical_tap")
    np.testing.assert_allclose(c0, c1)
    assert np.ptp(s1[:, 2]) > 5 * np.ptp(s0[:, 2])  # acceleration along the forearm
    changed = np.abs(v0.astype(int) - v1.astype(int)).sum(-1) > 30
    assert changed.mean() < 0.002  # a sub-pixel change of the hand's size


def test_interrupted_generation_is_redone(tmp_path, monkeypatch):
    root = tmp_path / "d"
    calls = []
    real = demo.atomic_save_npy

    def failing(path, array):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(path)
        return real(path, array)

    monkeypatch.setattr(demo, "atomic_save_npy", failing)
    with pytest.raises(KeyboardInterrupt):
        demo.generate(root, **SMALL)
    monkeypatch.undo()
    assert not (root / "demo.json").exists()
    assert not demo.is_current(root, 0, **SMALL)
    demo.generate(root, **SMALL)
    assert demo.is_current(root, 0, **SMALL)
    assert not demo.is_current(root, 1, **SMALL)
    assert not demo.is_current(root, 0, n_subjects=3, reps=2)
    (root / "sensor/s01/wave_0.npy").unlink()
    assert not demo.is_current(root, 0, **SMALL)


def test_regeneration_removes_stale_files(tmp_path):
    root = demo.generate(tmp_path, n_subjects=3, reps=2)
    demo.generate(tmp_path, **SMALL)
    assert not (root / "video/s01/wave_1.npy").exists()
    assert len(list((root / "sensor").rglob("*.npy"))) == len(demo.CLASSES) * 3


def test_refuses_foreign_folder_and_bad_arguments(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="not a demo dataset"):
        demo.generate(tmp_path, **SMALL)
    with pytest.raises(ValueError, match="n_subjects"):
        demo.generate(tmp_path / "x", n_subjects=1)
    with pytest.raises(ValueError, match="unknown demo class"):
        demo.synthesize("jump")
    with pytest.raises(TypeError, match="unknown demo generation"):
        demo.is_current(tmp_path, 0, colour="red")


def test_load_generates_and_returns_manifest(tmp_path, caplog):
    pytest.importorskip("vsfusion.data.vsl")
    root = tmp_path / "demo"
    m = demo.load(root, seed=0, val_fraction=0.25, n_subjects=4, reps=1)
    assert m.name == "demo" and m.classes == list(demo.CLASSES)
    assert set(m.samples["split"]) == {"train", "val", "test"}
    assert set(m.modalities) == {"video", "sensor"}
    subjects = {s: set(m.split(s)["subject"]) for s in ("train", "val", "test")}
    assert subjects["test"] == {"s04"}
    assert not subjects["train"] & subjects["val"] and subjects["train"] | subjects["val"] == {
        "s01",
        "s02",
        "s03",
    }
    stamp = (root / "demo.json").stat().st_mtime_ns
    demo.load(root, seed=0, n_subjects=4, reps=1)  # current: not regenerated
    assert (root / "demo.json").stat().st_mtime_ns == stamp
    m2 = demo.load(root, seed=1, data_seed=0, n_subjects=4, reps=1)  # new split seed, same data
    assert (root / "demo.json").stat().st_mtime_ns == stamp
    assert len(m2.samples) == len(m.samples)


def test_render_preview(small_root, tmp_path):
    import cv2

    png = demo.render_preview(small_root, tmp_path / "p.png", frames=4)
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] == len(demo.CLASSES) * (demo.SIZE + 2) * 2


def test_default_split_is_the_documented_one(tmp_path):
    """README and module docstring: test s06-s08 (96 samples), 128 train / 32 val from s01-s05."""
    m = demo.load(tmp_path / "demo", seed=0)
    counts = {s: len(m.split(s)) for s in ("train", "val", "test")}
    assert counts == {"train": 128, "val": 32, "test": 96}
    assert set(m.split("test")["subject"]) == {"s06", "s07", "s08"}
    assert len(set(m.split("val")["subject"])) == 1
