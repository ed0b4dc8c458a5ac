"""Forecasters of next-h realized volatility: HAR-RV, GARCH(1,1), the last realized volatility, the train mean.

The task: at origin t (after observing r_t) forecast ``RV_t = sqrt(r_{t+1}^2 + ... + r_{t+h}^2)``, the realized
volatility of the next h bars of log returns. Every forecaster here produces the *variance* ``RV_t^2`` (what the
models are linear in and what QLIKE scores), is fitted on training returns only, and at test time reads only
returns up to the origin (causal). Parameters are plain floats, so they go to JSON (no pickle).

HAR-RV (Corsi 2009) regresses the next-h realized variance on the realized variance of the last L_d, L_w and L_m
bars, each rescaled to h bars ("per-h average"), by OLS. For daily bars and h = 1 the default lags (h, 5h, 22h)
are Corsi's day / week / month. For minute bars the same default means the last h, 5h and 22h minutes: the
components must fit many times into the series' test split (a 1-day quick-profile series has ~200 test bars, so
an hour (60) fits and a trading day (390 or 1440) does not); pass ``lags=(1, 60, 390)`` for long minute series.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from wavefin_core.errors import ConfigError, DataError


def _returns(values: Any, name: str) -> np.ndarray:
    r = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(r).all():
        row = int(np.flatnonzero(~np.isfinite(r))[0])
        raise DataError(f"{name} has a NaN or inf return at position {row}; clean the series first.")
    return r


def _horizon(horizon: Any) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ConfigError(f"horizon={horizon!r} must be a positive integer (bars ahead).")
    return int(horizon)


def trailing_sum_sq(returns: np.ndarray, length: int) -> np.ndarray:
    """``s[t] = r_{t-length+1}^2 + ... + r_t^2`` for t >= length - 1 (NaN before), via a cumulative sum."""
    r2 = np.asarray(returns, dtype=np.float64) ** 2
    csum = np.concatenate([[0.0], np.cumsum(r2)])
    out = np.full(r2.size, np.nan)
    if r2.size >= length:
        out[length - 1 :] = csum[length:] - csum[: r2.size - length + 1]
    return np.maximum(out, 0.0, where=np.isfinite(out), out=out)  # cumsum differences can dip below 0 by rounding


def forecast_origins(n_returns: int, horizon: int, warmup: int) -> np.ndarray:
    """Origins t with `warmup` bars of history (t >= warmup - 1) and a complete target (t + horizon <= n - 1)."""
    return np.arange(max(warmup - 1, 0), n_returns - horizon, dtype=np.int64)


def realized_variance_target(returns: Any, horizon: int, origins: np.ndarray) -> np.ndarray:
    """``RV_t^2 = sum_{k=1..h} r_{t+k}^2`` at each origin t."""
    r = _returns(returns, "returns")
    h = _horizon(horizon)
    return trailing_sum_sq(r, h)[np.asarray(origins) + h]


def realized_vol_target(returns: Any, horizon: int, origins: np.ndarray) -> np.ndarray:
    """The task's target, ``RV_t = sqrt(sum_{k=1..h} r_{t+k}^2)`` at each origin t."""
    return np.sqrt(realized_variance_target(returns, horizon, origins))


# -- HAR-RV ------------------------------------------------------------------------------------------------------
def default_har_lags(horizon: int) -> tuple[int, int, int]:
    """(h, 5h, 22h) bars: Corsi's day / week / month for daily bars and h = 1 (see the module docstring)."""
    h = _horizon(horizon)
    return (h, 5 * h, 22 * h)


def har_components(returns: np.ndarray, origins: np.ndarray, lags: tuple[int, ...], horizon: int) -> np.ndarray:
    """(n_origins, len(lags)): the realized variance of the last L bars at each origin, rescaled to h bars (h/L)."""
    return np.column_stack([trailing_sum_sq(returns, lag)[origins] * (horizon / lag) for lag in lags])


@dataclass
class HARRV:
    """HAR-RV: ``RV^2_{t,h} = b0 + b_d C_d + b_w C_w + b_m C_m`` with the components of `har_components`."""

    horizon: int
    lags: tuple[int, int, int]
    intercept: float
    coefficients: tuple[float, float, float]
    n_fit: int

    @classmethod
    def fit(cls, train_returns: Any, horizon: int, lags: tuple[int, int, int] | None = None) -> HARRV:
        """OLS on every training origin (stride 1; overlapping targets do not bias OLS, only its std errors)."""
        r = _returns(train_returns, "train_returns")
        h = _horizon(horizon)
        lags = tuple(int(v) for v in (lags or default_har_lags(h)))
        if len(lags) != 3 or any(v < 1 for v in lags) or list(lags) != sorted(set(lags)):
            raise ConfigError(f"har_lags={lags!r} must be three increasing positive bar counts, e.g. (1, 5, 22).")
        origins = forecast_origins(r.size, h, lags[-1])
        if origins.size < 10 * (len(lags) + 1):
            raise DataError(
                f"train_returns has {r.size} bars: only {origins.size} HAR-RV training origins with lags {lags} and "
                f"horizon {h} (need {10 * (len(lags) + 1)}); use a longer training split or shorter har_lags."
            )
        design = np.column_stack([np.ones(origins.size), har_components(r, origins, lags, h)])
        target = realized_variance_target(r, h, origins)
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        return cls(h, lags, float(coef[0]), tuple(float(c) for c in coef[1:]), int(origins.size))

    def predict_variance(self, returns: Any, origins: np.ndarray) -> np.ndarray:
        """Forecast variance at each origin of `returns` (which holds at least the lags' history before it)."""
        components = har_components(_returns(returns, "returns"), np.asarray(origins), self.lags, self.horizon)
        return self.intercept + components @ np.asarray(self.coefficients)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lags"], data["coefficients"] = list(self.lags), list(self.coefficients)
        return data


