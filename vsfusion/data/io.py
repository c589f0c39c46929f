"""Atomic writers, and the one reader of cached ``.npy`` arrays.

A file is written under a temporary name in its folder, then renamed. A crash or a kill therefore
never leaves a half-written ``.npy`` or ``.csv`` under the final name; at worst a ``<name>.tmp``
file remains, which readers ignore and writers overwrite. :func:`load_npy` opens a cached array
memory-mapped and turns a missing or unreadable file into one :class:`DataError` line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vsfusion.data.errors import DataError

__all__ = ["TMP_SUFFIX", "atomic_save_npy", "atomic_save_npz", "atomic_write_text", "load_npy"]

TMP_SUFFIX = ".tmp"


def _tmp_path(path: Path) -> Path:
    return path.with_name(path.name + TMP_SUFFIX)


def _replace(tmp: Path, path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Save ``array`` to ``path`` (``.npy``) via ``<path>.tmp`` and an atomic rename.

    Args:
        path: Destination file; parent folders are created.
        array: Array to store (saved as is, without pickling).

    Returns:
        The destination path.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> p = atomic_save_npy(f"{d}/clip.npy", np.zeros((2, 4, 4, 3), np.uint8))
        >>> np.load(p).shape
        (2, 4, 4, 3)
    """
    path = Path(path)
    arr = np.asarray(array)
    _replace(_tmp_path(path), path, lambda f: np.save(f, arr, allow_pickle=False))
    return path


def atomic_save_npz(
    path: str | os.PathLike, *, compress: bool = True, **arrays: np.ndarray
) -> Path:
    """Save named arrays to ``path`` (``.npz``, compressed unless ``compress=False``) via
    ``<path>.tmp`` and an atomic rename.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> p = atomic_save_npz(f"{d}/predictions.npz", labels=np.arange(3))
        >>> np.load(p)["labels"].tolist()
        [0, 1, 2]
    """
    path = Path(path)
    plain = {k: np.asarray(v) for k, v in arrays.items()}
    save = np.savez_compressed if compress else np.savez
    _replace(_tmp_path(path), path, lambda f: save(f, **plain))
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` via ``<path>.tmp`` and an atomic rename.

    Args:
        path: Destination file; parent folders are created.
        text: File contents.
        encoding: Text encoding.

    Returns:
        The destination path.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> atomic_write_text(f"{d}/train.csv", "file,label\\n").read_text()
        'file,label\\n'
    """
    path = Path(path)
    data = text.encode(encoding)
    _replace(_tmp_path(path), path, lambda f: f.write(data))
    return path


def load_npy(path: str | os.PathLike, what: str) -> np.ndarray:
    """Open a cached ``.npy`` memory-mapped; a missing or unreadable file is a :class:`DataError`
    naming it (``what`` says which kind of file it was, e.g. ``"video"``).

    Example:
        >>> load_npy("nope.npy", "sensor")
        Traceback (most recent call last):
        ...
        vsfusion.data.errors.DataError: nope.npy: sensor file not found; re-run preprocessing
    """
    try:
        return np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise DataError(f"{path}: {what} file not found; re-run preprocessing") from None
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable .npy ({e}); re-run preprocessing") from None
