"""Next-h realized-volatility task: QLIKE, HAR-RV, GARCH(1,1) against arch, the evaluation and its causality."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.evaluation.volatility import (
    evaluate_volatility_forecasts,
    qlike,
    volatility_forecasts,
    volatility_table,
)
from wavefin_core.models.volatility import GARCH11, HARRV, realized_vol_target


def simulate_garch(n: int, seed: int, omega: float = 2e-6, alpha: float = 0.1, beta: float = 0.85) -> np.ndarray:
    """Gaussian GARCH(1,1) returns with daily-like scale (unconditional vol ~0.6%)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n + 500)
    r = np.empty_like(z)
    sigma2 = omega / (1 - alpha - beta)
    for t in range(z.size):
        r[t] = math.sqrt(sigma2) * z[t]
        sigma2 = omega + alpha * r[t] ** 2 + beta * sigma2
    return r[500:]  # burn-in


def test_qlike_known_values() -> None:
    values = qlike([2.0, 1.0, 0.5, 0.0], [1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(values[:3], [1.0 - math.log(2.0), 0.0, math.log(2.0) - 0.5], rtol=1e-12)
    assert math.isnan(values[3])  # no QLIKE for a zero realized variance
    with pytest.raises(DataError, match="floor"):
        qlike([1.0], [0.0])


def test_realized_vol_target_is_the_next_h_bars() -> None:
    r = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # origin 1 (after r_1 = 2): next two bars are 3 and 4
    np.testing.assert_allclose(realized_vol_target(r, 2, np.array([0, 1, 2])), np.sqrt([4 + 9, 9 + 16, 16 + 25]))


def test_har_rv_recovers_planted_coefficients() -> None:
    """A HAR process in the squared returns: with Rademacher signs, r_t^2 equals the planted variance exactly, so
    OLS sees only the planted noise and must return the planted coefficients (up to that noise)."""
    b0, b_day, b_week, b_month = 0.2, 0.3, 0.25, 0.2
    rng = np.random.default_rng(0)
    n = 20_000
    r2 = np.ones(n)
    for t in range(22, n):
        past = r2[:t]
        r2[t] = (b0 + b_day * past[-1] + b_week * past[-5:].mean() + b_month * past[-22:].mean()
                 + rng.uniform(0.0, 2.0))  # noise with mean 1 lands in the intercept
    returns = np.sqrt(r2) * rng.choice([-1.0, 1.0], n)
    har = HARRV.fit(returns, horizon=1)
    assert har.lags == (1, 5, 22)
    # Tolerance: the three components are strongly collinear; over 8 seeds at n=6000 the estimates' std was
    # 0.015-0.022, so ~0.012 at n=20,000, and 0.05 is 4 standard deviations (intercept: std 0.045 over 6 seeds).
    np.testing.assert_allclose(har.coefficients, [b_day, b_week, b_month], atol=0.05)
    assert har.intercept == pytest.approx(b0 + 1.0, abs=0.2)


def test_garch_forecast_matches_arch() -> None:
    from arch import arch_model

    returns = simulate_garch(3000, seed=1)
    train, test = returns[:2000], returns[2000:]
    garch = GARCH11.fit(train)
    assert garch.converged and 0.0 < garch.alpha < 0.3 and 0.6 < garch.beta < 1.0

    # arch's own forecast of the test returns with the same (fixed) parameters and its own backcast.
    scale = float(np.std(train))
    model = arch_model(test / scale, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
    params = np.array([garch.mu / scale, garch.omega / scale**2, garch.alpha, garch.beta])
    backcast = float(model.volatility.backcast(test / scale - params[0]))
    expected = model.fix(params).forecast(horizon=5, start=0, reindex=False).variance.to_numpy()
    ours = garch.forecast_variances(test, np.arange(test.size), 5, backcast=backcast * scale**2) / scale**2
    # Same formula computed in a different order (arch's loops vs our vectorised steps): float64 rounding only.
    np.testing.assert_allclose(ours, expected, rtol=1e-9)
    json.dumps(garch.to_dict())  # parameters are plain JSON


def test_evaluation_scores_and_dm_against_naive() -> None:
    returns = simulate_garch(4000, seed=2)
    train, test = returns[:2800], returns[3000:]
    result = evaluate_volatility_forecasts(train, test, horizon=5)
    json.dumps(result, allow_nan=False)  # strict JSON
    assert set(result["models"]) == {"naive", "historical_mean", "har_rv", "garch"}
    assert result["har_lags"] == [5, 25, 110] and result["first_origin"] == 109
    assert result["n_origins"] == test.size - 5 - 109
    garch, naive = result["models"]["garch"], result["models"]["naive"]
    # The true model class beats the last realized volatility, significantly, by QLIKE.
    assert garch["qlike"] < naive["qlike"] and garch["dm_qlike_stat"] < 0 and garch["dm_qlike_p_holm"] < 0.05
    assert naive["dm_qlike_p"] is None
    for row in result["models"].values():
        assert row["qlike"] >= 0 and row["mse"] > 0
    table = volatility_table(result)
    assert table.count("\n| ") == 5 and "garch" in table


def test_forecasts_are_causal_and_train_only() -> None:
    """Changing test returns after origin k changes no forecast made at or before k; the fits see train only."""
    returns = simulate_garch(2500, seed=3)
    train, test = returns[:1500], returns[1700:]
    base = volatility_forecasts(train, test, horizon=3)
    k = 400
    perturbed = test.copy()
    perturbed[k + 1 :] *= 3.0
    other = volatility_forecasts(train, perturbed, horizon=3)
    assert other.params == base.params
    upto = base.origins <= k
    for name in base.forecasts:
        # The very same computation on the unchanged prefix: exact equality.
        np.testing.assert_array_equal(other.forecasts[name][upto], base.forecasts[name][upto])
        assert not np.array_equal(other.forecasts[name], base.forecasts[name]) or name == "historical_mean"


def test_bad_arguments_are_named() -> None:
    returns = simulate_garch(600, seed=4)
    with pytest.raises(ConfigError, match="horizon"):
        evaluate_volatility_forecasts(returns[:400], returns[400:], horizon=0)
    with pytest.raises(DataError, match="test_returns has 20 bars"):
        evaluate_volatility_forecasts(returns[:400], returns[400:420], horizon=1)
    with pytest.raises(ConfigError, match="har_lags"):
        HARRV.fit(returns, horizon=1, lags=(5, 1, 22))
