"""Predictor's preprocessing is the cache's reader and the loader's test-time transform; model
paths, the webcam reader and top-k (no model is trained here: see tests/inference/test_predict.py)."""

import functools
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from vsfusion.data import ClipLoader, DataError
from vsfusion.data.cache import Entry, build_cache
from vsfusion.data.folder import read_sensor_file
from vsfusion.data.manifest import Manifest
from vsfusion.data.modality import StreamInfo
from vsfusion.data.video import read_clip
from vsfusion.inference import Predictor, capture_frames, predictor_info, top_k

LOADS = {"video": {"num_frames": 5, "crop_size": 16, "frame_size": 20}, "sensor": {"length": 12}}


def _video(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (40, 30))
    for _ in range(n):
        w.write(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    w.release()
    return path


def _sensor(path: Path, n: int, seed: int) -> Path:
    data = np.random.default_rng(seed).normal(size=(n, 6))
    table = pd.DataFrame(data, columns=[f"c{i}" for i in range(6)])
    table.insert(0, "time", np.arange(n) / 25.0)
    table.to_csv(path, index=False)
    return path


@pytest.fixture
def cached(tmp_path):
    """Three video + sensor-CSV samples through build_cache with the folder adapter's readers,
    the manifest read back, and a run folder whose predictor.json describes it."""
    entries = []
    for i in range(3):
        video, sensor = (
            _video(tmp_path / f"v{i}.mp4", 9 + 4 * i, i),
            _sensor(tmp_path / f"s{i}.csv", 30 + i, i),
        )
        entries.append(
            Entry(f"a{i}", "x", "1", "test", {"video": str(video), "sensor": str(sensor)})
        )
    readers = {
        "video": functools.partial(read_clip, num_frames=7, size=24, crop="centre", with_info=True),
        "sensor": functools.partial(read_sensor_file, steps=20),
    }
    declared = {"video": {"kind": "rgb"}, "sensor": {"kind": "inertial"}}
    build_cache(entries, tmp_path / "cache", readers, workers=1, modalities=declared)
    manifest = Manifest.from_csv(tmp_path / "cache" / "manifest.csv")
    run = tmp_path / "run"
    run.mkdir()
    (run / "deploy.keras").write_bytes(b"")
    info = predictor_info(
        classes=["x", "y"],
        dataset="toy",
        streams=manifest.streams,
        loads=LOADS,
        models={
            "video": {"file": "deploy.keras", "inputs": ["video"]},
            "video+sensor": {"file": "deploy_sensor.keras", "inputs": ["video", "sensor"]},
        },
    )
    (run / "predictor.json").write_text(json.dumps(info))
    return entries, manifest, run


def test_a_recording_is_read_as_the_cache_and_the_test_loader_read_it(cached):
    entries, manifest, run = cached
    predictor = Predictor.load(run)
    loader = ClipLoader(
        manifest.samples,
        ["x"],
        batch_size=3,
        streams=manifest.streams,
        num_frames=5,
        crop_size=16,
        frame_size=20,
        sensor_steps=12,
    )
    x, _ = loader[0]
    for k, e in enumerate(entries):
        video = predictor.prepare_video(e.sources["video"])
        assert video.shape == (5, 16, 16, 3) and video.dtype == np.float32
        np.testing.assert_array_equal(video, x["video"][k])
        np.testing.assert_array_equal(predictor.prepare_sensor(e.sources["sensor"]), x["sensor"][k])
        # evenly spaced samples in memory give what their file gives
        table = pd.read_csv(e.sources["sensor"]).to_numpy()[:, 1:]
        np.testing.assert_allclose(predictor.prepare_sensor(table), x["sensor"][k], atol=1e-6)


def test_frames_are_read_as_their_video_file(cached):
    entries, _, run = cached
    predictor = Predictor.load(run)
    path = entries[2].sources["video"]
    cap = cv2.VideoCapture(path)
    frames = []
    while (got := cap.read())[0]:
        frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    np.testing.assert_array_equal(predictor.prepare_video(frames), predictor.prepare_video(path))


def test_unsuitable_recordings_are_one_line_errors(cached, tmp_path):
    entries, _, run = cached
    predictor = Predictor.load(run)
    with pytest.raises(DataError, match="nope.mp4: video file not found"):
        predictor.prepare_video(tmp_path / "nope.mp4")
    with pytest.raises(DataError, match=r"frames must be uint8 RGB"):
        predictor.prepare_video([np.zeros((8, 8), np.uint8)])
    grey = tmp_path / "grey.npy"
    np.save(grey, np.zeros((4, 20, 20, 1), np.uint8))
    with pytest.raises(DataError, match="grey.npy: rgb clip has 1 channels, expected 3"):
        predictor.prepare_video(grey)
    with pytest.raises(DataError, match="sensor has 4 channels, the model was trained on 6"):
        predictor.prepare_sensor(np.zeros((30, 4)))
    with pytest.raises(DataError, match="sensor has NaN/inf values at row 2"):
        predictor.prepare_sensor(np.where(np.arange(30)[:, None] == 2, np.nan, np.ones((30, 6))))


def test_ready_clips_without_a_recorded_reader_use_videoprocess_defaults_with_a_warning(
    cached, caplog
):
    entries, manifest, run = cached
    streams = dict(manifest.streams)
    streams["video"] = StreamInfo("rgb", (None, None, None, 3), 3)  # a processed layout
    info = predictor_info(
        classes=["x"],
        dataset="toy",
        streams=streams,
        loads=LOADS,
        models={"video": {"file": "deploy.keras", "inputs": ["video"]}},
    )
    (run / "predictor.json").write_text(json.dumps(info))
    predictor = Predictor.load(run)
    with caplog.at_level(logging.WARNING, logger="vsfusion.inference"):
        got = predictor.prepare_video(entries[0].sources["video"])
    assert "32 frames, 128 px" in caplog.text and got.shape == (5, 16, 16, 3)
    with pytest.raises(DataError, match="no video \\+ real-sensor model \\(it was not written\\)"):
        predictor.model(sensor=True)


def test_model_paths_resolve_to_the_run(cached, tmp_path):
    _, _, run = cached
    fusion = run.parent
    (fusion / "latest").write_text("run\n")
    for path in (run, run / "deploy.keras", fusion, fusion / "latest"):
        assert Predictor.load(path).run == run, path
    with pytest.raises(DataError, match="nothing: model not found"):
        Predictor.load(tmp_path / "nothing")
    (tmp_path / "x.keras").write_bytes(b"")
    with pytest.raises(DataError, match="not a fusion run or a deploy.keras file"):
        Predictor.load(tmp_path / "x.keras")
    (run / "fused.keras").write_bytes(b"")
    with pytest.raises(DataError, match="fused.keras: not a deployable model of this run"):
        Predictor.load(run / "fused.keras")
    info = json.loads((run / "predictor.json").read_text())
    info["models"]["video"]["inputs"] = ["depth", "skeleton"]
    (run / "predictor.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="takes \\['depth', 'skeleton'\\], not video;"):
        Predictor.load(run)
    (run / "predictor.json").write_text("{}")
    with pytest.raises(DataError, match="not a predictor description of this version"):
        Predictor.load(run)


class FakeCapture:
    def __init__(self, frames, fps=0.0, opened=True):
        self.frames, self.fps, self.opened, self.released = list(frames), fps, opened, False

    def isOpened(self):
        return self.opened

    def get(self, prop):
        return self.fps

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def release(self):
        self.released = True


def test_capture_frames_records_seconds_times_the_frame_rate_in_rgb():
    bgr = [np.full((6, 8, 3), (255, 0, k), np.uint8) for k in range(100)]
    cap = FakeCapture(bgr, fps=10.0)
    frames = capture_frames(2, seconds=1.5, capture=lambda i: cap)
    assert len(frames) == 15 and cap.released
    assert frames[3][0, 0].tolist() == [3, 0, 255]  # RGB
    assert len(capture_frames(0, 1.0, capture=lambda i: FakeCapture(bgr))) == 30  # no fps: 30
    assert len(capture_frames(0, 10.0, capture=lambda i: FakeCapture(bgr[:4], 25.0))) == 4
    with pytest.raises(DataError, match="webcam 3: cannot open it"):
        capture_frames(3, capture=lambda i: FakeCapture([], opened=False))
    with pytest.raises(DataError, match="webcam 0: no frame could be read"):
        capture_frames(0, capture=lambda i: FakeCapture([]))


def test_top_k_is_most_probable_first_with_names():
    assert top_k([0.2, 0.5, 0.3], ["a", "b", "c"], 5) == [("b", 0.5), ("c", 0.3), ("a", 0.2)]
    assert top_k([0.5, 0.5], ["a", "b"], 1) == [("a", 0.5)]  # ties keep the class order
    with pytest.raises(ValueError, match="3 probabilities for 2 classes"):
        top_k([0.2, 0.5, 0.3], ["a", "b"])
    with pytest.raises(ValueError, match="k must be at least 1"):
        top_k([1.0], ["a"], 0)
