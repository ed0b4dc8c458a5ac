"""Scores of next-h realized-volatility forecasts: QLIKE and MSE, with Diebold-Mariano tests against the naive one.

Why these losses: the realized variance of h bars is a noisy proxy of the true variance, and Patton (2011) shows
that only losses of the "robust" family rank forecasts the same way with a noisy proxy as with the truth; QLIKE
and the MSE *of the variance* are in it (the MSE of the volatility is not). QLIKE is the normalised form
``RV^2/F - log(RV^2/F) - 1`` (0 for a perfect forecast, >= 0 always), which penalises under-forecasting a
turbulent period more than over-forecasting a calm one. Origins where the realized variance is exactly 0 (bars
without a price change) have no QLIKE and are left out of it for every model alike (`n_zero_realized`).

Every model is fitted on the training returns only (:mod:`wavefin_core.models.volatility`) and forecasts every
test origin from returns up to that origin. The first origins are the warm-up HAR-RV's longest lag needs, and all
models are scored on the same origins.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.evaluation.stats_tests import diebold_mariano, holm
from wavefin_core.models.volatility import (
    GARCH11,
    HARRV,
    default_har_lags,
    forecast_origins,
    historical_mean_variance,
    naive_variance,
    realized_variance_target,
)

MODELS = ("naive", "historical_mean", "har_rv", "garch")
REFERENCE = "naive"
#: Forecast variances are floored at this fraction of the training mean realized variance: HAR-RV is a linear
#: regression and can forecast a negative variance, which no loss can score.
FLOOR_FRACTION = 0.01


def qlike(realized_variance: Any, forecast_variance: Any) -> np.ndarray:
    """Per-origin QLIKE ``x - log(x) - 1`` with ``x = realized / forecast`` (both variances); NaN where realized = 0."""
    rv = np.asarray(realized_variance, dtype=np.float64)
    f = np.asarray(forecast_variance, dtype=np.float64)
    if rv.shape != f.shape:
        raise DataError(f"qlike: realized ({rv.shape}) and forecast ({f.shape}) variances differ in shape.")
    if (f <= 0).any() or not np.isfinite(f).all():
        raise DataError("qlike: forecast variances must be finite and > 0; floor the forecasts first.")
    if (rv < 0).any():
        raise DataError("qlike: realized variances must be >= 0.")
    ratio = rv / f
    with np.errstate(divide="ignore"):
        return np.where(rv > 0, ratio - np.log(np.where(rv > 0, ratio, 1.0)) - 1.0, np.nan)


@dataclass
class VolatilityForecasts:
    """Every model's variance forecasts at the same test origins, the realized variances, and the fitted parameters."""

    horizon: int
    har_lags: tuple[int, int, int]
    origins: np.ndarray
    realized_variance: np.ndarray
    forecasts: dict[str, np.ndarray]
    params: dict[str, dict[str, Any]]
    fit_seconds: dict[str, float]
    n_clipped: dict[str, int] = field(default_factory=dict)
    variance_floor: float = 0.0


def volatility_forecasts(
    train_returns: Any,
    test_returns: Any,
    horizon: int,
    *,
    har_lags: tuple[int, int, int] | None = None,
    models: Sequence[str] = MODELS,
) -> VolatilityForecasts:
    """Fit `models` on `train_returns` and forecast ``RV^2`` at every test origin that has a complete target."""
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ConfigError(f"horizon={horizon!r} must be a positive integer (bars ahead).")
    h = int(horizon)
    unknown = sorted(set(models) - set(MODELS))
    if unknown or REFERENCE not in models:
        raise ConfigError(f"models={list(models)!r}: each must be one of {MODELS} and {REFERENCE!r} must be included "
                          "(it is the reference of the Diebold-Mariano tests).")
    train = np.asarray(train_returns, dtype=np.float64).ravel()
    test = np.asarray(test_returns, dtype=np.float64).ravel()
    lags = tuple(int(v) for v in (har_lags or default_har_lags(h)))
    origins = forecast_origins(test.size, h, max(lags[-1], h))
    if origins.size < 10:
        raise DataError(
            f"test_returns has {test.size} bars: {origins.size} forecast origins after a warm-up of {max(lags[-1], h)} "
            f"bars (the longest HAR lag) and a horizon of {h}; need 10. Use a longer test split or shorter har_lags."
        )
    target = realized_variance_target(test, h, origins)
    forecasts, params, seconds = {}, {}, {}
    mean_variance = historical_mean_variance(train, h)
    for name in models:
        started = time.perf_counter()
        if name == "naive":
            forecasts[name] = naive_variance(test, origins, h)
        elif name == "historical_mean":
            forecasts[name] = np.full(origins.size, mean_variance)
            params[name] = {"variance": mean_variance}
        elif name == "har_rv":
            har = HARRV.fit(train, h, lags)
            forecasts[name], params[name] = har.predict_variance(test, origins), har.to_dict()
        else:
            garch = GARCH11.fit(train)
            forecasts[name], params[name] = garch.predict_variance(test, origins, h), garch.to_dict()
        seconds[name] = time.perf_counter() - started
    floor = FLOOR_FRACTION * mean_variance
    clipped = {name: int(np.count_nonzero(~(values >= floor))) for name, values in forecasts.items()}
    forecasts = {name: np.maximum(np.nan_to_num(values, nan=floor), floor) for name, values in forecasts.items()}
    return VolatilityForecasts(h, lags, origins, target, forecasts, params, seconds, clipped, floor)


