"""The preprocessing cache: native dataset files -> the processed ``.npy`` layout, resumably.

A dataset adapter describes each sample as an :class:`Entry` (id, label, subject, split and, per
modality, what that modality's reader needs, e.g. a file path) and passes the entries with one
reader per modality to :func:`build_cache`, which writes::

    <cache_root>/
      video/<id>.npy       uint8   (T, H, W, C)     C = 3 (RGB) or 1 (depth)
      sensor/<id>.npy      float32 (steps, channels)
      <modality>/<id>.npy  any other modality an adapter adds (numeric array)
      modalities.json      per column: kind, shape (None where it varies), channels, attributes,
                           and (attribute ``reader``) the reader and its parameters, see
                           :func:`reader_spec`
      manifest.csv         id,label,subject,split,video,sensor  (paths relative to <cache_root>)

Guarantees:

* every array is written to ``<id>.npy.tmp`` and renamed, so a killed preparation never leaves a
  half-written ``.npy``; re-running resumes: finished files are skipped without calling their
  reader again, and leftover ``.tmp`` files are removed;
* readers run in ``workers`` processes (``spawn`` context, safe when the parent runs TensorFlow or
  OpenCV threads) with a tqdm progress bar, or in this process when ``workers <= 1``;
* a reader's output is checked (video: uint8 4-D; sensor: finite 2-D, stored as float32);
* a sample whose reader fails (a :class:`~vsfusion.data.errors.DataError` or any decoding error) is
  dropped, and all failures are reported in one warning naming the files;
* a reader may return ``(array, info)`` with a small JSON-serialisable ``info`` dict (e.g. the crop
  box of a clip): the infos of every cached sample go to ``<cache_root>/<modality>.info.json``
  (kept across resumed runs) and to ``df.attrs["info"]``; an info's ``"warning"`` (one line naming
  the file, e.g. a crop that fell back) is reported in one warning per run listing the files;
* ``manifest.csv`` is written last, so its presence means a finished preparation.
  ``Manifest.from_csv(<cache_root>/manifest.csv)`` reads it back.

Adapters put the cache at ``<cache_dir>/<cache_key(...)>/`` so that a change of any
preprocessing parameter (or of :data:`CACHE_FORMAT_VERSION`) never reuses stale files.

Example:
    >>> import functools, tempfile
    >>> d = tempfile.mkdtemp()
    >>> np.save(f"{d}/s.npy", np.zeros((50, 6)))
    >>> entries = [Entry("s1/a", "wave", "1", "", {"sensor": f"{d}/s.npy"})]
    >>> df = build_cache(entries, f"{d}/cache", {"sensor": np.load}, workers=1)
    >>> df[["id", "label", "subject"]].values.tolist()
    [['s1/a', 'wave', '1']]
    >>> np.load(df.loc[0, "sensor"]).dtype
    dtype('float32')
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from vsfusion.data.errors import DataError
from vsfusion.data.io import TMP_SUFFIX, atomic_save_npy, atomic_write_text, load_npy
from vsfusion.data.manifest import BASE_COLUMNS, MODALITY_COLUMNS
from vsfusion.data.modality import STREAMS_NAME, default_kind, describe_stream, write_streams
from vsfusion.data.modality import modality as modality_spec
from vsfusion.data.readers import reader_from_spec, reader_spec, split_info

__all__ = [
    "CACHE_FORMAT_VERSION",
    "MANIFEST_NAME",
    "Entry",
    "build_cache",
    "cache_key",
    "cache_path",
    "reader_from_spec",
    "reader_spec",
    "validate_output",
]

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
"""Bumped whenever the cache layout or array conventions change; part of every :func:`cache_key`."""
MANIFEST_NAME = "manifest.csv"
_MAX_LISTED = 20  # failed files named in the warning (all of them go to the debug log)


@dataclass(frozen=True)
class Entry:
    """One sample to cache.

    Attributes:
        id: Unique sample id; its files are ``<cache_root>/<modality>/<id>.npy`` (``/`` allowed,
            no ``..`` parts, not absolute).
        label: Class name.
        subject: Subject id (str).
        split: ``"train"``, ``"val"``, ``"test"`` or ``""`` (assigned later by the protocol).
        sources: Modality -> what that modality's reader takes (a path, or a picklable tuple or
            dict of paths and parameters).

    Example:
        >>> Entry("a1_s1_t1", "wave", "1", "", {"sensor": "Inertial/a1_s1_t1_inertial.mat"}).id
        'a1_s1_t1'
    """

    id: str
    label: str
    subject: str
    split: str = ""
    sources: dict[str, Any] = field(default_factory=dict)


def cache_key(**params: Any) -> str:
    """A short stable hash of preprocessing parameters (and :data:`CACHE_FORMAT_VERSION`).

    Parameters are serialised as sorted JSON (tuples as lists, other objects by ``str``), so the
    key does not depend on keyword order and is the same in every process and Python session.

    Args:
        **params: Everything that changes the cached arrays (frames, size, modality, steps, ...).

    Returns:
        12 hex digits.

    Example:
        >>> cache_key(frames=32, size=128) == cache_key(size=128, frames=32)
        True
        >>> cache_key(frames=32, size=128) == cache_key(frames=16, size=128)
        False
        >>> len(cache_key(frames=32))
        12
    """
    blob = json.dumps(
        {"__format__": CACHE_FORMAT_VERSION, **params},
        sort_keys=True,
        default=str,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def cache_path(cache_root: str | os.PathLike, modality: str, sample_id: str) -> Path:
    """The file of one sample's modality: ``<cache_root>/<modality>/<id>.npy``.

    Example:
        >>> cache_path("cache", "video", "s1/a").as_posix()
        'cache/video/s1/a.npy'
    """
    return Path(cache_root) / modality / (sample_id + ".npy")


def _check_id(sample_id: str) -> None:
    p = PurePosixPath(str(sample_id).replace("\\", "/"))
    if not sample_id or p.is_absolute() or ".." in p.parts or sample_id.endswith("/"):
        raise ValueError(
            f"entry id {sample_id!r} is not a relative path without '..'; ids name cache files"
        )


def _describe(source: Any) -> str:
    """The file(s) a source names, for error messages."""
    if isinstance(source, str | os.PathLike):
        return str(source)
    if isinstance(source, Mapping):
        source = list(source.values())
    if isinstance(source, list | tuple):
        paths = [str(s) for s in source if isinstance(s, str | os.PathLike)]
        if paths:
            return ", ".join(paths)
    return repr(source)[:200]


def validate_output(
    array: Any, modality: str, source: Any = "", attrs: Mapping[str, Any] | None = None
) -> np.ndarray:
    """Check a reader's output for the column ``modality`` and return the array to store.

    The check is the spec's of the column's kind (:mod:`vsfusion.data.modality`): ``attrs["kind"]``
    when declared, else :func:`~vsfusion.data.modality.default_kind`. ``"video"`` (kinds ``rgb``,
    ``depth``) must be a non-empty uint8 ``(T, H, W, C)`` array; ``"sensor"`` (``inertial``) a
    finite 2-D ``(steps, channels)`` array (returned as float32, see
    :func:`~vsfusion.data.sensor.validate_sensor`); ``skeleton`` a finite ``(T, joints, coords)``
    array; any undeclared column a non-empty numeric array (finite when floating point).

    Args:
        array: The reader's output.
        modality: The column it is for.
        source: The reader's input, named in error messages.
        attrs: The column's declaration (``{"kind": ..., **kind attributes}``), if any.

    Returns:
        The array to store.

    Raises:
        DataError: The output breaks the modality's contract.

    Example:
        >>> validate_output(np.zeros((2, 8, 8, 1), np.uint8), "video").shape
        (2, 8, 8, 1)
        >>> validate_output(np.zeros((2, 8, 8)), "video", "a.avi")
        Traceback (most recent call last):
        ...
        vsfusion.data.errors.DataError: a.avi: video reader returned float64 array of shape (2, 8, 8); expected uint8 (T, H, W, C)
    """
    where = _describe(source)
    attrs = dict(attrs or {})
    kind = attrs.pop("kind", None) or default_kind(
        modality, array if isinstance(array, np.ndarray) else None
    )
    return modality_spec(kind).validate(array, where, attrs)


def _error_line(exc: BaseException, source: Any) -> str:
    msg = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, DataError):
        return msg
    return f"{_describe(source)}: {type(exc).__name__}" + (f": {msg}" if msg else "")


def _prepare(
    tasks: list[tuple[str, Callable[[Any], np.ndarray], Any, str, dict]],
) -> list[tuple[str, str | None, dict | None]]:
    """Worker: run each ``(modality, reader, source, out, declaration)`` task; return
    ``(modality, error, info)``.

    Stops at the first failing modality of the sample (the sample is dropped anyway).
    """
    try:  # keep each worker to one thread: the pool already uses the cores
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass
    results: list[tuple[str, str | None, dict | None]] = []
    for modality, reader, source, out, declared in tasks:
        try:
            array, info = split_info(reader(source))
            array = validate_output(array, modality, source, declared)
            atomic_save_npy(out, np.ascontiguousarray(array))
        except Exception as e:  # one bad file must not stop the preparation
            results.append((modality, _error_line(e, source), None))
            break
        results.append((modality, None, info))
    return results


def _info_path(root: Path, modality: str) -> Path:
    return root / f"{modality}.info.json"


def _read_infos(root: Path, modality: str) -> dict[str, dict]:
    path = _info_path(root, modality)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable (%s); its per-sample infos are rebuilt as samples are", path, e)
        return {}
    return data if isinstance(data, dict) else {}


def _describe_streams(
    df: pd.DataFrame, columns: list[str], declared: Mapping[str, Mapping[str, Any]], probe: int = 8
) -> dict:
    """Each filled column's :class:`~vsfusion.data.modality.StreamInfo` from up to ``probe`` of its
    cached arrays (memory-mapped) and its declaration."""
    out = {}
    for m in columns:
        paths = [p for p in df[m] if p][:probe]
        if not paths:
            continue
        arrays = [load_npy(p, m) for p in paths]
        decl = dict(declared.get(m, {}))
        kind = decl.pop("kind", None) or default_kind(m, arrays[0])
        out[m] = describe_stream(kind, arrays, decl)
    return out


def build_cache(
    entries: Iterable[Entry],
    cache_root: str | os.PathLike,
    readers: Mapping[str, Callable[[Any], np.ndarray]],
    *,
    workers: int = 2,
    desc: str = "prepare",
    modalities: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Write every entry's arrays under ``cache_root`` and return the samples table.

    Entries whose files all exist are skipped without calling a reader (a killed preparation
    resumes where it stopped); stale ``.tmp`` files are removed. Pending entries run in
    ``workers`` spawned processes (in this process when ``workers <= 1`` or only one is pending)
    with a tqdm progress bar. A sample whose reader raises, or returns an array breaking the
    modality's contract (see :func:`validate_output`), is dropped; all such failures are logged in
    one warning naming the files. ``<cache_root>/manifest.csv`` is written last.

    Args:
        entries: The samples; ids must be unique. ``sources`` keys must be keys of ``readers``.
        cache_root: Output folder (created).
        readers: Modality -> picklable top-level function (or ``functools.partial``) taking the
            entry's source for that modality and returning the array to store, or
            ``(array, info)`` with a JSON-serialisable ``info`` dict (see the module docstring).
        workers: Worker processes; ``<= 1`` runs the readers in this process.
        desc: Progress bar label.
        modalities: Column -> declaration ``{"kind": ..., **attributes}`` (e.g. ``{"video":
            {"kind": "depth"}, "skeleton": {"kind": "skeleton", "layout": "kinect-v1"}}``): each
            array is checked by its kind's spec, and the declarations with the cached arrays'
            shapes and channel counts go to ``<cache_root>/modalities.json`` (read back by
            :meth:`~vsfusion.data.manifest.Manifest.from_csv`). Undeclared columns get
            :func:`~vsfusion.data.modality.default_kind`.

    Returns:
        DataFrame with columns ``id, label, subject, split, video, sensor`` (absolute paths, ``""``
        where a sample lacks the modality) plus one column per extra modality, in entry order,
        failed samples left out. ``df.attrs["failed"]`` maps each dropped id to its error line;
        ``df.attrs["info"]`` maps modality -> id -> info for readers returning infos.

    Raises:
        ValueError: Duplicate or unsafe ids, or a source modality without a reader.
        TypeError: ``workers > 1`` with a reader or source that cannot be pickled.
        RuntimeError: A worker process died (files finished before are kept; re-run resumes).

    Example:
        >>> readers = {"video": read_clip, "sensor": read_imu}  # doctest: +SKIP
        >>> df = build_cache(entries, "cache/UTD-MHAD/" + cache_key(frames=32), readers)
        ...  # doctest: +SKIP
    """
    entries = list(entries)
    root = Path(cache_root).resolve()
    seen: set[str] = set()
    for e in entries:
        _check_id(e.id)
        if e.id in seen:
            raise ValueError(f"duplicate entry id {e.id!r}; ids must be unique")
        seen.add(e.id)
        unknown = sorted(set(e.sources) - set(readers))
        if unknown:
            raise ValueError(
                f"entry {e.id!r}: no reader for modality {unknown}; readers: {sorted(readers)}"
            )
    declared = {m: dict(d) for m, d in (modalities or {}).items()}
    for m, reader in readers.items():  # modalities.json says how each column was read
        spec = reader_spec(reader)
        if spec is not None:
            declared.setdefault(m, {}).setdefault("reader", spec)
    modalities = list(MODALITY_COLUMNS) + sorted(
        {m for e in entries for m in e.sources} - set(MODALITY_COLUMNS)
    )

    jobs: list[tuple[str, list[tuple[str, Callable, Any, str]]]] = []
    done = 0
    for e in entries:
        tasks = []
        for m, source in e.sources.items():
            out = cache_path(root, m, e.id)
            tmp = out.with_name(out.name + TMP_SUFFIX)
            if tmp.exists():
                tmp.unlink()
            if not out.is_file():
                tasks.append((m, readers[m], source, str(out), dict(declared.get(m, {}))))
        if tasks:
            jobs.append((e.id, tasks))
        else:
            done += 1
    log.info("%s: %d samples to prepare, %d already cached, in %s", desc, len(jobs), done, root)

    failed: dict[str, str] = {}
    new_infos: dict[str, dict[str, dict]] = {}

    def record(sample_id: str, results: list[tuple[str, str | None, dict | None]]) -> None:
        for modality, err, info in results:
            if err is not None:
                failed[sample_id] = err
            elif info is not None:
                new_infos.setdefault(modality, {})[sample_id] = info

    if workers > 1 and len(jobs) > 1:
        try:
            pickle.dumps((dict(readers), jobs[0][1]))
        except Exception as e:
            raise TypeError(
                f"{desc}: readers and sources must be picklable for workers > 1 (use top-level "
                f"functions or functools.partial, not lambdas or local functions): {e}"
            ) from None
    root.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(jobs), desc=desc, unit="sample", disable=not jobs)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for sample_id, tasks in jobs:
                record(sample_id, _prepare(tasks))
                bar.update()
        else:
            # spawn: safe even when the parent has threads (TensorFlow, OpenCV) running.
            ex = ProcessPoolExecutor(
                max_workers=min(workers, len(jobs)), mp_context=get_context("spawn")
            )
            try:
                futs = {ex.submit(_prepare, tasks): (sample_id, tasks) for sample_id, tasks in jobs}
                for fut in as_completed(futs):
                    sample_id, tasks = futs[fut]
                    try:
                        results = fut.result()
                    except BrokenProcessPool:
                        raise RuntimeError(
                            f"{desc}: a preparation worker process died (out of memory, or a "
                            "script calling this without an `if __name__ == '__main__':` guard); "
                            "finished files are kept: fix the cause and re-run to resume, or pass "
                            "workers=1"
                        ) from None
                    except Exception as exc:  # e.g. an unpicklable reader or source
                        src = "; ".join(_describe(t[2]) for t in tasks)
                        err = f"{src}: worker failed ({type(exc).__name__}: {exc})"
                        results = [("", err, None)]
                    record(sample_id, results)
                    bar.update()
            except BaseException:
                # Interrupted (Ctrl-C) or broken: do not wait for the queued samples.
                ex.shutdown(wait=False, cancel_futures=True)
                raise
            ex.shutdown()
    finally:
        bar.close()

    if failed:
        ordered = [failed[e.id] for e in entries if e.id in failed]
        more = len(ordered) - _MAX_LISTED
        log.warning(
            "%s: %d of %d samples failed and were dropped: %s%s",
            desc,
            len(failed),
            len(entries),
            "; ".join(ordered[:_MAX_LISTED]),
            f"; ... and {more} more" if more > 0 else "",
        )
        log.debug("%s: all failures: %s", desc, failed)

    infos: dict[str, dict[str, dict]] = {}
    for m in modalities:
        stored = _read_infos(root, m)
        if m in new_infos:
            stored.update(new_infos[m])
            atomic_write_text(_info_path(root, m), json.dumps(stored, sort_keys=True) + "\n")
        if stored:
            infos[m] = {
                e.id: stored[e.id] for e in entries if e.id in stored and e.id not in failed
            }
    notes = [
        new_infos[m][e.id]["warning"]
        for m in modalities
        for e in entries
        if e.id in new_infos.get(m, {}) and new_infos[m][e.id].get("warning")
    ]
    if notes:
        more = len(notes) - _MAX_LISTED
        log.warning(
            "%s: %d sample(s) prepared with a fallback: %s%s",
            desc,
            len(notes),
            "; ".join(notes[:_MAX_LISTED]),
            f"; ... and {more} more" if more > 0 else "",
        )

    rows = []
    for e in entries:
        if e.id in failed:
            continue
        row = {"id": e.id, "label": str(e.label), "subject": str(e.subject), "split": e.split}
        for m in modalities:
            row[m] = str(cache_path(root, m, e.id)) if m in e.sources else ""
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(BASE_COLUMNS) + modalities)
    rel = df.copy()
    for m in modalities:
        rel[m] = [
            cache_path(".", m, i).as_posix().removeprefix("./") if p else ""
            for i, p in zip(rel["id"], rel[m], strict=True)
        ]
    write_streams(root / STREAMS_NAME, _describe_streams(df, modalities, declared))
    buf = io.StringIO()
    rel.to_csv(buf, index=False)
    atomic_write_text(root / MANIFEST_NAME, buf.getvalue())
    df.attrs["failed"] = dict(failed)
    df.attrs["info"] = infos
    return df
