"""Scalogram datasets: CWT tensors of segment windows, stored as Parquet with a tensor column.

The representation (DESIGN.md): complex Morlet coefficients of the *standardised* log-return windows, kept as
real+imag channels, divided per scale by a dataset-level factor fitted on the training windows only (so all
scales are O(1) for the networks, and the scaling is a fixed diagonal map, hence still invertible). Because the
CWT over covering scales is well conditioned, `ScalogramSet.to_returns` maps any image — real or generated —
back to returns by the least-squares inverse.

On disk one row is one window: labels, the raw window, and the `image` as a pyarrow fixed-shape tensor
(float32, [2, S, T]); the wavelet, scales and scaling live in the schema metadata. Reading back is a zero-copy
`to_numpy_ndarray()`, never a per-row Python loop.

A long series does not fit in memory as one table (15 million minute bars at stride 8 give ~1.9 million windows,
~15 GB of images): `write_scalograms` reads the stored segments a chunk of windows at a time, fits the per-scale
scaling on the training windows in a first pass, and streams each transformed chunk into the Parquet file as a
row group, so its memory depends on the chunk size only. A series that fits in one chunk gets exactly the numbers
of `build_scalograms`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wavefin_core.data.memory import check_allocation, check_disk
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.io import StagedFile
from wavefin_core.segments import Segments, SegmentsFile
from wavefin_core.wavelets import covering_scales, cwt, from_channels, icwt, to_channels

METADATA_KEY = b"wavefin.scalograms"
#: Bytes per (window, scale, sample) while building: complex64 coefficients (8), the float32 real+imag image
#: (8), their scaled intermediate (8) and the Arrow copy written to Parquet (8). Measured: build_scalograms +
#: to_table peak at 24 bytes of numpy memory per coefficient (tracemalloc, 14,920 windows x 32 scales x 64),
#: plus the Arrow copy that tracemalloc does not see.
_BYTES_PER_COEFFICIENT = 32
SPLITS = ("train", "val", "test")
#: Working memory of one chunk of windows in :func:`write_scalograms` (at _BYTES_PER_COEFFICIENT): 256 MiB is
#: 8,192 windows at the quick sizes (16 scales x 64 samples), 512 at the full ones (64 x 256).
CHUNK_BYTES = 256 * 2**20
#: Stored bytes of one row besides its image and window: split, series, times, target, direction (Parquet).
_ROW_OVERHEAD_BYTES = 64
#: Dictionary-encode only the repeated strings: tried on float columns (the default), the encoder hashes ~1 MB of
#: values per row group before giving up, which made chunked writes 8x slower and the file 1.5x bigger.
PARQUET_OPTIONS: dict[str, Any] = {"use_dictionary": ["series", "split"]}


@dataclass
class ScalogramSet:
    """Scaled real+imag scalogram images of one series' windows, with their labels and the inverse map."""

    images: np.ndarray  # (N, 2, S, T) float32
    windows: np.ndarray  # (N, T) float64 raw log-returns
    target_return: np.ndarray  # (N,)
    direction: np.ndarray  # (N,)
    split: np.ndarray  # (N,) str
    end_time: np.ndarray  # (N,) datetime64[ns]
    label_time: np.ndarray  # (N,) datetime64[ns]
    scales: np.ndarray
    wavelet: str
    channel_scale: np.ndarray  # (S,) divides the coefficients of each scale
    norm_mean: float
    norm_std: float
    horizon: int = 1
    series: str = "series"
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def mask(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ConfigError(f"split={split!r} is not one of {SPLITS}.")
        return self.split == split

    # -- the inverse map -------------------------------------------------------------------------------------
    def to_standardized(self, images: np.ndarray) -> np.ndarray:
        """Images (N, 2, S, T) → standardised return windows (N, T) via the least-squares inverse CWT."""
        coefs = from_channels(np.asarray(images, dtype=np.float32)) * self.channel_scale[:, None]
        return np.asarray(icwt(coefs, self.scales, self.wavelet), dtype=np.float64)

    def to_returns(self, images: np.ndarray) -> np.ndarray:
        """Images → log-return windows in this series' units (undoes the train-fitted standardisation)."""
        return self.to_standardized(images) * self.norm_std + self.norm_mean

    def roundtrip_error(self) -> float:
        """Relative L2 error of returns → image → returns over all windows (float32 storage precision)."""
        recon = self.to_returns(self.images)
        return float(np.linalg.norm(recon - self.windows) / max(np.linalg.norm(self.windows), 1e-300))

    # -- Parquet ---------------------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "wavelet": self.wavelet,
            "scales": [float(s) for s in self.scales],
            "channel_scale": [float(c) for c in self.channel_scale],
            "norm_mean": float(self.norm_mean),
            "norm_std": float(self.norm_std),
            "horizon": int(self.horizon),
            "image_shape": list(self.images.shape[1:]),
            **self.extra,
        }

    def to_table(self) -> pa.Table:
        n, t = self.windows.shape
        window_col = pa.FixedSizeListArray.from_arrays(pa.array(self.windows.reshape(-1)), t)
        image_col = pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(self.images))
        table = pa.table(
            {
                "series": pa.array([self.series] * n, pa.string()),
                "split": pa.array(self.split.astype(str), pa.string()),
                "end_time": pa.array(self.end_time.astype("datetime64[ns]"), pa.timestamp("ns", tz="UTC")),
                "label_time": pa.array(self.label_time.astype("datetime64[ns]"), pa.timestamp("ns", tz="UTC")),
                "target_return": pa.array(self.target_return, pa.float64()),
                "direction": pa.array(self.direction, pa.int64()),
                "window": window_col,
                "image": image_col,
            }
        )
        return table.replace_schema_metadata({METADATA_KEY: json.dumps(self.metadata()).encode()})

    @classmethod
    def from_table(cls, table: pa.Table | pq.ParquetFile | StagedFile | str | os.PathLike) -> ScalogramSet:
        """Rebuild from :meth:`to_table` output, or from a stored file of it (a path, a ``ParquetFile``, or the
        ``StagedFile`` the asset returns; read memory-mapped)."""
        table = _read_table(table)
        raw = (table.schema.metadata or {}).get(METADATA_KEY)
        if raw is None:
            raise DataError("Table has no wavefin scalogram metadata; was it written by ScalogramSet.to_table?")
        meta = json.loads(raw)
        known = {"series", "wavelet", "scales", "channel_scale", "norm_mean", "norm_std", "horizon", "image_shape"}
        windows_arr = table.column("window").combine_chunks()
        n = table.num_rows
        images = table.column("image").combine_chunks().to_numpy_ndarray() if n else np.zeros(
            (0, *meta["image_shape"]), np.float32
        )
        return cls(
            images=np.asarray(images, dtype=np.float32),
            windows=windows_arr.flatten().to_numpy().reshape(n, -1),
            target_return=table.column("target_return").to_numpy(),
            direction=table.column("direction").to_numpy(),
            split=np.asarray(table.column("split").to_pylist(), dtype=object).astype(str),
            end_time=_utc_naive(table.column("end_time")),
            label_time=_utc_naive(table.column("label_time")),
            scales=np.asarray(meta["scales"]),
            wavelet=meta["wavelet"],
            channel_scale=np.asarray(meta["channel_scale"], dtype=np.float32),
            norm_mean=meta["norm_mean"],
            norm_std=meta["norm_std"],
            horizon=meta["horizon"],
            series=meta["series"],
            extra={k: v for k, v in meta.items() if k not in known},
        )


