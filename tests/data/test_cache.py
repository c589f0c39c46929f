"""The preprocessing cache: layout, atomic and resumable writes, failures, parallel == sequential."""

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vsfusion.data import cache
from vsfusion.data.cache import Entry, build_cache, cache_key, validate_output
from vsfusion.data.errors import DataError
from vsfusion.data.manifest import Manifest

# np.load is a picklable top-level function: usable as a reader in spawned workers.
READERS = {"video": np.load, "sensor": np.load}


def make_sources(tmp: Path, n: int = 5) -> list[Entry]:
    """``n`` samples whose sources are .npy files holding distinct video and sensor arrays."""
    src = tmp / "src"
    src.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    entries = []
    for i in range(n):
        v = rng.integers(0, 256, (4, 8, 8, 1 if i % 2 else 3), dtype=np.uint8)
        s = rng.normal(size=(20 + i, 6))  # float64: stored as float32
        np.save(src / f"v{i}.npy", v)
        np.save(src / f"s{i}.npy", s)
        entries.append(
            Entry(
                id=f"s{i % 2}/clip{i}",
                label=f"c{i % 3}",
                subject=str(i % 2),
                split="",
                sources={"video": str(src / f"v{i}.npy"), "sensor": str(src / f"s{i}.npy")},
            )
        )
    return entries


def cache_warnings(caplog) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "vsfusion.data.cache" and r.levelno >= logging.WARNING
    ]


def tmp_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.tmp"))


def test_cache_key_stable_and_sensitive(monkeypatch):
    k = cache_key(frames=32, size=128, modality="depth", pct=(1, 99))
    assert k == cache_key(pct=[1, 99], modality="depth", size=128, frames=32)
    assert len(k) == 12 and all(c in "0123456789abcdef" for c in k)
    assert k != cache_key(frames=16, size=128, modality="depth", pct=(1, 99))
    assert k != cache_key(frames=32, size=128, modality="rgb", pct=(1, 99))
    monkeypatch.setattr(cache, "CACHE_FORMAT_VERSION", cache.CACHE_FORMAT_VERSION + 1)
    assert k != cache_key(frames=32, size=128, modality="depth", pct=(1, 99))


def test_build_cache_layout_and_manifest(tmp_path):
    entries = make_sources(tmp_path)
    root = tmp_path / "cache"
    df = build_cache(entries, root, READERS, workers=1)
    assert list(df.columns) == ["id", "label", "subject", "split", "video", "sensor"]
    assert df["id"].tolist() == [e.id for e in entries]
    for e, row in zip(entries, df.itertuples(), strict=True):
        assert row.video == str((root / "video" / f"{e.id}.npy").resolve())
        assert Path(row.video).is_absolute() and Path(row.sensor).is_absolute()
        v = np.load(row.video)
        np.testing.assert_array_equal(v, np.load(e.sources["video"]))
        s = np.load(row.sensor)
        assert s.dtype == np.float32 and s.shape == np.load(e.sources["sensor"]).shape
        np.testing.assert_allclose(s, np.load(e.sources["sensor"]), rtol=1e-6)
    # manifest.csv: relative paths, read back by Manifest.from_csv to the same absolute paths.
    csv = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    assert csv["video"].iloc[0] == f"video/{entries[0].id}.npy"
    back = Manifest.from_csv(root / "manifest.csv")
    assert back.samples["video"].tolist() == df["video"].tolist()
    assert back.samples["sensor"].tolist() == df["sensor"].tolist()
    assert df.attrs["failed"] == {}
    assert tmp_files(root) == []


