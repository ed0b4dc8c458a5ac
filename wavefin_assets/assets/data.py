"""Data assets, one partition per series: raw_prices → clean_prices → segments → scalograms."""

import json
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from wavefin_assets.metadata import figure_md, preview_md, table_metadata
from wavefin_assets.partitions import scan_csv_series, series_partitions
from wavefin_assets.profiles import PROFILE
from wavefin_core.data.validate import DEFAULT_MAX_ABS_LOG_RETURN
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.io import StagedFile, staged_file
from wavefin_core.preprocess import (
    check_min_rows,
    check_monotonic_unique_index,
    check_no_nan,
    check_positive_prices,
    chunked_std,
    train_rows,
)
from wavefin_core.preprocess import (
    clean_prices as clean_price_frame,
)
from wavefin_core.segments import (
    MIN_WINDOW,
    PANDAS_ATTRS_KEY,
    SegmentsFile,
    min_rows,
    plan_segments,
    write_segments,
)

if TYPE_CHECKING:  # matplotlib loads only when a step draws a figure
    from pathlib import Path

    import pyarrow as pa
    from matplotlib.figure import Figure

    from wavefin_core.scalograms import ScalogramExamples

DATA_GROUP = "data"


class RawPricesConfig(dg.Config):
    """Merton jump diffusion parameters (used by the `mjd` partition; the others ignore them), the length of the
    `planted` series, and how CSV partitions are read (`date_format`, `max_abs_log_return`)."""

    days: int = PROFILE.mjd_days
    mu: float = 0.05
    sigma: float = 0.2
    lam: float = 0.1
    jump_mean: float = -0.02
    jump_std: float = 0.1
    start: str = "2022-01-03"
    freq: str = PROFILE.mjd_freq
    seed: int = 0
    # the `planted` partition: daily bars of the planted-signal series (same `seed` field as mjd)
    planted_days: int = PROFILE.planted_days
    # CSV files: strptime format of the date/time column (e.g. "%d/%m/%Y"); None detects it, and refuses
    # dates that could be day-first or month-first, naming this field.
    date_format: str | None = None
    # CSV files: largest |log return| between consecutive closes (3.0 = a 20x move); larger jumps are refused.
    max_abs_log_return: float = DEFAULT_MAX_ABS_LOG_RETURN


@dg.asset(
    partitions_def=series_partitions,
    group_name=DATA_GROUP,
    kinds={"pandas", "parquet"},
    description="One OHLCV table per series (UTC `timestamp` index): MJD simulation, bundled S&P 500, or a CSV.",
)
def raw_prices(context: dg.AssetExecutionContext, config: RawPricesConfig) -> dg.Output[pd.DataFrame]:
    from wavefin_core.data import load_ohlcv, load_sp500, simulate_mjd
    series = context.partition_key
    if series == "mjd":
        frame = simulate_mjd(
            days=config.days, mu=config.mu, sigma=config.sigma, lam=config.lam, jump_mean=config.jump_mean,
            jump_std=config.jump_std, start=config.start, freq=config.freq, seed=config.seed,
        )
        source = f"Merton jump diffusion (seed {config.seed}, {config.days} days of {config.freq} bars)"
    elif series == "planted":
        from wavefin_core.data.simulate import simulate_planted

        frame = simulate_planted(days=config.planted_days, seed=config.seed)
        source = (f"planted-signal simulation (seed {config.seed}, {config.planted_days} daily bars; the volatility "
                  "regime a window's scalogram shows sets the next return's sign)")
    elif series == "sp500":
        frame = load_sp500()
        source = "S&P 500 daily bars bundled with arch (arch.data.sp500)"
    else:
        path = scan_csv_series().path_for(series)
        frame = load_ohlcv(path, date_format=config.date_format, max_abs_log_return=config.max_abs_log_return)
        source = str(path)
    # Refuse here, before anything of this series is stored, what would fail later: a window below the
    # minimum and a series too short for one window per split (the exact count is checked in clean_prices).
    needed = _rows_needed(context, source)
    if len(frame) - 1 < needed:
        raise DataError(
            f"{source}: {len(frame)} rows give at most {len(frame) - 1} returns, but segments needs at least "
            f"{needed} ({_segments_settings(context)}) for one window in each of train, val and test. Supply a "
            "longer series, or lower segments.window (or segments.embargo)."
        )
    frame.attrs = {"source": source, **frame.attrs}  # builtins keep their own source tag
    context.log.info(f"{series}: {len(frame)} bars from {source}")
    return dg.Output(
        frame,
        metadata={
            **table_metadata(frame),
            "rows": len(frame),
            "source": source,
            "first": str(frame.index[0]),
            "last": str(frame.index[-1]),
            "preview": preview_md(frame),
            "close": figure_md(_close_figure(frame, series), "close"),
        },
    )