def _read_table(source: pa.Table | pq.ParquetFile | StagedFile | str | os.PathLike) -> pa.Table:
    if isinstance(source, pa.Table):
        return source
    if isinstance(source, pq.ParquetFile):
        return source.read()
    location = source.path if isinstance(source, StagedFile) else source
    if getattr(location, "protocol", "") in ("", "file", "local"):  # a str, a Path or a local UPath
        return pq.read_table(str(location), memory_map=True)
    with location.open("rb") as handle:  # a remote UPath (fsspec)
        return pq.read_table(handle)


def _utc_naive(column: pa.ChunkedArray) -> np.ndarray:
    return column.combine_chunks().cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False)


def build_scalograms(
    segments: Segments,
    *,
    wavelet: str = "cmor1.5-1.0",
    num_scales: int | None = None,
    scales: np.ndarray | None = None,
    series: str = "series",
    channel_scale: np.ndarray | None = None,
) -> ScalogramSet:
    """CWT every window of `segments`, scaled per scale with factors fitted on the training windows only.

    ``channel_scale`` (S,) uses given factors instead of fitting them (:func:`write_scalograms` fits them on
    all the training windows of a series first, then transforms it a chunk at a time).
    The memory it needs is estimated before anything is allocated (ConfigError above the limit of
    :mod:`wavefin_core.data.memory`), so ``num_scales=1e6`` is a clear refusal, not a MemoryError or a swap storm.
    """
    count = len(scales) if scales is not None else num_scales
    if count is not None and not isinstance(count, bool) and isinstance(count, (int, np.integer)) and count > 0:
        windows, width = len(segments), segments.window
        check_allocation(
            f"scalograms of series {series!r}", windows * count * width * _BYTES_PER_COEFFICIENT,
            f"{windows} windows x {count} scales x {width} samples x {_BYTES_PER_COEFFICIENT} bytes",
            "Lower scalograms.num_scales (or scalograms.chunk_windows), raise segments.stride (fewer windows), "
            "or lower segments.window.",
        )
    if scales is None:
        scales = covering_scales(segments.window, wavelet, num=num_scales)
    scales = np.asarray(scales, dtype=np.float64)
    train = segments.mask("train")
    if channel_scale is None and not train.any():
        raise ConfigError(f"series {series!r} has no training windows; supply more data or lower `window`.")
    # (N, S, T) complex64; each window is transformed on its own (its coefficients do not depend on which
    # other windows share the batch), so a chunk gives the same numbers as the whole series
    coefs = cwt(segments.normalized().astype(np.float32), scales, wavelet)
    if channel_scale is None:
        # RMS magnitude per scale over the training windows: a diagonal, invertible, train-only scaling.
        channel_scale = np.sqrt(np.mean(np.abs(coefs[train]) ** 2, axis=(0, 2))).astype(np.float32)
        channel_scale = np.where(channel_scale > 0, channel_scale, 1.0).astype(np.float32)
    channel_scale = np.asarray(channel_scale, dtype=np.float32)
    images = to_channels(coefs / channel_scale[:, None]).astype(np.float32)
    return ScalogramSet(
        images=images,
        windows=np.asarray(segments.windows, dtype=np.float64),
        target_return=np.asarray(segments.target_return, dtype=np.float64),
        direction=np.asarray(segments.direction, dtype=np.int64),
        split=np.asarray(segments.split).astype(str),
        end_time=_as_utc_naive(segments.end_time),
        label_time=_as_utc_naive(segments.label_time),
        scales=scales,
        wavelet=wavelet,
        channel_scale=channel_scale,
        norm_mean=float(segments.mean),
        norm_std=float(segments.std),
        horizon=int(segments.horizon),
        series=series,
        extra={"window": int(segments.window), "stride": int(segments.stride),
               "test_stride": segments.stride_of("test"), "embargo": int(segments.embargo)},
    )


