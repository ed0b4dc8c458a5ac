"""Sliding windows of log-returns with labels and leak-free chronological train/val/test splits.

The timeline of ``n`` returns is cut by fraction of rows into regions ``[0, a)`` train, ``[a, b)`` val and
``[b, n)`` test, with ``a = floor(n * train_fraction)`` (the same cut cleaning uses for winsorization) and
``b = floor(n * (train_fraction + val_fraction))``. A window starting at ``s`` covers returns
``s .. s+window-1`` and its label covers ``s+window .. s+window+horizon-1``; the label is their sum (the log
return over the next ``horizon`` bars). A sample is kept only if that whole span lies inside one region, and
the last ``embargo`` rows of the train and val regions are left unused, so between any train span and any
val span (and val/test) there are at least ``embargo`` unused rows. With the default ``embargo = window +
horizon``, no return a model sees or is scored on in one split is within a window's reach of another split.

Train and val windows start every ``stride`` rows; test windows every ``test_stride`` rows (default 1 for
``horizon = 1``: a coarse training stride saves compute, but scoring only every 8th test day would throw away 7/8
of the evidence a significance test needs; for ``horizon > 1`` the default is ``horizon``, so test labels do not
overlap and the per-window tests keep independent outcomes).

Normalisation statistics (``mean``, ``std``) come from the values inside train windows only; windows are
stored un-normalised so the raw returns stay available and the stats can be applied or inverted anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from wavefin_core.data.memory import check_allocation
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.preprocess import train_rows

SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Fewest samples per window the pipeline accepts: the covering wavelet scales of the scalograms need 4
#: (wavefin_core.wavelets.covering_scales). One number, checked by segments and by the first data asset, so a
#: run with a smaller window fails before anything is stored instead of in a later asset.
MIN_WINDOW = 4
#: Bytes per window value while segmenting: the float64 windows, their copy in to_frame, and the per-row
#: Python objects of the frame's list column. Measured: make_segments + to_frame peak at 2.6x the raw float64
#: windows (200k returns, window 64, stride 1, tracemalloc), i.e. ~21 bytes a value; 24 leaves a margin.
_SEGMENT_BYTES_PER_VALUE = 24
_ATTR_KEYS = ("window", "stride", "horizon", "embargo", "mean", "std", "train_fraction", "val_fraction")
_FRAME_COLUMNS = ("start_time", "end_time", "label_time", "split", "target_return", "direction", "window")


@dataclass
class Segments:
    """Windowed samples of one series. Arrays share their first axis (one entry per window)."""

    windows: np.ndarray  # (N, window) float64 log-returns, not normalised
    target_return: np.ndarray  # (N,) float64: sum of the next `horizon` log-returns
    direction: np.ndarray  # (N,) int64: 1 if target_return > 0 else 0
    split: np.ndarray  # (N,) str: "train" | "val" | "test"
    start_time: pd.DatetimeIndex  # first timestamp in each window, datetime64[ns, UTC]
    end_time: pd.DatetimeIndex  # last timestamp in each window
    label_time: pd.DatetimeIndex  # timestamp of the last return in the label horizon
    window: int
    stride: int
    horizon: int
    embargo: int
    mean: float
    std: float
    train_fraction: float = 0.7
    val_fraction: float = 0.15
    attrs: dict = field(default_factory=dict)  # extra JSON-serialisable metadata (e.g. the series name)
    test_stride: int | None = None  # rows between test windows; None: `stride` (frames written before it existed)

    def stride_of(self, split: str) -> int:
        """Rows between consecutive windows of ``split``: ``test_stride`` for the test split, else ``stride``."""
        if split not in SPLITS:
            raise ConfigError(f"split={split!r} must be one of {list(SPLITS)}.")
        return int(self.test_stride or self.stride) if split == "test" else int(self.stride)

    def __len__(self) -> int:
        return len(self.target_return)

    def normalized(self, x: np.ndarray | None = None) -> np.ndarray:
        """``(x - mean) / std`` with the train-only stats; ``x`` defaults to the windows."""
        x = self.windows if x is None else np.asarray(x, dtype=np.float64)
        return (x - self.mean) / self.std

    def denormalize(self, z: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalized`: back to log-returns."""
        return np.asarray(z, dtype=np.float64) * self.std + self.mean

    def mask(self, split: str) -> np.ndarray:
        """Boolean mask selecting the windows of ``split`` ("train", "val" or "test")."""
        if split not in SPLITS:
            raise ConfigError(f"split={split!r} must be one of {list(SPLITS)}.")
        return self.split == split

    def counts(self) -> dict[str, int]:
        """Number of windows per split."""
        return {name: int(np.count_nonzero(self.split == name)) for name in SPLITS}

    def to_frame(self) -> pd.DataFrame:
        """One row per window; the ``window`` column holds each window as a 1-D float64 array.

        All scalar attributes go to ``df.attrs`` as plain JSON types, so the frame survives a Parquet round
        trip (pandas >= 2.1 persists attrs in the Parquet metadata) and :meth:`from_frame` rebuilds it.
        """
        rows = np.array(self.windows, dtype=np.float64, copy=True)
        frame = pd.DataFrame(
            {
                "start_time": self.start_time,
                "end_time": self.end_time,
                "label_time": self.label_time,
                "split": pd.Series(self.split, dtype=object),
                "target_return": self.target_return,
                "direction": self.direction,
                "window": pd.Series(list(rows), dtype=object),
            }
        )
        frame.attrs = {
            "window": int(self.window),
            "stride": int(self.stride),
            "test_stride": self.stride_of("test"),
            "horizon": int(self.horizon),
            "embargo": int(self.embargo),
            "mean": float(self.mean),
            "std": float(self.std),
            "train_fraction": float(self.train_fraction),
            "val_fraction": float(self.val_fraction),
            "counts": self.counts(),
            "extra": dict(self.attrs),
        }
        return frame

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Segments:
        """Rebuild from :meth:`to_frame` output (also after Parquet), without a per-row Python loop."""
        missing_cols = [c for c in _FRAME_COLUMNS if c not in df.columns]
        missing_attrs = [k for k in _ATTR_KEYS if k not in df.attrs]
        if missing_cols or missing_attrs:
            raise DataError(
                f"segments frame: missing columns {missing_cols} / attrs {missing_attrs}; it must come from "
                "Segments.to_frame() (if read from Parquet, use pandas >= 2.1 so attrs are kept)."
            )
        width = int(df.attrs["window"])
        return cls(
            windows=_stack_windows(df["window"], width),
            target_return=df["target_return"].to_numpy(dtype=np.float64),
            direction=df["direction"].to_numpy(dtype=np.int64),
            split=df["split"].to_numpy().astype(str),
            start_time=_utc_ns(df["start_time"]),
            end_time=_utc_ns(df["end_time"]),
            label_time=_utc_ns(df["label_time"]),
            window=width,
            stride=int(df.attrs["stride"]),
            horizon=int(df.attrs["horizon"]),
            embargo=int(df.attrs["embargo"]),
            mean=float(df.attrs["mean"]),
            std=float(df.attrs["std"]),
            train_fraction=float(df.attrs["train_fraction"]),
            val_fraction=float(df.attrs["val_fraction"]),
            attrs=dict(df.attrs.get("extra", {})),
            test_stride=int(df.attrs.get("test_stride") or df.attrs["stride"]),
        )