def _segments_config(context: dg.AssetExecutionContext) -> "SegmentsConfig":
    """The `segments` config of this run (its defaults when the run does not set it).

    Read from the run config so that the first asset can check what the later ones will need: a run that
    would fail in `segments` or `scalograms` then fails in `raw_prices`, before anything is stored.
    """
    ops = (context.run_config or {}).get("ops") or {}
    raw = (ops.get("segments") or {}).get("config") or {}
    try:
        return SegmentsConfig(**raw)
    except Exception as exc:  # noqa: BLE001 - pydantic's validation error; Dagster reports it again in segments
        raise ConfigError(f"segments config {raw!r} is invalid ({exc}); fix the run config.") from exc


def _segments_settings(context: dg.AssetExecutionContext) -> str:
    cfg = _segments_config(context)
    return (
        f"window={cfg.window}, horizon={cfg.horizon}, embargo={cfg.embargo or cfg.window + cfg.horizon}, "
        f"train_fraction={cfg.train_fraction}, val_fraction={cfg.val_fraction}"
    )


def _rows_needed(context: dg.AssetExecutionContext, source: str) -> int:
    """Returns segments needs with this run's settings; ConfigError for a window below the minimum."""
    cfg = _segments_config(context)
    if cfg.window < MIN_WINDOW:
        raise ConfigError(
            f"segments.window={cfg.window} is below the minimum of {MIN_WINDOW} samples (the scalograms' "
            f"wavelet scales need at least {MIN_WINDOW}); set segments.window >= {MIN_WINDOW} in the run config "
            f"(series {source} was not read further)."
        )
    return min_rows(
        cfg.window, cfg.horizon, train_fraction=cfg.train_fraction, val_fraction=cfg.val_fraction,
        embargo=cfg.embargo,
    )


#: Points drawn in the close figure: a 15-million-bar series is thinned to this many (a line plot cannot show
#: more at this size, and drawing all of them takes minutes and gigabytes).
FIGURE_POINTS = 5000


