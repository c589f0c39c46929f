"""Wearable-sensor arrays: validation, resampling by normalised time, and CSV reading.

Sensor recordings are float32 ``(steps, channels)`` arrays (channels-last). Recordings of one
trial from different devices, or video and sensor streams, have no fixed length ratio, so they are
aligned by *normalised time*: sample ``j`` of ``steps`` output samples sits at input position
``j * (n - 1) / (steps - 1)`` (first and last samples aligned).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vsfusion.data.errors import DataError

__all__ = ["SENSOR_STEPS", "TIME_COLUMNS", "read_sensor_csv", "resample", "validate_sensor"]

log = logging.getLogger(__name__)

SENSOR_STEPS = 128
"""Steps every adapter resamples a cached sensor recording to."""
TIME_COLUMNS: tuple[str, ...] = ("times", "time", "timestamp", "timestamps", "t")
"""Column names (case-insensitive) treated as the time axis by :func:`read_sensor_csv`."""

_FILTER_ORDER = 8
_CUTOFF = 0.8  # low-pass corner as a fraction of the new Nyquist frequency


def _runs(rows: np.ndarray) -> str:
    first = int(rows[0])
    last = first
    for r in rows[1:]:
        if r != last + 1:
            break
        last = int(r)
    where = f"row {first}" if last == first else f"rows {first}..{last}"
    more = len(rows) - (last - first + 1)
    return where + (f" (and {more} more rows)" if more else "")


def validate_sensor(array: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Check a sensor recording and return it as float32 ``(steps, channels)``.

    Args:
        array: The recording; must be 2-D, real-valued, non-empty and finite.
        path: The file it came from, named in the error message.

    Returns:
        The array as float32 (no copy when it already is).

    Raises:
        DataError: Wrong rank, non-numeric dtype, empty, or NaN/inf values (naming the rows).

    Example:
        >>> validate_sensor(np.zeros((50, 6)), "s1.npy").dtype
        dtype('float32')
        >>> validate_sensor(np.full((4, 2), np.nan), "s1.npy")
        Traceback (most recent call last):
        ...
        vsfusion.data.errors.DataError: s1.npy: sensor has NaN/inf values at rows 0..3; clean or drop this recording
    """
    a = np.asarray(array)
    if a.ndim != 2:
        raise DataError(
            f"{path}: sensor must be 2-D (steps, channels), got shape {a.shape}; "
            "re-run sensor preprocessing"
        )
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise DataError(
            f"{path}: sensor dtype {a.dtype} is not numeric; store float32 (steps, channels)"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{path}: sensor is empty (shape {a.shape}); drop this recording")
    a = a.astype(np.float32, copy=False)
    bad = ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise DataError(
            f"{path}: sensor has NaN/inf values at {_runs(np.flatnonzero(bad))}; "
            "clean or drop this recording"
        )
    return a


def resample(array: np.ndarray, steps: int) -> np.ndarray:
    """Resample a ``(n, channels)`` recording to ``steps`` samples by normalised time.

    Method: when downsampling, a zero-phase Butterworth low-pass (order 8, applied forwards and
    backwards with ``scipy.signal.sosfiltfilt``, corner at 0.8 of the new Nyquist frequency,
    mirror (``"even"``) padding at the ends) removes what the new rate cannot represent; then linear interpolation at the positions
    ``linspace(0, n - 1, steps)`` (first and last samples aligned). Upsampling is plain linear
    interpolation. ``steps == 1`` returns the mean over time.

    Args:
        array: ``(n, channels)`` (or ``(n,)``) real array.
        steps: Output length (> 0).

    Returns:
        float32 array ``(steps, channels)`` (or ``(steps,)``).

    Example:
        >>> resample(np.zeros((200, 6)), 50).shape
        (50, 6)
    """
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    x = np.asarray(array, dtype=np.float64)
    n = x.shape[0]
    if n == 0:
        raise ValueError("cannot resample an empty recording")
    if steps == n:
        return x.astype(np.float32)
    if steps == 1:
        return x.mean(axis=0, keepdims=True).astype(np.float32)
    if n == 1:
        return np.repeat(x, steps, axis=0).astype(np.float32)
    if steps < n:
        from scipy import signal  # imported here: 0.4-1 s that reading a video alone never needs

        # New Nyquist relative to the old one: output spacing is (n-1)/(steps-1) input samples.
        wn = _CUTOFF * (steps - 1) / (n - 1)
        sos = signal.butter(_FILTER_ORDER, wn, output="sos")
        padlen = min(3 * (2 * len(sos) + 1), n - 1)
        x = signal.sosfiltfilt(sos, x, axis=0, padtype="even", padlen=padlen)
    pos = np.linspace(0.0, n - 1, steps)
    lo = np.minimum(np.floor(pos).astype(np.int64), n - 2)
    frac = pos - lo
    if x.ndim > 1:
        frac = frac.reshape((-1,) + (1,) * (x.ndim - 1))
    out = x[lo] * (1.0 - frac) + x[lo + 1] * frac
    return out.astype(np.float32)


def read_sensor_csv(
    path: str | os.PathLike, columns: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``times,x1,y1,z1,x2,...`` style sensor CSV.

    The time column is the first column named one of :data:`TIME_COLUMNS` (case-insensitive);
    without one, times are the row numbers.

    Args:
        path: CSV file with a header row.
        columns: Channel columns to keep, in this order (default: every non-time column).

    Returns:
        ``(data, times)``: float32 ``(steps, channels)`` and float64 ``(steps,)``.

    Raises:
        DataError: Missing file or column, non-numeric values, NaN/inf (naming the row).

    Example:
        >>> data, times = read_sensor_csv("watch_left.csv", columns=["x1", "y1", "z1"])
        ...  # doctest: +SKIP
        >>> data.shape  # doctest: +SKIP
        (412, 3)
    """
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path}: sensor CSV not found; check the path") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: not a readable CSV ({msg}); fix or re-export it") from None
    df.columns = [str(c).strip() for c in df.columns]
    time_col = next((c for c in df.columns if c.lower() in TIME_COLUMNS), None)
    if columns is None:
        columns = [c for c in df.columns if c != time_col]
    else:
        columns = list(columns)
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; available: {list(df.columns)}")
    if not columns:
        raise DataError(f"{path}: no sensor channel columns; expected e.g. times,x1,y1,z1")
    for c in columns + ([time_col] if time_col else []):
        if not pd.api.types.is_numeric_dtype(df[c]):
            vals = pd.to_numeric(df[c], errors="coerce")
            bad = np.flatnonzero(vals.isna() & df[c].notna())
            if len(bad):
                row = int(bad[0])
                raise DataError(
                    f"{path}: column {c!r} has a non-numeric value at row {row} "
                    f"({df[c].iloc[row]!r}); fix the CSV"
                )
            df[c] = vals
    data = validate_sensor(df[columns].to_numpy(dtype=np.float64), path)
    if time_col is None:
        times = np.arange(len(df), dtype=np.float64)
    else:
        times = df[time_col].to_numpy(dtype=np.float64)
        if not np.isfinite(times).all():
            raise DataError(f"{path}: column {time_col!r} has missing values; fix the CSV")
    return data, times
