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

Long series: :func:`plan_segments` computes where every window starts and the train statistics in O(rows) memory
(the statistics from how many train windows cover each row, without a windows array), :func:`write_segments`
streams the windows into Parquet a chunk at a time (the same file ``to_frame().to_parquet()`` writes), and
:class:`SegmentsFile` reads them back a chunk at a time.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wavefin_core.data.memory import check_allocation, check_disk
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
#: Where pandas (>= 2.1) keeps ``DataFrame.attrs`` in a Parquet schema: the chunked writer puts them there too,
#: so ``pd.read_parquet`` + :meth:`Segments.from_frame` read its files like those of ``to_frame().to_parquet()``.
PANDAS_ATTRS_KEY = b"PANDAS_ATTRS"
#: Values (windows x window) per row group of a streamed segments file: 2**22 float64 = 32 MiB at a time.
SEGMENT_CHUNK_VALUES = 2**22
#: Stored bytes of one segments row besides its window (times, split, target, direction, list offset).
_ROW_BYTES = 48


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
        frame.attrs = _frame_attrs(self, self.counts())
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
            **_fields_from_attrs(df.attrs),
        )


@dataclass
class SegmentPlan:
    """Every window of one series as a start row into its contiguous returns: :class:`Segments` without the
    (windows x window) array, which for a 15-million-row series would not fit in memory.

    :meth:`chunk` cuts out the windows of a range of samples only, so a writer holds one chunk at a time;
    :meth:`to_segments` is the whole :class:`Segments` (what :func:`make_segments` returns).
    """

    returns: np.ndarray  # (n,) float64 log-returns, the whole series
    index: pd.DatetimeIndex  # (n,) their timestamps, UTC
    starts: np.ndarray  # (N,) int64: row of each window's first return
    split: np.ndarray  # (N,) str
    window: int
    stride: int
    horizon: int
    embargo: int
    mean: float
    std: float
    train_fraction: float
    val_fraction: float
    test_stride: int
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.starts)

    def chunk(self, lo: int, hi: int) -> Segments:
        """Samples ``lo:hi`` as :class:`Segments` (their windows copied out of the returns)."""
        starts = self.starts[lo:hi]
        windows = np.lib.stride_tricks.sliding_window_view(self.returns, self.window)[starts]
        target = self.target_return(lo, hi)
        return Segments(
            windows=windows,
            target_return=target,
            direction=(target > 0).astype(np.int64),
            split=self.split[lo:hi],
            start_time=self.index[starts],
            end_time=self.index[starts + self.window - 1],
            label_time=self.index[starts + self.window + self.horizon - 1],
            window=self.window,
            stride=self.stride,
            horizon=self.horizon,
            embargo=self.embargo,
            mean=self.mean,
            std=self.std,
            train_fraction=self.train_fraction,
            val_fraction=self.val_fraction,
            attrs=dict(self.attrs),
            test_stride=self.test_stride,
        )

    def to_segments(self) -> Segments:
        return self.chunk(0, len(self))

    def target_return(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """The labels of samples ``lo:hi``: the sum of the ``horizon`` returns after each window."""
        label_starts = self.starts[lo:hi] + self.window
        return np.lib.stride_tricks.sliding_window_view(self.returns, self.horizon)[label_starts].sum(axis=1)

    def counts(self) -> dict[str, int]:
        return {name: int(np.count_nonzero(self.split == name)) for name in SPLITS}


def _fields_from_attrs(attrs: dict) -> dict:
    """The scalar :class:`Segments` fields stored in a frame's / file's attrs (the inverse of `_frame_attrs`)."""
    return {
        "window": int(attrs["window"]),
        "stride": int(attrs["stride"]),
        "horizon": int(attrs["horizon"]),
        "embargo": int(attrs["embargo"]),
        "mean": float(attrs["mean"]),
        "std": float(attrs["std"]),
        "train_fraction": float(attrs["train_fraction"]),
        "val_fraction": float(attrs["val_fraction"]),
        "attrs": dict(attrs.get("extra", {})),
        "test_stride": int(attrs.get("test_stride") or attrs["stride"]),
    }


def _frame_attrs(segments: Segments | SegmentPlan, counts: dict[str, int]) -> dict:
    """The JSON attrs of a segments frame (``to_frame``) / streamed file (``write_segments``)."""
    return {
        "window": int(segments.window),
        "stride": int(segments.stride),
        "test_stride": int(segments.test_stride or segments.stride),
        "horizon": int(segments.horizon),
        "embargo": int(segments.embargo),
        "mean": float(segments.mean),
        "std": float(segments.std),
        "train_fraction": float(segments.train_fraction),
        "val_fraction": float(segments.val_fraction),
        "counts": counts,
        "extra": dict(segments.attrs),
    }


def write_segments(
    plan: SegmentPlan,
    path: str | os.PathLike,
    *,
    chunk_windows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pa.Schema:
    """Stream every window of ``plan`` into the Parquet file ``path``, one row group per chunk of windows.

    The file holds exactly what ``plan.to_segments().to_frame().to_parquet(path)`` would (same columns, types,
    pandas metadata and attrs), but only one chunk of windows is in memory at a time (default: 32 MiB of
    window values). The caller owns atomicity: write to a temporary path, then rename (wavefin_core.io).
    ``progress(done, total)`` is called after each chunk. Returns the file's schema.
    """
    # (capped where a row group's list offsets would overflow int32)
    chunk = min(_chunk_size(chunk_windows, plan.window * 8, SEGMENT_CHUNK_VALUES * 8), (2**31 - 1) // plan.window)
    check_disk(
        f"segments of {len(plan.returns):,} returns", len(plan) * (plan.window * 8 + _ROW_BYTES),
        Path(path).parent, f"{len(plan):,} windows x ({plan.window} x 8 bytes + {_ROW_BYTES} bytes of labels)",
        "Raise segments.stride or segments.test_stride (fewer windows), lower segments.window, or free disk "
        "space (or point WAVEFIN_STORAGE at a larger disk).",
    )
    first = plan.chunk(0, 1).to_frame()  # the schema pandas gives these columns
    schema = pa.Schema.from_pandas(first, preserve_index=False)
    attrs = json.dumps(_frame_attrs(plan, plan.counts())).encode()
    schema = schema.with_metadata({**(schema.metadata or {}), PANDAS_ATTRS_KEY: attrs})
    total = len(plan)
    # only the split strings are dictionary-encoded (on floats the encoder wastes time and space)
    with pq.ParquetWriter(path, schema, use_dictionary=["split"]) as writer:
        for lo in range(0, total, chunk):
            hi = min(lo + chunk, total)
            writer.write_table(_segments_table(plan.chunk(lo, hi), schema), row_group_size=chunk)
            if progress is not None:
                progress(hi, total)
    return schema


def _chunk_size(chunk_windows: int | None, bytes_per_window: int, budget_bytes: int) -> int:
    """``chunk_windows`` checked (ConfigError unless a positive integer), or as many as fit in the budget."""
    if chunk_windows is None:
        return max(1, budget_bytes // max(1, bytes_per_window))
    return _positive_int("chunk_windows", chunk_windows)


def _segments_table(seg: Segments, schema: pa.Schema) -> pa.Table:
    """One chunk as an Arrow table of ``schema`` (the columns of ``to_frame``), without per-row objects."""
    n, width = seg.windows.shape
    window_type = schema.field("window").type
    list_class = pa.LargeListArray if pa.types.is_large_list(window_type) else pa.ListArray
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64 if list_class is pa.LargeListArray else np.int32)
    values = pa.array(np.ascontiguousarray(seg.windows, dtype=np.float64).reshape(-1))
    columns = {
        "start_time": _arrow_times(seg.start_time, schema.field("start_time").type),
        "end_time": _arrow_times(seg.end_time, schema.field("end_time").type),
        "label_time": _arrow_times(seg.label_time, schema.field("label_time").type),
        "split": pa.array(np.asarray(seg.split).astype(str), schema.field("split").type),
        "target_return": pa.array(seg.target_return, schema.field("target_return").type),
        "direction": pa.array(seg.direction, schema.field("direction").type),
        "window": list_class.from_arrays(pa.array(offsets), values, type=window_type),
    }
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


def _arrow_times(index: pd.DatetimeIndex, arrow_type: pa.DataType) -> pa.Array:
    return pa.array(_utc_ns(pd.Series(index)).asi8, pa.int64()).view(pa.timestamp("ns", tz="UTC")).cast(arrow_type)


class SegmentsFile:
    """A stored segments Parquet file (``write_segments``, or ``to_frame().to_parquet()``), read a chunk of
    windows at a time, so a series whose windows do not fit in memory can still be transformed."""

    def __init__(self, source: pq.ParquetFile | str | os.PathLike) -> None:
        self.file = source if isinstance(source, pq.ParquetFile) else pq.ParquetFile(source, memory_map=True)
        raw = (self.file.schema_arrow.metadata or {}).get(PANDAS_ATTRS_KEY)
        attrs = json.loads(raw) if raw else {}
        missing_cols = [c for c in _FRAME_COLUMNS if c not in self.file.schema_arrow.names]
        missing_attrs = [k for k in _ATTR_KEYS if k not in attrs]
        if missing_cols or missing_attrs:
            raise DataError(
                f"segments file {_source_name(source)}: missing columns {missing_cols} / attrs {missing_attrs}; "
                "it must be written by write_segments or Segments.to_frame().to_parquet(); re-materialize segments."
            )
        self.attrs: dict = attrs

    def __len__(self) -> int:
        return int(self.file.metadata.num_rows)

    @property
    def window(self) -> int:
        return int(self.attrs["window"])

    def count(self, split: str) -> int:
        """Windows of ``split`` (one column read and compared in Arrow: no per-row Python strings)."""
        column = self.file.read(columns=["split"]).column("split")
        return int(pc.sum(pc.equal(column, split)).as_py() or 0)

    def iter_chunks(self, chunk_windows: int) -> Iterator[Segments]:
        """Consecutive windows as :class:`Segments` of at most ``chunk_windows`` windows each, in file order."""
        size = _positive_int("chunk_windows", chunk_windows)
        for batch in self.file.iter_batches(batch_size=size, columns=list(_FRAME_COLUMNS)):
            yield self._segments(batch)

    def read(self) -> Segments:
        """Every window at once (only for series whose windows fit in memory)."""
        return self._segments(self.file.read(columns=list(_FRAME_COLUMNS)))

    def _segments(self, batch: pa.RecordBatch | pa.Table) -> Segments:
        attrs, n, width = self.attrs, batch.num_rows, self.window
        windows = batch.column("window")
        if isinstance(windows, pa.ChunkedArray):
            windows = windows.combine_chunks()
        values = windows.flatten().to_numpy(zero_copy_only=False)
        if values.size != n * width:
            raise DataError(
                f"segments file {_source_name(self.file)}: 'window' rows are not all {width} long (attrs say "
                f"window={width}); re-materialize segments."
            )
        return Segments(
            windows=values.astype(np.float64, copy=False).reshape(n, width),
            target_return=np.asarray(batch.column("target_return").to_numpy(zero_copy_only=False), np.float64),
            direction=np.asarray(batch.column("direction").to_numpy(zero_copy_only=False), np.int64),
            split=np.asarray(batch.column("split").to_numpy(zero_copy_only=False)).astype(str),
            start_time=_arrow_index(batch.column("start_time")),
            end_time=_arrow_index(batch.column("end_time")),
            label_time=_arrow_index(batch.column("label_time")),
            **_fields_from_attrs(attrs),
        )


def _arrow_index(column: pa.Array | pa.ChunkedArray) -> pd.DatetimeIndex:
    """A timestamp column (any unit; naive means UTC) as a ``datetime64[ns, UTC]`` index."""
    nanoseconds = column.cast(pa.timestamp("ns", tz=column.type.tz or "UTC")).cast(pa.int64())
    return pd.to_datetime(np.asarray(nanoseconds.to_numpy(zero_copy_only=False)), unit="ns", utc=True)


def _source_name(source: object) -> str:
    reader = getattr(source, "reader", None)
    return str(getattr(source, "path", None) or getattr(reader, "path", None) or source)


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
    ``test_stride`` rows (None: 1 when ``horizon == 1``, else ``horizon``; see the module docstring). The arguments
    are checked by :func:`plan_segments`, which the streamed path uses too.
    Raises :class:`ConfigError` naming the field when an argument is invalid or a split would get no windows,
    and :class:`DataError` when the returns are unusable (NaN, unsorted index, constant training returns).
    """
    plan = plan_segments(
        returns, window=window, stride=stride, horizon=horizon, train_fraction=train_fraction,
        val_fraction=val_fraction, embargo=embargo, test_stride=test_stride,
    )
    check_allocation(
        f"segments of {len(plan.returns)} returns", len(plan) * plan.window * _SEGMENT_BYTES_PER_VALUE,
        f"{len(plan)} windows x window {plan.window} x {_SEGMENT_BYTES_PER_VALUE} bytes",
        "Raise segments.stride (or segments.test_stride), lower segments.window, or use a shorter series.",
    )
    return plan.to_segments()


def plan_segments(
    returns: pd.Series,
    *,
    window: int,
    stride: int,
    horizon: int = 1,
    train_fraction: float = 0.7,
    val_fraction: float = 0.15,
    embargo: int | None = None,
    test_stride: int | None = None,
) -> SegmentPlan:
    """Where every window of :func:`make_segments` starts, and the train statistics, without the windows.

    Same arguments, checks and errors as :func:`make_segments`. Memory is O(rows): the windows (``window``
    times more values) are cut out later, a chunk at a time (:meth:`SegmentPlan.chunk`).
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
    mean, std = _window_stats(values, starts_by_split["train"], window)
    return SegmentPlan(
        returns=values,
        index=index,
        starts=np.concatenate([starts_by_split[s] for s in SPLITS]),
        split=np.concatenate([np.full(starts_by_split[s].size, s) for s in SPLITS]),
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


def _window_stats(values: np.ndarray, starts: np.ndarray, window: int) -> tuple[float, float]:
    """Mean and std of every value inside the windows starting at ``starts`` (overlaps counted each time).

    Computed from how many windows cover each row, so no (windows x window) array is built: the same
    numbers as ``windows.mean()`` / ``windows.std()`` up to summation order (~1e-16 relative).
    """
    end = int(starts[-1]) + window
    cover = np.bincount(starts, minlength=end + 1)[:end]
    cover -= np.bincount(starts + window, minlength=end + 1)[:end]
    cover = np.cumsum(cover, dtype=np.float64)  # windows covering each row (small integers: exact)
    covered = values[:end]
    count = float(starts.size) * window
    mean = float(np.dot(cover, covered) / count)
    scratch = covered - mean  # the only other row-sized array: a 15-million-row series stays at ~24 bytes a row
    np.square(scratch, out=scratch)
    std = float(np.sqrt(np.dot(cover, scratch) / count))
    np.abs(covered, out=scratch)
    largest = float(scratch.max(where=cover > 0, initial=0.0))
    # Relative test: a constant series leaves float rounding noise (std ~1e-16 of the values), not exact 0.
    if not math.isfinite(std) or std <= 1e-9 * largest:
        raise DataError(
            f"returns: the training windows have zero variance (std={std}); normalisation is impossible. "
            "Check the input series (a constant price?)."
        )
    return mean, std


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
