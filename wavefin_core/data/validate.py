"""The OHLCV contract and the one validator every data source goes through.

Every later stage (cleaning, segmentation, scalograms) assumes the same frame shape, so the CSV loader, the
simulator and the bundled S&P 500 loader all end in :func:`validate_ohlcv`. Checking in one place means a
user's CSV and the built-in data fail (or pass) for the same reasons, with the same messages.

The contract: a ``pd.DataFrame`` with a ``DatetimeIndex`` named ``timestamp``, tz UTC, nanosecond unit, sorted
and unique; columns exactly ``open, high, low, close, volume`` as float64. Prices are positive and finite where
present; volume is non-negative and finite where present. Missing values (NaN) are allowed here because the
policy for them belongs to cleaning (:func:`wavefin_core.preprocess.clean_prices`), not to loading.

Memory: the five columns live in one ``(5, rows)`` float64 block that becomes the frame without a copy, and
the checks use boolean temporaries only, so validating a 15-million-row file costs little beyond the frame
itself (sorting an unsorted file is the one full copy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from wavefin_core.errors import ConfigError, DataError

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
INDEX_NAME = "timestamp"

#: Largest |log return| between consecutive closes a file may contain before loading refuses it: a 20x jump
#: or drop in one bar (ln 20 = 3.0). Real markets stay far below it (the 1987 crash was -0.23 in a day; a 1:20
#: reverse split in unadjusted data is 3.0); a price typed 100x too large (4.6) or a 1e308 placeholder (704)
#: is far above. Raise it (``max_abs_log_return``) for data that really moves like that.
DEFAULT_MAX_ABS_LOG_RETURN = 3.0
_RETURN_CHUNK = 2**18  # 2 MB temporaries per chunk


def validate_ohlcv(df: pd.DataFrame, source: str, *, row_labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Check ``df`` against the OHLCV contract and return a normalised copy.

    Normalisation (not errors): a naive index is taken as UTC, an aware one converted to UTC, the unit set to
    nanoseconds, the index named ``timestamp``, columns cast to float64 and reordered (extra columns are
    dropped), rows sorted by time, and identical duplicate rows dropped.

    Errors (:class:`DataError`, message names ``source``, the row and the column): not a DataFrame, index not
    datetime or containing NaT, a missing column, a non-numeric value, a non-positive or non-finite price, a
    negative or non-finite volume, and duplicate timestamps with different values.

    ``row_labels`` (one per row, e.g. ``"line 12"``) lets a file loader report rows by their place in the
    file; by default rows are named by their timestamp.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame of OHLCV bars, got {type(df).__name__}.")
    labels = RowLabels(df.index, row_labels, source)
    index = _utc_index(df.index, source, labels)
    found = [str(c) for c in df.columns]
    missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {missing}; found columns {found}. "
            f"Provide columns {list(OHLCV_COLUMNS)} (lower-case)."
        )
    block = np.empty((len(OHLCV_COLUMNS), len(df)), dtype=np.float64)
    for i, col in enumerate(OHLCV_COLUMNS):
        block[i] = _as_float(df[col], col, source, labels)
    frame, _ = validate_block(block, index, source, labels)
    frame.attrs = dict(df.attrs)
    return frame


def validate_block(
    block: np.ndarray, index: pd.DatetimeIndex, source: str, labels: RowLabels
) -> tuple[pd.DataFrame, RowLabels]:
    """Validate a ``(5, rows)`` float64 block (rows in :data:`OHLCV_COLUMNS` order) on a UTC ns index.

    The block becomes the frame's storage without a copy unless rows must be sorted or duplicates dropped.
    Returns the frame and the row labels in the frame's row order (for later messages about its rows).
    """
    for i, col in enumerate(OHLCV_COLUMNS):
        _check_range(block[i], col, source, labels)
    if not index.is_monotonic_increasing:
        order = np.argsort(index.asi8, kind="stable")
        block, index, labels = block[:, order], index[order], labels.take(order)
    block, index, labels = _drop_duplicates(block, index, source, labels)
    frame = pd.DataFrame(block.T, index=index, columns=list(OHLCV_COLUMNS), copy=False)
    return frame, labels


def check_log_returns(
    frame: pd.DataFrame, source: str, max_abs_log_return: float, labels: RowLabels | None = None
) -> None:
    """Refuse a jump between consecutive present closes larger than ``max_abs_log_return`` (in log units).

    Such a jump is almost always a typo or a placeholder (1e308, 99999) and would dominate every statistic
    downstream, so it is an error naming the row rather than a value to clip.
    """
    bound = checked_return_bound(max_abs_log_return)
    if math.isinf(bound) or len(frame) < 2:
        return
    labels = labels or RowLabels(frame.index, None, source)
    close = frame["close"].to_numpy()
    # Positions of the present closes; None while every close is present (the common case): the chunks are
    # then slices (views), and no row-length index array is made.
    present = np.flatnonzero(~np.isnan(close)) if np.isnan(close).any() else None
    n_present = len(close) if present is None else len(present)
    jumps, bad, start = np.empty(0), np.empty(0, dtype=np.int64), 0
    for start in range(0, n_present - 1, _RETURN_CHUNK):  # chunks: temporaries stay small on 15M rows
        stop = min(start + _RETURN_CHUNK + 1, n_present)
        values = close[start:stop] if present is None else close[present[start:stop]]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            jumps = np.diff(np.log(values))
        np.abs(jumps, out=jumps)
        bad = np.flatnonzero(~(jumps <= bound))
        if bad.size:
            break
    if bad.size:
        k = int(bad[0])
        first = start + k
        prev, row = (first, first + 1) if present is None else (int(present[first]), int(present[first + 1]))
        raise DataError(
            f"{source}: {labels[row]}, column 'close': the close moves from {float(close[prev])!r} ({labels[prev]}) "
            f"to {float(close[row])!r}, a log return of {float(jumps[k]):.3g}, beyond max_abs_log_return={bound:g} "
            f"(a {math.exp(min(bound, 700)):.3g}x jump or drop in one bar); {bad.size} such jump(s). Fix or remove the "
            "wrong price; if the move is real, raise max_abs_log_return (the load_ohlcv argument or the "
            "raw_prices config field)."
        )


def checked_return_bound(value: object) -> float:
    """``max_abs_log_return`` as a float, or ConfigError: it must be a number > 0 (``inf`` disables the check)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not float(value) > 0:
        raise ConfigError(
            f"max_abs_log_return={value!r} must be a number > 0 (default {DEFAULT_MAX_ABS_LOG_RETURN}, "
            "i.e. a 20x move in one bar; inf disables the check)."
        )
    return float(value)


