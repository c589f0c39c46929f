"""carve_validation and subject_split: subject-disjoint, deterministic, never empty."""

import numpy as np
import pandas as pd
import pytest

from vsfusion.data.errors import DataError
from vsfusion.data.splits import carve_validation, subject_split, validate_on


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


def test_validate_on_rotates_the_validation_subject_and_keeps_the_test_split():
    df = carve_validation(_samples(), fraction=0.2, seed=0)
    out = validate_on(df, ["s0", "s2"])
    fit = out["split"] != "test"
    assert set(out.loc[out["split"] == "val", "subject"]) == {"s0", "s2"}
    assert set(out.loc[out["split"] == "train", "subject"]) == {"s1", "s3", "s4"}
    assert (out.loc[~fit, "split"] == df.loc[~fit, "split"]).all()
    assert (df["split"] != out["split"]).any()  # the carved subject went back to training


@pytest.mark.parametrize(
    "subjects,message",
    [
        (["s5"], "test subject"),
        (["s9"], "not in the data"),
        ([], "no validation subject"),
        (["s0", "s1", "s2", "s3", "s4"], "none to train on"),
    ],
)
def test_validate_on_refuses_test_unknown_or_all_subjects(subjects, message):
    with pytest.raises(DataError, match=message):
        validate_on(_samples(), subjects)
