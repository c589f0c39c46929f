"""vsfusion.data: manifests, splits, decoding, resampling, the batch loader and dataset adapters.

``DATASETS`` is the one registry of dataset adapters: name -> ``load(root, **kwargs) -> Manifest``,
the ``load`` of a :class:`~vsfusion.data.adapter.DatasetAdapter` subclass (one per dataset, see
``vsfusion.data.adapter``). It feeds argparse ``choices`` and test parametrisation.

``ClipLoader`` is imported lazily (on first attribute access) because it needs Keras; the rest of
this package, and the preprocessing worker processes, then start without importing a backend.

Example:
    >>> from vsfusion.data import DATASETS, load_dataset
    >>> sorted(DATASETS)
    ['MHAD', 'UTD-MHAD', 'VSL', 'demo', 'folder']
    >>> manifest = load_dataset("VSL", "data/VSL", val_fraction=0.2)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vsfusion.data import berkeley_mhad, demo, folder, utd_mhad, vsl
from vsfusion.data.adapter import DatasetAdapter
from vsfusion.data.errors import DataError
from vsfusion.data.manifest import Manifest
from vsfusion.data.splits import carve_validation, subject_split

if TYPE_CHECKING:
    from vsfusion.data.loader import ClipLoader

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

DATASETS: dict[str, Callable[..., Manifest]] = {
    "MHAD": berkeley_mhad.load,
    "UTD-MHAD": utd_mhad.load,
    "VSL": vsl.load,
    "demo": demo.load,
    "folder": folder.load,
}
"""Name -> the adapter's ``load`` (its :class:`~vsfusion.data.adapter.DatasetAdapter` subclass is
``DATASETS[name].adapter``)."""


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
        loader = DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}"
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
    adapter = getattr(DATASETS.get(name), "adapter", None)
    if adapter is None:
        return default
    if hasattr(adapter, fact):
        return getattr(adapter, fact)
    return getattr(sys.modules[adapter.__module__], fact, default)


def __getattr__(name: str) -> Any:
    if name == "ClipLoader":
        from vsfusion.data.loader import ClipLoader

        return ClipLoader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
