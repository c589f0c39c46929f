"""vsfusion.data: manifests, splits, decoding, resampling, the batch loader and dataset adapters.

``DATASETS`` is the one registry of dataset adapters: name -> ``load(root, **kwargs) -> Manifest``,
the ``load`` of a :class:`~vsfusion.data.adapter.DatasetAdapter` subclass (one per dataset, see
``vsfusion.data.adapter``). It feeds argparse ``choices`` and test parametrisation.

Importing the package loads none of its modules: each name above is imported on first use, so
``ClipLoader`` (Keras) and the adapters (pandas) load only where they are used, and the
preprocessing workers and ``predict.py`` start without them.

Example:
    >>> from vsfusion.data import DATASETS, load_dataset
    >>> sorted(DATASETS)
    ['MHAD', 'UTD-MHAD', 'VSL', 'demo', 'folder']
    >>> manifest = load_dataset("VSL", "data/VSL", val_fraction=0.2)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vsfusion.data.errors import DataError

if TYPE_CHECKING:
    from vsfusion.data.adapter import DatasetAdapter
    from vsfusion.data.loader import ClipLoader
    from vsfusion.data.manifest import Manifest
    from vsfusion.data.splits import carve_validation, subject_split

    DATASETS: dict[str, Callable[..., Manifest]]

__all__ = [
    "DATASETS",
    "ClipLoader",
    "DataError",
    "DatasetAdapter",
    "Manifest",
    "carve_validation",
    "dataset_fact",
    "load_dataset",
    "subject_split",
]

#: Names this package gives from its modules, imported on first use: the dataset adapters bring
#: pandas and ``ClipLoader`` brings Keras, which a process that only reads recordings (a worker
#: preparing the cache, ``predict.py``) does without.
_LAZY = {
    "ClipLoader": "vsfusion.data.loader",
    "DatasetAdapter": "vsfusion.data.adapter",
    "Manifest": "vsfusion.data.manifest",
    "carve_validation": "vsfusion.data.splits",
    "subject_split": "vsfusion.data.splits",
}


def _datasets() -> dict[str, Callable[..., Manifest]]:
    """``DATASETS``: name -> the adapter's ``load`` (its :class:`~vsfusion.data.adapter.DatasetAdapter`
    subclass is ``DATASETS[name].adapter``)."""
    from vsfusion.data import berkeley_mhad, demo, folder, utd_mhad, vsl

    return {
        "MHAD": berkeley_mhad.load,
        "UTD-MHAD": utd_mhad.load,
        "VSL": vsl.load,
        "demo": demo.load,
        "folder": folder.load,
    }


def __getattr__(name: str) -> Any:
    if name == "DATASETS":
        value: Any = _datasets()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # imported once; later lookups find it here
    return value


def _registry() -> dict[str, Callable[..., Manifest]]:
    return sys.modules[__name__].DATASETS


def load_dataset(name: str, root: str | os.PathLike, **kwargs: Any) -> Manifest:
    """Load a registered dataset's manifest.

    Args:
        name: A key of :data:`DATASETS`.
        root: The dataset root folder.
        **kwargs: Passed to the adapter (e.g. ``val_fraction``, ``seed``).

    Returns:
        The validated manifest.

    Raises:
        DataError: Unknown name (listing the known ones), or the adapter's data errors.

    Example:
        >>> load_dataset("nope", ".")
        Traceback (most recent call last):
        ...
        vsfusion.data.errors.DataError: unknown dataset 'nope'; known datasets: MHAD, UTD-MHAD, VSL, demo, folder
    """
    try:
        loader = _registry()[name]
    except KeyError:
        raise DataError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_registry()))}"
        ) from None
    return loader(root, **kwargs)


def dataset_fact(name: str, fact: str, default: Any = None) -> Any:
    """A fact of a dataset's adapter (e.g. ``SENSOR_UNIT_CHANNELS``), or ``default``.

    Looked up on the adapter class (e.g. ``modalities``, ``protocols``), then among its module's
    constants (``SENSOR_UNIT_CHANNELS``, ``DEFAULT_VIDEO_MODALITY``, ...).

    Example:
        >>> dataset_fact("UTD-MHAD", "SENSOR_UNIT_CHANNELS"), dataset_fact("folder", "NOPE", 0)
        (6, 0)
        >>> sorted(dataset_fact("UTD-MHAD", "modalities"))
        ['sensor', 'skeleton', 'video']
    """
    adapter = getattr(_registry().get(name), "adapter", None)
    if adapter is None:
        return default
    if hasattr(adapter, fact):
        return getattr(adapter, fact)
    return getattr(sys.modules[adapter.__module__], fact, default)
