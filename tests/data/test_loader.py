"""ClipLoader: shapes, dtypes, labels, memory-mapped reads, seeded shuffling and augmentation."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vsfusion.data import loader as loader_mod
from vsfusion.data.errors import DataError
from vsfusion.data.loader import ClipLoader

CLASSES = ["a", "b", "c"]


def make_samples(tmp_path: Path, n=7, video_shape=(12, 40, 48, 3), sensor_shape=(50, 6)):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        v = tmp_path / "video" / f"{i}.npy"
        s = tmp_path / "sensor" / f"{i}.npy"
        v.parent.mkdir(parents=True, exist_ok=True)
        s.parent.mkdir(parents=True, exist_ok=True)
        clip = rng.integers(0, 256, video_shape, dtype=np.uint8)
        np.save(v, clip)
        np.save(s, rng.normal(size=sensor_shape).astype(np.float32))
        rows.append({"id": str(i), "label": CLASSES[i % 3], "video": str(v), "sensor": str(s)})
    return pd.DataFrame(rows)


def test_shapes_dtypes_labels_len(tmp_path):
    df = make_samples(tmp_path)
    ld = ClipLoader(df, CLASSES, batch_size=3, num_frames=8, crop_size=32)
    assert len(ld) == 3
    x, y = ld[0]
    assert set(x) == {"video", "sensor"}
    assert x["video"].shape == (3, 8, 32, 32, 3) and x["video"].dtype == np.float32
    assert x["sensor"].shape == (3, 50, 6) and x["sensor"].dtype == np.float32
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 2]
    x, y = ld[2]
    assert x["video"].shape[0] == 1 and y.tolist() == [0]
    assert ld.labels.tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert 0 <= x["video"].min() and x["video"].max() <= 255


def test_test_mode_is_uniform_centre_and_deterministic(tmp_path):
    df = make_samples(tmp_path)
    ld = ClipLoader(df, CLASSES, batch_size=2, num_frames=4, crop_size=32, flip=True)
    a, _ = ld[1]
    ld.on_epoch_end()
    b, _ = ld[1]
    assert np.array_equal(a["video"], b["video"])
    raw = np.load(df["video"][2])
    idx = [1, 4, 7, 10]  # uniform_indices(12, 4)
    assert np.array_equal(a["video"][0], raw[idx, 4:36, 8:40].astype(np.float32))


def test_train_augmentation_varies_and_is_seeded(tmp_path):
    df = make_samples(tmp_path)
    kw = dict(batch_size=4, train=True, num_frames=6, crop_size=32, flip=True, seed=3)
    a = ClipLoader(df, CLASSES, **kw)
    b = ClipLoader(df, CLASSES, **kw)
    xa, _ = a[0]
    xb, _ = b[0]
    assert np.array_equal(xa["video"], xb["video"])  # same seed, same epoch: same batch
    a.on_epoch_end()
    xa2, _ = a[0]
    assert not np.array_equal(xa["video"], xa2["video"])  # next epoch: new draws
    test = ClipLoader(df, CLASSES, batch_size=4, num_frames=6, crop_size=32)
    assert not np.array_equal(xa["video"], test[0][0]["video"])


def test_recipe_augmentations_apply_in_train_mode_only(tmp_path):
    from vsfusion.data.augment import SensorAugment

    df = make_samples(tmp_path)
    kw = dict(
        batch_size=4,
        num_frames=6,
        crop_size=32,
        scale_jitter=0.3,
        erase_prob=1.0,
        sensor_augment=SensorAugment(unit_channels=6),
        mixup=0.4,
    )
    x, y = ClipLoader(df, CLASSES, train=True, **kw)[0]
    assert y.shape == (4, 3) and y.dtype == np.float32  # mixup: soft targets
    np.testing.assert_allclose(y.sum(1), 1, rtol=1e-6)
    assert x["video"].shape == (4, 6, 32, 32, 3) and x["sensor"].shape == (4, 50, 6)
    plain_x, plain_y = ClipLoader(
        df, CLASSES, train=True, batch_size=4, num_frames=6, crop_size=32
    )[0]
    assert not np.allclose(x["sensor"], plain_x["sensor"])
    xt, yt = ClipLoader(df, CLASSES, train=False, **kw)[0]  # evaluation: untouched
    raw = np.stack([np.load(p) for p in df["sensor"][:4]])
    np.testing.assert_array_equal(xt["sensor"], raw)
    assert yt.tolist() == [0, 1, 2, 0]


def test_frame_size_lowers_resolution_keeping_the_field_of_view(tmp_path):
    df = make_samples(tmp_path, video_shape=(12, 40, 40, 1))
    x, _ = ClipLoader(df, CLASSES, batch_size=1, num_frames=4, crop_size=16, frame_size=20)[0]
    raw = np.load(df["video"][0]).astype(np.float32)[[1, 4, 7, 10]]
    coarse = raw.reshape(4, 20, 2, 20, 2, 1).mean(axis=(2, 4))  # area resize 40 -> 20
    np.testing.assert_allclose(x["video"][0], coarse[:, 2:18, 2:18], atol=1.0)
    with pytest.raises(ValueError, match="smaller than crop_size"):
        ClipLoader(df, CLASSES, crop_size=32, frame_size=20)


def test_shuffle_is_seeded_and_changes_each_epoch(tmp_path):
    df = make_samples(tmp_path, n=12)
    order = lambda ld: np.concatenate([ld[i][1] for i in range(len(ld))]).tolist()  # noqa: E731
    a = ClipLoader(df, CLASSES, modalities=("sensor",), batch_size=5, shuffle=True, seed=1)
    b = ClipLoader(df, CLASSES, modalities=("sensor",), batch_size=5, shuffle=True, seed=1)
    c = ClipLoader(df, CLASSES, modalities=("sensor",), batch_size=5, shuffle=True, seed=2)
    plain = ClipLoader(df, CLASSES, modalities=("sensor",), batch_size=5)
    assert order(a) == order(b)
    assert sorted(order(a)) == sorted(plain.labels.tolist())
    ids = lambda ld: [  # noqa: E731
        tuple(ld[i][0]["sensor"][:, 0, 0]) for i in range(len(ld))
    ]
    assert ids(a) != ids(c) and ids(a) != ids(plain)
    first = ids(a)
    a.on_epoch_end()
    assert ids(a) != first
    assert order(plain) == plain.labels.tolist()


def test_reads_with_mmap(tmp_path, monkeypatch):
    df = make_samples(tmp_path, n=3)
    calls = []
    real = np.load

    def spy(path, *args, **kwargs):
        calls.append(kwargs.get("mmap_mode"))
        return real(path, *args, **kwargs)

    loader = ClipLoader(df, CLASSES, batch_size=3, num_frames=4)
    monkeypatch.setattr(loader_mod.np, "load", spy)
    loader[0]
    assert calls == ["r"] * 6


def test_small_frames_are_resized_up_and_sensor_resampled(tmp_path):
    df = make_samples(tmp_path, n=2, video_shape=(5, 20, 30, 1), sensor_shape=(40, 12))
    ld = ClipLoader(df, CLASSES, batch_size=2, num_frames=8, crop_size=32, sensor_steps=64)
    x, _ = ld[0]
    assert x["video"].shape == (2, 8, 32, 32, 1)
    assert x["sensor"].shape == (2, 64, 12)
    only = ClipLoader(df, CLASSES, modalities=("video",), batch_size=2)
    assert set(only[0][0]) == {"video"} and only[0][0]["video"].shape == (2, 5, 20, 30, 1)


def test_bad_arrays_raise_naming_the_file(tmp_path):
    df = make_samples(tmp_path, n=3)
    np.save(df["video"][1], np.zeros((12, 40, 48), np.uint8))
    with pytest.raises(DataError, match=r"video/1\.npy: video must be non-empty uint8"):
        ClipLoader(df, CLASSES, batch_size=3)[0]
    np.save(df["video"][1], np.zeros((12, 40, 48, 3), np.float32))
    with pytest.raises(DataError, match=r"video/1\.npy: video must be"):
        ClipLoader(df, CLASSES, batch_size=3)[0]
    np.save(df["video"][1], np.zeros((12, 40, 48, 1), np.uint8))
    with pytest.raises(DataError, match=r"video/1\.npy: video has 1 channels but .*0\.npy has 3"):
        ClipLoader(df, CLASSES, batch_size=3, num_frames=4)[0]
    np.save(df["sensor"][2], np.zeros((50, 6, 1), np.float32))
    with pytest.raises(DataError, match=r"sensor/2\.npy: sensor must be 2-D"):
        ClipLoader(df, CLASSES, modalities=("sensor",), batch_size=3)[0]
    np.save(df["sensor"][2], np.zeros((50, 5), np.float32))
    with pytest.raises(DataError, match=r"sensor/2\.npy: sensor has 5 channels"):
        ClipLoader(df, CLASSES, modalities=("sensor",), batch_size=3)[0]
    np.save(df["sensor"][2], np.zeros((30, 6), np.float32))
    with pytest.raises(DataError, match=r"sensor/2\.npy: sensor shape .*sensor_steps"):
        ClipLoader(df, CLASSES, modalities=("sensor",), batch_size=3)[0]


def test_construction_errors(tmp_path):
    df = make_samples(tmp_path, n=3)
    with pytest.raises(DataError, match="2: label 'c' is not one of the 2 classes"):
        ClipLoader(df, ["a", "b"])
    df.loc[1, "sensor"] = ""
    with pytest.raises(DataError, match="1: sample has no sensor file"):
        ClipLoader(df, CLASSES)
    ClipLoader(df, CLASSES, modalities=("video",))


def test_feeds_a_keras_model(tmp_path):
    import keras

    df = make_samples(tmp_path, n=4)
    inp = keras.Input((50, 6), name="sensor")
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling1D()(inp))
    model = keras.Model({"sensor": inp}, out)
    model.compile("sgd", "sparse_categorical_crossentropy")
    ld = ClipLoader(df, CLASSES, modalities=("sensor",), batch_size=2, shuffle=True)
    hist = model.fit(ld, epochs=2, verbose=0)
    assert len(hist.history["loss"]) == 2
    assert model.predict(ClipLoader(df, CLASSES, modalities=("sensor",)), verbose=0).shape == (4, 3)
