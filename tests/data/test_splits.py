"""carve_validation and subject_split: subject-disjoint, deterministic, never empty."""

import numpy as np
import pandas as pd
import pytest

from vsfusion.data.errors import DataError
from vsfusion.data.splits import carve_validation, parse_subject_splits, subject_split


def _samples(n_subjects=5, per_subject=6, test_subjects=1):
    rows = []
    for s in range(n_subjects + test_subjects):
        for k in range(per_subject):
            rows.append(
                {
                    "id": f"s{s}/{k}",
                    "label": f"c{k % 3}",
                    "subject": f"s{s}",
                    "split": "test" if s >= n_subjects else "train",
                }
            )
    return pd.DataFrame(rows)


def test_carve_moves_whole_subjects():
    df = _samples()
    out = carve_validation(df, fraction=0.2, seed=0)
    train = set(out.loc[out["split"] == "train", "subject"])
    val = set(out.loc[out["split"] == "val", "subject"])
    assert val and train and not (val & train)
    assert (out["split"] == "val").sum() == 6  # one of five equal subjects = 20 %
    assert (out["split"] == "test").sum() == (df["split"] == "test").sum()
    assert (df["split"] != "val").all()  # input untouched


def test_carve_is_deterministic_and_seed_dependent():
    df = _samples(n_subjects=10)
    picks = [
        tuple(sorted(set(carve_validation(df, 0.3, seed=s).query("split == 'val'")["subject"])))
        for s in (0, 0, 1, 2, 3)
    ]
    assert picks[0] == picks[1]
    assert len(set(picks)) > 1
    assert all(len(p) == 3 for p in picks)


def test_carve_at_least_one_never_all():
    df = _samples(n_subjects=2)
    assert set(carve_validation(df, 0.01)["split"]) == {"train", "val", "test"}
    out = carve_validation(df, 0.99)
    assert (out["split"] == "train").sum() == 6


def test_carve_keeps_existing_val():
    df = _samples()
    df.loc[0, "split"] = "val"
    pd.testing.assert_frame_equal(carve_validation(df), df)


def test_one_subject_raises_or_splits_per_sample():
    df = _samples(n_subjects=1, per_subject=10)
    with pytest.raises(DataError, match="only one training subject"):
        carve_validation(df)
    out = carve_validation(df, 0.3, allow_sample_split=True)
    val = out[out["split"] == "val"]
    assert 2 <= len(val) <= 4
    assert set(val["label"]) <= set(out.loc[out["split"] == "train", "label"])


def test_subject_split():
    df = pd.DataFrame({"id": list("abcde"), "subject": [1, 2, 3, 4, 5]})
    out = subject_split(df, [1, 2], [3, 4], val_subjects=[5])
    assert out["split"].tolist() == ["train", "train", "test", "test", "val"]
    assert len(subject_split(df, [1], [2])) == 2
    with pytest.raises(DataError, match=r"\['2'\].*'train' and 'test'"):
        subject_split(df, [1, 2], [2])
    assert np.array_equal(df["subject"], [1, 2, 3, 4, 5])


def test_parse_subject_splits_reads_all_three_splits_in_any_order():
    spec = parse_subject_splits("val=s0 test=s5  train=s1,s2,s3")
    assert spec == {"train": ["s1", "s2", "s3"], "val": ["s0"], "test": ["s5"]}
    out = subject_split(_samples(), spec["train"], spec["test"], spec["val"])
    assert set(out["subject"]) == {"s0", "s1", "s2", "s3", "s5"}  # s4 is not listed
    assert set(out.loc[out["split"] == "val", "subject"]) == {"s0"}


@pytest.mark.parametrize(
    "text,message",
    [
        ("train=1 val=2", "no test"),
        ("train=1 val=2 test=3 val=4", "cannot read 'val=4'"),
        ("train=1 dev=2 test=3", "cannot read 'dev=2'"),
        ("train=1 val= test=3", "cannot read 'val='"),
        ("train:1 val:2 test:3", "cannot read"),
    ],
)
def test_parse_subject_splits_names_the_part_it_cannot_read(text, message):
    with pytest.raises(DataError, match=message):
        parse_subject_splits(text)
