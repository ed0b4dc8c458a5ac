"""Scalogram datasets: CWT tensors of segment windows, stored as Parquet with a tensor column.

The representation (DESIGN.md): complex Morlet coefficients of the *standardised* log-return windows, kept as
real+imag channels, divided per scale by a dataset-level factor fitted on the training windows only (so all
scales are O(1) for the networks, and the scaling is a fixed diagonal map, hence still invertible). Because the
CWT over covering scales is well conditioned, `ScalogramSet.to_returns` maps any image — real or generated —
back to returns by the least-squares inverse.

On disk one row is one window: labels, the raw window, and the `image` as a pyarrow fixed-shape tensor
(float32, [2, S, T]); the wavelet, scales and scaling live in the schema metadata. Reading back is a zero-copy
`to_numpy_ndarray()`, never a per-row Python loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from wavefin_core.data.memory import check_allocation
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.segments import Segments
from wavefin_core.wavelets import covering_scales, cwt, from_channels, icwt, to_channels

METADATA_KEY = b"wavefin.scalograms"
#: Bytes per (window, scale, sample) while building: complex64 coefficients (8), the float32 real+imag image
#: (8), their scaled intermediate (8) and the Arrow copy written to Parquet (8). Measured: build_scalograms +
#: to_table peak at 24 bytes of numpy memory per coefficient (tracemalloc, 14,920 windows x 32 scales x 64),
#: plus the Arrow copy that tracemalloc does not see.
_BYTES_PER_COEFFICIENT = 32
SPLITS = ("train", "val", "test")


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
    def from_table(cls, table: pa.Table) -> ScalogramSet:
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


def _utc_naive(column: pa.ChunkedArray) -> np.ndarray:
    return column.combine_chunks().cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False)


def build_scalograms(
    segments: Segments,
    *,
    wavelet: str = "cmor1.5-1.0",
    num_scales: int | None = None,
    scales: np.ndarray | None = None,
    series: str = "series",
) -> ScalogramSet:
    """CWT every window of `segments`, scaled per scale with factors fitted on the training windows only.

    The memory it needs is estimated before anything is allocated (ConfigError above the limit of
    :mod:`wavefin_core.data.memory`), so ``num_scales=1e6`` is a clear refusal, not a MemoryError or a swap storm.
    """
    count = len(scales) if scales is not None else num_scales
    if count is not None and not isinstance(count, bool) and isinstance(count, (int, np.integer)) and count > 0:
        windows, width = len(segments), segments.window
        check_allocation(
            f"scalograms of series {series!r}", windows * count * width * _BYTES_PER_COEFFICIENT,
            f"{windows} windows x {count} scales x {width} samples x {_BYTES_PER_COEFFICIENT} bytes",
            "Lower scalograms.num_scales, raise segments.stride (fewer windows), or lower segments.window.",
        )
    if scales is None:
        scales = covering_scales(segments.window, wavelet, num=num_scales)
    scales = np.asarray(scales, dtype=np.float64)
    train = segments.mask("train")
    if not train.any():
        raise ConfigError(f"series {series!r} has no training windows; supply more data or lower `window`.")
    standardized = segments.normalized().astype(np.float32)
    coefs = cwt(standardized, scales, wavelet)  # (N, S, T) complex64
    # RMS magnitude per scale over the training windows: a diagonal, invertible, train-only scaling.
    channel_scale = np.sqrt(np.mean(np.abs(coefs[train]) ** 2, axis=(0, 2))).astype(np.float32)
    channel_scale = np.where(channel_scale > 0, channel_scale, 1.0).astype(np.float32)
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