def evaluate_volatility_forecasts(
    train_returns: Any,
    test_returns: Any,
    horizon: int,
    *,
    har_lags: tuple[int, int, int] | None = None,
    models: Sequence[str] = MODELS,
) -> dict[str, Any]:
    """Fit on train, forecast every test origin, score by QLIKE and MSE, DM-test each model against the naive one.

    Returns a JSON-serialisable dict::

        {"horizon": int, "har_lags": [int, int, int], "n_train": int, "n_test_returns": int,
         "n_origins": int, "first_origin": int, "n_zero_realized": int, "variance_floor": float,
         "reference": "naive", "best_qlike": NAME, "best_mse": NAME,
         "models": {NAME: {"qlike", "mse", "rmse_vol": float, "n_clipped": int, "fit_seconds": float,
                           "dm_qlike_stat", "dm_qlike_p", "dm_qlike_p_holm",
                           "dm_mse_stat", "dm_mse_p", "dm_mse_p_holm": float or None (None for the naive)}},
         "params": {"har_rv": HARRV.to_dict(), "garch": GARCH11.to_dict(), "historical_mean": {"variance"}}}

    `mse` is of the variance (robust, see the module docstring), `rmse_vol` of the volatility (for reading). A
    negative DM statistic means the model's loss is lower than the naive one's; the DM tests use
    ``horizon`` (overlapping h-bar targets are MA(h-1)) and are Holm-corrected over the models of one loss.
    """
    fc = volatility_forecasts(train_returns, test_returns, horizon, har_lags=har_lags, models=models)
    rv = fc.realized_variance
    has_qlike = rv > 0
    losses = {name: {"qlike": qlike(rv[has_qlike], f[has_qlike]), "error": rv - f} for name, f in fc.forecasts.items()}
    rows: dict[str, dict[str, Any]] = {}
    for name, f in fc.forecasts.items():
        rows[name] = {
            "qlike": float(np.mean(losses[name]["qlike"])) if has_qlike.any() else math.nan,
            "mse": float(np.mean(losses[name]["error"] ** 2)),
            "rmse_vol": float(np.sqrt(np.mean((np.sqrt(rv) - np.sqrt(f)) ** 2))),
            "n_clipped": fc.n_clipped[name],
            "fit_seconds": fc.fit_seconds[name],
        }
    others = [name for name in rows if name != REFERENCE]
    for loss, key in (("qlike", "qlike"), ("mse", "error")):
        # QLIKE values are >= 0, so with loss="absolute" the DM differential is exactly QLIKE_model - QLIKE_naive.
        dm_loss = "absolute" if loss == "qlike" else "squared"
        tests = [diebold_mariano(losses[name][key], losses[REFERENCE][key], horizon=fc.horizon, loss=dm_loss)
                 for name in others]
        adjusted = holm([p for _, p in tests]) if tests else []
        for name, (stat, p), p_holm in zip(others, tests, adjusted, strict=True):
            rows[name].update({f"dm_{loss}_stat": _json_float(stat), f"dm_{loss}_p": _json_float(p),
                               f"dm_{loss}_p_holm": _json_float(p_holm)})
        rows[REFERENCE].update({f"dm_{loss}_stat": None, f"dm_{loss}_p": None, f"dm_{loss}_p_holm": None})
    return {
        "horizon": fc.horizon,
        "har_lags": list(fc.har_lags),
        "n_train": int(np.size(train_returns)),
        "n_test_returns": int(np.size(test_returns)),
        "n_origins": int(fc.origins.size),
        "first_origin": int(fc.origins[0]),
        "n_zero_realized": int(np.count_nonzero(~has_qlike)),
        "variance_floor": fc.variance_floor,
        "reference": REFERENCE,
        "best_qlike": min(rows, key=lambda n: _sort_key(rows[n]["qlike"])),
        "best_mse": min(rows, key=lambda n: rows[n]["mse"]),
        "models": rows,
        "params": fc.params,
    }


def _json_float(value: float) -> float | None:
    """NaN (a test without evidence) becomes None so the dict is strict JSON."""
    return None if value is None or math.isnan(value) else float(value)


def _sort_key(value: float) -> float:
    return math.inf if not math.isfinite(value) else value


def volatility_table(result: Mapping[str, Any]) -> str:
    """Markdown table of `evaluate_volatility_forecasts`'s result, best QLIKE first."""
    models = result["models"]

    def p(value: float | None) -> str:
        return "—" if value is None else f"{value:.3g}"

    lines = [
        f"Next-{result['horizon']}-bar realized volatility: {result['n_origins']} test origins "
        f"(HAR-RV lags {tuple(result['har_lags'])} bars; models fitted on {result['n_train']} train returns). "
        "QLIKE and MSE on the variance (lower is better); DM p-values against the naive forecast "
        "(last realized volatility), HLN-corrected, Holm-adjusted over the models.",
        "",
        "| model | QLIKE | MSE (variance) | RMSE (vol) | DM p QLIKE (Holm) | DM p MSE (Holm) |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(models, key=lambda n: _sort_key(models[n]["qlike"])):
        row = models[name]
        lines.append(
            f"| {name} | {row['qlike']:.4f} | {row['mse']:.3e} | {row['rmse_vol']:.3e} | "
            f"{p(row['dm_qlike_p_holm'])} | {p(row['dm_mse_p_holm'])} |"
        )
    return "\n".join(lines) + "\n"
