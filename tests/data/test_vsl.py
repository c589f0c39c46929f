"""VSL processed-layout adapter, the dataset registry, and make_csv."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vsfusion.data import DATASETS, DataError, Manifest, load_dataset, vsl
from vsfusion.data.vsl import load_processed, make_split_csvs

REPO = Path(__file__).resolve().parents[2]


def make_root(
    root: Path, subjects=("s1", "s2", "s3", "s4", "s5"), test=("s5",), labels=("hi", "bye")
):
    """Processed layout: <subject>/<label>_<k>.npy for video (12,40,48,3) and sensor (50,12)."""
    rows = {"train": [], "test": []}
    rng = np.random.default_rng(0)
    for s in subjects:
        for label in labels:
            for k in range(2):
                rel = f"{s}/{label}_{k}.npy"
                for mod, arr in (
                    ("video", rng.integers(0, 255, (12, 40, 48, 3), dtype=np.uint8)),
                    ("sensor", rng.normal(size=(50, vsl.SENSOR_CHANNELS)).astype(np.float32)),
                ):
                    (root / mod / rel).parent.mkdir(parents=True, exist_ok=True)
                    np.save(root / mod / rel, arr)
                rows["test" if s in test else "train"].append(f"{rel},{label}")
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("file,label\n" + "\n".join(lines) + "\n")
    return root


def test_load_processed_carves_val_by_subject(tmp_path):
    m = load_processed(make_root(tmp_path), val_fraction=0.25, seed=0)
    assert isinstance(m, Manifest) and m.name == "VSL" and m.classes == ["bye", "hi"]
    assert m.modalities == ("video", "sensor")
    df = m.samples
    assert set(df["split"]) == {"train", "val", "test"}
    assert "s1/hi_0" in set(df["id"])
    assert df.loc[df["id"] == "s1/hi_0", "video"].item() == str(tmp_path / "video/s1/hi_0.npy")
    by_split = {s: set(df.loc[df["split"] == s, "subject"]) for s in ("train", "val", "test")}
    assert by_split["test"] == {"s5"} and len(by_split["val"]) == 1
    assert not (by_split["train"] & by_split["val"])
    again = load_processed(tmp_path, val_fraction=0.25, seed=0)
    assert again.samples.equals(df)


def test_subject_sources_and_val_csv(tmp_path):
    root = make_root(tmp_path)
    (root / "manifest.csv").write_text(
        "file,label,subject\n" + "\n".join(f"s{i}/hi_0.npy,hi,P{i}" for i in range(1, 6)) + "\n"
    )
    lines = (root / "train.csv").read_text().splitlines()
    (root / "val.csv").write_text("file,label\n" + "\n".join(lines[-4:]) + "\n")
    (root / "train.csv").write_text(
        lines[0] + ",subject\n" + lines[1] + ",X\n" + "\n".join(f"{x}," for x in lines[2:-4]) + "\n"
    )
    m = load_processed(root)
    subj = dict(zip(m.samples["id"], m.samples["subject"], strict=True))
    assert subj["s1/hi_0"] == "X"  # from the split CSV
    assert subj["s2/hi_0"] == "P2"  # from manifest.csv
    assert subj["s2/bye_1"] == "s2"  # from the first folder
    assert (m.samples["split"] == "val").sum() == 4  # val.csv is used as given


def test_missing_modality_file_is_empty_path(tmp_path):
    root = make_root(tmp_path)
    (root / "sensor/s5/hi_0.npy").unlink()
    m = load_processed(root)
    assert m.samples.loc[m.samples["id"] == "s5/hi_0", "sensor"].item() == ""
    assert m.modalities == ("video", "sensor")


def test_errors_name_the_file(tmp_path):
    root = make_root(tmp_path)
    (root / "test.csv").unlink()
    with pytest.raises(DataError, match=r"test\.csv: split file not found"):
        load_processed(root)
    (root / "test.csv").write_text("file,label\ns5/hi_0.npy,hi\ns5/new_0.npy,zebra\n")
    np.save(root / "video/s5/new_0.npy", np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(DataError, match=r"video/s5/new_0\.npy: label 'zebra'"):
        load_processed(root)
    (root / "test.csv").write_text("file,label\ns5/ghost.npy,hi\n")
    with pytest.raises(DataError, match="s5/ghost: sample has no file"):
        load_processed(root)
    (root / "test.csv").write_text("name,label\n")
    with pytest.raises(DataError, match=r"test\.csv: missing column\(s\) \['file'\]"):
        load_processed(root)


def test_one_training_subject(tmp_path):
    root = make_root(tmp_path, subjects=("s1", "s5"))
    with pytest.raises(DataError, match="only one training subject"):
        load_processed(root)
    m = load_processed(root, allow_sample_split=True)
    assert (m.samples["split"] == "val").any()
    assert (load_processed(root, val_fraction=0).samples["split"] != "val").all()


def test_registry(tmp_path):
    assert DATASETS["VSL"] is vsl.load and "demo" in DATASETS
    make_root(tmp_path)
    assert load_dataset("VSL", tmp_path, seed=1).summary()["test"] == 4
    known = ", ".join(sorted(DATASETS))
    with pytest.raises(DataError, match=f"unknown dataset 'nope'; known datasets: {known}$"):
        load_dataset("nope", tmp_path)


def test_make_split_csvs_from_split_folders(tmp_path):
    for split, subject in (("train", "1"), ("train", "2"), ("test", "3")):
        for label in ("a", "b"):
            p = tmp_path / "video" / split / label / f"p{subject}_{label}.npy"
            p.parent.mkdir(parents=True, exist_ok=True)
            np.save(p, np.zeros((2, 4, 4, 3), np.uint8))
    out = make_split_csvs(tmp_path, subject_regex=r"p(\d+)_")
    assert set(out) == {"train", "test"}
    assert (tmp_path / "train.csv").read_text().splitlines()[:2] == [
        "file,label,subject",
        "train/a/p1_a.npy,a,1",
    ]
    m = load_processed(tmp_path, val_fraction=0.5)
    assert set(m.samples.loc[m.samples["split"] == "val", "subject"]) in ({"1"}, {"2"})


def test_make_csv_cli_with_label_regex(tmp_path):
    make_root(tmp_path)
    for f in ("train.csv", "test.csv"):
        (tmp_path / f).unlink()
    args = [str(tmp_path), "--label-regex", r"/(?P<label>[a-z]+)_", "--subject-regex",
            r"^(s\d)/", "--test-subjects", "s5"]  # fmt: skip
    res = subprocess.run(
        [sys.executable, "utils/make_csv.py", *args], cwd=REPO, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    m = load_processed(tmp_path)
    assert set(m.samples.loc[m.samples["split"] == "test", "subject"]) == {"s5"}
    spec = importlib.util.spec_from_file_location("make_csv", REPO / "utils" / "make_csv.py")
    make_csv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_csv)
    assert make_csv.main([str(tmp_path / "nothing")]) == 2
