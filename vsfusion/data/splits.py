"""Subject-wise splits: assign splits from subject lists and carve a validation split.

Model selection, early stopping and fusion weights use the validation split, never the test split,
so when a dataset ships only train/test, :func:`carve_validation` moves whole training subjects to
"val" (subject-disjoint, like the test protocol).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd

from vsfusion.data.errors import DataError

__all__ = ["carve_validation", "parse_subject_splits", "subject_split"]

log = logging.getLogger(__name__)


def carve_validation(
    samples: pd.DataFrame,
    fraction: float = 0.2,
    seed: int = 0,
    allow_sample_split: bool = False,
) -> pd.DataFrame:
    """Move about ``fraction`` of the training samples, as whole subjects, to the "val" split.

    Does nothing when any "val" row exists. Subjects are shuffled with ``seed`` and taken in that
    order until their samples reach ``fraction`` of the training samples (whichever of the last
    two cut points is closer to the target); at least one subject moves, never all of them.

    With a single training subject a subject-disjoint split is impossible: this raises
    :class:`DataError` unless ``allow_sample_split=True``, in which case a stratified per-sample
    split is made (per label, ``round(fraction * n)`` samples move, keeping at least one in train).

    Args:
        samples: Manifest samples (columns ``id``, ``label``, ``subject``, ``split``).
        fraction: Target fraction of training samples for validation, in (0, 1).
        seed: Seed of the subject (or sample) choice.
        allow_sample_split: Fall back to a per-sample split with one training subject.

    Returns:
        A copy of ``samples`` with some "train" rows turned into "val".

    Raises:
        DataError: No training samples, or one training subject without ``allow_sample_split``.

    Example:
        >>> df = pd.DataFrame({"id": list("abcdef"), "label": list("xyxyxy"),
        ...                    "subject": ["1", "1", "2", "2", "3", "3"], "split": ["train"] * 6})
        >>> out = carve_validation(df, fraction=0.3, seed=0)
        >>> int((out["split"] == "val").sum())
        2
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    out = samples.copy()
    if (out["split"] == "val").any():
        return out
    train = out.index[out["split"] == "train"]
    if len(train) == 0:
        raise DataError("split 'train' is empty: cannot carve a validation split from it")
    subj = out.loc[train, "subject"].astype(str)
    subjects = sorted(subj.unique())
    rng = np.random.default_rng(seed)
    if len(subjects) < 2:
        if not allow_sample_split:
            raise DataError(
                f"only one training subject ({subjects[0]!r}): a subject-disjoint validation split "
                "is impossible; give a val split or subject ids, or pass allow_sample_split=True"
            )
        log.warning("one training subject: carving a stratified per-sample validation split")
        groups = [
            np.asarray(idx) for _, idx in sorted(out.loc[train].groupby("label").groups.items())
        ]
        sizes = np.array([len(g) for g in groups])
        quota = fraction * sizes
        take = np.minimum(np.floor(quota).astype(int), sizes - 1)
        # Largest remainders fill up to round(fraction * n) (at least 1), keeping 1 per class.
        for j in np.argsort(-(quota - take), kind="stable"):
            if take.sum() >= max(1, int(round(fraction * sizes.sum()))):
                break
            if take[j] < sizes[j] - 1:
                take[j] += 1
        moved = [i for g, k in zip(groups, take, strict=True) for i in rng.permutation(g)[:k]]
        if not moved:
            raise DataError(
                "too few training samples per class to carve a validation split; "
                "give a val split or more samples"
            )
        out.loc[moved, "split"] = "val"
        return out

    counts = subj.value_counts()
    order = [subjects[i] for i in rng.permutation(len(subjects))]
    target = fraction * len(train)
    chosen: list[str] = []
    total = 0
    for s in order[:-1]:  # never all subjects
        prev = total
        chosen.append(s)
        total += int(counts[s])
        if total >= target:
            if len(chosen) > 1 and abs(prev - target) < abs(total - target):
                chosen.pop()
                total = prev
            break
    val = set(chosen)
    out.loc[train[subj.isin(val).to_numpy()], "split"] = "val"
    log.info(
        "carved validation split: subjects %s (%d of %d training samples)",
        sorted(val),
        total,
        len(train),
    )
    left = set(out.loc[out["split"] == "train", "label"])
    lost = sorted(set(out.loc[out["split"] == "val", "label"]) - left)
    if lost:
        log.warning("validation labels with no training sample left: %s", lost[:10])
    return out


def parse_subject_splits(text: str) -> dict[str, list[str]]:
    """``"train=1,3 val=5 test=7"`` -> ``{"train": ["1", "3"], "val": ["5"], "test": ["7"]}``.

    Raises:
        DataError: A part that is not ``split=subjects``, an unknown or repeated split name, or a
            missing ``train``, ``val`` or ``test``.

    Example:
        >>> parse_subject_splits("test=7 train=1,3 val=5")
        {'train': ['1', '3'], 'val': ['5'], 'test': ['7']}
    """
    spec: dict[str, list[str]] = {}
    for part in text.split():
        name, sep, subjects = part.partition("=")
        wanted = [x for x in subjects.split(",") if x]
        if not sep or name not in ("train", "val", "test") or name in spec or not wanted:
            raise DataError(
                f"subject splits {text!r}: cannot read {part!r}; write e.g. 'train=1,3 val=5 test=7'"
            )
        spec[name] = wanted
    missing = [n for n in ("train", "val", "test") if n not in spec]
    if missing:
        raise DataError(f"subject splits {text!r}: no {'/'.join(missing)}; name all three splits")
    return {n: spec[n] for n in ("train", "val", "test")}


def subject_split(
    samples: pd.DataFrame,
    train_subjects: Iterable,
    test_subjects: Iterable,
    val_subjects: Iterable | None = None,
) -> pd.DataFrame:
    """Assign the ``split`` column from subject lists (subjects compared as strings).

    Rows whose subject is in none of the lists are dropped (logged).

    Args:
        samples: Samples with a ``subject`` column.
        train_subjects: Subjects for "train".
        test_subjects: Subjects for "test".
        val_subjects: Subjects for "val" (optional).

    Returns:
        A copy with the ``split`` column set and unlisted subjects removed.

    Raises:
        DataError: A subject is in two lists.

    Example:
        >>> df = pd.DataFrame({"id": ["a", "b", "c"], "subject": [1, 2, 3]})
        >>> subject_split(df, [1, 3], [2])["split"].tolist()
        ['train', 'test', 'train']
    """
    lists = {
        "train": {str(s) for s in train_subjects},
        "test": {str(s) for s in test_subjects},
        "val": {str(s) for s in (val_subjects or ())},
    }
    names = list(lists)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = lists[a] & lists[b]
            if both:
                raise DataError(
                    f"subject(s) {sorted(both)} are in both {a!r} and {b!r}; "
                    "splits must be subject-disjoint"
                )
    out = samples.copy()
    subj = out["subject"].astype(str)
    split = pd.Series("", index=out.index, dtype=object)
    for name, subs in lists.items():
        split[subj.isin(subs)] = name
    keep = split != ""
    if not keep.all():
        log.info(
            "subject_split: dropping %d samples of unlisted subjects %s",
            int((~keep).sum()),
            sorted(set(subj[~keep]))[:10],
        )
    out["split"] = split
    return out[keep].reset_index(drop=True)
