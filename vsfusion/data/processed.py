"""The processed layout: ready ``.npy`` arrays plus split CSVs, read and written for any dataset.

Layout (the VSL release, the demo dataset, ``utils/videoprocess.py`` output, every cache)::

    ROOT/
      video/<rel>.npy      uint8  (T, H, W, C)
      sensor/<rel>.npy     float32 (steps, channels)
      train.csv            file,label[,subject]     file = <rel>.npy
      test.csv             file,label[,subject]
      val.csv              optional
      manifest.csv         optional: file,label,subject[,split] (or a cache's id,...,video,sensor)
      modalities.json      optional: each column's kind and shape (written by build_cache);
                           a column declared here (e.g. pose/<rel>.npy, written by
                           python -m vsfusion.data.pose) is read like video/ and sensor/

A sample whose video (or sensor) file is absent simply lacks that modality. Subjects come from
the split CSV's ``subject`` column, else from ``manifest.csv``, else from the first folder of
``file`` (e.g. ``signer03/hello_01.npy`` -> ``signer03``). Splits are the CSVs' (protocol
``"given"``); without ``val.csv``, ``val_fraction`` of the training samples, as whole subjects,
become validation.

:class:`ProcessedLayout` is the adapter of this layout (no preparation: the arrays are the
manifest's files); dataset adapters whose data comes in this layout subclass it (``demo``) or
delegate to it (``VSL``). :func:`make_split_csvs` and :func:`write_split_csvs` write the CSVs.

Example:
    >>> m = load_processed("data/VSL", name="VSL", val_fraction=0.2)  # doctest: +SKIP
    >>> sorted(set(m.samples["split"]))  # doctest: +SKIP
    ['test', 'train', 'val']
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from vsfusion.data.adapter import DatasetAdapter
from vsfusion.data.cache import MANIFEST_NAME, Entry, build_cache
from vsfusion.data.errors import DataError
from vsfusion.data.io import atomic_write_text
from vsfusion.data.manifest import MODALITY_COLUMNS, SPLITS, Manifest, _read_str_csv
from vsfusion.data.modality import STREAMS_NAME, read_streams
from vsfusion.data.video import CACHE_FRAMES, CACHE_SIZE, VIDEO_PATTERNS, find_videos, read_clip

__all__ = [
    "SPLIT_FILES",
    "ProcessedLayout",
    "is_processed",
    "layout_modalities",
    "load_processed",
    "make_split_csvs",
    "prepare_videos",
    "scan_processed",
    "write_split_csvs",
]

log = logging.getLogger(__name__)

SPLIT_FILES = {"train": "train.csv", "val": "val.csv", "test": "test.csv"}
_RGB = {"video": {"kind": "rgb"}}


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


def layout_modalities(
    root: str | os.PathLike, base: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """``base`` plus the columns ``<root>/modalities.json`` declares (e.g. ``pose`` written by
    ``python -m vsfusion.data.pose``): ``{column: {"kind": ..., **attributes}}``. A base column of
    the same kind takes over only the recorded ``reader`` (how ``utils/videoprocess.py`` made the
    clips, :func:`~vsfusion.data.readers.reader_spec`), which ``predict.py`` reads new videos with.

    Example:
        >>> layout_modalities("/nonexistent", {"video": {"kind": "rgb"}})
        {'video': {'kind': 'rgb'}}
    """
    out = {c: dict(d) for c, d in base.items()}
    for col, decl in read_streams(Path(root) / STREAMS_NAME).items():
        if not isinstance(decl, dict) or not decl.get("kind"):
            continue
        attrs = dict(decl.get("attrs") or {})
        if col not in out:
            out[col] = {"kind": decl["kind"], **attrs}
        elif decl["kind"] == out[col].get("kind") and isinstance(attrs.get("reader"), dict):
            out[col]["reader"] = attrs["reader"]  # e.g. utils/videoprocess.py's read_clip
    return out


def is_processed(root: str | os.PathLike, modalities: Iterable[str] = MODALITY_COLUMNS) -> bool:
    """Whether ``root`` holds the processed layout (``train.csv`` and a modality folder).

    Example:
        >>> is_processed("/nonexistent")
        False
    """
    root = Path(root)
    return (root / "train.csv").is_file() and any((root / m).is_dir() for m in modalities)


def scan_processed(
    root: str | os.PathLike, modalities: Iterable[str] = MODALITY_COLUMNS, name: str = ""
) -> list[Entry]:
    """The samples of a processed folder as entries whose sources are the ``.npy`` files.

    Args:
        root: The processed root.
        modalities: Modality folders to look in (a sample lacking a file lacks that modality).
        name: Dataset name for log lines.

    Returns:
        Entries in split-CSV order (train, val, test); ids are the rel paths without ``.npy``.

    Raises:
        DataError: A missing ``train.csv``/``test.csv``, bad columns or an empty ``file`` cell.

    Example:
        >>> [e.id for e in scan_processed("data/demo")][:1]  # doctest: +SKIP
        ['s01/circle_high_0']
    """
    root = Path(root)
    modalities = list(modalities)
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
        key = "file" if "file" in extra.columns else "id" if "id" in extra.columns else None
        if key is not None and "subject" in extra.columns:
            by_id = dict(zip((_rel_id(f) for f in extra[key]), extra["subject"], strict=True))
            df.loc[no_subject, "subject"] = [by_id.get(i, "") for i in df.loc[no_subject, "id"]]
        else:
            log.warning("%s: no file/subject columns; ignoring it", manifest_csv)
    no_subject = df["subject"] == ""
    if no_subject.any():
        df.loc[no_subject, "subject"] = [
            PurePosixPath(i).parts[0] if len(PurePosixPath(i).parts) > 1 else ""
            for i in df.loc[no_subject, "id"]
        ]

    files = df["file"].str.replace("\\", "/").tolist()
    paths: dict[str, list[str]] = {}
    for m in modalities:
        base = root / m
        paths[m] = [str(base / f) if (base / f).is_file() else "" for f in files]
        lacking = sum(p == "" for p in paths[m])
        if 0 < lacking < len(df):
            log.info("%s: %d of %d samples have no %s file", name, lacking, len(df), m)
    return [
        Entry(
            r.id, r.label, r.subject, r.split, {m: paths[m][i] for m in modalities if paths[m][i]}
        )
        for i, r in enumerate(df.itertuples(index=False))
    ]


class ProcessedLayout(DatasetAdapter):
    """Adapter of the processed layout (module docstring); nothing to prepare.

    Options: ``dataset_name`` (the manifest's name) and ``allow_sample_split`` (with one training
    subject, carve a per-sample validation split instead of raising).

    Example:
        >>> m = ProcessedLayout.load("data/VSL", dataset_name="VSL")  # doctest: +SKIP
    """

    name = "processed"
    modalities = {"video": {"kind": "rgb"}, "sensor": {"kind": "inertial"}}
    protocols = {"given": "the split CSVs' splits (train.csv, test.csv, optional val.csv)"}
    default_protocol = "given"
    options: dict[str, Any] = {"dataset_name": None, "allow_sample_split": False}
    root_hint = "pass the processed root (train.csv, test.csv, video/ and/or sensor/)"
    carve_hint = "; or add a subject column / val.csv"

    @property
    def manifest_name(self) -> str:
        return self.opts.get("dataset_name") or self.name

    def check(self) -> None:
        super().check()
        self.where = self.root / SPLIT_FILES["train"]
        self.modalities = layout_modalities(self.root, type(self).modalities)

    def scan(self) -> list[Entry]:
        return scan_processed(self.root, self.modalities, self.manifest_name)


def load_processed(
    root: str | os.PathLike,
    name: str = "processed",
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
        >>> m = load_processed("data/VSL", "VSL", val_fraction=0.2, seed=0)  # doctest: +SKIP
        >>> sorted(set(m.samples["split"]))  # doctest: +SKIP
        ['test', 'train', 'val']
    """
    return ProcessedLayout.load(
        root,
        seed=seed,
        val_fraction=val_fraction,
        dataset_name=name,
        allow_sample_split=allow_sample_split,
    )