@dataclass
class ScalogramExamples:
    """A few windows spread over a series (rows ``linspace(0, N - 1, k)``), kept for the asset's figure."""

    rows: np.ndarray  # (k,) row numbers in the stored table
    images: np.ndarray  # (k, 2, S, T)
    windows: np.ndarray  # (k, T)
    split: np.ndarray  # (k,)


@dataclass
class ScalogramSummary:
    """What :func:`write_scalograms` wrote: enough for the asset's metadata without reading the file back."""

    path: Path
    windows: int
    image_shape: tuple[int, ...]
    scales: np.ndarray
    channel_scale: np.ndarray
    roundtrip_error: float  # relative L2 error of returns -> image -> returns over every window
    image_bytes: int
    chunk_windows: int
    chunks: int
    schema: pa.Schema
    examples: ScalogramExamples


def scalogram_chunk_windows(num_scales: int, window: int, chunk_windows: int | None = None) -> int:
    """Windows per chunk: ``chunk_windows`` (ConfigError unless an integer >= 1), else as many as fit in
    :data:`CHUNK_BYTES` of working memory."""
    if chunk_windows is None:
        return max(1, CHUNK_BYTES // (int(num_scales) * int(window) * _BYTES_PER_COEFFICIENT))
    if isinstance(chunk_windows, bool) or not isinstance(chunk_windows, (int, np.integer)) or chunk_windows < 1:
        raise ConfigError(f"scalograms.chunk_windows={chunk_windows!r} must be an integer >= 1 (or unset: "
                          f"as many windows as fit in {CHUNK_BYTES // 2**20} MiB).")
    return int(chunk_windows)


def write_scalograms(
    source: SegmentsFile,
    path: str | os.PathLike,
    *,
    wavelet: str = "cmor1.5-1.0",
    num_scales: int | None = None,
    scales: np.ndarray | None = None,
    series: str = "series",
    chunk_windows: int | None = None,
    n_examples: int = 3,
    progress: Callable[[str, int, int], None] | None = None,
) -> ScalogramSummary:
    """Scalograms of every window of a stored segments file, streamed into the Parquet file ``path``.

    Memory is bounded by the chunk (``chunk_windows``, default :data:`CHUNK_BYTES` of working memory), not by
    the series: a series whose windows fit in one chunk is transformed exactly as by :func:`build_scalograms`
    (same numbers, one row group); a longer one in two passes: the per-scale scaling from the training windows
    (a chunk at a time, the energy summed in float64: it differs from the one-chunk float32 mean by ~1e-7
    relative), then every chunk transformed and written as a row group. The file reads back with
    :meth:`ScalogramSet.from_table`. The caller owns atomicity (write to a temporary path, then rename).
    Refuses (ConfigError) before writing when the output would not fit on the disk of ``path``.
    ``progress(stage, done, total)`` is called after each chunk.
    """
    width, total = source.window, len(source)
    if scales is None:
        scales = covering_scales(width, wavelet, num=num_scales)
    scales = np.asarray(scales, dtype=np.float64)
    count = len(scales)
    chunk = scalogram_chunk_windows(count, width, chunk_windows)
    _check_working_memory(series, min(chunk, max(total, 1)), count, width)
    row_bytes = 2 * count * width * 4 + width * 8 + _ROW_OVERHEAD_BYTES + len(series.encode())
    check_disk(
        f"scalograms of series {series!r}", total * row_bytes, Path(path).parent,
        f"{total:,} windows x (2 x {count} scales x {width} samples x 4 bytes + the window and labels)",
        "Raise segments.stride or segments.test_stride (fewer windows), lower scalograms.num_scales, or free "
        "disk space (or point WAVEFIN_STORAGE at a larger disk).",
    )
    picks = np.unique(np.linspace(0, total - 1, min(n_examples, total)).astype(int)) if total else np.zeros(0, int)
    if total <= chunk:
        result = build_scalograms(source.read(), wavelet=wavelet, scales=scales, series=series)
        table = result.to_table()
        pq.write_table(table, path, row_group_size=max(1, total), **PARQUET_OPTIONS)
        if progress is not None:
            progress("transform", total, total)
        return ScalogramSummary(
            path=Path(path), windows=total, image_shape=tuple(result.images.shape[1:]), scales=scales,
            channel_scale=result.channel_scale, roundtrip_error=result.roundtrip_error(),
            image_bytes=int(result.images.nbytes), chunk_windows=chunk, chunks=1, schema=table.schema,
            examples=ScalogramExamples(picks, result.images[picks], result.windows[picks], result.split[picks]),
        )
    channel_scale = train_channel_scale(source, scales, wavelet, chunk, progress)
    error_sq = norm_sq = 0.0
    examples: list[tuple[int, np.ndarray, np.ndarray, str]] = []
    writer, done, chunks = None, 0, 0
    try:
        for segs in source.iter_chunks(chunk):
            result = build_scalograms(segs, wavelet=wavelet, scales=scales, series=series,
                                      channel_scale=channel_scale)
            table = result.to_table()  # its metadata holds the series' scales and scaling, as every chunk's
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(path, schema, **PARQUET_OPTIONS)
            writer.write_table(table, row_group_size=chunk)
            recon = result.to_returns(result.images)
            error_sq += float(np.sum((recon - result.windows) ** 2))
            norm_sq += float(np.sum(result.windows**2))
            for row in picks[(picks >= done) & (picks < done + len(segs))]:
                local = row - done
                # copies: a view would keep the whole chunk alive
                examples.append((row, result.images[local].copy(), result.windows[local].copy(), result.split[local]))
            done += len(segs)
            chunks += 1
            del segs, result, table, recon  # free this chunk before the next one is read
            if progress is not None:
                progress("transform", done, total)
    finally:
        if writer is not None:
            writer.close()
    return ScalogramSummary(
        path=Path(path), windows=total, image_shape=(2, count, width), scales=scales,
        channel_scale=channel_scale, roundtrip_error=float(np.sqrt(error_sq) / max(np.sqrt(norm_sq), 1e-300)),
        image_bytes=total * 2 * count * width * 4, chunk_windows=chunk, chunks=chunks, schema=schema,
        examples=ScalogramExamples(
            rows=np.array([e[0] for e in examples]), images=np.stack([e[1] for e in examples]),
            windows=np.stack([e[2] for e in examples]), split=np.array([e[3] for e in examples]),
        ),
    )


def _check_working_memory(series: str, chunk: int, count: int, width: int) -> None:
    """Refuse (ConfigError naming the knobs) a chunk, or the inverse CWT the round-trip check needs, that
    cannot fit in memory, before any work is done."""
    from wavefin_core.wavelets.inverse import MAX_OPERATOR_BYTES

    knobs = ("Lower scalograms.num_scales (or scalograms.chunk_windows), or lower segments.window.")
    inverse_bytes = 2 * count * width * width * 8  # the icwt's precomputed (2 S T, T) float64 operator
    if inverse_bytes > MAX_OPERATOR_BYTES:
        raise ConfigError(
            f"scalograms of series {series!r}: the inverse CWT of {count} scales x {width} samples would need "
            f"{inverse_bytes / 2**30:.1f} GiB (more than {MAX_OPERATOR_BYTES / 2**30:.0f} GiB). {knobs}"
        )
    check_allocation(
        f"scalograms of series {series!r}", chunk * count * width * _BYTES_PER_COEFFICIENT + inverse_bytes,
        f"{chunk} windows per chunk x {count} scales x {width} samples x {_BYTES_PER_COEFFICIENT} bytes "
        "+ the inverse CWT", knobs,
    )


def train_channel_scale(
    source: SegmentsFile,
    scales: np.ndarray,
    wavelet: str,
    chunk_windows: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> np.ndarray:
    """The per-scale RMS magnitude over every training window of ``source``, a chunk at a time (float32, (S,)).

    Training windows come first in a segments file (train, val, test order), so the pass stops at the first
    chunk after them.
    """
    energy, values, seen = np.zeros(len(scales)), 0, 0
    total_train = source.count("train")
    if total_train == 0:
        raise ConfigError("the segments have no training windows; supply more data or lower segments.window.")
    for segs in source.iter_chunks(chunk_windows):
        train = segs.mask("train")
        if train.any():
            coefs = cwt(segs.normalized(segs.windows[train]).astype(np.float32), scales, wavelet)
            energy += (np.abs(coefs) ** 2).sum(axis=(0, 2), dtype=np.float64)
            values += coefs.shape[0] * coefs.shape[2]
            del coefs
            seen += int(train.sum())
            if progress is not None:
                progress("fit scaling", seen, total_train)
        del segs  # free this chunk before the next one is read
        if seen >= total_train:
            break
    channel_scale = np.sqrt(energy / values).astype(np.float32)
    return np.where(channel_scale > 0, channel_scale, 1.0).astype(np.float32)


def _as_utc_naive(times: Any) -> np.ndarray:
    import pandas as pd

    index = pd.DatetimeIndex(times)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.to_numpy(dtype="datetime64[ns]")


def contiguous_returns(s: ScalogramSet, split: str) -> np.ndarray:
    """The contiguous raw log returns one split's windows cover, rebuilt from its (overlapping) windows.

    Windows of a split start every ``stride`` rows from the split's first row (``test_stride`` for the test
    split), so the first window plus the last ``stride`` values of each later one is the split's return series,
    without gaps or repeats (the returns after the last window's end are not in any window and are not
    included). This is how the evaluation gets stride-1 windows (``sliding_window_view``) and the train series
    classical generators are fitted on, whatever stride the model was trained with. ConfigError if
    ``stride > window`` (the windows leave gaps) or if the stride is unknown (a table written before it was
    recorded). Tables written before ``test_stride`` was recorded used ``stride`` for every split.
    """
    windows = s.windows[s.mask(split)]
    if len(windows) == 0:
        raise DataError(f"series {s.series!r} has no {split} windows; supply more data or lower `window`.")
    length = windows.shape[1]
    stride = s.extra.get("test_stride") if split == "test" else None
    stride = s.extra.get("stride") if stride is None else stride
    if stride is None:
        raise ConfigError(f"series {s.series!r}: its scalograms do not record the segment stride; "
                          "re-materialize segments and scalograms.")
    stride = int(stride)
    if stride > length:
        field_name = "segments.test_stride" if split == "test" and "test_stride" in s.extra else "segments.stride"
        raise ConfigError(f"series {s.series!r}: {field_name}={stride} > window={length} leaves gaps between "
                          f"{split} windows, so the contiguous returns cannot be rebuilt; use a stride <= window.")
    return np.concatenate([windows[0], windows[1:, length - stride:].reshape(-1)])
