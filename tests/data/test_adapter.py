"""The adapter protocol: a tiny adapter defined here needs only its declarations, and the five
registered adapters keep their names, options and facts."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import numpy as np
import pytest

from vsfusion.data import DATASETS, DataError, Manifest, adapter, dataset_fact, load_dataset
from vsfusion.data.adapter import DatasetAdapter, split_by_subjects
from vsfusion.data.cache import Entry, build_cache, cache_key
from vsfusion.data.modality import MODALITIES

CALLS: list[str] = []


def read_acc(path: str) -> np.ndarray:
    """Reader of the toy dataset: a text file of numbers -> (steps, 3)."""
    CALLS.append(f"acc:{Path(path).name}")
    return np.loadtxt(path, ndmin=2).reshape(-1, 3)


def read_pose(path: str) -> np.ndarray:
    CALLS.append(f"pose:{Path(path).name}")
    x = np.loadtxt(path, ndmin=2).reshape(-1, 3)
    return np.repeat(x[:, None, :], 2, axis=1).astype(np.float32)  # (T, 2 joints, 3)


class Toy(DatasetAdapter):
    """A new dataset: ROOT/<subject>/<label>_<k>.acc (+ optional .pose), subject p9 is test."""

    name = "toy"
    modalities = {
        "sensor": {"kind": "inertial", "unit_channels": 3},
        "pose": {"kind": "skeleton", "joints": 2},
    }
    protocols = {"last": "subject p9 is test", "none-test": "no test split (for errors)"}
    default_protocol = "last"
    options = {"cache_dir": "cache/toy", "protocol": None, "workers": 1, "pose_version": 1}
    carve_hint = "; or add subjects"

    def scan(self) -> list[Entry]:
        entries = []
        for f in sorted(self.root.glob("*/*.acc")):
            sources = {"sensor": str(f)}
            if f.with_suffix(".pose").is_file():
                sources["pose"] = str(f.with_suffix(".pose"))
            entries.append(Entry(f"{f.parent.name}/{f.stem}", f.stem.split("_")[0],
                                 f.parent.name, "", sources))  # fmt: skip
        return entries

    def split(self, entries: list[Entry]) -> list[Entry]:
        subjects = sorted({e.subject for e in entries})
        test = ["p9"] if self.protocol == "last" else []
        return split_by_subjects(entries, {"train": [s for s in subjects if s not in test],
                                           "test": test})  # fmt: skip

    def readers(self):
        return {"sensor": read_acc, "pose": read_pose}

    def cache_params(self, modality, entries):
        # the pose has its own cache: bumping pose_version re-prepares poses only
        base = {"dataset": self.name, "root": str(self.root)}
        return {**base, "pose_version": self.opts["pose_version"]} if modality == "pose" else base


def write_toy(root: Path, subjects=("p1", "p2", "p3", "p9"), labels=("clap", "wave"), test_only=()):
    rng = np.random.default_rng(0)
    for s in subjects:
        for label in (*labels, *(test_only if s == "p9" else ())):
            for k in range(2):
                d = root / s
                d.mkdir(parents=True, exist_ok=True)
                np.savetxt(d / f"{label}_{k}.acc", rng.normal(size=(20, 3)))
                np.savetxt(d / f"{label}_{k}.pose", rng.normal(size=(5, 3)))
    return root


@pytest.fixture(autouse=True)
def _calls():
    CALLS.clear()


def test_a_new_adapter_needs_only_the_protocol(tmp_path):
    root = write_toy(tmp_path / "toy")
    m = Toy.load(root, seed=0, val_fraction=0.3, cache_dir=tmp_path / "cache")
    assert isinstance(m, Manifest) and m.name == "toy" and m.classes == ["clap", "wave"]
    assert m.modalities == ("sensor", "pose") and len(m.samples) == 16
    subj = {s: set(m.split(s)["subject"]) for s in ("train", "val", "test")}
    assert subj["test"] == {"p9"} and len(subj["val"]) == 1
    assert subj["train"] | subj["val"] == {"p1", "p2", "p3"} and not subj["train"] & subj["val"]
    row = m.samples.set_index("id").loc["p1/clap_0"]
    np.testing.assert_allclose(np.load(row["sensor"]), np.loadtxt(root / "p1/clap_0.acc"), 1e-6)
    assert np.load(row["sensor"]).dtype == np.float32
    assert np.load(row["pose"]).shape == (5, 2, 3)
    assert len(CALLS) == 32  # every file read once
    # the declaration travels: modalities.json beside each cache's manifest.csv, Manifest.streams
    assert (Path(row["sensor"]).parents[2] / "modalities.json").is_file()
    assert m.stream("sensor").kind == "inertial" and m.stream("sensor").attrs["unit_channels"] == 3
    assert m.stream("pose").kind == "skeleton" and m.stream("pose").shape[1:] == (2, 3)

    CALLS.clear()  # cached: nothing read again, same manifest
    again = Toy.load(root, seed=0, val_fraction=0.3, cache_dir=tmp_path / "cache")
    assert CALLS == [] and again.samples.equals(m.samples)

    CALLS.clear()  # a pose parameter changes only the pose cache
    bumped = Toy.load(root, val_fraction=0.3, cache_dir=tmp_path / "cache", pose_version=2)
    assert CALLS and all(c.startswith("pose:") for c in CALLS) and len(CALLS) == 16
    assert Path(bumped.samples["sensor"][0]) == Path(m.samples["sensor"][0])
    assert Path(bumped.samples["pose"][0]) != Path(m.samples["pose"][0])
    key = cache_key(dataset="toy", root=str(root.resolve()))
    assert Path(m.samples["sensor"][0]).parents[2] == (tmp_path / "cache" / key).resolve()


def test_load_signature_lists_the_declared_options():
    params = inspect.signature(Toy.load).parameters
    assert list(params) == ["root", "seed", "val_fraction", "cache_dir", "protocol", "workers",
                            "pose_version"]  # fmt: skip
    assert params["cache_dir"].kind is inspect.Parameter.KEYWORD_ONLY
    assert Toy.load.adapter is Toy and Toy.load is Toy.load


def test_label_only_in_test_is_refused_before_any_decoding(tmp_path):
    root = write_toy(tmp_path / "toy", test_only=("jump",))
    with pytest.raises(DataError, match=r"p9/jump_0\.acc: label 'jump' occurs in split 'test'"):
        Toy.load(root, cache_dir=tmp_path / "cache")
    assert CALLS == [] and not (tmp_path / "cache").exists()


def test_val_fraction_zero_and_carve_errors(tmp_path):
    root = write_toy(tmp_path / "toy")
    m = Toy.load(root, val_fraction=0, cache_dir=tmp_path / "cache")
    assert not (m.samples["split"] == "val").any() and len(m.split("train")) == 12
    one = write_toy(tmp_path / "one", subjects=("p1", "p9"))
    with pytest.raises(DataError, match=r"one: only one training subject.*; or add subjects$"):
        Toy.load(one, cache_dir=tmp_path / "cache")


def test_options_protocols_and_declarations_are_checked(tmp_path):
    root = write_toy(tmp_path / "toy")
    with pytest.raises(TypeError, match="video_modality"):
        Toy.load(root, video_modality="rgb")
    with pytest.raises(DataError, match=r"toy: unknown protocol 'loso'; choose one of \['last'"):
        Toy.load(root, protocol="loso")
    with pytest.raises(DataError, match="split 'test' is empty"):
        Toy.load(root, protocol="none-test", cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="dataset folder not found"):
        Toy.load(tmp_path / "nope")
    with pytest.raises(TypeError, match="modality 'video' has kind 'thermal'"):

        class Thermal(DatasetAdapter):
            name = "thermal"
            modalities = {"video": {"kind": "thermal"}}


def test_failed_samples_are_dropped_with_one_warning(tmp_path, caplog):
    root = write_toy(tmp_path / "toy")
    (root / "p2/wave_1.acc").write_text("1 2 nan\n")
    with caplog.at_level(logging.WARNING):
        m = Toy.load(root, val_fraction=0, cache_dir=tmp_path / "cache")
    assert "p2/wave_1" not in set(m.samples["id"]) and len(m.samples) == 15
    assert sum("wave_1.acc" in r.getMessage() for r in caplog.records) == 1


def test_build_cache_gets_the_modality_declaration_when_it_takes_one(tmp_path, monkeypatch):
    seen = []

    def build_cache_with_registry(entries, cache_root, readers, *, workers=2, desc="prepare",
                                  modalities=None):  # fmt: skip
        seen.append(modalities)
        return build_cache(entries, cache_root, readers, workers=workers, desc=desc)

    monkeypatch.setattr(adapter, "build_cache", build_cache_with_registry)
    Toy.load(write_toy(tmp_path / "toy"), val_fraction=0, cache_dir=tmp_path / "cache")
    assert sorted(seen, key=str) == [
        {"pose": {"kind": "skeleton", "joints": 2}},
        {"sensor": {"kind": "inertial", "unit_channels": 3}},
    ]


# ---------------------------------------------------------------------------------------------
# the registered adapters


OLD_OPTIONS = {  # the keyword arguments each load took before the protocol existed
    "MHAD": [
        "seed",
        "val_fraction",
        "cache_dir",
        "protocol",
        "workers",
        "camera",
        "bayer",
        "subjects",
        "video_crop",
    ],  # fmt: skip
    "UTD-MHAD": [
        "seed",
        "val_fraction",
        "cache_dir",
        "video_modality",
        "protocol",
        "workers",
        "video_crop",
    ],  # fmt: skip
    "VSL": ["seed", "val_fraction", "cache_dir", "protocol", "workers", "video_crop"],
    "demo": ["seed", "val_fraction"],
    "folder": [
        "seed",
        "val_fraction",
        "cache_dir",
        "protocol",
        "workers",
        "subject_pattern",
        "video_crop",
    ],  # fmt: skip
}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_registry_keeps_names_and_options(name):
    load = DATASETS[name]
    params = inspect.signature(load).parameters
    assert list(params)[0] == "root" and set(OLD_OPTIONS[name]) <= set(params)
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    cls = load.adapter
    assert issubclass(cls, DatasetAdapter) and cls.name == name
    assert set(cls.modalities) >= {"video", "sensor"}
    assert all(spec["kind"] in MODALITIES for spec in cls.modalities.values())
    if cls.protocols and cls.default_protocol is not None:
        assert cls.default_protocol in cls.protocols


def test_declared_modalities_and_facts():
    assert DATASETS["UTD-MHAD"].adapter.modalities == {
        "video": {"kind": "depth"},
        "sensor": {"kind": "inertial", "unit_channels": 6},
        "skeleton": {"kind": "skeleton", "layout": "kinect-v1", "joints": 20},
    }
    vsl = DATASETS["VSL"].adapter.modalities["sensor"]
    assert vsl["unit_channels"] == 6 and vsl["mirror_units"] == [[0, 1]]
    assert vsl["units"] == ["left_wrist", "right_wrist"]
    assert DATASETS["MHAD"].adapter.modalities["sensor"]["unit_channels"] == 3
    assert DATASETS["demo"].adapter.modalities["sensor"]["unit_channels"] == 6
    facts = {n: dataset_fact(n, "SENSOR_UNIT_CHANNELS", 0) for n in DATASETS}
    assert facts == {"MHAD": 3, "UTD-MHAD": 6, "VSL": 6, "demo": 6, "folder": 0}
    assert dataset_fact("UTD-MHAD", "DEFAULT_VIDEO_MODALITY") == "depth"
    assert dataset_fact("UTD-MHAD", "protocols") == DATASETS["UTD-MHAD"].adapter.protocols
    assert dataset_fact("nope", "SENSOR_UNIT_CHANNELS", 7) == 7


def test_unknown_option_through_load_dataset(tmp_path):
    with pytest.raises(TypeError, match="video_modality"):
        load_dataset("folder", tmp_path, video_modality="rgb")


def test_importing_the_package_or_its_readers_loads_no_adapter_pandas_or_backend():
    import subprocess
    import sys

    script = (
        "import sys, vsfusion.data, vsfusion.data.readers, vsfusion.data.video\n"
        "print(sorted(m for m in ('pandas', 'keras', 'tensorflow', 'vsfusion.data.vsl') "
        "if m in sys.modules))\n"
        "from vsfusion.data import DATASETS, Manifest, vsl\n"
        "print(sorted(DATASETS), Manifest.__module__, 'pandas' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[]",
        "['MHAD', 'UTD-MHAD', 'VSL', 'demo', 'folder'] vsfusion.data.manifest True",
    ]
