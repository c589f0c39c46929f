"""Video decoding, temporal sampling and spatial transforms, on synthetic and real clips."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from vsfusion.data import video
from vsfusion.data.errors import DataError
from vsfusion.data.video import (
    center_crop,
    hflip,
    random_crop,
    read_video,
    resize_shorter,
    uniform_indices,
)


def write_mp4(path: Path, n_frames: int = 20, hw=(48, 64)) -> Path:
    """Frame k is uniform grey 10 + 10 k with a pure red (RGB) left half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (hw[1], hw[0]))
    assert w.isOpened()
    for k in range(n_frames):
        f = np.full((*hw, 3), 10 + 10 * k, np.uint8)
        f[:, : hw[1] // 2] = (0, 0, 255)  # BGR red
        w.write(f)
    w.release()
    return path


def test_uniform_indices():
    assert uniform_indices(10, 5).tolist() == [1, 3, 5, 7, 9]
    assert uniform_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    assert uniform_indices(7, None).tolist() == list(range(7))
    a = uniform_indices(100, 8, jitter=True, rng=np.random.default_rng(1))
    b = uniform_indices(100, 8, jitter=True, rng=np.random.default_rng(1))
    c = uniform_indices(100, 8, jitter=True, rng=np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.all(a // 12.5 == np.arange(8))  # one index inside each segment
    with pytest.raises(ValueError):
        uniform_indices(0, 4)


def test_read_synthetic_mp4(tmp_path):
    path = write_mp4(tmp_path / "clip.mp4")
    full = read_video(path)
    assert full.shape == (20, 48, 64, 3) and full.dtype == np.uint8
    # BGR -> RGB: the left half is red.
    assert np.allclose(full[5, 24, 10], [255, 0, 0], atol=40)
    clip = read_video(path, num_frames=4)
    grey = clip[:, :, 40:].astype(float).mean(axis=(1, 2, 3))
    expected = 10 + 10 * uniform_indices(20, 4)
    assert np.allclose(grey, expected, atol=4)
    # Shorter clip than requested: frames are repeated evenly.
    long = read_video(path, num_frames=40, size=24)
    assert long.shape == (40, 24, 32, 3)
    assert np.array_equal(long[0], long[1])


def test_read_video_decodes_sequentially(tmp_path, monkeypatch):
    path = write_mp4(tmp_path / "clip.mp4")
    calls = {"set": 0, "retrieve": 0, "grab": 0}
    real = cv2.VideoCapture

    class Spy:
        def __init__(self, *a):
            self._cap = real(*a)

        def set(self, *a):
            calls["set"] += 1
            return self._cap.set(*a)

        def grab(self):
            calls["grab"] += 1
            return self._cap.grab()

        def retrieve(self, *a):
            calls["retrieve"] += 1
            return self._cap.retrieve(*a)

        def __getattr__(self, name):
            return getattr(self._cap, name)

    monkeypatch.setattr(video.cv2, "VideoCapture", Spy)
    read_video(path, num_frames=4)
    assert calls["set"] == 0
    assert calls["retrieve"] == 4
    assert calls["grab"] <= 20


def test_read_video_errors(tmp_path):
    with pytest.raises(DataError, match=r"nope\.mp4: video file not found"):
        read_video(tmp_path / "nope.mp4")
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=r"corrupt\.mp4: .*(decode|open)") as e:
        read_video(bad, num_frames=4)
    assert "\n" not in str(e.value)


def test_spatial_transforms():
    frames = np.arange(2 * 6 * 8 * 3, dtype=np.uint8).reshape(2, 6, 8, 3)
    assert resize_shorter(frames, 12).shape == (2, 12, 16, 3)
    assert resize_shorter(np.zeros((1, 10, 5, 1), np.uint8), 4).shape == (1, 8, 4, 1)
    c = center_crop(frames, 4)
    assert c.shape == (2, 4, 4, 3) and np.array_equal(c, frames[:, 1:5, 2:6])
    assert center_crop(frames, (6, 2)).shape == (2, 6, 2, 3)
    r1 = random_crop(frames, 4, np.random.default_rng(0))
    r2 = random_crop(frames, 4, np.random.default_rng(0))
    assert r1.shape == (2, 4, 4, 3) and np.array_equal(r1, r2)
    assert np.array_equal(hflip(frames)[:, :, 0], frames[:, :, -1])
    with pytest.raises(ValueError, match="larger than the frames"):
        center_crop(frames, 7)


def test_real_video_samples_decode(shared_data):
    files = sorted((shared_data / "video-samples").iterdir())
    assert len(files) >= 5
    for f in files:
        clip = read_video(f, num_frames=8, size=64)
        assert clip.dtype == np.uint8 and clip.shape[0] == 8 and clip.shape[3] == 3
        assert min(clip.shape[1:3]) == 64
        assert clip.std() > 5, f"{f.name} decoded to a flat image"
        assert not np.array_equal(clip[0], clip[-1]), f"{f.name}: frames do not change"


@pytest.mark.parametrize("crop", ["centre", "person"])
def test_clip_from_frames_is_read_clip_on_decoded_frames(tmp_path, crop):
    path = write_mp4(tmp_path / "a.mp4", n_frames=23, hw=(48, 64))
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(video.bgr_to_rgb(frame))
    cap.release()
    want, info = video.read_clip(str(path), 7, 24, crop=crop, with_info=True)
    got, got_info = video.clip_from_frames(frames, 7, 24, crop=crop, with_info=True)
    np.testing.assert_array_equal(got, want)
    assert got_info["crop"] == info["crop"] and got_info["box"] == info["box"]
    np.testing.assert_array_equal(video.clip_from_frames(np.stack(frames), 7, 24, crop=crop), want)


def test_clip_from_frames_rejects_no_frames_and_bad_frames():
    with pytest.raises(DataError, match="no frames"):
        video.clip_from_frames([], 4, 16)
    with pytest.raises(DataError, match=r"frame 0 is float64 \(8, 8\); frames must be uint8 RGB"):
        video.clip_from_frames([np.zeros((8, 8))], 4, 16)
    mixed = [np.zeros((8, 8, 3), np.uint8), np.zeros((16, 8, 3), np.uint8)]
    with pytest.raises(DataError, match="frames differ in size"):
        video.clip_from_frames(mixed, 2, 8)
