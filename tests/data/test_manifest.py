"""Manifest: CSV round trip, counts, labels and every validation error naming its file."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vsfusion.data.errors import DataError
from vsfusion.data.manifest import Manifest


def _manifest(tmp_path: Path, rows=None) -> Manifest:
    rows = rows or [
        ("s1/a_0", "a", "s1", "train"),
        ("s1/b_0", "b", "s1", "train"),
        ("s2/a_0", "a", "s2", "val"),
        ("s3/a_0", "a", "s3", "test"),
        ("s3/b_0", "b", "s3", "test"),
    ]
    recs = []
    for sid, label, subject, split in rows:
        v = tmp_path / "video" / f"{sid}.npy"
        s = tmp_path / "sensor" / f"{sid}.npy"
        v.parent.mkdir(parents=True, exist_ok=True)
        s.parent.mkdir(parents=True, exist_ok=True)
        np.save(v, np.zeros((4, 8, 8, 3), np.uint8))
        np.save(s, np.zeros((10, 6), np.float32))
        recs.append(
            {"id": sid, "label": label, "subject": subject, "split": split, "video": str(v),
             "sensor": str(s)}
        )  # fmt: skip
    df = pd.DataFrame(recs)
    classes = sorted(set(df.loc[df["split"] == "train", "label"]))
    return Manifest(df, classes=classes, name="toy", root=tmp_path)


def test_split_labels_modalities_summary(tmp_path):
    m = _manifest(tmp_path).validate()
    assert m.classes == ["a", "b"]
    assert m.modalities == ("video", "sensor")
    assert list(m.split("test")["id"]) == ["s3/a_0", "s3/b_0"]
    labels = m.labels(m.split("test"))
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1]
    s = m.summary()
    assert (s["samples"], s["classes"], s["subjects"]) == (5, 2, 3)
    assert (s["train"], s["val"], s["test"]) == (2, 1, 2)


def test_modality_absent_everywhere_is_not_listed(tmp_path):
    m = _manifest(tmp_path)
    m.samples["sensor"] = ""
    assert m.modalities == ("video",)
    m.validate()


def test_csv_round_trip(tmp_path):
    m = _manifest(tmp_path)
    path = m.to_csv(tmp_path / "manifest.csv")
    assert not list(tmp_path.glob("*.tmp"))
    back = Manifest.from_csv(path).validate()
    assert back.classes == m.classes
    assert back.root == tmp_path.resolve()
    pd.testing.assert_frame_equal(back.samples[m.samples.columns], m.samples)
    header = path.read_text().splitlines()[0]
    assert header == "id,label,subject,split,video,sensor"


def test_from_csv_resolves_relative_paths_and_keeps_na_labels(tmp_path):
    (tmp_path / "v.npy").write_bytes(b"")
    (tmp_path / "m.csv").write_text(
        "id,label,subject,split,video,sensor\nx,NA,1,train,v.npy,\ny,NA,2,test,v.npy,\n"
    )
    m = Manifest.from_csv(tmp_path / "m.csv").validate()
    assert m.classes == ["NA"]
    assert m.samples["video"][0] == str(tmp_path.resolve() / "v.npy")
    assert m.samples["sensor"][0] == ""


def test_missing_file_names_it(tmp_path):
    m = _manifest(tmp_path)
    gone = Path(m.samples.loc[3, "sensor"])
    gone.unlink()
    with pytest.raises(DataError, match=str(gone)) as e:
        m.validate()
    assert "sensor" in str(e.value) and "\n" not in str(e.value)


def test_label_only_in_test_names_label_and_file(tmp_path):
    m = _manifest(
        tmp_path,
        [("p/a", "a", "1", "train"), ("p/b", "a", "2", "test"), ("p/c", "zebra", "2", "test")],
    )
    with pytest.raises(DataError, match=r"'zebra'.*'test'") as e:
        m.validate()
    assert "p/c.npy" in str(e.value)


@pytest.mark.parametrize("split", ["train", "test"])
def test_empty_split(tmp_path, split):
    other = "test" if split == "train" else "train"
    m = _manifest(tmp_path, [("p/a", "a", "1", other), ("p/b", "a", "2", other)])
    with pytest.raises(DataError, match=f"split '{split}' is empty"):
        m.validate()


def test_duplicate_ids(tmp_path):
    m = _manifest(
        tmp_path, [("p/a", "a", "1", "train"), ("p/a", "a", "1", "test"), ("p/b", "a", "2", "test")]
    )
    with pytest.raises(DataError, match="p/a: duplicate sample id"):
        m.validate()


def test_bad_split_value_and_unknown_label(tmp_path):
    m = _manifest(tmp_path)
    m.samples.loc[0, "split"] = "training"
    with pytest.raises(DataError, match="s1/a_0: split 'training'"):
        m.validate()
    m = _manifest(tmp_path)
    df = m.samples.copy()
    df.loc[0, "label"] = "c"
    with pytest.raises(DataError, match="s1/a_0: label 'c'"):
        m.labels(df)


def test_missing_columns(tmp_path):
    (tmp_path / "m.csv").write_text("id,label,split\nx,a,train\n")
    with pytest.raises(DataError, match=r"m\.csv: missing column\(s\) \['subject'\]"):
        Manifest.from_csv(tmp_path / "m.csv")