def test_resume_after_kill_does_not_recompute(tmp_path):
    entries = make_sources(tmp_path, n=5)
    root = tmp_path / "cache"
    calls: list[str] = []

    def dying_reader(src):
        calls.append(src)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a kill: not an error to collect, it stops the run
        return np.load(src)

    with pytest.raises(KeyboardInterrupt):
        build_cache(entries, root, {"video": dying_reader, "sensor": np.load}, workers=1)
    assert not (root / "manifest.csv").exists()  # written last: absent after a kill
    done = sorted(p.name for p in (root / "video").rglob("*.npy"))
    assert done == ["clip0.npy", "clip1.npy"]
    # A partial write of the interrupted file, as a kill inside np.save would leave it.
    stale = root / "video" / "s0" / "clip2.npy.tmp"
    stale.write_bytes(b"\x93NUMPY partial")

    calls.clear()

    def counting_reader(src):
        calls.append(src)
        return np.load(src)

    df = build_cache(entries, root, {"video": counting_reader, "sensor": np.load}, workers=1)
    assert calls == [e.sources["video"] for e in entries[2:]]  # finished entries not re-read
    assert len(df) == 5 and (root / "manifest.csv").exists()
    assert tmp_files(root) == []
    np.testing.assert_array_equal(np.load(df["video"][2]), np.load(entries[2].sources["video"]))

    calls.clear()
    build_cache(entries, root, {"video": counting_reader, "sensor": np.load}, workers=1)
    assert calls == []


def test_failing_entries_dropped_with_one_warning(tmp_path, caplog):
    entries = make_sources(tmp_path, n=4)
    bad_video = tmp_path / "src" / "v1.npy"
    bad_video.write_bytes(b"not a numpy file")
    bad_sensor = tmp_path / "src" / "s3.npy"
    np.save(bad_sensor, np.full((10, 6), np.nan))
    root = tmp_path / "cache"
    with caplog.at_level(logging.WARNING):
        df = build_cache(entries, root, READERS, workers=1)
    assert df["id"].tolist() == [entries[0].id, entries[2].id]
    warns = cache_warnings(caplog)
    assert len(warns) == 1
    msg = warns[0].getMessage()
    assert str(bad_video) in msg and str(bad_sensor) in msg and "NaN" in msg
    assert set(df.attrs["failed"]) == {entries[1].id, entries[3].id}
    manifest_ids = pd.read_csv(root / "manifest.csv", dtype=str)["id"].tolist()
    assert manifest_ids == df["id"].tolist()
    assert tmp_files(root) == []


def test_parallel_equals_sequential(tmp_path, caplog):
    entries = make_sources(tmp_path, n=6)
    (tmp_path / "src" / "s4.npy").write_bytes(b"garbage")  # one failure in each mode
    seq = build_cache(entries, tmp_path / "seq", READERS, workers=1)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        par = build_cache(entries, tmp_path / "par", READERS, workers=2)
    assert len(cache_warnings(caplog)) == 1
    assert (
        par["id"].tolist() == seq["id"].tolist() == [e.id for i, e in enumerate(entries) if i != 4]
    )
    assert par.attrs["failed"] == seq.attrs["failed"]
    for col in ("video", "sensor"):
        for a, b in zip(seq[col], par[col], strict=True):
            assert Path(a).relative_to(tmp_path / "seq") == Path(b).relative_to(tmp_path / "par")
            x, y = np.load(a), np.load(b)
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
    assert (tmp_path / "seq" / "manifest.csv").read_text() == (
        tmp_path / "par" / "manifest.csv"
    ).read_text()


def test_missing_modality_and_extra_modality(tmp_path):
    src = tmp_path / "x.npy"
    np.save(src, np.zeros((3, 2), np.float32))
    entries = [
        Entry("a", "l", "1", "train", {"sensor": str(src)}),
        Entry("b", "l", "1", "test", {"sensor": str(src), "extra": str(src)}),
    ]
    df = build_cache(entries, tmp_path / "c", {"sensor": np.load, "extra": np.load}, workers=1)
    assert list(df.columns) == ["id", "label", "subject", "split", "video", "sensor", "extra"]
    assert df["video"].tolist() == ["", ""]
    assert df["extra"][0] == "" and Path(df["extra"][1]).is_file()
    assert df["split"].tolist() == ["train", "test"]