# -- GARCH(1,1) --------------------------------------------------------------------------------------------------
@dataclass
class GARCH11:
    """``r_t = mu + e_t``, ``sigma^2_t = omega + alpha e_{t-1}^2 + beta sigma^2_{t-1}``, Gaussian QMLE (arch).

    Parameters are in the units of the returns it was fitted on. `backcast` is the pre-sample value used for
    both e^2 and sigma^2 when a variance path starts (arch's convention): the training residuals' mean square.
    """

    mu: float
    omega: float
    alpha: float
    beta: float
    backcast: float
    loglikelihood: float
    converged: bool

    @classmethod
    def fit(cls, train_returns: Any) -> GARCH11:
        """Fit with `arch` on the training returns, rescaled to unit variance (arch's optimiser prefers O(1) data)."""
        from arch import arch_model  # local import: arch is heavy and only this fit needs it

        r = _returns(train_returns, "train_returns")
        if r.size < 100:
            raise DataError(f"train_returns has {r.size} bars; GARCH(1,1) needs at least 100 to be estimated.")
        scale = float(r.std())
        if not scale > 0:
            raise DataError("train_returns are constant; GARCH(1,1) cannot be fitted (check the input series).")
        model = arch_model(r / scale, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
        result = model.fit(disp="off", show_warning=False)
        params = result.params
        mu = float(params["mu"]) * scale
        return cls(
            mu=mu,
            omega=float(params["omega"]) * scale**2,
            alpha=float(params["alpha[1]"]),
            beta=float(params["beta[1]"]),
            backcast=float(np.mean((r - mu) ** 2)),
            loglikelihood=float(result.loglikelihood - r.size * math.log(scale)),
            converged=bool(result.convergence_flag == 0),
        )

    def variance_path(self, returns: Any, backcast: float | None = None) -> np.ndarray:
        """Conditional variances ``sigma^2_0 .. sigma^2_n`` (n + 1 values; the last is the one-step forecast after
        the data). ``sigma^2_0 = omega + (alpha + beta) * backcast`` as in arch; `backcast` defaults to the
        training value, which keeps the path causal (arch's own backcast looks at the first 75 observations)."""
        e2 = (_returns(returns, "returns") - self.mu) ** 2
        start = self.backcast if backcast is None else float(backcast)
        sigma2 = np.empty(e2.size + 1)
        sigma2[0] = self.omega + (self.alpha + self.beta) * start
        for t in range(e2.size):  # a scalar recursion: ~1 µs a step, 5,000 daily bars in a few ms
            sigma2[t + 1] = self.omega + self.alpha * e2[t] + self.beta * sigma2[t]
        return sigma2

    def forecast_variances(self, returns: Any, origins: np.ndarray, horizon: int,
                           backcast: float | None = None) -> np.ndarray:
        """(n_origins, h): ``E[sigma^2_{t+k} | r_..t]`` for k = 1..h (arch's analytic multi-step forecast)."""
        h = _horizon(horizon)
        path = self.variance_path(returns, backcast)
        out = np.empty((len(origins), h))
        out[:, 0] = path[np.asarray(origins) + 1]
        persistence = self.alpha + self.beta
        for k in range(1, h):
            out[:, k] = self.omega + persistence * out[:, k - 1]
        return out

    def predict_variance(self, returns: Any, origins: np.ndarray, horizon: int) -> np.ndarray:
        """Forecast of ``RV_t^2``: ``sum_k (mu^2 + E[sigma^2_{t+k}])``, since ``E[r^2] = mu^2 + sigma^2``."""
        return (self.forecast_variances(returns, origins, horizon) + self.mu**2).sum(axis=1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- naive forecasts ---------------------------------------------------------------------------------------------
def naive_variance(returns: Any, origins: np.ndarray, horizon: int) -> np.ndarray:
    """The last realized variance: ``r_{t-h+1}^2 + ... + r_t^2`` (the random walk of realized volatility)."""
    h = _horizon(horizon)
    return trailing_sum_sq(_returns(returns, "returns"), h)[np.asarray(origins)]


def historical_mean_variance(train_returns: Any, horizon: int) -> float:
    """The mean next-h realized variance over the training origins (a constant forecast)."""
    r = _returns(train_returns, "train_returns")
    h = _horizon(horizon)
    if r.size <= h:
        raise DataError(f"train_returns has {r.size} bars; the historical mean needs more than horizon={h}.")
    return float(np.mean(trailing_sum_sq(r, h)[h - 1 :]))
