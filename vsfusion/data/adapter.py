"""The dataset adapter protocol: one base class with the one ``load``; datasets declare the rest.

A dataset adapter is a subclass of :class:`DatasetAdapter` that declares

* ``name``: the registry name (``vsfusion.data.DATASETS``) and manifest name;
* ``modalities``: manifest column -> description, ``{"kind": "rgb" | "depth" | "inertial" |
  "skeleton", ...}`` (e.g. ``"unit_channels"`` of an inertial unit, ``"mirror_units"``: pairs of
  units that swap under a left-right mirror, ``"layout"`` of a skeleton);
* ``protocols``: protocol name -> one-line description, and ``default_protocol``;
* ``options``: its keyword options beyond ``seed`` and ``val_fraction``, with their defaults
  (``cache_dir``, ``workers``, ``protocol``, ``video_crop``, ...); ``load``'s signature lists
  exactly these, so callers (``vsfusion.stages``) can see which options an adapter takes;

and implements

* :meth:`~DatasetAdapter.scan`: its native files -> :class:`~vsfusion.data.cache.Entry` objects;
* :meth:`~DatasetAdapter.readers`: modality column -> picklable reader (none when the files are
  already cached arrays, as in the processed layout);
* :meth:`~DatasetAdapter.cache_params`: what names a modality's cache
  (:func:`~vsfusion.data.cache.cache_key`); modalities with equal parameters share one cache
  folder, others get their own (a cheap modality is then re-prepared without the costly one);
* :meth:`~DatasetAdapter.split`: its split rule (protocol) on the scanned entries.

:meth:`DatasetAdapter.load` does the rest, the same for every dataset: options checked, files
scanned, splits assigned, the "label only in val/test" check (naming the file, before anything is
decoded), the cache built (:func:`~vsfusion.data.cache.build_cache`, resumable, in worker
processes), a validation split carved from training subjects when there is none
(:func:`~vsfusion.data.splits.carve_validation`), classes taken from the training labels, and the
:class:`~vsfusion.data.manifest.Manifest` validated.

Example:
    >>> import tempfile
    >>> import numpy as np
    >>> from vsfusion.data.cache import Entry
    >>> class Toy(DatasetAdapter):
    ...     name = "toy"
    ...     modalities = {"sensor": {"kind": "inertial", "unit_channels": 3}}
    ...     options = {"cache_dir": "cache/toy", "workers": 1}
    ...     def scan(self):
    ...         return [Entry(f"s{s}/{k}", "ab"[k % 2], str(s), "test" if s == 3 else "train",
    ...                       {"sensor": (s, k)}) for s in (1, 2, 3) for k in range(2)]
    ...     def readers(self):
    ...         return {"sensor": toy_reader}
    >>> def toy_reader(source):
    ...     return np.full((8, 3), float(source[1]))
    >>> d = tempfile.mkdtemp()
    >>> m = Toy.load(d, val_fraction=0.5, cache_dir=f"{d}/cache")
    >>> m.summary()["train"], m.summary()["val"], m.summary()["test"], m.classes
    (2, 2, 2, ['a', 'b'])
    >>> list(inspect.signature(Toy.load).parameters)
    ['root', 'seed', 'val_fraction', 'cache_dir', 'workers']
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from vsfusion.data import cache as _cache
from vsfusion.data.cache import Entry, build_cache, cache_key
from vsfusion.data.errors import DataError
from vsfusion.data.manifest import BASE_COLUMNS, MODALITY_COLUMNS, Manifest, check_split_labels
from vsfusion.data.modality import MODALITIES
from vsfusion.data.splits import carve_validation
from vsfusion.data.video import check_crop, log_crop

__all__ = [
    "DatasetAdapter",
    "check_modalities",
    "entries_table",
    "split_by_subjects",
]

log = logging.getLogger(__name__)

_REQUIRED = inspect.Parameter.empty


def check_modalities(modalities: Mapping[str, Mapping[str, Any]], where: str = "") -> None:
    """Check a modality declaration: column -> ``{"kind": <a kind>, ...}``, the kinds being those
    of the modality registry (:data:`vsfusion.data.modality.MODALITIES`: rgb, depth, inertial,
    skeleton, ...).

    Raises:
        TypeError: A column without a dict, or a missing or unknown kind.

    Example:
        >>> check_modalities({"video": {"kind": "depth"}, "sensor": {"kind": "inertial"}})
        >>> check_modalities({"video": {"kind": "thermal"}}, "toy")
        Traceback (most recent call last):
        ...
        TypeError: toy: modality 'video' has kind 'thermal'; use one of array, depth, inertial, rgb, skeleton
    """
    for col, spec in modalities.items():
        kind = spec.get("kind") if isinstance(spec, Mapping) else None
        if kind not in MODALITIES:
            raise TypeError(
                f"{where}: modality {col!r} has kind {kind!r}; use one of "
                f"{', '.join(sorted(MODALITIES))}"
            )


def entries_table(entries: Iterable[Entry], columns: Iterable[str] = ()) -> pd.DataFrame:
    """The samples table of entries whose sources are already the final files (no preparation).

    Columns ``id, label, subject, split``, then ``video``, ``sensor`` and every other modality
    (``columns`` first, then those of the sources), ``""`` where a sample lacks one.

    Example:
        >>> df = entries_table([Entry("a", "x", "1", "train", {"sensor": "/d/sensor/a.npy"})])
        >>> df.values.tolist()
        [['a', 'x', '1', 'train', '', '/d/sensor/a.npy']]
    """
    entries = list(entries)
    mods = list(MODALITY_COLUMNS)
    for m in [*columns, *(m for e in entries for m in e.sources)]:
        if m not in mods:
            mods.append(m)
    rows = [
        {
            "id": e.id,
            "label": str(e.label),
            "subject": str(e.subject),
            "split": e.split,
            **{m: str(e.sources[m]) if e.sources.get(m) else "" for m in mods},
        }
        for e in entries
    ]
    return pd.DataFrame(rows, columns=[*BASE_COLUMNS, *mods])


def split_by_subjects(
    entries: Iterable[Entry], spec: Mapping[str, Iterable], where: str = ""
) -> list[Entry]:
    """Assign splits from subject lists (``{"train": [...], "val": [...], "test": [...]}``).

    Subjects compare as strings; entries of unlisted subjects are dropped (logged).

    Raises:
        DataError: A subject in two lists.

    Example:
        >>> es = [Entry(str(s), "x", str(s)) for s in (1, 2, 3)]
        >>> [(e.id, e.split) for e in split_by_subjects(es, {"train": [1], "test": [3]})]
        [('1', 'train'), ('3', 'test')]
    """
    of: dict[str, str] = {}
    for part, subjects in spec.items():
        for s in subjects:
            if str(s) in of and of[str(s)] != part:
                raise DataError(
                    f"{where}: subject {s} is in both {of[str(s)]!r} and {part!r}; splits must be "
                    "subject-disjoint"
                )
            of[str(s)] = part
    out = [
        Entry(e.id, e.label, e.subject, of[str(e.subject)], e.sources)
        for e in entries
        if str(e.subject) in of
    ]
    dropped = sorted({str(e.subject) for e in entries} - set(of))
    if dropped:
        log.info("%s: dropping samples of subjects %s, in no split", where, dropped[:10])
    return out


class DatasetAdapter:
    """Base of every dataset adapter; subclasses declare facts and scanning, ``load`` does the rest.

    Class attributes (see the module docstring): ``name``, ``modalities``, ``protocols``,
    ``default_protocol``, ``options`` and ``root_hint`` (said when the root folder is missing).
    An instance holds one load's arguments: ``root``, ``seed``, ``val_fraction``, ``protocol``
    (the resolved name, or ``None`` while the data decides) and ``opts`` (every option, defaults
    filled in); :attr:`where` is the file or folder that split errors name.

    Every concrete subclass gets its own ``load`` function whose signature is
    ``(root, seed=0, val_fraction=0.25, *, <options>)``; ``vsfusion.data.DATASETS`` maps names to
    these functions.

    Example:
        >>> from vsfusion.data import DATASETS
        >>> DATASETS["UTD-MHAD"].adapter.modalities["sensor"]
        {'kind': 'inertial', 'unit_channels': 6}
    """

    name: ClassVar[str] = ""
    modalities: ClassVar[dict[str, dict[str, Any]]] = {}
    protocols: ClassVar[dict[str, str]] = {}
    default_protocol: ClassVar[str | None] = None
    options: ClassVar[dict[str, Any]] = {}
    default_root: ClassVar[Any] = _REQUIRED
    root_hint: ClassVar[str] = "pass the dataset root"
    carve_hint: ClassVar[str] = ""
    """Appended to a failed validation carve's message (e.g. how to give a val split instead)."""

    def __init__(
        self,
        root: str | os.PathLike,
        seed: int = 0,
        val_fraction: float = 0.25,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise TypeError(
                f"{self.name}: unknown option(s) {unknown}; known: {list(self.options)}"
            )
        self.root = Path(root)
        self.seed = int(seed)
        self.val_fraction = float(val_fraction or 0.0)
        self.opts: dict[str, Any] = {**self.options, **options}
        protocol = self.opts.get("protocol")
        if protocol is not None and protocol not in self.protocols:
            raise DataError(
                f"{self.name}: unknown protocol {protocol!r}; choose one of {list(self.protocols)}"
            )
        self.protocol: str | None = protocol if protocol is not None else self.default_protocol
        self.where: Path = self.root

    # -- the protocol's parts each adapter supplies --------------------------------------------

    def check(self) -> None:
        """Check the options and the root before any file is read (default: the root exists).

        Raises:
            DataError: A bad option or a missing root, naming the fix.
        """
        if "video_crop" in self.opts:
            check_crop(self.opts["video_crop"])
        self.root = self.root.resolve()
        self.where = self.root
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset folder not found; {self.root_hint}")

    def scan(self) -> list[Entry]:
        """The samples as entries (sources: what each modality's reader takes). Required."""
        raise NotImplementedError(f"{type(self).__name__}.scan")

    def split(self, entries: list[Entry]) -> list[Entry]:
        """Apply the protocol's split rule (default: keep the splits the scan gave)."""
        return entries

    def readers(self) -> dict[str, Callable[[Any], Any]]:
        """Modality -> picklable reader for :func:`~vsfusion.data.cache.build_cache`.

        Default: none, the entries' sources are the final ``.npy`` files (processed layout).
        """
        return {}

    def cache_params(self, modality: str, entries: list[Entry]) -> dict[str, Any]:
        """The parameters naming ``modality``'s cache folder (default: dataset and root)."""
        return {"dataset": self.name, "root": str(self.root)}

    @property
    def manifest_name(self) -> str:
        """The manifest's name (default: :attr:`name`)."""
        return self.name

    # -- the one load -------------------------------------------------------------------------

    @classmethod
    def signature(cls) -> inspect.Signature:
        """``load``'s signature: ``root``, ``seed``, ``val_fraction`` and the declared options.

        Example:
            >>> from vsfusion.data import DATASETS
            >>> "video_modality" in DATASETS["UTD-MHAD"].adapter.signature().parameters
            True
        """
        P = inspect.Parameter
        params = [
            P("root", P.POSITIONAL_OR_KEYWORD, default=cls.default_root),
            P("seed", P.POSITIONAL_OR_KEYWORD, default=0),
            P("val_fraction", P.POSITIONAL_OR_KEYWORD, default=0.25),
        ]
        params += [P(k, P.KEYWORD_ONLY, default=v) for k, v in cls.options.items()]
        return inspect.Signature(params, return_annotation=Manifest)

    @classmethod
    def load(cls, root: str | os.PathLike, **kwargs: Any) -> Manifest:
        """Scan, split, prepare (cached), carve validation, check; return the validated manifest.

        Args:
            root: The dataset root.
            **kwargs: ``seed`` (validation carve), ``val_fraction`` (training samples, as whole
                subjects, moved to "val" when the protocol gives no val split; 0 for none) and
                the adapter's declared ``options``.

        Returns:
            The validated :class:`~vsfusion.data.manifest.Manifest`.

        Raises:
            DataError: Bad data or options, each one line naming the file and the fix.
            TypeError: An option the adapter does not declare.
        """
        return _run(cls, (root,), kwargs)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_modalities(cls.modalities, cls.__name__)

        def load(*args: Any, **kw: Any) -> Manifest:
            return _run(cls, args, kw)

        load.__signature__ = cls.signature()  # type: ignore[attr-defined]
        load.__name__ = "load"
        load.__qualname__ = f"{cls.__qualname__}.load"
        load.__module__ = cls.__module__
        load.__doc__ = f"Load {cls.name or cls.__name__}: see {cls.__qualname__} and " + (
            "DatasetAdapter.load."
        )
        load.adapter = cls  # type: ignore[attr-defined]
        cls.load = staticmethod(load)  # type: ignore[method-assign,assignment]

    def _load(self) -> Manifest:
        self.check()
        entries = self.split(self.scan())
        if not entries:
            raise DataError(f"{self.where}: no samples found; {self.root_hint}")
        if not any(e.split == "train" for e in entries):
            raise DataError(
                f"{self.where}: split 'train' has no samples; add training samples or check the "
                "protocol"
            )
        first = [
            _cache._describe(next(iter(e.sources.values()))) if e.sources else "" for e in entries
        ]
        check_split_labels(
            pd.DataFrame(
                {
                    "id": [e.id for e in entries],
                    "label": [str(e.label) for e in entries],
                    "split": [e.split for e in entries],
                    "file": first,
                }
            ),
            ["file"],
        )
        df = self.prepare(entries)
        if df.empty:
            raise DataError(
                f"{self.where}: no sample could be prepared (see the warning listing the files)"
            )
        df = self.carve(df)
        classes = sorted(set(df.loc[df["split"] == "train", "label"]))
        declared = {c: dict(d) for c, d in self.modalities.items() if c in df.columns}
        for c, reader in self.readers().items():  # how each cached column was read (predict.py)
            spec = _cache.reader_spec(reader)
            if c in declared and spec is not None:
                declared[c].setdefault("reader", spec)
        manifest = Manifest(
            samples=df, classes=classes, name=self.manifest_name, root=self.root, declared=declared
        ).validate()
        log.info("loaded %s (protocol %s)", manifest.summary(), self.protocol)
        return manifest

    def prepare(self, entries: list[Entry]) -> pd.DataFrame:
        """Build the cache (one folder per distinct :meth:`cache_params`) and return the table.

        Samples failing in any cache are left out (``build_cache`` reports them in one warning).
        """
        readers = self.readers()
        if not readers:
            return entries_table(entries, self.modalities)
        groups: dict[str, list[str]] = {}
        for m in readers:
            groups.setdefault(cache_key(**self.cache_params(m, entries)), []).append(m)
        cache_dir = Path(self.opts.get("cache_dir") or Path("cache") / self.name)
        df: pd.DataFrame | None = None
        for key, mods in groups.items():
            part = [
                Entry(
                    e.id,
                    e.label,
                    e.subject,
                    e.split,
                    {m: e.sources[m] for m in mods if m in e.sources},
                )
                for e in entries
            ]
            desc = self.name if len(groups) == 1 else f"{self.name} {'+'.join(mods)}"
            table = build_cache(
                part,
                cache_dir / key,
                {m: readers[m] for m in mods},
                workers=int(self.opts.get("workers", 2)),
                desc=desc,
                # each array checked by its declared kind; modalities.json written beside
                modalities={m: self.modalities[m] for m in mods if m in self.modalities},
            )
            if "video" in mods and any("video" in e.sources for e in part):
                log_crop(self.name, check_crop(self.opts.get("video_crop")), table)
            if df is None:
                df = table
            else:
                cols = [m for m in mods if m in table.columns]
                df = df.drop(columns=[c for c in cols if c in df.columns]).merge(
                    table[["id", *cols]], on="id", how="inner"
                )
        assert df is not None
        mods = [c for c in df.columns if c not in BASE_COLUMNS]
        ordered = [c for c in MODALITY_COLUMNS if c in mods] + [
            c for c in mods if c not in MODALITY_COLUMNS
        ]
        return df[[*BASE_COLUMNS, *ordered]].reset_index(drop=True)

    def carve(self, df: pd.DataFrame) -> pd.DataFrame:
        """Carve ``val_fraction`` of the training samples, as whole subjects, when there is no
        "val" split (nothing when ``val_fraction`` is 0 or a "val" split exists)."""
        if not self.val_fraction or (df["split"] == "val").any():
            return df
        try:
            return carve_validation(
                df,
                self.val_fraction,
                self.seed,
                allow_sample_split=bool(self.opts.get("allow_sample_split", False)),
            )
        except DataError as e:
            raise DataError(f"{self.where}: {e}{self.carve_hint}") from None


def _run(cls: type[DatasetAdapter], args: tuple, kwargs: dict[str, Any]) -> Manifest:
    """``cls.load(*args, **kwargs)``: bind to the adapter's signature, then the one tail."""
    bound = cls.signature().bind(*args, **kwargs)
    bound.apply_defaults()
    return cls(**bound.arguments)._load()
