"""VSL: Vietnamese Sign Language, video + two smartwatches, split by signer.

Each sample is one isolated sign performed by one signer, recorded as RGB video and by a
smartwatch on each wrist. Each watch gives 6 inertial channels, so a recording's sensor array has
12 channels (both watches' channels concatenated, in the release's order). The
evaluation protocol is cross-signer: no signer appears in both train and test; a validation split
is carved from the training signers when none is given.

The release is distributed already processed, in the layout every vsfusion cache uses::

    ROOT/
      video/<rel>.npy      uint8  (T, H, W, 3)
      sensor/<rel>.npy     float32 (steps, 12)
      train.csv            file,label[,subject]     file = <rel>.npy
      test.csv             file,label[,subject]
      val.csv              optional
      manifest.csv         optional: file,label,subject[,split]

A sample whose video (or sensor) file is absent simply lacks that modality. Subjects come from the
split CSV's ``subject`` column, else from ``manifest.csv``, else from the first folder of ``file``
(e.g. ``signer03/hello_01.npy`` -> ``signer03``).

Example:
    >>> from vsfusion.data import load_dataset
    >>> manifest = load_dataset("VSL", "data/VSL")  # doctest: +SKIP
    >>> manifest.summary()["modalities"]  # doctest: +SKIP
    ['video', 'sensor']
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import pandas as pd

from vsfusion.data.errors import DataError
from vsfusion.data.io import atomic_write_text
from vsfusion.data.manifest import MODALITY_COLUMNS, SPLITS, Manifest, _read_str_csv
from vsfusion.data.splits import carve_validation

__all__ = [
    "CHANNELS_PER_WATCH",
    "MODALITIES",
    "NAME",
    "NUM_WATCHES",
    "SENSOR_CHANNELS",
    "SPLIT_BY",
    "load",
    "load_processed",
    "make_split_csvs",
]

log = logging.getLogger(__name__)

NAME = "VSL"
MODALITIES: tuple[str, ...] = ("video", "sensor")
NUM_WATCHES = 2
CHANNELS_PER_WATCH = 6
SENSOR_CHANNELS = NUM_WATCHES * CHANNELS_PER_WATCH
"""12: the two watches' 6 channels each, concatenated."""
SPLIT_BY = "signer"
SPLIT_FILES = {"train": "train.csv", "val": "val.csv", "test": "test.csv"}


def _rel_id(file: str) -> str:
    p = PurePosixPath(file.replace("\\", "/"))
    return str(p.with_suffix("")) if p.suffix == ".npy" else str(p)


def _read_split_csv(path: Path) -> pd.DataFrame:
    df = _read_str_csv(path)
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in ("file", "label") if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; split CSVs have columns file,label[,subject]"
        )
    if "subject" not in df.columns:
        df["subject"] = ""
    return df[["file", "label", "subject"]]