def test_entry_checks(tmp_path):
    e = Entry("a", "l", "1", "", {"video": "x"})
    with pytest.raises(ValueError, match="duplicate"):
        build_cache([e, e], tmp_path, READERS, workers=1)
    with pytest.raises(ValueError, match="no reader"):
        build_cache([Entry("a", "l", "1", "", {"depth": "x"})], tmp_path, READERS, workers=1)
    for bad in ("../a", "/abs", ""):
        with pytest.raises(ValueError, match="relative path"):
            build_cache([Entry(bad, "l", "1", "", {})], tmp_path, READERS, workers=1)


def test_validate_output():
    assert validate_output(np.zeros((2, 4, 4, 3), np.uint8), "video").shape == (2, 4, 4, 3)
    for bad in (np.zeros((2, 4, 4, 3)), np.zeros((4, 4, 3), np.uint8), [1, 2]):
        with pytest.raises(DataError, match="clip.avi"):
            validate_output(bad, "video", "clip.avi")
    out = validate_output(np.ones((5, 6), np.float64), "sensor", "imu.mat")
    assert out.dtype == np.float32
    with pytest.raises(DataError, match=r"imu\.mat.*NaN"):
        validate_output(np.array([[1.0, np.nan]]), "sensor", "imu.mat")
    with pytest.raises(DataError, match="2-D"):
        validate_output(np.zeros(5), "sensor", "imu.mat")
    with pytest.raises(DataError, match="NaN/inf"):
        validate_output(np.full((1, 20, 3), np.inf), "skeleton", "sk.mat")


def test_parallel_needs_picklable_readers(tmp_path):
    entries = make_sources(tmp_path, n=3)
    with pytest.raises(TypeError, match="picklable"):
        build_cache(entries, tmp_path / "c", {"video": lambda p: np.load(p), "sensor": np.load})


def test_dead_worker_is_an_error_and_resumable(tmp_path):
    entries = make_sources(tmp_path, n=3)
    dying = [*entries, Entry("dies", "c0", "0", "", {"video": 3})]  # os._exit(3) in the worker
    with pytest.raises(RuntimeError, match="worker process died"):
        build_cache(dying, tmp_path / "c", {"video": os._exit, "sensor": np.load}, workers=2)
    assert not (tmp_path / "c" / "manifest.csv").exists()
    df = build_cache(entries, tmp_path / "c", READERS, workers=2)
    assert len(df) == 3 and tmp_files(tmp_path / "c") == []


def test_readers_are_recorded_in_modalities_json_and_read_back(tmp_path):
    import functools
    import json

    from vsfusion.data.folder import read_sensor_file

    entries = make_sources(tmp_path, n=2)
    reader = functools.partial(read_sensor_file, steps=7)
    spec = cache.reader_spec(reader)
    assert spec == {
        "module": "vsfusion.data.folder",
        "name": "read_sensor_file",
        "kwargs": {"steps": 7},
    }
    sensor_only = [
        Entry(e.id, e.label, e.subject, e.split, {"sensor": e.sources["sensor"]}) for e in entries
    ]
    build_cache(sensor_only, tmp_path / "c", {"sensor": reader}, workers=1)
    declared = json.loads((tmp_path / "c" / "modalities.json").read_text())
    assert declared["sensor"]["attrs"]["reader"] == spec
    again = cache.reader_from_spec(declared["sensor"]["attrs"]["reader"])
    np.testing.assert_array_equal(
        again(entries[0].sources["sensor"]),
        np.load(tmp_path / "c" / "sensor" / f"{entries[0].id}.npy"),
    )
    # only vsfusion's own functions, with JSON parameters, are recorded or imported
    assert cache.reader_spec(np.load) is None
    assert cache.reader_spec(functools.partial(read_sensor_file, steps=object())) is None
    assert cache.reader_spec(lambda p: p) is None
    with pytest.raises(DataError, match="os.system is not a vsfusion function"):
        cache.reader_from_spec({"module": "os", "name": "system", "kwargs": {}})
    with pytest.raises(DataError, match="vsfusion.data.video.nope is not a vsfusion function"):
        cache.reader_from_spec({"module": "vsfusion.data.video", "name": "nope", "kwargs": {}})
