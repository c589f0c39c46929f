"""The manifest: one row per sample with its label, subject, split and a path per modality.

Every dataset adapter returns a :class:`Manifest`; the loader and the training stages only ever
see manifests, never a dataset's native layout.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vsfusion.data.errors import DataError
from vsfusion.data.io import atomic_write_text
from vsfusion.data.modality import STREAMS_NAME, StreamInfo, infer_streams, read_streams

__all__ = ["BASE_COLUMNS", "MODALITY_COLUMNS", "SPLITS", "Manifest", "check_split_labels"]

log = logging.getLogger(__name__)

BASE_COLUMNS: tuple[str, ...] = ("id", "label", "subject", "split")
"""Columns every manifest has besides the per-modality path columns."""
MODALITY_COLUMNS: tuple[str, ...] = ("video", "sensor")
"""The standard modality path columns (other path columns are allowed, e.g. ``"depth"``)."""
SPLITS: tuple[str, ...] = ("train", "val", "test")


def _read_str_csv(path: Path) -> pd.DataFrame:
    """Read a CSV keeping every cell a string ("" for empty; "NA" stays "NA")."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the dataset root") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: not a readable CSV ({msg}); fix or regenerate it") from None


def check_split_labels(samples: pd.DataFrame, file_columns: Sequence[str] = ()) -> None:
    """Raise :class:`DataError` when a "val" or "test" label has no "train" sample.

    The one "label only in test" check: :meth:`Manifest.validate` runs it on the finished
    manifest, and :class:`~vsfusion.data.adapter.DatasetAdapter` on the scanned samples before
    anything is decoded. The message names the sample's first non-empty ``file_columns`` cell
    (its file), else its id.

    Args:
        samples: Rows with ``id``, ``label``, ``split`` and the ``file_columns``.
        file_columns: Columns holding the sample's files, in the order to name them.

    Raises:
        DataError: One line naming the file, the label and the split.

    Example:
        >>> df = pd.DataFrame({"id": ["a", "b"], "label": ["hi", "bye"], "split": ["train", "test"],
        ...                    "video": ["a.mp4", "b.mp4"]})
        >>> check_split_labels(df, ["video"])
        Traceback (most recent call last):
        ...
        vsfusion.data.errors.DataError: b.mp4: label 'bye' occurs in split 'test' but not in 'train'; add training samples of that class or drop it from the split
    """
    train_labels = set(samples.loc[samples["split"] == "train", "label"])
    for s in ("val", "test"):
        part = samples[(samples["split"] == s) & ~samples["label"].isin(train_labels)]
        if len(part):
            r = part.iloc[0]
            f = next((r[c] for c in file_columns if r[c]), r["id"])
            raise DataError(
                f"{f}: label {r['label']!r} occurs in split {s!r} but not in 'train'; add "
                "training samples of that class or drop it from the split"
            )