def _close_figure(frame: pd.DataFrame, series: str) -> "Figure":
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 2.5))
    ax = fig.add_subplot()
    step = max(1, len(frame) // FIGURE_POINTS)
    ax.plot(frame.index[::step], frame["close"].to_numpy()[::step], lw=0.7)
    ax.set_title(f"{series}: close")
    fig.autofmt_xdate()
    return fig


class CleanPricesConfig(dg.Config):
    train_fraction: float = 0.7
    winsorize_lower_pct: float | None = None
    winsorize_upper_pct: float | None = None
    max_gap_fill: int = 0


CLEAN_CHECKS = ("monotonic_unique_index", "no_nan", "positive_prices", "enough_rows")


@dg.asset(
    partitions_def=series_partitions,
    group_name=DATA_GROUP,
    kinds={"pandas", "parquet"},
    check_specs=[dg.AssetCheckSpec(name, asset="clean_prices", blocking=True) for name in CLEAN_CHECKS],
    description="Sorted, de-duplicated bars with log-returns; missing closes dropped (see wavefin_core.preprocess).",
)
def clean_prices(context: dg.AssetExecutionContext, config: CleanPricesConfig, raw_prices: pd.DataFrame):
    winsorize = None
    if config.winsorize_lower_pct is not None or config.winsorize_upper_pct is not None:
        winsorize = (config.winsorize_lower_pct or 0.0, config.winsorize_upper_pct or 100.0)
    series = context.partition_key
    frame = clean_price_frame(
        raw_prices, source=series, train_fraction=config.train_fraction, winsorize=winsorize,
        max_gap_fill=config.max_gap_fill,
    )
    source = raw_prices.attrs.get("source", series)
    needed = _rows_needed(context, source)
    if len(frame) < needed:
        raise DataError(
            f"{source}: after cleaning, {len(frame)} returns remain ({len(raw_prices)} raw rows, "
            f"{len(raw_prices) - len(frame)} dropped: missing closes and the first row), but segments needs at "
            f"least {needed} ({_segments_settings(context)}). Supply a longer series, fill short gaps "
            "(clean_prices.max_gap_fill), or lower segments.window."
        )
    returns = frame["log_return"].to_numpy()
    yield dg.Output(
        frame,
        metadata={
            **table_metadata(frame),
            "rows": len(frame),
            "dropped_rows": len(raw_prices) - len(frame),
            "return_std": chunked_std(returns),  # np.std would copy the column (15 M rows: +114 MiB at the peak)
            "return_min": float(np.min(returns)),
            "return_max": float(np.max(returns)),
            "winsor_bounds": str(frame.attrs.get("winsor_bounds")),
            "preview": preview_md(frame),
        },
    )
    results = {
        "monotonic_unique_index": check_monotonic_unique_index(frame),
        "no_nan": check_no_nan(frame),
        "positive_prices": check_positive_prices(frame),
        "enough_rows": check_min_rows(frame, needed),
    }
    for name, (passed, description) in results.items():
        yield dg.AssetCheckResult(check_name=name, passed=bool(passed), description=description)


class SegmentsConfig(dg.Config):
    window: int = PROFILE.window
    stride: int = PROFILE.stride
    horizon: int = 1
    train_fraction: float = 0.7
    val_fraction: float = 0.15
    embargo: int | None = None
    # Rows between TEST windows; None: 1 for horizon 1 (every test day is scored), else the horizon. Train and
    # val windows keep `stride`.
    test_stride: int | None = None
    # Windows written per Parquet row group (the memory the windows take at a time); None: 32 MiB of values.
    chunk_windows: int | None = None


def _log_returns(clean_prices: pq.ParquetFile) -> pd.Series:
    """The `log_return` column of stored clean prices, on its timestamp index, with the frame's attrs (the
    winsorization record). Reading one column keeps a 15-million-row series at ~16 bytes a row."""
    table = clean_prices.read(columns=["log_return"], use_pandas_metadata=True)  # + the index column
    frame = table.to_pandas()
    raw_attrs = (clean_prices.schema_arrow.metadata or {}).get(PANDAS_ATTRS_KEY)
    returns = frame["log_return"]
    returns.attrs = json.loads(raw_attrs) if raw_attrs else {}
    return returns


def _staging_dir(asset: str) -> "Path":
    """Where a data asset streams its output before the IO manager moves it into place: the IO manager's own
    directory on local storage (a rename then), else the local staging area of the remote root (an upload)."""
    from wavefin_assets.resources import StorageResource, storage_root

    return StorageResource(root=str(storage_root())).workdir("io", asset)


def _file_table_metadata(schema: "pa.Schema", rows: int) -> dict:
    """`table_metadata` of a table streamed to a file (it was never whole in memory): columns and row count."""
    columns = [dg.TableColumn(field.name, str(field.type)) for field in schema]
    return {"dagster/row_count": int(rows), "dagster/column_schema": dg.TableSchema(columns=columns)}


def _chunk_logger(context: dg.AssetExecutionContext, label: str, every: float = 0.1):
    """A `progress(stage, done, total)` callback logging about every `every` of each stage (and its end)."""
    marks: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if done >= total or done / max(total, 1) >= marks.get(stage, 0.0) + every:
            marks[stage] = done / max(total, 1)
            context.log.info(f"{label}: {stage} {done:,}/{total:,} windows")

    return progress


@dg.asset(
    partitions_def=series_partitions,
    group_name=DATA_GROUP,
    kinds={"pandas", "parquet"},
    description="Sliding windows of log-returns with next-horizon labels, split chronologically with an embargo.",
)
def segments(
    context: dg.AssetExecutionContext, config: SegmentsConfig, clean_prices: pq.ParquetFile
) -> dg.Output[StagedFile]:
    returns = _log_returns(clean_prices)  # the one column segments needs, not the whole OHLCV frame
    fitted_rows = returns.attrs.get("winsor_train_rows")
    if fitted_rows is not None and fitted_rows > train_rows(len(returns), config.train_fraction):
        raise ConfigError(
            f"clean_prices fitted its winsorization on the first {fitted_rows} rows, more than this train split "
            f"(train_fraction={config.train_fraction}) holds, so validation data shaped the bounds. Use the same "
            "train_fraction for clean_prices and segments."
        )
    plan = plan_segments(
        returns, window=config.window, stride=config.stride, horizon=config.horizon,
        train_fraction=config.train_fraction, val_fraction=config.val_fraction, embargo=config.embargo,
        test_stride=config.test_stride,
    )
    counts = plan.counts()
    series = context.partition_key
    context.log.info(f"{series}: windows per split {counts}")
    # The windows are streamed to Parquet a chunk at a time: a 15-million-row series has millions of them.
    log = _chunk_logger(context, series)
    with staged_file(_staging_dir("segments"), f"{series}.parquet") as path:
        schema = write_segments(plan, path, chunk_windows=config.chunk_windows,
                                progress=lambda done, total: log("write", done, total))
    train_up = plan.target_return(0, counts["train"]) > 0
    return dg.Output(
        StagedFile(path),
        metadata={
            **_file_table_metadata(schema, len(plan)),
            "windows": len(plan),
            **{f"{split}_windows": int(n) for split, n in counts.items()},
            "window": config.window,
            "stride": int(plan.stride),
            "test_stride": int(plan.test_stride),
            "embargo": int(plan.embargo),
            "train_mean": float(plan.mean),
            "train_std": float(plan.std),
            "up_fraction_train": float(train_up.mean()),
            "bytes": int(path.stat().st_size),
        },
    )


class ScalogramsConfig(dg.Config):
    wavelet: str = "cmor1.5-1.0"
    num_scales: int = PROFILE.num_scales
    # Windows transformed and written at a time (memory is bounded by this, not by the series); None: as many
    # as fit in 256 MiB of working memory (8,192 at 16 scales x 64 samples).
    chunk_windows: int | None = None


@dg.asset(
    partitions_def=series_partitions,
    group_name=DATA_GROUP,
    kinds={"numpy", "parquet"},
    description="Complex Morlet CWT of each window as real+imag channels, train-fitted per-scale scaling; "
    "Parquet with a fixed-shape tensor column. Round-trips to the returns through the inverse CWT.",
)
def scalograms(
    context: dg.AssetExecutionContext, config: ScalogramsConfig, segments: pq.ParquetFile
) -> dg.Output[StagedFile]:
    from wavefin_core.scalograms import write_scalograms  # imports torch: only in this step, not on load

    series = context.partition_key
    source = SegmentsFile(segments)
    with staged_file(_staging_dir("scalograms"), f"{series}.parquet") as path:
        summary = write_scalograms(
            source, path, wavelet=config.wavelet, num_scales=config.num_scales, series=series,
            chunk_windows=config.chunk_windows, progress=_chunk_logger(context, series),
        )
    shape = (summary.windows, *summary.image_shape)
    context.log.info(f"{series}: images {shape} in {summary.chunks} chunk(s) of <= {summary.chunk_windows:,} "
                     f"windows, icwt round-trip error {summary.roundtrip_error:.2e}")
    return dg.Output(
        StagedFile(path),
        metadata={
            **_file_table_metadata(summary.schema, summary.windows),
            "shape": str(shape),
            "wavelet": config.wavelet,
            "scales": f"{summary.scales[0]:.3g} … {summary.scales[-1]:.3g} ({len(summary.scales)})",
            "roundtrip_rel_error": summary.roundtrip_error,
            "bytes": summary.image_bytes,
            "file_bytes": int(path.stat().st_size),
            "chunks": summary.chunks,
            "examples": figure_md(_scalogram_figure(summary.examples), "scalograms"),
        },
    )


def _scalogram_figure(examples: "ScalogramExamples") -> "Figure":
    from matplotlib.figure import Figure
    n = len(examples.rows)
    fig = Figure(figsize=(3 * n, 4.5))
    for col, row in enumerate(examples.rows):
        magnitude = np.hypot(examples.images[col, 0], examples.images[col, 1])
        ax = fig.add_subplot(2, n, col + 1)
        ax.imshow(magnitude, aspect="auto", origin="lower", cmap="magma")
        ax.set_title(f"{examples.split[col]} #{row}", fontsize=8)
        ax.set_ylabel("scale index")
        ax2 = fig.add_subplot(2, n, n + col + 1)
        ax2.plot(examples.windows[col], lw=0.8)
        ax2.set_xlabel("t")
    fig.tight_layout()
    return fig
