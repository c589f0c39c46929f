"""folder adapter: class-per-folder videos with optional sensor files, through the cache."""

import cv2
import numpy as np
import pytest

from vsfusion.data import DataError, folder
from vsfusion.data.folder import load, read_sensor_file


@pytest.fixture(autouse=True)
def small_cache(monkeypatch):
    monkeypatch.setattr(folder, "CACHE_FRAMES", 4)
    monkeypatch.setattr(folder, "CACHE_SIZE", 16)
    monkeypatch.setattr(folder, "SENSOR_STEPS", 24)


def write_video(path, n=5, size=(24, 20), value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    assert vw.isOpened()
    for i in range(n):
        vw.write(np.full((size[1], size[0], 3), (value + 30 * i) % 256, np.uint8))
    vw.release()


def make_tree(
    root, train=("p1", "p2", "p3", "p4"), test=("p5",), labels=("clap", "wave"), ext=".mp4"
):
    """root/<split>/<label>/<subject>_<label>.mp4, two labels per subject."""
    paths = []
    for split, subjects in (("train", train), ("test", test)):
        for k, s in enumerate(subjects):
            for j, label in enumerate(labels):
                p = root / split / label / f"{s}_{label}{ext}"
                write_video(p, value=10 * k + 50 * j)
                paths.append(p)
    return paths


def test_videos_only_carves_validation_by_subject(tmp_path):
    make_tree(tmp_path / "data")
    m = load(tmp_path / "data", cache_dir=tmp_path / "cache", workers=1, seed=0)
    assert m.name == "folder" and m.classes == ["clap", "wave"]
    assert m.modalities == ("video",)
    df = m.samples
    assert "train/wave/p1_wave" in set(df["id"]) and (df["sensor"] == "").all()
    by_split = {s: set(df.loc[df["split"] == s, "subject"]) for s in ("train", "val", "test")}
    assert by_split["test"] == {"p5"} and len(by_split["val"]) == 1
    assert not by_split["val"] & by_split["train"]
    clip = np.load(df.loc[0, "video"])
    assert clip.shape == (4, 16, 16, 3) and clip.dtype == np.uint8
    assert load(tmp_path / "data", cache_dir=tmp_path / "cache", workers=1).samples.equals(df)


def test_sensors_csv_with_and_without_header_and_npy(tmp_path):
    videos = make_tree(tmp_path, train=("p1", "p2"), test=("p3",))
    rng = np.random.default_rng(0)
    for i, v in enumerate(videos):
        data = rng.normal(size=(60, 3))
        if i % 3 == 0:
            np.save(v.with_suffix(".npy"), data.astype(np.float32))
        elif i % 3 == 1:
            v.with_suffix(".csv").write_text(
                "Timestamp,ax,ay,az\n"
                + "\n".join(
                    f"{t * 0.02!r},{a!r},{b!r},{c!r}" for t, (a, b, c) in enumerate(data.tolist())
                )
                + "\n"
            )
        else:
            np.savetxt(v.with_suffix(".csv"), data, delimiter=",")
    np.save(tmp_path / "test/wave/p9_wave.npy", rng.normal(size=(40, 3)))  # sensor-only sample
    (tmp_path / "val/clap").mkdir(parents=True)
    write_video(tmp_path / "val/clap/p4_clap.avi")
    m = load(tmp_path, cache_dir=tmp_path / "cache", workers=1)
    df = m.samples.set_index("id")
    assert m.modalities == ("video", "sensor")
    assert df.loc["test/wave/p9_wave", "video"] == "" and df.loc["val/clap/p4_clap", "sensor"] == ""
    assert (df["split"] == "val").sum() == 1  # the val/ folder is used as given
    for p in df["sensor"]:
        if p:
            arr = np.load(p)
            assert arr.shape == (24, 3) and arr.dtype == np.float32
    # The time column is not a channel; times even out irregular sampling.
    csv = tmp_path / "irregular.csv"
    csv.write_text("time,a\n0,0\n1,1\n3,3\n4,4\n")
    np.testing.assert_allclose(read_sensor_file(str(csv), steps=5)[:, 0], [0, 1, 2, 3, 4])


def test_subject_pattern(tmp_path):
    for split, s in (("train", "01"), ("train", "02"), ("train", "03"), ("test", "04")):
        for label in ("a", "b"):
            write_video(tmp_path / split / label / f"take{label}-subj{s}.mp4")
    m = load(tmp_path, cache_dir=tmp_path / "cache", workers=1, subject_pattern=r"subj(\d+)")
    assert set(m.samples["subject"]) == {"01", "02", "03", "04"}
    with pytest.raises(DataError, match=r"takea-subj01\.mp4: file name does not match the subject "
                       r"pattern '\^\(\?P<subject>\[\^_\]\+\)_'"):  # fmt: skip
        load(tmp_path, cache_dir=tmp_path / "cache", workers=1)


def test_label_only_in_test_is_an_error(tmp_path):
    make_tree(tmp_path)
    write_video(tmp_path / "test/jump/p5_jump.mp4")
    with pytest.raises(
        DataError, match=r"p5_jump\.mp4: label 'jump' occurs in split 'test' but not"
    ):
        load(tmp_path, cache_dir=tmp_path / "cache", workers=1)


def test_layout_errors(tmp_path):
    with pytest.raises(DataError, match="no train/ folder"):
        load(tmp_path, cache_dir=tmp_path / "cache")
    videos = make_tree(tmp_path, train=("p1", "p2"), test=("p3",), labels=("a",))
    np.save(videos[0].with_suffix(".npy"), np.zeros((10, 6)))
    np.save(videos[1].with_suffix(".npy"), np.zeros((10, 4)))
    with pytest.raises(
        DataError, match=r"p1_a\.npy has 6, .*p2_a\.npy has 4|p2_a\.npy has 4, .*p1_a\.npy has 6"
    ):
        load(tmp_path, cache_dir=tmp_path / "cache")
    np.savetxt(videos[1].with_suffix(".csv"), np.zeros((10, 6)), delimiter=",")
    with pytest.raises(DataError, match=r"two sensor files with the stem 'p2_a'"):
        load(tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="unknown protocol"):
        load(tmp_path, protocol="signer")


def test_real_clips(tmp_path, shared_data):
    """The shared real clips (mp4/h264, avi/xvid, 256p-1080p) in a class-per-folder tree."""
    src = shared_data / "video-samples"
    layout = {
        "train/sport/s1_arm_wrestling.mp4": "kinetics_arm_wrestling.mp4",
        "train/daily/s2_drink_water.avi": "ntu_rgbd_S001C001P001R001A001_drink_water.avi",
        "train/sport/s3_short.mp4": "short_clip_340x256.mp4",
        "train/daily/s3_makeup.avi": "ucf101_apply_eye_makeup.avi",
        "test/sport/s4_skeleton.mp4": "skeleton_demo_1080p.mp4",
    }
    for rel, name in layout.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).symlink_to(src / name)
    m = load(tmp_path, cache_dir=tmp_path / "cache", workers=1, val_fraction=0.3, seed=0)
    assert len(m.samples) == 5 and m.classes == ["daily", "sport"]
    assert set(m.samples.loc[m.samples["split"] == "test", "subject"]) == {"s4"}
    assert (m.samples["split"] == "val").any()
    for p in m.samples["video"]:
        clip = np.load(p)
        assert clip.shape == (4, 16, 16, 3) and clip.dtype == np.uint8 and clip.std() > 0
