"""How a cache read its recordings, recorded and replayed (light: NumPy and the standard library).

:func:`reader_spec` describes a reader (a vsfusion function, bare or a ``functools.partial`` with
JSON keyword arguments) as JSON; :func:`~vsfusion.data.cache.build_cache` stores it in
``modalities.json`` and the fusion stage in ``predictor.json``; :func:`reader_from_spec` turns it
back into the reader, so that a deployed model reads a new recording exactly as its training cache
was made (:class:`vsfusion.inference.Predictor`) without importing the dataset machinery.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np  # noqa: F401  (used by the doctests)

from vsfusion.data.errors import DataError

__all__ = ["reader_from_spec", "reader_spec", "split_info"]


#: Package whose readers :func:`reader_spec` records and :func:`reader_from_spec` imports.
_READER_PACKAGE = "vsfusion."


def reader_spec(reader: Callable[[Any], Any]) -> dict[str, Any] | None:
    """How a cache reader was called, as JSON: its function and keyword parameters.

    :func:`build_cache` records it for every column in ``modalities.json`` (attribute
    ``"reader"``), and stages pass it on (the fusion run's ``predictor.json``), so a deployed model
    reads a new recording with the very function and parameters that made its training cache
    (:func:`reader_from_spec`). Only vsfusion's own top-level functions, bare or as a
    ``functools.partial`` with JSON keyword arguments only, are described; anything else gives
    None (nothing is recorded).

    Example:
        >>> from vsfusion.data.video import read_clip
        >>> reader_spec(functools.partial(read_clip, num_frames=32, size=128))
        {'module': 'vsfusion.data.video', 'name': 'read_clip', 'kwargs': {'num_frames': 32, 'size': 128}}
        >>> reader_spec(np.load) is None
        True
    """
    func, kwargs = reader, {}
    if isinstance(reader, functools.partial):
        if reader.args:
            return None
        func, kwargs = reader.func, dict(reader.keywords)
    module, name = getattr(func, "__module__", None) or "", getattr(func, "__qualname__", "")
    if not module.startswith(_READER_PACKAGE) or not name.isidentifier():
        return None
    try:
        json.dumps(kwargs)
    except (TypeError, ValueError):
        return None
    return {"module": module, "name": name, "kwargs": kwargs}


def reader_from_spec(spec: Mapping[str, Any]) -> Callable[[Any], Any]:
    """The reader :func:`reader_spec` described (``functools.partial`` of the function).

    Raises:
        DataError: The spec is malformed or names no vsfusion function (e.g. written by a newer
            version).

    Example:
        >>> r = reader_from_spec({"module": "vsfusion.data.sensor", "name": "resample",
        ...                       "kwargs": {"steps": 4}})
        >>> r(np.zeros((10, 2))).shape
        (4, 2)
    """
    module = str(spec.get("module", "")) if isinstance(spec, Mapping) else ""
    name = str(spec.get("name", "")) if isinstance(spec, Mapping) else ""
    kwargs = spec.get("kwargs", {}) if isinstance(spec, Mapping) else None
    func = None
    if module.startswith(_READER_PACKAGE) and name.isidentifier() and isinstance(kwargs, dict):
        try:
            func = getattr(importlib.import_module(module), name, None)
        except ImportError:
            func = None
    if not callable(func):
        raise DataError(
            f"recorded reader {module}.{name} is not a vsfusion function of this version; "
            "install the vsfusion version that prepared the data"
        )
    return functools.partial(func, **kwargs)


def split_info(out: Any) -> tuple[Any, dict | None]:
    """A reader's output as ``(array, info)``: readers may return ``(array, info_dict)``.

    Example:
        >>> split_info(("clip", {"fps": 30.0}))
        ('clip', {'fps': 30.0})
        >>> split_info("clip")
        ('clip', None)
    """
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
        return out[0], out[1]
    return out, None
