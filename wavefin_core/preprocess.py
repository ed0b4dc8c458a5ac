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


#: Rows per pass of the in-place steps (gap compaction, filling, log-returns, clipping): their temporaries stay
#: about 8 MiB a column whatever the series' length. Results do not depend on it (every step is row-wise).
CHUNK_ROWS = 2**20

#: Rows of the ``(5, rows)`` value block cleaning works on, in ``OHLCV_COLUMNS`` order.
_OPEN, _HIGH, _LOW, _CLOSE, _VOLUME = range(len(OHLCV_COLUMNS))


def clean_prices(
    df: pd.DataFrame,
    *,
    source: str = "series",
    train_fraction: float = 0.7,
    winsorize: Sequence[float] | None = None,
    max_gap_fill: int = 0,
    chunk_rows: int = CHUNK_ROWS,
) -> pd.DataFrame:
    """Apply the missing-value policy and add ``log_return`` (the first row, which has none, is dropped).

    Returns the OHLCV columns plus ``log_return``, sorted, unique timestamps, no NaN. ``attrs`` gains
    ``rows_dropped_missing_close``, ``rows_gap_filled`` and, when winsorizing, ``winsor_percentiles``,
    ``winsor_bounds = [lo, hi]`` and ``winsor_train_rows``. Raises :class:`DataError` (naming ``source``,
    the timestamp and column) for bad prices or conflicting duplicates, :class:`ConfigError` for bad arguments.

    Memory (a 15-million-row series is ~700 MB): the validated copy of ``df`` is cleaned in place, ``chunk_rows``
    rows at a time, and the result's OHLCV columns are views of it, so the peak is ``df`` + that copy + the
    ``log_return`` column (+ the index when rows are dropped) + O(``chunk_rows``). ``df`` itself is never written.
    ``chunk_rows`` is only that memory knob: every step is row-wise, so the result does not depend on it.
    """
    _check_args(train_fraction, winsorize, max_gap_fill)
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ConfigError(f"chunk_rows={chunk_rows!r} must be an integer >= 1, e.g. {CHUNK_ROWS}.")
    # Sorted, identical duplicates dropped, prices positive where present.
    validated = validate_ohlcv(df, source)
    index = validated.index
    values = _own_values(validated, df)  # (5, rows), ours to write
    del validated

    close = values[_CLOSE]
    keep = ~np.isnan(close)
    starts, ends = _short_gaps(~keep, max_gap_fill)
    lengths = ends - starts
    filled = int(lengths.sum())
    if filled:  # forward fill: every bar of a short gap gets the last close before it
        offsets = np.arange(filled) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        positions = np.repeat(starts, lengths) + offsets
        close[positions] = np.repeat(close[starts - 1], lengths)
        keep[positions] = True
        del offsets, positions
    rows = int(np.count_nonzero(keep))
    if rows < 2:
        raise DataError(
            f"{source}: only {rows} row(s) with a close price; at least 2 are needed for a return. "
            "Supply a longer series."
        )
    if rows < len(keep):
        _compact(values, keep, chunk_rows)
        index = index[keep]
    values = values[:, :rows]
    _fill_from_close(values, chunk_rows)
    returns = _log_returns(values[_CLOSE], chunk_rows)

    attrs = _json_safe(df.attrs)
    attrs["source"] = attrs.get("source", source)
    attrs["rows_dropped_missing_close"] = len(keep) - rows
    attrs["rows_gap_filled"] = filled
    if winsorize is not None:
        lo_pct, hi_pct = float(winsorize[0]), float(winsorize[1])
        n_train = train_rows(len(returns), train_fraction)
        lo, hi = np.percentile(returns[:n_train], [lo_pct, hi_pct])  # needs the training rows whole
        _clip(returns, lo, hi, chunk_rows)
        attrs["winsor_percentiles"] = [lo_pct, hi_pct]
        attrs["winsor_bounds"] = [float(lo), float(hi)]
        attrs["winsor_train_rows"] = int(n_train)
    columns = {name: values[i, 1:] for i, name in enumerate(OHLCV_COLUMNS)}
    frame = pd.DataFrame({**columns, RETURN_COLUMN: returns}, index=index[1:], copy=False)
    frame.attrs = attrs
    return frame


def train_rows(n_rows: int, train_fraction: float) -> int:
    """Rows in the chronological training part: ``floor(n_rows * train_fraction)``, at least 1.

    Shared with segmentation so winsorization and normalisation are fitted on the same rows.
    """
    return max(1, int(math.floor(n_rows * train_fraction)))


