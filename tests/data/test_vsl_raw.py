"""VSL raw layout: annotations + mp4 + per-wrist watch CSVs, prepared through the cache."""

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from vsfusion.data import DataError, vsl
from vsfusion.data.vsl import detect_time_unit, load, load_processed, read_watches, signer_protocol

T0_MS = 1.7e12  # epoch milliseconds
RATE = 50.0  # Hz


@pytest.fixture(autouse=True)
def small_cache(monkeypatch):
    """Tiny cached arrays keep the tests fast (the module constants feed the readers)."""
    monkeypatch.setattr(vsl, "CACHE_FRAMES", 4)
    monkeypatch.setattr(vsl, "CACHE_SIZE", 16)
    monkeypatch.setattr(vsl, "SENSOR_STEPS", 32)


def write_video(path, n=6, size=(24, 20), value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    assert vw.isOpened()
    for i in range(n):
        vw.write(np.full((size[1], size[0], 3), (value + 20 * i) % 256, np.uint8))
    vw.release()


def _row(t, values):
    return ",".join(repr(float(v)) for v in (t, *values))


def write_watch(path, values, seconds=3.0, t0=T0_MS, scale=1000.0, plant=None):
    """A watch CSV of constant channels ``values`` (6), times ``t0 + scale * seconds`` (ms).

    ``plant``: (time offset in seconds, value) written into every channel at that sample.
    """
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    data = np.tile(np.asarray(values, float), (n, 1))
    if plant is not None:
        data[int(round(plant[0] * RATE))] = plant[1]
    lines = ["times,x1,y1,z1,x2,y2,z2"]
    lines += [_row(t0 + ti * scale, r) for ti, r in zip(t, data, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def make_raw(root, signers=("s1", "s2", "s3", "s4", "s5"), labels=("hi", "bye"), split=None):
    """ROOT/raw/<signer>/<label>_0.{mp4,_left.csv,_right.csv} + annotations.csv with spans.

    Left channels are 1..6 and right 7..12 (constants); each CSV runs 3 s from T0_MS; the span is
    [T0 + 0.5 s, T0 + 2.5 s] in milliseconds.
    """
    raw = root / "raw"
    rows = ["file,label,signer,start,end" + (",split" if split else "")]
    for k, s in enumerate(signers):
        for j, label in enumerate(labels):
            stem = raw / s / f"{label}_0"
            write_video(stem.with_suffix(".mp4"), value=40 * j + k)
            write_watch(stem.with_name(stem.name + "_left.csv"), np.arange(1, 7))
            write_watch(stem.with_name(stem.name + "_right.csv"), np.arange(7, 13))
            row = f"{s}/{label}_0.mp4,{label},{s},{T0_MS + 500!r},{T0_MS + 2500!r}"
            rows.append(row + (f",{split[s]}" if split else ""))
    (raw / "annotations.csv").write_text("\n".join(rows) + "\n")
    return raw


def test_raw_layout_prepares_12_channels_and_splits_by_signer(tmp_path):
    make_raw(tmp_path / "VSL")
    cache = tmp_path / "cache"
    m = load(tmp_path / "VSL", cache_dir=cache, workers=2, seed=0)
    assert m.name == "VSL" and m.classes == ["bye", "hi"]
    assert m.modalities == ("video", "sensor")
    df = m.samples
    assert "s1/hi_0" in set(df["id"])
    by_split = {s: set(df.loc[df["split"] == s, "subject"]) for s in ("train", "val", "test")}
    assert by_split["test"] == {"s5"}  # the last 20 % of the signers, sorted by name
    assert len(by_split["val"]) == 1 and not by_split["val"] & by_split["train"]
    row = df.iloc[0]
    video, sensor = np.load(row["video"]), np.load(row["sensor"])
    assert video.shape == (4, 16, 16, 3) and video.dtype == np.uint8
    assert sensor.shape == (32, vsl.SENSOR_CHANNELS) and sensor.dtype == np.float32
    np.testing.assert_allclose(sensor, np.tile(np.arange(1, 13), (32, 1)), rtol=1e-5)
    assert str(cache) in row["video"]
    # A second load reuses the cache without decoding again.
    mtime = Path(row["video"]).stat().st_mtime_ns
    again = load(tmp_path / "VSL", cache_dir=cache, workers=1, seed=0)
    assert again.samples.equals(df)
    assert Path(row["video"]).stat().st_mtime_ns == mtime


def test_span_cutting_drops_values_outside_the_span(tmp_path):
    raw = make_raw(tmp_path, signers=("s1",), labels=("hi",))
    left = raw / "s1/hi_0_left.csv"
    write_watch(left, np.arange(1, 7), plant=(0.2, 1e6))  # before the span (starts at 0.5 s)
    src = {"left": str(left), "right": str(raw / "s1/hi_0_right.csv")}
    out = read_watches({**src, "start": T0_MS + 500, "end": T0_MS + 2500}, steps=32)
    np.testing.assert_allclose(out, np.tile(np.arange(1, 13), (32, 1)), rtol=1e-5)
    full = read_watches({**src, "start": None, "end": None}, steps=32)  # the CSVs' full span
    assert full[:, :6].max() > 1e3 and np.allclose(full[:, 6:], np.arange(7, 13))
    write_watch(left, np.arange(1, 7), plant=(2.8, -1e6))  # after the span
    out = read_watches({**src, "start": T0_MS + 500, "end": T0_MS + 2500}, steps=32)
    assert np.abs(out).max() < 13


def test_seconds_and_milliseconds_times(tmp_path):
    assert detect_time_unit(np.array([1.7e12, 1.7e12 + 20])) == "ms"
    assert detect_time_unit(np.array([1.7e9, 1.7e9 + 0.02])) == "s"
    assert detect_time_unit(np.arange(0, 3000, 20.0)) == "ms"  # relative milliseconds
    assert detect_time_unit(np.arange(0, 3, 0.02)) == "s"  # relative seconds
    rng = np.random.default_rng(0)
    n = 150
    signal = rng.normal(size=(n, 6)).cumsum(axis=0)  # a random walk: the span matters

    def csv(path, times):
        rows = [_row(t, r) for t, r in zip(times, signal, strict=True)]
        path.write_text("times,x1,y1,z1,x2,y2,z2\n" + "\n".join(rows) + "\n")
        return str(path)

    t_s = 1.7e9 + np.arange(n) / RATE
    for name, scale in (("s", 1.0), ("ms", 1000.0)):
        csv(tmp_path / f"left_{name}.csv", t_s * scale)
        csv(tmp_path / f"right_{name}.csv", t_s * scale)
    span = (1.7e9 + 0.7, 1.7e9 + 2.1)

    def read(name, scale, start, end):
        src = {"left": str(tmp_path / f"left_{name}.csv"), "right": str(tmp_path / "right_s.csv")}
        return read_watches({**src, "start": start * scale, "end": end * scale}, steps=32)

    in_s = read("s", 1.0, *span)
    in_ms = read("ms", 1000.0, *span)  # left watch and annotation in ms, right watch in s
    np.testing.assert_allclose(in_s, in_ms, rtol=1e-5, atol=1e-5)
    assert not np.allclose(in_s, read("s", 1.0, 1.7e9 + 0.1, 1.7e9 + 1.5), atol=1e-3)
    # Relative times: a span 0.7..2.1 given in the left watch's unit (ms) selects the same data.
    csv(tmp_path / "left_rel.csv", (t_s - 1.7e9) * 1000.0)
    csv(tmp_path / "right_rel.csv", t_s - 1.7e9)
    rel = read_watches(
        {"left": str(tmp_path / "left_rel.csv"), "right": str(tmp_path / "right_rel.csv"),
         "start": 700.0, "end": 2100.0},
        steps=32,
    )  # fmt: skip
    np.testing.assert_allclose(rel, in_s, rtol=1e-5, atol=1e-5)


def test_missing_right_wrist_csv_names_the_file(tmp_path):
    raw = make_raw(tmp_path)
    (raw / "s3/bye_0_right.csv").unlink()
    with pytest.raises(DataError, match=r"s3/bye_0_right\.csv: right-wrist CSV not found"):
        load(tmp_path, cache_dir=tmp_path / "cache", workers=1)
    assert not (tmp_path / "cache").exists()  # nothing was decoded


def test_nan_sample_is_dropped_and_reported(tmp_path, caplog):
    raw = make_raw(tmp_path)
    bad = raw / "s2/hi_0_left.csv"
    lines = bad.read_text().splitlines()
    lines[40] = lines[40].rsplit(",", 1)[0] + ",nan"
    bad.write_text("\n".join(lines) + "\n")
    src = {"left": str(bad), "right": str(raw / "s2/hi_0_right.csv"), "start": None, "end": None}
    with pytest.raises(DataError, match=r"hi_0_left\.csv: sensor has NaN/inf values at row 39"):
        read_watches(src)
    with caplog.at_level(logging.WARNING):
        m = load(tmp_path, cache_dir=tmp_path / "cache", workers=1)
    assert "s2/hi_0" not in set(m.samples["id"]) and len(m.samples) == 9
    assert any("s2/hi_0_left.csv" in r.getMessage() for r in caplog.records)


def test_given_split_column_and_protocols(tmp_path):
    split = {"s1": "train", "s2": "train", "s3": "train", "s4": "test", "s5": "val"}
    make_raw(tmp_path, split=split)
    cache = tmp_path / "cache"
    m = load(tmp_path, cache_dir=cache, workers=1)
    assert dict(zip(m.samples["subject"], m.samples["split"], strict=True)) == split
    m = load(tmp_path, cache_dir=cache, workers=1, protocol="signer", val_fraction=0)
    assert set(m.samples.loc[m.samples["split"] == "test", "subject"]) == {"s5"}
    assert set(m.samples["split"]) == {"train", "test"}
    with pytest.raises(DataError, match="unknown protocol 'x'"):
        load(tmp_path, cache_dir=cache, protocol="x")
    assert signer_protocol([f"signer{i}" for i in range(1, 11)]) == (
        [f"signer{i}" for i in range(1, 9)],
        ["signer9", "signer10"],
    )
    with pytest.raises(DataError, match="at least two"):
        signer_protocol(["s1"])
    ann = tmp_path / "raw/annotations.csv"
    lines = ann.read_text().splitlines()
    ann.write_text("\n".join(lines[:-1] + [lines[-1].replace(",bye,", ",zebra,")]) + "\n")
    with pytest.raises(DataError, match=r"s5/bye_0\.mp4: label 'zebra' occurs in split 'test'"):
        load(tmp_path, cache_dir=cache, workers=1, protocol="signer")


def test_no_spans_uses_the_watches_overlap(tmp_path):
    raw = make_raw(tmp_path, signers=("s1",), labels=("hi",))
    write_watch(raw / "s1/hi_0_right.csv", np.arange(7, 13), t0=T0_MS + 1000)  # starts 1 s later
    write_watch(raw / "s1/hi_0_left.csv", np.arange(1, 7), plant=(0.5, 1e6))  # before the overlap
    src = {"left": str(raw / "s1/hi_0_left.csv"), "right": str(raw / "s1/hi_0_right.csv")}
    out = read_watches({**src, "start": None, "end": None}, steps=16)
    np.testing.assert_allclose(out, np.tile(np.arange(1, 13), (16, 1)), rtol=1e-5)
    with pytest.raises(DataError, match=r"hi_0_right\.csv: .* covering"):  # right starts too late
        read_watches({**src, "start": T0_MS, "end": T0_MS + 1500}, steps=16)


def test_processed_layout_still_loads_through_load(tmp_path):
    rng = np.random.default_rng(0)
    lines = {"train": [], "test": []}
    for s in ("s1", "s2", "s3", "s4"):
        for label in ("hi", "bye"):
            rel = f"{s}/{label}.npy"
            for mod, arr in (
                ("video", rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)),
                ("sensor", rng.normal(size=(20, 12)).astype(np.float32)),
            ):
                (tmp_path / mod / s).mkdir(parents=True, exist_ok=True)
                np.save(tmp_path / mod / rel, arr)
            lines["test" if s == "s4" else "train"].append(f"{rel},{label}")
    for split, rows in lines.items():
        (tmp_path / f"{split}.csv").write_text("file,label\n" + "\n".join(rows) + "\n")
    m = load(tmp_path, seed=3, cache_dir=tmp_path / "cache")
    assert m.samples.equals(load_processed(tmp_path, val_fraction=0.25, seed=3).samples)
    assert not (tmp_path / "cache").exists()
    with pytest.raises(DataError, match="processed layout carries its own split"):
        load(tmp_path, protocol="signer")


def test_neither_layout_explains_both(tmp_path):
    with pytest.raises(DataError, match=r"processed layout \(train\.csv.*raw/annotations\.csv"):
        load(tmp_path)
