"""The one exception type for bad input data.

Every check on user data (missing files, NaN sensors, wrong shapes, empty splits) raises
:class:`DataError` with a single line that names the offending file and says how to fix it.
"""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad or missing input data; the message names the file and the fix.

    It subclasses :class:`ValueError`, so callers that already catch ``ValueError`` keep working.

    Example:
        >>> raise DataError("data/s1.npy: sensor has NaN values at rows 3..5; clean or drop it")
        Traceback (most recent call last):
        ...
        vsfusion.data.errors.DataError: data/s1.npy: sensor has NaN values at rows 3..5; clean or drop it
    """
