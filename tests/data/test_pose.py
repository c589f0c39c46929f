"""Pose and hand keypoints (vsfusion.data.pose).

Everything but the last test runs without mediapipe, on stub detectors that mimic MediaPipe
Holistic's result objects. The last one extracts keypoints from a real clip; it runs only where
mediapipe is importable (the pose environment: ``make venv-pose``) and ../shared/data is present.

This module runs in the pose environment too, which has no Keras: ``_seed`` below replaces
conftest's autouse fixture (which imports keras) for these tests.
"""

import functools
import json
import logging
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace as NS

import cv2
import numpy as np
import pytest

from vsfusion.data import pose
from vsfusion.data.cache import Entry, build_cache, validate_output
from vsfusion.data.pose import (
    BODY,
    JOINT_NAMES,
    LEFT_HAND,
    MISSING_MEDIAPIPE,
    POSE_JOINTS,
    RIGHT_HAND,
    extract_keypoints,
    landmarks_to_array,
    pose_info,
    presence_mask,
    read_pose,
    to_clip_coords,
)
from vsfusion.data.video import crop_clip, read_video, uniform_indices


@pytest.fixture(autouse=True)
def _seed():
    """Replaces conftest's Keras seeding: the pose environment has no Keras."""
    np.random.seed(0)  # noqa: NPY002 - legacy global RNG, as conftest seeds it


def part(n: int, base: float) -> NS:
    """A MediaPipe-like landmark list: point k is (base + k/1000, base + 0.5 + k/1000, -k/1000)."""
    return NS(
        landmark=[NS(x=base + k / 1000, y=base + 0.5 + k / 1000, z=-k / 1000) for k in range(n)]
    )


def result(body=None, left=None, right=None) -> NS:
    return NS(pose_landmarks=body, left_hand_landmarks=left, right_hand_landmarks=right)


def write_video(path: Path, n_frames: int = 30, hw=(48, 64)) -> Path:
    """Frame k is uniform grey 5 + 8 k (MJPG, so the grey level survives decoding)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (hw[1], hw[0]))
    assert w.isOpened()
    for k in range(n_frames):
        w.write(np.full((*hw, 3), 5 + 8 * k, np.uint8))
    w.release()
    return path


def grey_detector(frame: np.ndarray) -> NS:
    """Stub Holistic: a body whose nose x is the frame's mean grey / 255; hands never found."""
    body = part(33, 0.0)
    body.landmark[0] = NS(x=float(frame.mean()) / 255, y=0.5, z=0.0)
    return result(body=body)


class StubHolistic:
    """Stands in for mediapipe's Holistic where read_pose builds one."""

    closed = 0

    def process(self, frame):
        return grey_detector(frame)

    def close(self):
        StubHolistic.closed += 1


def test_joint_layout():
    assert POSE_JOINTS == 75 == len(JOINT_NAMES) == len(set(JOINT_NAMES))
    assert (BODY.start, LEFT_HAND.start, RIGHT_HAND.start, RIGHT_HAND.stop) == (0, 33, 54, 75)
    assert JOINT_NAMES[15] == "left_wrist" and JOINT_NAMES[16] == "right_wrist"
    assert JOINT_NAMES[33] == "left_hand_wrist" and JOINT_NAMES[54] == "right_hand_wrist"
    assert JOINT_NAMES[74] == "right_hand_pinky_tip"


