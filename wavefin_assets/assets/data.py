"""Data assets, one partition per series: raw_prices → clean_prices → segments → scalograms."""

from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from wavefin_assets.metadata import figure_md, preview_md, table_metadata
from wavefin_assets.partitions import scan_csv_series, series_partitions
from wavefin_assets.profiles import PROFILE
from wavefin_core.data.validate import DEFAULT_MAX_ABS_LOG_RETURN
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.preprocess import (
    check_min_rows,
    check_monotonic_unique_index,
    check_no_nan,
    check_positive_prices,
    train_rows,
)
from wavefin_core.preprocess import (
    clean_prices as clean_price_frame,
)
from wavefin_core.segments import MIN_WINDOW, Segments, make_segments, min_rows

if TYPE_CHECKING:  # matplotlib loads only when a step draws a figure
    from matplotlib.figure import Figure

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
            "return_std": float(np.std(returns)),
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


@dg.asset(
    partitions_def=series_partitions,
    group_name=DATA_GROUP,
    kinds={"pandas", "parquet"},
    description="Sliding windows of log-returns with next-horizon labels, split chronologically with an embargo.",
)
def segments(
    context: dg.AssetExecutionContext, config: SegmentsConfig, clean_prices: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    fitted_rows = clean_prices.attrs.get("winsor_train_rows")
    if fitted_rows is not None and fitted_rows > train_rows(len(clean_prices), config.train_fraction):
        raise ConfigError(
            f"clean_prices fitted its winsorization on the first {fitted_rows} rows, more than this train split "
            f"(train_fraction={config.train_fraction}) holds, so validation data shaped the bounds. Use the same "
            "train_fraction for clean_prices and segments."
        )
    segs = make_segments(
        clean_prices["log_return"], window=config.window, stride=config.stride, horizon=config.horizon,
        train_fraction=config.train_fraction, val_fraction=config.val_fraction, embargo=config.embargo,
        test_stride=config.test_stride,
    )
    counts = segs.counts()
    context.log.info(f"{context.partition_key}: windows per split {counts}")
    frame = segs.to_frame()
    return dg.Output(
        frame,
        metadata={
            **table_metadata(frame),
            "windows": len(segs.windows),
            **{f"{split}_windows": int(n) for split, n in counts.items()},
            "window": config.window,
            "stride": int(segs.stride),
            "test_stride": segs.stride_of("test"),
            "embargo": int(segs.embargo),
            "train_mean": float(segs.mean),
            "train_std": float(segs.std),
            "up_fraction_train": float(segs.direction[segs.mask("train")].mean()),
        },
    )


class ScalogramsConfig(dg.Config):
    wavelet: str = "cmor1.5-1.0"
    num_scales: int = PROFILE.num_scales


@dg.asset(
    partitions_def=series_partitions,
    group_name=DATA_GROUP,
    kinds={"numpy", "parquet"},
    description="Complex Morlet CWT of each window as real+imag channels, train-fitted per-scale scaling; "
    "Parquet with a fixed-shape tensor column. Round-trips to the returns through the inverse CWT.",
)
def scalograms(
    context: dg.AssetExecutionContext, config: ScalogramsConfig, segments: pd.DataFrame
) -> dg.Output[pa.Table]:
    segs = Segments.from_frame(segments)
    from wavefin_core.scalograms import build_scalograms  # imports torch: only in this step, not on load

    result = build_scalograms(segs, wavelet=config.wavelet, num_scales=config.num_scales, series=context.partition_key)
    error = result.roundtrip_error()
    context.log.info(f"{context.partition_key}: images {result.images.shape}, icwt round-trip error {error:.2e}")
    table = result.to_table()
    return dg.Output(
        table,
        metadata={
            **table_metadata(table),
            "shape": str(tuple(result.images.shape)),
            "wavelet": config.wavelet,
            "scales": f"{result.scales[0]:.3g} … {result.scales[-1]:.3g} ({len(result.scales)})",
            "roundtrip_rel_error": error,
            "bytes": int(result.images.nbytes),
            "examples": figure_md(_scalogram_figure(result), "scalograms"),
        },
    )


def _scalogram_figure(result: "ScalogramSet", n: int = 3) -> "Figure":  # noqa: F821 - torch stays out of loading
    from matplotlib.figure import Figure
    fig = Figure(figsize=(3 * n, 4.5))
    picks = np.linspace(0, len(result) - 1, n).astype(int)
    for col, idx in enumerate(picks):
        magnitude = np.hypot(result.images[idx, 0], result.images[idx, 1])
        ax = fig.add_subplot(2, n, col + 1)
        ax.imshow(magnitude, aspect="auto", origin="lower", cmap="magma")
        ax.set_title(f"{result.split[idx]} #{idx}", fontsize=8)
        ax.set_ylabel("scale index")
        ax2 = fig.add_subplot(2, n, n + col + 1)
        ax2.plot(result.windows[idx], lw=0.8)
        ax2.set_xlabel("t")
    fig.tight_layout()
    return fig