def make_segments(
    returns: pd.Series,
    *,
    window: int,
    stride: int,
    horizon: int = 1,
    train_fraction: float = 0.7,
    val_fraction: float = 0.15,
    embargo: int | None = None,
    test_stride: int | None = None,
) -> Segments:
    """Cut ``returns`` (log-returns on a sorted ``DatetimeIndex``) into labelled windows with embargoed splits.

    Train and val windows start every ``stride`` rows from the start of their split region, test windows every
    ``test_stride`` rows (None: 1 when ``horizon == 1``, else ``horizon``; see the module docstring).
    Raises :class:`ConfigError` naming the field when an argument is invalid or a split would get no windows,
    and :class:`DataError` when the returns are unusable (NaN, unsorted index, constant training returns).
    """
    window, stride, horizon = (
        _window(window),
        _positive_int("stride", stride),
        _positive_int("horizon", horizon),
    )
    embargo = _embargo(window, horizon, embargo)
    test_stride = default_test_stride(horizon) if test_stride is None else _positive_int("test_stride", test_stride)
    _check_fractions(train_fraction, val_fraction)
    values, index = _check_returns(returns)
    n = len(values)
    test_rows = n - int(math.floor(n * (train_fraction + val_fraction)))
    estimated_windows = n // stride + test_rows // test_stride + 3
    check_allocation(
        f"segments of {n} returns", estimated_windows * window * _SEGMENT_BYTES_PER_VALUE,
        f"~{estimated_windows} windows x window {window} x {_SEGMENT_BYTES_PER_VALUE} bytes",
        "Raise segments.stride (or segments.test_stride), lower segments.window, or use a shorter series.",
    )

    span = window + horizon
    usable, sizes = _split_regions(n, train_fraction, val_fraction, embargo)
    starts_by_split = {}
    for name in SPLITS:
        lo, hi = usable[name]
        step = test_stride if name == "test" else stride
        starts_by_split[name] = np.arange(lo, hi - span + 1, step, dtype=np.int64)
        if starts_by_split[name].size == 0:
            need = span + (embargo if name != "test" else 0)
            raise ConfigError(
                f"window={window}, horizon={horizon}, embargo={embargo} need at least {need} rows in the "
                f"{name} split, got {sizes[name]} (series has {n} returns, train_fraction={train_fraction}, "
                f"val_fraction={val_fraction}; at least "
                f"{min_rows(window, horizon, train_fraction, val_fraction, embargo)} returns needed); "
                "lower window/embargo or supply more data."
            )

    starts = np.concatenate([starts_by_split[s] for s in SPLITS])
    split = np.concatenate([np.full(starts_by_split[s].size, s) for s in SPLITS])
    windows = np.lib.stride_tricks.sliding_window_view(values, window)[starts].copy()
    label_sums = np.lib.stride_tricks.sliding_window_view(values, horizon).sum(axis=1)
    target = label_sums[starts + window]

    train_values = windows[split == "train"]
    mean, std = float(train_values.mean()), float(train_values.std())
    # Relative test: a constant series leaves float rounding noise (std ~1e-16 of the values), not exact 0.
    if not math.isfinite(std) or std <= 1e-9 * float(np.abs(train_values).max()):
        raise DataError(
            f"returns: the training windows have zero variance (std={std}); normalisation is impossible. "
            "Check the input series (a constant price?)."
        )
    return Segments(
        windows=windows,
        target_return=target,
        direction=(target > 0).astype(np.int64),
        split=split,
        start_time=index[starts],
        end_time=index[starts + window - 1],
        label_time=index[starts + span - 1],
        window=window,
        stride=stride,
        horizon=horizon,
        embargo=embargo,
        mean=mean,
        std=std,
        train_fraction=float(train_fraction),
        val_fraction=float(val_fraction),
        test_stride=test_stride,
    )