@dataclass
class Manifest:
    """A dataset as a table of samples.

    Attributes:
        samples: Columns ``id`` (unique str), ``label`` (str), ``subject`` (str), ``split``
            (``"train"``, ``"val"`` or ``"test"``) and one absolute-path column per modality
            (``"video"``, ``"sensor"``; ``""`` where a sample lacks that modality).
        classes: Sorted class names, all present in the training split.
        name: Dataset name.
        root: Dataset root folder.
        declared: Column -> declaration (``{"kind": ..., **attributes}``, see
            :mod:`vsfusion.data.modality`); undeclared columns are inferred (:attr:`streams`).

    Example:
        >>> df = pd.DataFrame({"id": ["a", "b"], "label": ["hi", "bye"], "subject": ["1", "2"],
        ...                    "split": ["train", "train"], "video": ["", ""], "sensor": ["", ""]})
        >>> m = Manifest(df, classes=["bye", "hi"], name="toy", root=Path("."))
        >>> m.labels(m.split("train")).tolist()
        [1, 0]
    """

    samples: pd.DataFrame
    classes: list[str]
    name: str
    root: Path = field(default_factory=Path)
    declared: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.classes = [str(c) for c in self.classes]
        missing = [c for c in BASE_COLUMNS if c not in self.samples.columns]
        if missing:
            raise DataError(
                f"{self.name}: manifest lacks column(s) {missing}; it needs {list(BASE_COLUMNS)}"
                " plus one path column per modality"
            )
        df = self.samples.copy()
        for col in df.columns:
            if col in BASE_COLUMNS or col in self.path_columns:
                df[col] = df[col].fillna("").astype(str)
        self.samples = df.reset_index(drop=True)

    @property
    def path_columns(self) -> tuple[str, ...]:
        """All per-modality path columns (standard ones first), whether or not filled."""
        extra = [c for c in self.samples.columns if c not in BASE_COLUMNS + MODALITY_COLUMNS]
        return tuple(c for c in MODALITY_COLUMNS if c in self.samples.columns) + tuple(extra)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Path columns present with at least one non-empty path, e.g. ``("video", "sensor")``."""
        return tuple(c for c in self.path_columns if (self.samples[c] != "").any())

    @property
    def streams(self) -> dict[str, StreamInfo]:
        """Each filled path column's declaration: kind, shape, channel count and attributes.

        From :attr:`declared` and the headers of a few cached files per column (computed once),
        so stages know a stream's shape without reading a batch.

        Example:
            >>> manifest.streams["sensor"]  # doctest: +SKIP
            StreamInfo(kind='inertial', shape=(None, 12), channels=12, attrs={'unit_channels': 6})
        """
        cached = getattr(self, "_streams", None)
        if cached is None:
            cached = infer_streams(self.samples, self.modalities, self.declared)
            self._streams = cached
        return cached

    def stream(self, column: str) -> StreamInfo:
        """:attr:`streams` of one column; a :class:`DataError` lists the streams there are."""
        return self.streams[self.resolve_stream(column)]

    def resolve_stream(self, name: str) -> str:
        """The column of the stream named ``name``: a column name, or the kind of exactly one
        column (``"depth"`` is UTD-MHAD's ``"video"`` column, ``"inertial"`` its ``"sensor"``).

        Raises:
            DataError: No such stream (or two columns of that kind), listing the streams there are.

        Example:
            >>> manifest.resolve_stream("inertial")  # doctest: +SKIP
            'sensor'
        """
        streams = self.streams
        if name in streams:
            return name
        matches = [c for c, s in streams.items() if s.kind == name]
        if len(matches) == 1:
            return matches[0]
        have = ", ".join(f"{c} ({s.kind})" for c, s in streams.items())
        what = "two or more streams of kind" if matches else "no stream or kind"
        raise DataError(f"{self.name} has {what} {name!r}; its streams are {have}")

    def split(self, name: str) -> pd.DataFrame:
        """The rows of one split (a copy with a fresh index).

        Args:
            name: ``"train"``, ``"val"`` or ``"test"``.

        Returns:
            The samples of that split.

        Example:
            >>> len(manifest.split("test"))  # doctest: +SKIP
            40
        """
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return self.samples[self.samples["split"] == name].reset_index(drop=True)

    def labels(self, df: pd.DataFrame) -> np.ndarray:
        """Class indices (int64) of the rows of ``df`` into :attr:`classes`.

        Args:
            df: Rows of this manifest (e.g. ``manifest.split("val")``).

        Returns:
            int64 array of shape ``(len(df),)``.

        Raises:
            DataError: A label is not one of :attr:`classes`.

        Example:
            >>> manifest.labels(manifest.split("test"))[:3]  # doctest: +SKIP
            array([4, 0, 2])
        """
        index = {c: i for i, c in enumerate(self.classes)}
        out = np.empty(len(df), dtype=np.int64)
        for k, (label, sid) in enumerate(zip(df["label"], df["id"], strict=True)):
            try:
                out[k] = index[str(label)]
            except KeyError:
                raise DataError(
                    f"{sid}: label {label!r} is not a training class of {self.name}; "
                    "drop the sample or add training samples of that class"
                ) from None
        return out

    def validate(self) -> Manifest:
        """Check the manifest; raise :class:`DataError` on the first problem.

        Checks: train and test splits non-empty; split values valid; ids unique; every label of
        val/test present in train; :attr:`classes` equal to the sorted training labels; every
        non-empty path exists; every sample has at least one modality.

        Returns:
            ``self``, so calls chain.

        Example:
            >>> manifest = Manifest.from_csv("dataset/VSL/manifest.csv").validate()  # doctest: +SKIP
        """
        df = self.samples
        where = f"{self.name} ({self.root})"
        bad = df.loc[~df["split"].isin(SPLITS)]
        if len(bad):
            r = bad.iloc[0]
            raise DataError(
                f"{r['id']}: split {r['split']!r} is not one of {list(SPLITS)}; fix the split column"
            )
        for s in ("train", "test"):
            if not (df["split"] == s).any():
                raise DataError(
                    f"{where}: split {s!r} is empty: add {s} samples (e.g. a {s}.csv) or check "
                    "the split assignment"
                )
        dup = df["id"][df["id"].duplicated()]
        if len(dup):
            sid = dup.iloc[0]
            splits = sorted(set(df.loc[df["id"] == sid, "split"]))
            raise DataError(
                f"{sid}: duplicate sample id ({len(dup)} duplicates in all; this one in {splits}); "
                "list every sample once"
            )
        check_split_labels(df, self.path_columns)
        train_labels = set(df.loc[df["split"] == "train", "label"])
        if list(self.classes) != sorted(train_labels):
            raise DataError(
                f"{where}: classes do not match the training labels "
                f"({len(self.classes)} classes vs {len(train_labels)} training labels); "
                "derive classes as sorted(train labels)"
            )
        if self.path_columns:
            none = (df[list(self.path_columns)] == "").all(axis=1)
            if none.any():
                sid = df.loc[none, "id"].iloc[0]
                raise DataError(
                    f"{sid}: sample has no file for any modality {list(self.path_columns)}; "
                    "add its files or drop it"
                )
        for col in self.path_columns:
            for p in df[col]:
                if p and not os.path.exists(p):
                    raise DataError(
                        f"{p}: {col} file listed in the manifest does not exist; restore it, "
                        "re-run preprocessing, or drop the sample"
                    )
        return self

    def summary(self) -> dict:
        """Short counts for logs and reports.

        Returns:
            ``{"name", "samples", "classes", "subjects", "train", "val", "test", "modalities"}``.

        Example:
            >>> manifest.summary()  # doctest: +SKIP
            {'name': 'VSL', 'samples': 120, 'classes': 10, 'subjects': 6, 'train': 60, ...}
        """
        counts = self.samples["split"].value_counts()
        return {
            "name": self.name,
            "samples": int(len(self.samples)),
            "classes": len(self.classes),
            "subjects": int(self.samples["subject"].nunique()),
            **{s: int(counts.get(s, 0)) for s in SPLITS},
            "modalities": list(self.modalities),
        }

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the samples as CSV (``id,label,subject,split,video,sensor[,...]``), atomically.

        Paths are written as stored (absolute). :meth:`from_csv` reads it back.

        Args:
            path: Destination CSV.

        Returns:
            The destination path.

        Example:
            >>> manifest.to_csv("dataset/VSL/manifest.csv")  # doctest: +SKIP
        """
        cols = list(BASE_COLUMNS) + list(self.path_columns)
        for c in MODALITY_COLUMNS:
            if c not in cols:
                cols.append(c)
        df = self.samples.reindex(columns=cols, fill_value="")
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        return atomic_write_text(path, buf.getvalue())

    @classmethod
    def from_csv(
        cls, path: str | os.PathLike, name: str | None = None, root: str | os.PathLike | None = None
    ) -> Manifest:
        """Read a manifest CSV written by :meth:`to_csv`.

        Relative paths in the path columns are resolved against the CSV's folder; classes are
        derived from the training labels; a ``modalities.json`` beside it (written by
        :func:`~vsfusion.data.cache.build_cache`) declares the streams.

        Args:
            path: The CSV file.
            name: Dataset name (default: the CSV folder's name).
            root: Dataset root (default: the CSV's folder).

        Returns:
            The manifest (not yet validated; call :meth:`validate`).

        Example:
            >>> m = Manifest.from_csv("dataset/VSL/manifest.csv").validate()  # doctest: +SKIP
        """
        path = Path(path)
        df = _read_str_csv(path)
        missing = [c for c in BASE_COLUMNS if c not in df.columns]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {missing}; a manifest CSV has columns "
                "id,label,subject,split,video,sensor"
            )
        base = path.resolve().parent
        for c in df.columns:
            if c not in BASE_COLUMNS:
                df[c] = [str(base / p) if p and not os.path.isabs(p) else p for p in df[c]]
        for c in MODALITY_COLUMNS:
            if c not in df.columns:
                df[c] = ""
        classes = sorted(set(df.loc[df["split"] == "train", "label"]))
        return cls(
            samples=df,
            classes=classes,
            name=name if name is not None else base.name,
            root=Path(root) if root is not None else base,
            declared=read_streams(base / STREAMS_NAME),
        )