def write_split_csvs(root: str | os.PathLike, samples: pd.DataFrame) -> dict[str, Path]:
    """Write ``<root>/{train,val,test}.csv`` (``file,label,subject``) of the non-empty splits.

    Args:
        root: The processed root.
        samples: Rows with ``file`` (``<rel>.npy``), ``label``, ``subject`` and ``split``.

    Returns:
        Split name -> written CSV path.

    Example:
        >>> import tempfile
        >>> df = pd.DataFrame({"file": ["s1/a.npy"], "label": ["a"], "subject": ["s1"],
        ...                    "split": ["train"]})
        >>> sorted(write_split_csvs(tempfile.mkdtemp(), df))
        ['train']
    """
    root = Path(root)
    written = {}
    for s in SPLITS:
        part = samples[samples["split"] == s]
        if len(part):
            buf = io.StringIO()
            part[["file", "label", "subject"]].to_csv(buf, index=False)
            written[s] = atomic_write_text(root / SPLIT_FILES[s], buf.getvalue())
            log.info("wrote %s (%d samples)", written[s], len(part))
    return written


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
    return write_split_csvs(root, df)


def prepare_videos(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    num_frames: int = CACHE_FRAMES,
    size: int = CACHE_SIZE,
    workers: int = 2,
    pattern: str = VIDEO_PATTERNS,
) -> pd.DataFrame:
    """Turn a folder tree of videos into ``dst/video/<rel>.npy`` clips, through the cache.

    The videos found under ``src`` (:func:`~vsfusion.data.video.find_videos`) become cache
    entries with id ``<rel path without extension>``, prepared by
    :func:`~vsfusion.data.cache.build_cache` with :func:`~vsfusion.data.video.read_clip`
    (uniform sampling to ``num_frames``, shorter side ``size``, centre crop): resumable, atomic,
    in ``workers`` processes, failures reported in one warning. ``dst`` is then the video half of
    a processed layout (write the split CSVs with :func:`make_split_csvs`); its
    ``manifest.csv`` is the cache's table (ids, no labels) and ``modalities.json`` declares
    ``video`` as ``rgb``.

    Args:
        src: Folder searched recursively for videos.
        dst: Output root; clips go to ``dst/video/<rel>.npy``.
        num_frames: Frames per clip.
        size: Output frame side.
        workers: Worker processes (``<= 1``: in this process).
        pattern: Comma-separated, case-insensitive file name patterns.

    Returns:
        The cache's table (column ``video``); ``attrs["failed"]`` maps each failed (or
        colliding) video's id to its one-line error.

    Raises:
        DataError: ``src`` is not a folder, or ``dst/manifest.csv`` is not a cache manifest
            (it would be overwritten).

    Example:
        >>> df = prepare_videos("raw/VSL", "data/VSL", num_frames=32, size=128)  # doctest: +SKIP
        >>> df.attrs["failed"]  # doctest: +SKIP
        {}
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DataError(f"{src}: source folder not found; pass the folder holding the videos")
    old = dst / MANIFEST_NAME
    if old.is_file():
        header = old.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].split(",")
        if "id" not in header or "video" not in header:
            raise DataError(
                f"{old}: exists and is not a preparation manifest (it would be overwritten); "
                "choose another destination or move the file"
            )
    entries: list[Entry] = []
    seen: dict[str, Path] = {}
    collisions: dict[str, str] = {}
    for video in find_videos(src, pattern):
        sid = video.relative_to(src).with_suffix("").as_posix()
        if sid in seen:
            collisions[sid] = (
                f"{video}: same output {dst / 'video' / sid}.npy as {seen[sid]}; rename one of them"
            )
            continue
        seen[sid] = video
        entries.append(Entry(sid, "", "", "", {"video": str(video)}))
    reader = functools.partial(read_clip, num_frames=num_frames, size=size)
    df = build_cache(
        entries, dst, {"video": reader}, workers=workers, desc="videos", modalities=_RGB
    )
    if collisions:
        log.warning(
            "prepare_videos: %d videos skipped: %s", len(collisions), "; ".join(collisions.values())
        )
    df.attrs["failed"] = {**df.attrs.get("failed", {}), **collisions}
    return df
