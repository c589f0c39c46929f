"""The modality registry: declared kinds through the cache, the manifest and the loader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vsfusion.data import ClipLoader, DataError, Manifest
from vsfusion.data.cache import Entry, build_cache
from vsfusion.data.modality import (
    MODALITIES,
    Modality,
    StreamInfo,
    default_kind,
    mirror_inertial,
    modality,
    register_modality,
)

CLASSES = ["a", "b"]


def _write(path, array):
    np.save(path, array)
    return str(path)


def _paired_cache(tmp_path, n=6, declared=None):
    """n samples of a 2-channel-marked rgb clip + a two-watch (2 x 6 channel) sensor."""
    rng = np.random.default_rng(0)
    entries = []
    for i in range(n):
        clip = np.zeros((4, 8, 8, 3), np.uint8)
        clip[:, :, :4] = 200  # the left half bright: a flip moves it right
        imu = rng.normal(size=(20, 12)).astype(np.float32)
        imu[:, :6] += 5.0  # the left watch is offset: a mirror moves it to channels 6..11
        entries.append(
            Entry(
                f"s{i}",
                CLASSES[i % 2],
                str(i % 3),
                "train",
                {
                    "video": _write(tmp_path / f"v{i}.npy", clip),
                    "sensor": _write(tmp_path / f"i{i}.npy", imu),
                },
            )
        )
    readers = {"video": np.load, "sensor": np.load}
    return build_cache(entries, tmp_path / "cache", readers, workers=1, modalities=declared)


def test_builtin_kinds_and_unknown():
    assert {"rgb", "depth", "inertial", "skeleton"} <= set(MODALITIES)
    assert modality("skeleton").trunk == "stgcn" and modality("rgb").trunk == "i3d"
    with pytest.raises(ValueError, match="known kinds: .*inertial"):
        modality("sonar")
    assert default_kind("video", np.zeros((1, 2, 2, 1), np.uint8)) == "depth"
    assert default_kind("video", np.zeros((1, 2, 2, 3), np.uint8)) == "rgb"
    assert default_kind("sensor") == "inertial" and default_kind("skeleton") == "skeleton"
    assert default_kind("extra") == "array"


def test_kind_checks_name_the_file():
    with pytest.raises(DataError, match=r"d\.mat: depth clip has 3 channels, expected 1"):
        modality("depth").validate(np.zeros((2, 4, 4, 3), np.uint8), "d.mat", {})
    with pytest.raises(DataError, match=r"s\.mat: 10 sensor channels .* 6-channel units"):
        modality("inertial").validate(np.zeros((5, 10)), "s.mat", {"unit_channels": 6})
    bad = np.zeros((3, 20, 3), np.float32)
    bad[1, 4, 0] = np.nan
    with pytest.raises(DataError, match=r"k\.mat: skeleton has NaN"):
        modality("skeleton").validate(bad, "k.mat", {})
    with pytest.raises(DataError, match=r"k\.mat: skeleton must be 3-D"):
        modality("skeleton").validate(np.zeros((3, 20)), "k.mat", {})
    with pytest.raises(
        DataError, match=r"k\.mat: skeleton has 19 joints, layout 'kinect-v1' has 20"
    ):
        modality("skeleton").validate(np.zeros((3, 19, 3)), "k.mat", {"layout": "kinect-v1"})


def test_cache_declares_streams_and_manifest_reads_them(tmp_path):
    declared = {"sensor": {"kind": "inertial", "unit_channels": 6, "mirror_units": [[0, 1]]}}
    df = _paired_cache(tmp_path, declared=declared)
    data = json.loads((tmp_path / "cache" / "modalities.json").read_text())
    assert data["video"] == {"kind": "rgb", "shape": [None, None, None, 3], "channels": 3}
    assert data["sensor"]["attrs"] == {"unit_channels": 6, "mirror_units": [[0, 1]]}
    assert data["sensor"]["shape"] == [None, 12] and data["sensor"]["channels"] == 12
    m = Manifest.from_csv(tmp_path / "cache" / "manifest.csv")
    assert m.stream("sensor") == StreamInfo.from_json(data["sensor"])
    assert m.stream("video").kind == "rgb"
    with pytest.raises(
        DataError, match=r"has no stream or kind .skeleton.; its streams are video \(rgb\)"
    ):
        m.stream("skeleton")
    # an in-memory manifest without declarations infers the same shapes from the files
    inferred = Manifest(df, CLASSES, "toy").streams
    assert inferred["sensor"].shape == (None, 12) and inferred["sensor"].attrs == {}


def test_mirror_is_one_decision_per_sample(tmp_path):
    declared = {"sensor": {"kind": "inertial", "unit_channels": 6, "mirror_units": [[0, 1]]}}
    df = _paired_cache(tmp_path, n=8, declared=declared)
    m = Manifest.from_csv(tmp_path / "cache" / "manifest.csv")
    loader = ClipLoader(df, CLASSES, batch_size=8, train=True, flip=True, seed=3, streams=m.streams)
    x, _ = loader[0]
    video_flipped = x["video"][:, 0, 0, -1, 0] > 100  # the bright half moved to the right
    sensor_mirrored = np.abs(x["sensor"][:, :, 6:].mean(axis=1)).mean(axis=1) > 2.5
    assert 0 < video_flipped.sum() < 8  # both outcomes drawn
    np.testing.assert_array_equal(video_flipped, sensor_mirrored)
    # undeclared units: the sensor cannot mirror, so it is never mirrored
    plain = ClipLoader(df, CLASSES, batch_size=8, train=True, flip=True, seed=3)
    assert plain.streams["sensor"].attrs == {}
    x2, _ = plain[0]
    assert not (np.abs(x2["sensor"][:, :, 6:].mean(axis=1)).mean(axis=1) > 2.5).any()
    np.testing.assert_array_equal(x2["video"], x["video"])  # same draws for the clips


def test_mirror_inertial_is_an_involution():
    x = np.random.default_rng(0).normal(size=(7, 12)).astype(np.float32)
    once = mirror_inertial(x, 6, [[0, 1]])
    np.testing.assert_allclose(once[:, :6], x[:, 6:] * [-1, 1, 1, 1, -1, -1])
    np.testing.assert_allclose(mirror_inertial(once, 6, [[0, 1]]), x)
    with pytest.raises(ValueError, match="out of range"):
        mirror_inertial(x, 6, [[0, 2]])


class _Spectrogram(Modality):
    """A toy kind: float (freq, time) maps, standardised per sample when loaded."""

    name = "toy-spectrogram"

    def validate(self, array, where, attrs):
        array = super().validate(array, where, attrs)
        if array.ndim != 2:
            raise DataError(f"{where}: spectrogram must be (freq, time), got {array.shape}")
        return array.astype(np.float32)

    def load(self, array, info, opts, rng, mirror):
        x = np.asarray(array, np.float32)
        return (x - x.mean()) / (x.std() + 1e-6), None


@pytest.fixture
def toy_kind():
    spec = register_modality(_Spectrogram())
    yield spec
    MODALITIES.pop(spec.name)


def test_a_registered_toy_modality_end_to_end(tmp_path, toy_kind):
    rng = np.random.default_rng(1)
    entries = [
        Entry(
            f"t{i}",
            CLASSES[i % 2],
            "1",
            "train" if i < 6 else "test",
            {"spec": _write(tmp_path / f"x{i}.npy", rng.normal(3, 2, (16, 10)))},
        )
        for i in range(8)
    ]
    entries.append(
        Entry("bad", "a", "1", "train", {"spec": _write(tmp_path / "b.npy", np.ones(4))})
    )
    df = build_cache(
        entries,
        tmp_path / "c",
        {"spec": np.load},
        workers=1,
        modalities={"spec": {"kind": toy_kind.name}},
    )
    assert "bad" in df.attrs["failed"] and "must be (freq, time)" in df.attrs["failed"]["bad"]
    m = Manifest.from_csv(tmp_path / "c" / "manifest.csv").validate()
    assert m.stream("spec") == StreamInfo(toy_kind.name, (None, 10), 10, {})
    x, y = ClipLoader(m.split("train"), m.classes, modalities=("spec",), streams=m.streams)[0]
    assert x["spec"].shape == (6, 16, 10) and x["spec"].dtype == np.float32
    np.testing.assert_allclose(x["spec"].mean(axis=(1, 2)), 0.0, atol=1e-5)
    assert y.tolist() == [0, 1, 0, 1, 0, 1]


def test_a_processed_dataset_reads_a_declared_pose_folder(tmp_path):
    """Keypoints written beside the clips (pose/<rel>.npy + modalities.json) become a stream."""
    from tests.stages.conftest import write_tiny_dataset
    from vsfusion.data import load_dataset
    from vsfusion.data.pose import POSE_JOINTS, declare_pose_stream

    root = write_tiny_dataset(tmp_path / "vsl", reps=1)
    rng = np.random.default_rng(0)
    for clip in sorted((root / "video").rglob("*.npy")):
        out = root / "pose" / clip.relative_to(root / "video")
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, rng.uniform(0, 1, (10, POSE_JOINTS, 3)).astype(np.float32))
    declare_pose_stream(root)
    m = load_dataset("VSL", root, val_fraction=0.34)
    assert set(m.modalities) == {"video", "sensor", "pose"}
    assert m.stream("pose") == StreamInfo(
        "skeleton", (None, POSE_JOINTS, 3), 3, {"layout": "mediapipe-holistic"}
    )
    assert m.resolve_stream("skeleton") == "pose"
    x, _ = ClipLoader(
        m.split("train"), m.classes, modalities=("pose",), streams=m.streams, lengths={"pose": 8}
    )[0]
    assert x["pose"].shape[1:] == (8, POSE_JOINTS, 3)
    from vsfusion.data.skeleton import layout

    centre = list(layout("mediapipe-holistic").centre)  # normalised: first frame's centre at 0
    np.testing.assert_allclose(x["pose"][:, 0, centre, :].mean(axis=1), 0.0, atol=1e-5)