def default_test_stride(horizon: int) -> int:
    """Test windows every row for one-step labels; every ``horizon`` rows otherwise (non-overlapping labels)."""
    return 1 if int(horizon) == 1 else int(horizon)


def min_rows(
    window: int,
    horizon: int = 1,
    train_fraction: float = 0.7,
    val_fraction: float = 0.15,
    embargo: int | None = None,
) -> int:
    """Fewest returns from which on :func:`make_segments` gives every split at least one window.

    Lets the orchestration layer check a series' length up front (e.g. in a blocking asset check) with the
    exact rule segmentation uses. The floor() cuts make "enough rows" slightly non-monotone in the length, so
    this returns the smallest ``n`` such that every length ``>= n`` works.
    """
    window, horizon = _window(window), _positive_int("horizon", horizon)
    embargo = _embargo(window, horizon, embargo)
    _check_fractions(train_fraction, val_fraction)
    span = window + horizon
    test_fraction = 1.0 - train_fraction - val_fraction
    need = {"train": span + embargo, "val": span + embargo, "test": span}
    # Beyond `upper` every length works (floor differences exceed fraction * n - 1); below `lower` none does.
    upper = (
        math.ceil(max(need["train"] / train_fraction, need["val"] / val_fraction, span / test_fraction)) + 2
    )
    lower = max(1, math.floor(min(need["train"] / train_fraction, (need["val"] - 1) / val_fraction)) - 2)
    last_failure = lower - 1
    for n in range(lower, upper + 1):
        usable, _ = _split_regions(n, train_fraction, val_fraction, embargo)
        if any(hi - lo < span for lo, hi in usable.values()):
            last_failure = n
    return last_failure + 1