def load_processed(
    root: str | os.PathLike,
    name: str = NAME,
    val_fraction: float = 0.2,
    seed: int = 0,
    allow_sample_split: bool = False,
) -> Manifest:
    """Build and validate the manifest of a dataset in the processed layout.

    Args:
        root: Dataset root (holding ``video/``, ``sensor/``, ``train.csv``, ``test.csv``).
        name: Dataset name recorded in the manifest.
        val_fraction: Fraction of training samples, as whole subjects, moved to "val" when there is
            no ``val.csv`` (see :func:`vsfusion.data.splits.carve_validation`); 0 disables it.
        seed: Seed of the validation carve.
        allow_sample_split: With one training subject, carve a per-sample validation split
            instead of raising.

    Returns:
        The validated :class:`Manifest` (ids are the rel paths without ``.npy``).

    Raises:
        DataError: Missing root or split CSV, bad columns, or any :meth:`Manifest.validate` error.

    Example:
        >>> m = load_processed("data/VSL", val_fraction=0.2, seed=0)  # doctest: +SKIP
        >>> sorted(set(m.samples["split"]))  # doctest: +SKIP
        ['test', 'train', 'val']
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found; pass the processed {name} root")
    frames = []
    for split, fname in SPLIT_FILES.items():
        path = root / fname
        if not path.is_file():
            if split == "val":
                continue
            raise DataError(
                f"{path}: split file not found; write it (file,label[,subject]), e.g. with "
                "utils/make_csv.py"
            )
        df = _read_split_csv(path)
        df["split"] = split
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)

    empty = df["file"].str.strip() == ""
    if empty.any():
        raise DataError(f"{root}: a split CSV has an empty 'file' cell; fix or drop that row")
    df["id"] = [_rel_id(f) for f in df["file"]]

    no_subject = df["subject"] == ""
    manifest_csv = root / "manifest.csv"
    if no_subject.any() and manifest_csv.is_file():
        extra = _read_str_csv(manifest_csv)
        if "file" in extra.columns and "subject" in extra.columns:
            by_id = dict(zip((_rel_id(f) for f in extra["file"]), extra["subject"], strict=True))
            df.loc[no_subject, "subject"] = [by_id.get(i, "") for i in df.loc[no_subject, "id"]]
        else:
            log.warning("%s: no file/subject columns; ignoring it", manifest_csv)
    no_subject = df["subject"] == ""
    if no_subject.any():
        df.loc[no_subject, "subject"] = [
            PurePosixPath(i).parts[0] if len(PurePosixPath(i).parts) > 1 else ""
            for i in df.loc[no_subject, "id"]
        ]

    for m in MODALITY_COLUMNS:
        base = root / m
        df[m] = [
            str(base / f) if (base / f).is_file() else "" for f in df["file"].str.replace("\\", "/")
        ]
        lacking = (df[m] == "").sum()
        if 0 < lacking < len(df):
            log.info("%s: %d of %d samples have no %s file", name, lacking, len(df), m)

    if val_fraction and not (df["split"] == "val").any():
        try:
            df = carve_validation(df, val_fraction, seed, allow_sample_split=allow_sample_split)
        except DataError as e:
            raise DataError(
                f"{root / 'train.csv'}: {e}; or add a subject column / val.csv"
            ) from None

    classes = sorted(set(df.loc[df["split"] == "train", "label"]))
    cols = ["id", "label", "subject", "split", *MODALITY_COLUMNS]
    manifest = Manifest(samples=df[cols], classes=classes, name=name, root=root)
    manifest.validate()
    log.info("loaded %s", manifest.summary())
    return manifest


load = load_processed


def make_split_csvs(
    root: str | os.PathLike,
    label_regex: str | None = None,
    subject_regex: str | None = None,
    test_subjects: Iterable[str] = (),
    val_subjects: Iterable[str] = (),
) -> dict[str, Path]:
    """Write ``train.csv``/``test.csv`` (and ``val.csv`` if any) for a processed folder.

    Samples are the ``.npy`` files under ``root/video`` and ``root/sensor`` (rel paths merged).
    Without ``label_regex`` rel paths must look like ``<split>/<label>/<name>.npy``. With it, the
    label is the regex's ``label`` group (or group 1) searched in the rel path, and the split is
    the first path folder when it is ``train``/``val``/``test``, else "test" for
    ``test_subjects``, "val" for ``val_subjects`` and "train" for the rest. Subjects come from
    ``subject_regex`` (``subject`` group or group 1, searched in the rel path) when given.

    Args:
        root: Processed dataset root.
        label_regex: Regex extracting the label from the rel path.
        subject_regex: Regex extracting the subject from the rel path.
        test_subjects: Subjects assigned to "test" (label-regex mode).
        val_subjects: Subjects assigned to "val" (label-regex mode).

    Returns:
        Split name -> written CSV path.

    Raises:
        DataError: No ``.npy`` files, a path that does not match, or an empty train/test split.

    Example:
        >>> make_split_csvs("data/VSL", label_regex=r"(?P<label>[a-z]+)_\\d+",
        ...                 subject_regex=r"signer(\\d+)", test_subjects=["3"])  # doctest: +SKIP
        {'train': PosixPath('data/VSL/train.csv'), 'test': PosixPath('data/VSL/test.csv')}
    """
    root = Path(root)
    rels: set[str] = set()
    for m in MODALITY_COLUMNS:
        base = root / m
        if base.is_dir():
            rels.update(p.relative_to(base).as_posix() for p in base.rglob("*.npy"))
    if not rels:
        raise DataError(
            f"{root}: no .npy files under video/ or sensor/; run utils/videoprocess.py first"
        )
    lab_re = re.compile(label_regex) if label_regex else None
    sub_re = re.compile(subject_regex) if subject_regex else None
    test_s = {str(s) for s in test_subjects}
    val_s = {str(s) for s in val_subjects}

    def group(rx: re.Pattern, rel: str, key: str, what: str) -> str:
        mt = rx.search(rel)
        if mt is None:
            raise DataError(f"{rel}: does not match the {what} regex {rx.pattern!r}; fix the regex")
        return mt.group(key) if key in rx.groupindex else mt.group(1 if rx.groups else 0)

    rows = []
    for rel in sorted(rels):
        parts = PurePosixPath(rel).parts
        subject = group(sub_re, rel, "subject", "subject") if sub_re else ""
        first = parts[0].lower() if len(parts) > 1 else ""
        if lab_re is None:
            if len(parts) != 3 or first not in SPLITS:
                raise DataError(
                    f"{root}/{rel}: expected <split>/<label>/<name>.npy with split in "
                    f"{list(SPLITS)}; pass a label regex instead"
                )
            split, label = first, parts[1]
        else:
            label = group(lab_re, rel, "label", "label")
            if first in SPLITS:
                split = first
            elif subject in test_s:
                split = "test"
            elif subject in val_s:
                split = "val"
            else:
                split = "train"
        rows.append({"file": rel, "label": label, "subject": subject, "split": split})
    df = pd.DataFrame(rows)
    if not (df["subject"] != "").all():
        log.warning(
            "no subject for some files: give a subject regex to carve validation by subject"
        )
    for s in ("train", "test"):
        if not (df["split"] == s).any():
            raise DataError(
                f"{root}: split {s!r} is empty: use <split>/<label>/<name>.npy paths or "
                "pass test subjects"
            )
    written = {}
    for s in SPLITS:
        part = df[df["split"] == s]
        if len(part):
            buf = io.StringIO()
            part[["file", "label", "subject"]].to_csv(buf, index=False)
            written[s] = atomic_write_text(root / SPLIT_FILES[s], buf.getvalue())
            log.info("wrote %s (%d samples)", written[s], len(part))
    return written