def chunked_std(values: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> float:
    """Population standard deviation (``np.std``'s) of a 1-D array, summed ``chunk_rows`` at a time.

    ``np.std`` of a whole column allocates a second copy of it (the deviations); this needs O(``chunk_rows``).
    It agrees with ``np.std`` to rounding only: the sums are grouped differently. NaN for an empty array.
    """
    if len(values) == 0:
        return math.nan
    chunks = [values[start : start + chunk_rows] for start in range(0, len(values), chunk_rows)]
    mean = math.fsum(float(np.sum(chunk)) for chunk in chunks) / len(values)
    squares = []
    for chunk in chunks:
        deviations = chunk - mean
        squares.append(float(np.dot(deviations, deviations)))
    return math.sqrt(math.fsum(squares) / len(values))


def _own_values(validated: pd.DataFrame, original: pd.DataFrame) -> np.ndarray:
    """The validated frame's values as a writable ``(5, rows)`` array, without copying them when possible.

    ``validate_ohlcv`` builds a fresh block for its result, so cleaning it in place saves a copy of the whole
    series (pandas hands it out read-only, for copy-on-write; nothing else holds it once ``validated`` is
    dropped). If that storage were shared with the caller's frame, it is copied: ``df`` is never written.
    """
    values = validated.to_numpy(dtype=np.float64).T
    shared = any(
        np.may_share_memory(values, original[col].to_numpy())
        for col in OHLCV_COLUMNS
        if col in original.columns
    )
    if shared:
        return values.copy()
    if not values.flags.writeable:
        try:
            values.flags.writeable = True
        except ValueError:  # not a view of a writable block after all
            values = values.copy()
    return values


def _short_gaps(missing: np.ndarray, max_gap_fill: int) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` of the runs of missing positions of length <= ``max_gap_fill`` with a value before them."""
    if max_gap_fill <= 0 or not missing.any():
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    padded = np.concatenate([[False], missing, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    short = (starts > 0) & (ends - starts <= max_gap_fill)
    return starts[short], ends[short]


def _compact(values: np.ndarray, keep: np.ndarray, chunk_rows: int) -> None:
    """Move the kept columns of ``values`` to its front, in order, a chunk at a time (in place: a kept row only
    moves left, so a chunk is copied out before any write can reach rows not yet read)."""
    write = 0
    for start in range(0, len(keep), chunk_rows):
        kept = values[:, start : start + chunk_rows][:, keep[start : start + chunk_rows]]
        values[:, write : write + kept.shape[1]] = kept
        write += kept.shape[1]


def _fill_from_close(values: np.ndarray, chunk_rows: int) -> None:
    """Missing open/high/low become the bar's close (the only price known for it); missing volume becomes 0."""
    for start in range(0, values.shape[1], chunk_rows):
        part = values[:, start : start + chunk_rows]
        close = part[_CLOSE]
        for row in (_OPEN, _HIGH, _LOW):
            column = part[row]
            missing = np.isnan(column)
            column[missing] = close[missing]
        volume = part[_VOLUME]
        volume[np.isnan(volume)] = 0.0


def _log_returns(close: np.ndarray, chunk_rows: int) -> np.ndarray:
    """``log(close[t]) - log(close[t - 1])`` for t >= 1, computed a chunk at a time (the same operations as
    ``np.diff(np.log(close))``, so the same numbers)."""
    returns = np.empty(len(close) - 1)
    for start in range(1, len(close), chunk_rows):
        stop = min(start + chunk_rows, len(close))
        logs = np.log(close[start - 1 : stop])
        np.subtract(logs[1:], logs[:-1], out=returns[start - 1 : stop - 1])
    return returns


def _clip(values: np.ndarray, lo: float, hi: float, chunk_rows: int) -> None:
    """Clip in place to ``[lo, hi]`` as ``pd.Series.clip`` does (below ``lo`` becomes ``lo``, then above ``hi``
    becomes ``hi``; NaN stays), a chunk at a time."""
    for start in range(0, len(values), chunk_rows):
        part = values[start : start + chunk_rows]
        part[part < lo] = lo
        part[part > hi] = hi


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
    """No missing values anywhere: the cleaning policy must have resolved every gap.

    Counted a column at a time, so a long series costs one boolean column, not a boolean copy of the frame."""
    counts = [(col, int(df.iloc[:, j].isna().sum())) for j, col in enumerate(df.columns)]
    bad = {str(col): n for col, n in counts if n}
    if bad:
        return False, f"missing values per column: {bad}"
    return True, f"no missing values in {len(df)} rows x {df.shape[1]} columns"


def check_positive_prices(df: pd.DataFrame) -> tuple[bool, str]:
    """All present price columns finite and > 0, since log-returns need positive prices.

    Checked a column and ``CHUNK_ROWS`` rows at a time (no copy of the price columns); the first bad price
    reported is the first in row order (then column order), as in a scan of the rows."""
    cols = [c for c in PRICE_COLUMNS if c in df.columns]
    if not cols:
        return False, f"no price columns among {list(map(str, df.columns))}"
    total, first = 0, None  # first: (row, column position, value)
    for j, col in enumerate(cols):
        values = df[col].to_numpy(dtype=np.float64, na_value=np.nan)
        for start in range(0, len(values), CHUNK_ROWS):
            part = values[start : start + CHUNK_ROWS]
            bad = ~(np.isfinite(part) & (part > 0))
            count = int(np.count_nonzero(bad))
            if not count:
                continue
            row = start + int(np.argmax(bad))
            if first is None or row < first[0]:
                first = (row, j, values[row])
            total += count
    if first is not None:
        row, j, value = first
        return False, (
            f"{total} non-positive or non-finite price(s), first at {df.index[row]} column '{cols[j]}' = {value!r}"
        )
    return True, f"all {len(df) * len(cols)} prices in {cols} finite and > 0"


def check_min_rows(df: pd.DataFrame, min_rows: int) -> tuple[bool, str]:
    """Enough rows for the downstream windows; a clear failure here beats an empty split later."""
    n = len(df)
    if n < min_rows:
        return False, f"{n} rows, fewer than the {min_rows} required"
    return True, f"{n} rows (>= {min_rows} required)"