def test_missing_mediapipe_is_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe -> ModuleNotFoundError
    with pytest.raises(ImportError) as e:
        pose.require_mediapipe()
    assert str(e.value) == MISSING_MEDIAPIPE
    assert "pip install .[pose]" in str(e.value) and "\n" not in str(e.value)
    # The extra is checked before any decoding: a missing file still reports the missing extra.
    with pytest.raises(ImportError, match="^pose extraction needs mediapipe"):
        extract_keypoints(tmp_path / "absent.mp4", 4)
    with pytest.raises(ImportError, match="^pose extraction needs mediapipe"):
        read_pose(str(tmp_path / "absent.mp4"))
    # The command line prints the line (no traceback) and exits 2.
    assert pose.main(["--videos", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == MISSING_MEDIAPIPE
    assert not (tmp_path / "out").exists()


def test_broken_or_too_new_mediapipe_says_why(monkeypatch, tmp_path):
    fake = tmp_path / "fake"
    (fake / "mediapipe").mkdir(parents=True)
    init = fake / "mediapipe" / "__init__.py"
    monkeypatch.syspath_prepend(str(fake))
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # the undo restores what was there
    del sys.modules["mediapipe"]
    # Broken by TensorFlow's protobuf (what installing both into one environment gives).
    init.write_text(
        "raise ImportError(\"cannot import name 'runtime_version' from 'google.protobuf'\")\n"
    )
    with pytest.raises(ImportError) as e:
        pose.require_mediapipe()
    assert str(e.value).startswith(MISSING_MEDIAPIPE) and "runtime_version" in str(e.value)
    # A release without the legacy solutions (0.10.30+).
    sys.modules.pop("mediapipe", None)
    init.write_text("__version__ = '0.10.35'\n")
    with pytest.raises(ImportError) as e:
        pose.require_mediapipe()
    assert "0.10.35 has no mediapipe.solutions" in str(e.value) and "\n" not in str(e.value)
    sys.modules.pop("mediapipe", None)


def test_landmarks_to_array_order_and_fill():
    full = landmarks_to_array(result(part(33, 0.1), part(21, 0.2), part(21, 0.3)), presence=True)
    assert full.shape == (75, 4) and full.dtype == np.float32
    assert np.allclose(full[BODY, 0], 0.1 + np.arange(33) / 1000)
    assert np.allclose(full[LEFT_HAND, 0], 0.2 + np.arange(21) / 1000)
    assert np.allclose(full[RIGHT_HAND, 1], 0.8 + np.arange(21) / 1000)
    assert np.allclose(full[RIGHT_HAND, 2], -np.arange(21) / 1000)
    assert (full[:, 3] == 1).all()

    # Nobody: all zeros, presence 0, never NaN.
    empty = landmarks_to_array(result(), presence=True)
    assert not empty.any()
    # Body and right hand only: the left hand is zero-filled, the rest kept.
    some = landmarks_to_array(result(part(33, 0.1), None, part(21, 0.3)))
    assert some.shape == (75, 3)
    assert not some[LEFT_HAND].any() and some[BODY].all(axis=1)[1:].all()
    assert np.array_equal(some[RIGHT_HAND], full[RIGHT_HAND, :3])
    # A NaN coordinate makes that part undetected, not NaN.
    bad = part(21, 0.2)
    bad.landmark[3] = NS(x=float("nan"), y=0.1, z=0.0)
    nan_hand = landmarks_to_array(result(part(33, 0.1), bad, None), presence=True)
    assert np.isfinite(nan_hand).all() and not nan_hand[LEFT_HAND].any()
    assert nan_hand[BODY, 3].all()
    with pytest.raises(ValueError, match="expected 21 landmarks, got 5"):
        landmarks_to_array(result(left=part(5, 0.2)))


def test_presence_mask_agrees_with_presence_channel():
    frames = [
        result(part(33, 0.1), part(21, 0.2), part(21, 0.3)),
        result(),
        result(part(33, 0.1), None, part(21, 0.3)),
        result(None, part(21, 0.2), None),
    ]
    with4 = np.stack([landmarks_to_array(r, presence=True) for r in frames])
    with3 = np.stack([landmarks_to_array(r) for r in frames])
    assert np.array_equal(with4[..., :3], with3)
    assert np.array_equal(presence_mask(with4), presence_mask(with3))
    assert presence_mask(with3).sum(axis=1).tolist() == [75, 0, 54, 21]
    info = pose_info(with3, "x.mp4")
    assert (info["frames"], info["body"], info["left_hand"], info["right_hand"]) == (4, 2, 2, 2)
    assert info["layout"] == "mediapipe-holistic" and "warning" not in info
    assert "only 1 of 4 frames" in pose_info(with3[[0, 1, 1, 3]], "x.mp4")["warning"]


def test_extract_keypoints_samples_frames_like_the_video_cache(tmp_path):
    path = write_video(tmp_path / "clip.avi", n_frames=30)
    kp = extract_keypoints(path, 8, detector=grey_detector)
    assert kp.shape == (8, 75, 3) and kp.dtype == np.float32 and np.isfinite(kp).all()
    # Frame t of the keypoints is frame t of the clip read_video (the cache's decoder) returns.
    clip = read_video(path, num_frames=8)
    assert np.allclose(kp[:, 0, 0], clip.reshape(8, -1).mean(axis=1) / 255, atol=1e-6)
    grey = (5 + 8 * uniform_indices(30, 8)) / 255
    assert np.allclose(kp[:, 0, 0], grey, atol=3 / 255)
    assert not kp[:, LEFT_HAND].any() and not kp[:, RIGHT_HAND].any()
    # Frames in memory are sampled the same way; presence adds the fourth channel.
    frames = np.stack([np.full((16, 16, 3), 5 + 8 * k, np.uint8) for k in range(30)])
    kp4 = extract_keypoints(frames, 8, detector=grey_detector, presence=True, size=8)
    assert kp4.shape == (8, 75, 4) and np.allclose(kp4[:, 0, 0], grey, atol=1e-6)
    assert kp4[:, BODY, 3].all() and not kp4[:, LEFT_HAND, 3].any()
    assert extract_keypoints(frames, detector=grey_detector).shape == (30, 75, 3)
    with pytest.raises(ValueError, match="uint8 RGB"):
        extract_keypoints(frames.astype(np.float32), detector=grey_detector)


def test_read_pose_is_a_build_cache_reader(tmp_path, monkeypatch):
    reader = functools.partial(read_pose, num_frames=6, with_info=True)
    assert pickle.loads(pickle.dumps(reader)).keywords == reader.keywords
    monkeypatch.setattr(pose, "holistic_detector", lambda *a, **k: StubHolistic())
    closed = StubHolistic.closed
    entries = [
        Entry("p1/a", "wave", "1", "", {"pose": str(write_video(tmp_path / "a.avi", 20))}),
        Entry("p1/b", "wave", "1", "", {"pose": str(tmp_path / "missing.avi")}),
    ]
    df = build_cache(entries, tmp_path / "cache", {"pose": reader}, workers=1)
    assert df["id"].tolist() == ["p1/a"] and "p1/b" in df.attrs["failed"]
    kp = np.load(tmp_path / "cache" / "pose" / "p1" / "a.npy")
    assert kp.shape == (6, 75, 3) and kp.dtype == np.float32
    assert validate_output(kp, "pose") is kp
    info = df.attrs["info"]["pose"]["p1/a"]
    assert (info["frames"], info["body"], info["left_hand"]) == (6, 6, 0)
    assert StubHolistic.closed == closed + 2  # the tracker is closed after each clip, even failing


def test_command_line_writes_the_cache_layout_and_resumes(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(pose, "require_mediapipe", lambda: None)
    monkeypatch.setattr(pose, "holistic_detector", lambda *a, **k: StubHolistic())
    videos = tmp_path / "raw"
    (videos / "p1").mkdir(parents=True)
    write_video(videos / "p1" / "a.avi", 20)
    write_video(videos / "b.avi", 12)
    (videos / "c.avi").write_bytes(b"not a video")
    args = ["--videos", str(videos), "--out", str(tmp_path / "out"), "--frames", "5"]
    assert pose.main([*args, "--presence"]) == 1  # c.avi failed
    kp = np.load(tmp_path / "out" / "pose" / "p1" / "a.npy")
    assert kp.shape == (5, 75, 4) and kp.dtype == np.float32
    assert np.load(tmp_path / "out" / "pose" / "b.npy").shape == (5, 75, 4)
    assert not (tmp_path / "out" / "pose" / "c.npy").exists()
    infos = json.loads((tmp_path / "out" / "pose.info.json").read_text())
    assert sorted(infos) == ["b", "p1/a"] and infos["p1/a"]["body"] == 5
    # Re-running skips finished files (not rewritten) and retries the failed one.
    write_video(videos / "c.avi", 8)
    before = (tmp_path / "out" / "pose" / "b.npy").stat().st_mtime_ns
    caplog.set_level(logging.INFO, logger=pose.__name__)
    assert pose.main(args) == 0
    assert "wrote 1, skipped 2 existing, 0 failed" in caplog.text
    assert (tmp_path / "out" / "pose" / "b.npy").stat().st_mtime_ns == before
    assert np.load(tmp_path / "out" / "pose" / "c.npy").shape == (5, 75, 3)
    assert pose.main(["--videos", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2


def test_importing_pose_loads_no_keras_or_tensorflow():
    code = (
        "import sys, vsfusion.data.pose; "
        "print(sorted({'keras', 'tensorflow', 'jax', 'torch'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"


def test_to_clip_coords_matches_the_cache_crop():
    # A 5x5 white dot moving right across a 120x200 frame; find it in the cropped clips.
    t, h, w = 6, 120, 200
    frames = np.zeros((t, h, w, 3), np.uint8)
    xs = [70 + 10 * k for k in range(t)]
    for k, x in enumerate(xs):
        frames[k, 58:63, x - 2 : x + 3] = 255
    kp = np.zeros((t, 75, 4), np.float32)
    kp[:, 0, 0] = (np.array(xs) + 0.5) / w
    kp[:, 0, 1] = 60.5 / h
    kp[:, 0, 2] = 0.1
    kp[:, 0, 3] = 1.0
    for crop in ("centre", "person"):
        clip, info = crop_clip(frames, 64, crop)
        assert info["crop"] == crop
        mapped = to_clip_coords(kp, info)
        for k in range(t):
            ys, xs_ = np.nonzero(clip[k, :, :, 0] > 60)
            weights = clip[k, ys, xs_, 0].astype(float)
            cx = (np.average(xs_, weights=weights) + 0.5) / 64
            cy = (np.average(ys, weights=weights) + 0.5) / 64
            assert abs(mapped[k, 0, 0] - cx) < 1.5 / 64 and abs(mapped[k, 0, 1] - cy) < 1.5 / 64
        side = (info["box"][3] - info["box"][1]) if info["box"] else h
        assert np.allclose(mapped[:, 0, 2], 0.1 * w / side)
        assert not mapped[:, 1:].any() and (mapped[:, 0, 3] == 1).all()  # undetected stay 0


def test_real_clip_extraction(shared_data):
    pytest.importorskip("mediapipe.python.solutions.holistic")
    path = shared_data / "video-samples" / "ntu_rgbd_S001C001P001R001A001_drink_water.avi"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    kp = extract_keypoints(path, 16, presence=True)
    assert kp.shape == (16, 75, 4) and kp.dtype == np.float32 and np.isfinite(kp).all()
    mask = kp[..., 3] > 0.5
    # Zero fill is a faithful presence signal: no detected joint is exactly (0, 0, 0).
    assert np.array_equal(presence_mask(kp[..., :3]), mask)
    body = mask[:, BODY].all(axis=1)
    assert body.mean() >= 0.8, f"person found in only {body.sum()} of 16 frames"
    # One person standing in the middle of a 1920x1080 frame: keypoints are in the frame.
    xy = kp[mask][:, :2]
    assert (xy > -0.05).all() and (xy < 1.05).all()
    assert 0.3 < np.median(kp[body][:, BODY, 0]) < 0.7
    assert (np.abs(kp[mask][:, 2]) < 1.0).all()
    # The hand holding the cup is seen, and each hand sits on the same side's body wrist.
    for hand, wrist, other in ((LEFT_HAND, 15, 16), (RIGHT_HAND, 16, 15)):
        seen = mask[:, hand.start] & body
        if seen.any():
            d_same = np.linalg.norm(kp[seen, hand.start, :2] - kp[seen, wrist, :2], axis=1)
            d_other = np.linalg.norm(kp[seen, hand.start, :2] - kp[seen, other, :2], axis=1)
            assert (d_same < 0.05).all() and (d_same < d_other).all()
    assert (mask[:, LEFT_HAND.start] | mask[:, RIGHT_HAND.start]).mean() >= 0.25
