"""Cleaning: from a raw OHLCV frame to a gap-policy-applied frame with log-returns.

Missing-value policy (and why):

- A row whose ``close`` is missing is **dropped**. Imputing a price (forward fill, interpolation) invents a
  zero or artificially smooth return that never happened, which biases volatility down and autocorrelation up.
  The next return then spans the gap, which is what a trader holding through the gap would have earned.
- Optionally, with ``max_gap_fill=k > 0``, a run of at most ``k`` consecutive missing closes is forward-filled
  (for feeds that skip bars when nothing traded: the price really did not move). Runs longer than ``k`` are
  dropped whole rather than partly filled, so a long outage never becomes ``k`` flat bars and a jump. Leading
  missing closes have nothing to fill from and are dropped.
- Missing ``open``/``high``/``low`` are filled from ``close`` (the only price known for that bar); missing
  ``volume`` becomes 0.
- Non-positive or non-finite prices are errors, never silently dropped: they mean the data is wrong.

Optional winsorization clips ``log_return`` at percentiles computed on the **training part only** (the first
``train_fraction`` of rows, the same chronological cut :func:`wavefin_core.segments.make_segments` uses), so no
information from validation/test leaks into training through the clipping bounds. Prices are left unclipped,
so the price path stays exactly reconstructible from ``close``.

Everything stored in ``df.attrs`` is a plain JSON-serialisable Python value, because attrs are persisted to
Parquet by the IO layer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from wavefin_core.data.validate import OHLCV_COLUMNS, PRICE_COLUMNS, validate_ohlcv
from wavefin_core.errors import ConfigError, DataError

RETURN_COLUMN = "log_return"


def clean_prices(
    df: pd.DataFrame,
    *,
    source: str = "series",
    train_fraction: float = 0.7,
    winsorize: Sequence[float] | None = None,
    max_gap_fill: int = 0,
) -> pd.DataFrame:
    """Apply the missing-value policy and add ``log_return`` (the first row, which has none, is dropped).

    Returns the OHLCV columns plus ``log_return``, sorted, unique timestamps, no NaN. ``attrs`` gains
    ``rows_dropped_missing_close``, ``rows_gap_filled`` and, when winsorizing, ``winsor_percentiles``,
    ``winsor_bounds = [lo, hi]`` and ``winsor_train_rows``. Raises :class:`DataError` (naming ``source``,
    the timestamp and column) for bad prices or conflicting duplicates, :class:`ConfigError` for bad arguments.
    """
    _check_args(train_fraction, winsorize, max_gap_fill)
    frame = validate_ohlcv(df, source)  # sorted, identical duplicates dropped, prices positive where present

    close = frame["close"]
    missing = close.isna().to_numpy()
    fillable = _short_gaps(missing, max_gap_fill)
    if fillable.any():
        frame.loc[fillable, "close"] = close.ffill().to_numpy()[fillable]
    keep = ~missing | fillable
    frame = frame[keep].copy()
    for col in PRICE_COLUMNS:
        frame[col] = frame[col].fillna(frame["close"])
    frame["volume"] = frame["volume"].fillna(0.0)

    if len(frame) < 2:
        raise DataError(
            f"{source}: only {len(frame)} row(s) with a close price; at least 2 are needed for a return. "
            "Supply a longer series."
        )
    log_close = np.log(frame["close"].to_numpy())
    frame[RETURN_COLUMN] = np.concatenate([[np.nan], np.diff(log_close)])
    frame = frame.iloc[1:].copy()

    attrs = _json_safe(df.attrs)
    attrs["source"] = attrs.get("source", source)
    attrs["rows_dropped_missing_close"] = int((~keep).sum())
    attrs["rows_gap_filled"] = int(fillable.sum())
    if winsorize is not None:
        lo_pct, hi_pct = float(winsorize[0]), float(winsorize[1])
        n_train = train_rows(len(frame), train_fraction)
        train_returns = frame[RETURN_COLUMN].to_numpy()[:n_train]
        lo, hi = np.percentile(train_returns, [lo_pct, hi_pct])
        frame[RETURN_COLUMN] = frame[RETURN_COLUMN].clip(lo, hi)
        attrs["winsor_percentiles"] = [lo_pct, hi_pct]
        attrs["winsor_bounds"] = [float(lo), float(hi)]
        attrs["winsor_train_rows"] = int(n_train)
    frame = frame[[*OHLCV_COLUMNS, RETURN_COLUMN]]
    frame.attrs = attrs
    return frame


def train_rows(n_rows: int, train_fraction: float) -> int:
    """Rows in the chronological training part: ``floor(n_rows * train_fraction)``, at least 1.

    Shared with segmentation so winsorization and normalisation are fitted on the same rows.
    """
    return max(1, int(math.floor(n_rows * train_fraction)))


def _short_gaps(missing: np.ndarray, max_gap_fill: int) -> np.ndarray:
    """Mask of missing positions inside runs of length <= ``max_gap_fill`` that have a value before them."""
    fill = np.zeros_like(missing)
    if max_gap_fill <= 0 or not missing.any():
        return fill
    padded = np.concatenate([[False], missing, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for start, end in zip(starts, ends, strict=True):
        if start > 0 and end - start <= max_gap_fill:
            fill[start:end] = True
    return fill


def _check_args(train_fraction: float, winsorize: Sequence[float] | None, max_gap_fill: int) -> None:
    if not (isinstance(train_fraction, (int, float)) and 0.0 < train_fraction <= 1.0):
        raise ConfigError(f"train_fraction={train_fraction!r} must be in (0, 1], e.g. 0.7.")
    if not isinstance(max_gap_fill, (int, np.integer)) or isinstance(max_gap_fill, bool) or max_gap_fill < 0:
        raise ConfigError(f"max_gap_fill={max_gap_fill!r} must be an integer >= 0 (0 disables filling).")
    if winsorize is not None:
        ok = isinstance(winsorize, Sequence) and len(winsorize) == 2
        if ok:
            lo, hi = winsorize
            ok = all(isinstance(v, (int, float)) for v in (lo, hi)) and 0.0 <= lo < hi <= 100.0
        if not ok:
            raise ConfigError(
                f"winsorize={winsorize!r} must be None or (lo_pct, hi_pct) with 0 <= lo < hi <= 100, "
                "e.g. (0.5, 99.5)."
            )


def _json_safe(attrs: dict) -> dict:
    """Keep only attrs that survive JSON (they are persisted to Parquet metadata)."""
    safe = {}
    for key, value in attrs.items():
        try:
            json.dumps({key: value})
        except (TypeError, ValueError):
            continue
        safe[key] = value
    return safe


# --- blocking asset checks -------------------------------------------------------------------------------
# Each returns (passed, description) so the Dagster layer can wrap it in an AssetCheckResult unchanged.


def check_monotonic_unique_index(df: pd.DataFrame) -> tuple[bool, str]:
    """Timestamps strictly increasing: every windowing and split assumes time order without repeats."""
    index = df.index
    if not isinstance(index, pd.DatetimeIndex):
        return False, f"index is {type(index).__name__}, expected a DatetimeIndex"
    if not index.is_unique:
        dup = index[index.duplicated()][0]
        return False, f"{int(index.duplicated().sum())} duplicate timestamp(s), first at {dup}"
    if not index.is_monotonic_increasing:
        pos = int(np.flatnonzero(np.diff(index.asi8) < 0)[0]) + 1
        return False, f"timestamps not increasing at row {pos + 1} ({index[pos]})"
    return True, f"{len(index)} timestamps, strictly increasing"


def check_no_nan(df: pd.DataFrame) -> tuple[bool, str]:
    """No missing values anywhere: the cleaning policy must have resolved every gap."""
    counts = df.isna().sum()
    bad = {str(col): int(n) for col, n in counts.items() if n}
    if bad:
        return False, f"missing values per column: {bad}"
    return True, f"no missing values in {len(df)} rows x {df.shape[1]} columns"


def check_positive_prices(df: pd.DataFrame) -> tuple[bool, str]:
    """All present price columns finite and > 0, since log-returns need positive prices."""
    cols = [c for c in PRICE_COLUMNS if c in df.columns]
    if not cols:
        return False, f"no price columns among {list(map(str, df.columns))}"
    values = df[cols].to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        row, col = (int(x[0]) for x in np.nonzero(bad))
        return False, (
            f"{int(bad.sum())} non-positive or non-finite price(s), first at {df.index[row]} "
            f"column '{cols[col]}' = {values[row, col]!r}"
        )
    return True, f"all {values.size} prices in {cols} finite and > 0"


def check_min_rows(df: pd.DataFrame, min_rows: int) -> tuple[bool, str]:
    """Enough rows for the downstream windows; a clear failure here beats an empty split later."""
    n = len(df)
    if n < min_rows:
        return False, f"{n} rows, fewer than the {min_rows} required"
    return True, f"{n} rows (>= {min_rows} required)"
