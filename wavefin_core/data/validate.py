"""The OHLCV contract and the one validator every data source goes through.

Every later stage (cleaning, segmentation, scalograms) assumes the same frame shape, so the CSV loader, the
simulator and the bundled S&P 500 loader all end in :func:`validate_ohlcv`. Checking in one place means a
user's CSV and the built-in data fail (or pass) for the same reasons, with the same messages.

The contract: a ``pd.DataFrame`` with a ``DatetimeIndex`` named ``timestamp``, tz UTC, nanosecond unit, sorted
and unique; columns exactly ``open, high, low, close, volume`` as float64. Prices are positive and finite where
present; volume is non-negative and finite where present. Missing values (NaN) are allowed here because the
policy for them belongs to cleaning (:func:`wavefin_core.preprocess.clean_prices`), not to loading.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from wavefin_core.errors import DataError

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
INDEX_NAME = "timestamp"


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
    labels = _RowLabels(df.index, row_labels, source)
    index = _utc_index(df.index, source, labels)

    found = [str(c) for c in df.columns]
    missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {missing}; found columns {found}. "
            f"Provide columns {list(OHLCV_COLUMNS)} (lower-case)."
        )

    out = pd.DataFrame(
        {col: _as_float(df[col], col, source, labels) for col in OHLCV_COLUMNS},
        index=index,
    )
    for col in OHLCV_COLUMNS:
        _check_range(out[col].to_numpy(), col, source, labels)

    order = np.argsort(index.asi8, kind="stable")
    if not np.all(order == np.arange(len(order))):
        out = out.iloc[order]
        labels = labels.take(order)
    out, labels = _drop_duplicates(out, source, labels)
    out.attrs = dict(df.attrs)
    return out


class _RowLabels:
    """Names rows for error messages, lazily: formatting a label per row up front is slow on big files."""

    def __init__(self, index: pd.Index, row_labels: Sequence[str] | None, source: str) -> None:
        if row_labels is not None and len(row_labels) != len(index):
            raise ValueError(f"{source}: row_labels has {len(row_labels)} entries for {len(index)} rows")
        self._index = index
        self._given = row_labels
        self._positions = np.arange(len(index))

    def take(self, rows: np.ndarray) -> _RowLabels:
        taken = _RowLabels.__new__(_RowLabels)
        taken._index, taken._given = self._index, self._given
        taken._positions = self._positions[rows]
        return taken

    def __getitem__(self, row: int) -> str:
        pos = int(self._positions[row])
        if self._given is not None:
            return str(self._given[pos])
        return f"row {pos + 1} (timestamp {self._index[pos]})"


def _utc_index(index: pd.Index, source: str, labels: _RowLabels) -> pd.DatetimeIndex:
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


def _as_float(col: pd.Series, name: str, source: str, labels: _RowLabels) -> np.ndarray:
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


def _check_range(values: np.ndarray, name: str, source: str, labels: _RowLabels) -> None:
    present = ~np.isnan(values)
    if name == "volume":
        bad = present & (~np.isfinite(values) | (values < 0))
        rule = "volume must be finite and >= 0"
    else:
        bad = present & (~np.isfinite(values) | (values <= 0))
        rule = "prices must be finite and > 0"
    idx = np.flatnonzero(bad)
    if idx.size:
        i = idx[0]
        raise DataError(
            f"{source}: {labels[i]}, column '{name}': value {values[i]!r} is invalid ({rule}); "
            f"{idx.size} such row(s). Fix or remove them."
        )


def _drop_duplicates(df: pd.DataFrame, source: str, labels: _RowLabels) -> tuple[pd.DataFrame, _RowLabels]:
    """Drop rows identical to an earlier row with the same timestamp; refuse conflicting ones.

    Re-downloads and concatenated exports repeat bars verbatim, which is harmless; two different bars at one
    time mean the file mixes sources or instruments, which must not be guessed away.
    """
    dup_ts = df.index.duplicated(keep=False)
    if not dup_ts.any():
        return df, labels
    keyed = df.reset_index()
    identical = keyed.duplicated(keep="first").to_numpy()
    keep = ~identical
    df, labels = df[keep], labels.take(np.flatnonzero(keep))
    conflict = np.flatnonzero(df.index.duplicated(keep="first"))
    if conflict.size:
        j = conflict[0]
        i = int(np.flatnonzero(df.index == df.index[j])[0])
        raise DataError(
            f"{source}: {labels[i]} and {labels[j]} share timestamp {df.index[j]} but have different values; "
            "keep only one bar per timestamp (remove the wrong row)."
        )
    return df, labels