def _embargo(window: int, horizon: int, embargo: int | None) -> int:
    """The embargo in rows: default and minimum window + horizon (DESIGN.md's evaluation rules)."""
    if embargo is None:
        return window + horizon
    embargo = _non_negative_int("embargo", embargo)
    if embargo < window + horizon:
        raise ConfigError(
            f"embargo={embargo} is shorter than window + horizon = {window + horizon}; a shorter gap lets "
            "serially dependent data straddle two splits. Use embargo >= window + horizon (or leave it unset)."
        )
    return embargo


def _split_regions(
    n: int, train_fraction: float, val_fraction: float, embargo: int
) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """Usable ``[lo, hi)`` row range per split (embargo rows at the end of train and val left unused),
    and each split's full size."""
    a = train_rows(n, train_fraction)  # the same cut cleaning uses to fit winsorization
    b = max(a, int(math.floor(n * (train_fraction + val_fraction))))
    usable = {"train": (0, a - embargo), "val": (a, b - embargo), "test": (b, n)}
    return usable, {"train": a, "val": b - a, "test": n - b}


def _check_returns(returns: pd.Series) -> tuple[np.ndarray, pd.DatetimeIndex]:
    if not isinstance(returns, pd.Series) or not isinstance(returns.index, pd.DatetimeIndex):
        raise DataError("returns: expected a pandas Series of log-returns with a DatetimeIndex.")
    index = returns.index
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    index = index.as_unit("ns")
    if not (index.is_monotonic_increasing and index.is_unique):
        raise DataError("returns: the index must be sorted with unique timestamps; clean the prices first.")
    values = returns.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(
            f"returns: {bad.size} NaN/inf value(s), first at {index[bad[0]]}; clean the prices first."
        )
    return values, index


def _window(value: object) -> int:
    window = _positive_int("window", value)
    if window < MIN_WINDOW:
        raise ConfigError(
            f"window={window} is below the minimum of {MIN_WINDOW} samples (the scalograms' wavelet scales need "
            f"at least {MIN_WINDOW}); use window >= {MIN_WINDOW}."
        )
    return window


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name}={value!r} must be an integer >= 1.")
    return int(value)


def _non_negative_int(name: str, value: object) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{name}={value!r} must be an integer >= 0 (default: window + horizon).")
    return int(value)


def _check_fractions(train_fraction: float, val_fraction: float) -> None:
    if not (isinstance(train_fraction, (int, float)) and 0 < train_fraction < 1):
        raise ConfigError(f"train_fraction={train_fraction!r} must be in (0, 1), e.g. 0.7.")
    if not (isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1):
        raise ConfigError(f"val_fraction={val_fraction!r} must be in (0, 1), e.g. 0.15.")
    if train_fraction + val_fraction >= 1:
        raise ConfigError(
            f"train_fraction + val_fraction = {train_fraction + val_fraction} must be < 1 to leave a test "
            "split; lower one of them."
        )


def _stack_windows(column: pd.Series, width: int) -> np.ndarray:
    """(N, width) float64 from a column of per-row sequences, in vectorised code.

    Measured on 50k x 256: ``np.stack`` over an object array of ndarrays (what ``to_frame`` and
    ``pd.read_parquet`` produce) is fastest (~0.04 s); for Python lists or Arrow-backed columns, flattening
    the Arrow list array is (~0.5 s vs ~1.2 s for ``np.stack``).
    """
    n = len(column)
    if n == 0:
        return np.empty((0, width), dtype=np.float64)
    values = column.array if isinstance(column.dtype, pd.ArrowDtype) else column.to_numpy()
    try:
        if isinstance(values, np.ndarray) and isinstance(values[0], np.ndarray):
            stacked = np.stack(values).astype(np.float64, copy=False)
        else:
            arrow = pa.array(values)
            if isinstance(arrow, pa.ChunkedArray):
                arrow = arrow.combine_chunks()
            lengths = pc.list_value_length(arrow).to_numpy(zero_copy_only=False)
            if lengths.min() != width or lengths.max() != width:
                raise ValueError(f"row lengths range from {lengths.min()} to {lengths.max()}")
            stacked = arrow.flatten().to_numpy(zero_copy_only=False).astype(np.float64).reshape(n, -1)
    except (ValueError, pa.ArrowException) as exc:
        raise DataError(f"segments frame: the 'window' column is not {n} equal-length rows ({exc}).") from exc
    if stacked.shape != (n, width):
        raise DataError(
            f"segments frame: 'window' rows have shape {stacked.shape[1:]} but attrs say window={width}."
        )
    return stacked


def _utc_ns(column: pd.Series) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(column)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return index.as_unit("ns")