class RowLabels:
    """Names rows for error messages, lazily: formatting a label per row up front is slow on big files."""

    def __init__(self, index: pd.Index, row_labels: Sequence[str] | None, source: str) -> None:
        if row_labels is not None and len(row_labels) != len(index):
            raise ValueError(f"{source}: row_labels has {len(row_labels)} entries for {len(index)} rows")
        self._index = index
        self._given = row_labels
        self._positions: np.ndarray | None = None  # None = identity (no copy of a 15M-row range)

    def take(self, rows: np.ndarray) -> RowLabels:
        taken = RowLabels.__new__(RowLabels)
        taken._index, taken._given = self._index, self._given
        taken._positions = rows if self._positions is None else self._positions[rows]
        return taken

    def __getitem__(self, row: int) -> str:
        pos = int(row if self._positions is None else self._positions[row])
        if self._given is not None:
            return str(self._given[pos])
        return f"row {pos + 1} (timestamp {self._index[pos]})"


def _utc_index(index: pd.Index, source: str, labels: RowLabels) -> pd.DatetimeIndex:
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(
            f"{source}: the index must be a DatetimeIndex of bar times, got {type(index).__name__}. "
            "Set the time column as the index (df.set_index('timestamp'))."
        )
    nat = np.flatnonzero(index.isna())
    if nat.size:
        raise DataError(f"{source}: {labels[nat[0]]} has no timestamp (NaT); drop or fix that row.")
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return index.as_unit("ns").rename(INDEX_NAME)


def _as_float(col: pd.Series, name: str, source: str, labels: RowLabels) -> np.ndarray:
    if pd.api.types.is_float_dtype(col.dtype) or pd.api.types.is_integer_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    numeric = pd.to_numeric(col, errors="coerce")
    bad = np.flatnonzero(numeric.isna().to_numpy() & col.notna().to_numpy())
    if bad.size:
        i = bad[0]
        raise DataError(
            f"{source}: {labels[i]}, column '{name}': value {col.iloc[i]!r} is not a number; "
            "fix or remove that value."
        )
    return numeric.to_numpy(dtype=np.float64, na_value=np.nan)


def _check_range(values: np.ndarray, name: str, source: str, labels: RowLabels) -> None:
    # NaN (missing) compares False everywhere below, so only present values can be flagged.
    if name == "volume":
        bad = np.isinf(values) | (values < 0)
        rule = "volume must be finite and >= 0"
    else:
        bad = np.isinf(values) | (values <= 0)
        rule = "prices must be finite and > 0"
    idx = np.flatnonzero(bad)
    if idx.size:
        i = idx[0]
        raise DataError(
            f"{source}: {labels[i]}, column '{name}': value {values[i]!r} is invalid ({rule}); "
            f"{idx.size} such row(s). Fix or remove them."
        )


def _drop_duplicates(
    block: np.ndarray, index: pd.DatetimeIndex, source: str, labels: RowLabels
) -> tuple[np.ndarray, pd.DatetimeIndex, RowLabels]:
    """Drop rows identical to the previous row with the same timestamp; refuse conflicting ones.

    Re-downloads and concatenated exports repeat bars verbatim, which is harmless; two different bars at one
    time mean the file mixes sources or instruments, which must not be guessed away. Rows are sorted (stably)
    here, so equal timestamps are adjacent and one comparison with the previous row decides.
    """
    stamps = index.asi8
    repeat = np.flatnonzero(stamps[1:] == stamps[:-1]) + 1
    if not repeat.size:
        return block, index, labels
    cur, prev = block[:, repeat], block[:, repeat - 1]
    same = ((cur == prev) | (np.isnan(cur) & np.isnan(prev))).all(axis=0)
    conflict = repeat[~same]
    if conflict.size:
        j = int(conflict[0])
        i = int(np.searchsorted(stamps, stamps[j], side="left"))
        raise DataError(
            f"{source}: {labels[i]} and {labels[j]} share timestamp {index[j]} but have different values; "
            "keep only one bar per timestamp (remove the wrong row)."
        )
    keep = np.ones(len(index), dtype=bool)
    keep[repeat] = False
    rows = np.flatnonzero(keep)
    return block[:, rows], index[rows], labels.take(rows)
