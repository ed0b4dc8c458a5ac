"""simulate_mjd and load_sp500: reproducible, honest bars that satisfy the OHLCV contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from wavefin_core.data import OHLCV_COLUMNS, load_sp500, simulate_mjd
from wavefin_core.data.simulate import DAILY_DT, MINUTE_DT
from wavefin_core.errors import ConfigError


def assert_contract(df: pd.DataFrame) -> None:
    assert isinstance(df.index, pd.DatetimeIndex)
    assert df.index.name == "timestamp"
    assert str(df.index.tz) == "UTC"
    assert list(df.columns) == list(OHLCV_COLUMNS)
    assert all(dtype == np.float64 for dtype in df.dtypes)
    assert df.index.is_monotonic_increasing and df.index.is_unique


def assert_honest_bars(df: pd.DataFrame) -> None:
    prices = df[["open", "high", "low", "close"]].to_numpy()
    assert np.isfinite(prices).all() and (prices > 0).all()
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
    assert (df["volume"] > 0).all()


def close_log_returns(df: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(df["close"].to_numpy()))


def test_same_seed_same_frame_other_seed_differs() -> None:
    a = simulate_mjd(days=2, seed=7)
    pd.testing.assert_frame_equal(a, simulate_mjd(days=2, seed=7))
    assert not np.allclose(a["close"], simulate_mjd(days=2, seed=8)["close"])


def test_minute_length_spacing_and_contract() -> None:
    df = simulate_mjd(days=3, start="2023-05-01")
    assert_contract(df)
    assert_honest_bars(df)
    assert len(df) == 3 * 1440
    assert df.index[0] == pd.Timestamp("2023-05-01", tz="UTC")
    assert (np.diff(df.index.asi8) == 60 * 10**9).all()
    json.dumps(df.attrs)  # attrs are persisted: must be plain JSON types


def test_daily_bars_are_business_days() -> None:
    df = simulate_mjd(days=30, freq="daily", start="2022-01-01")  # a Saturday
    assert_contract(df)
    assert_honest_bars(df)
    assert len(df) == 30
    assert df.index[0] == pd.Timestamp("2022-01-03", tz="UTC")
    assert (df.index.dayofweek < 5).all()


@pytest.mark.parametrize(("freq", "days", "dt"), [("minute", 10, MINUTE_DT), ("daily", 4000, DAILY_DT)])
def test_gbm_limit_return_std_matches_sigma(freq: str, days: int, dt: float) -> None:
    sigma = 0.3
    returns = close_log_returns(simulate_mjd(days=days, freq=freq, sigma=sigma, lam=0.0, seed=3))
    expected = sigma * math.sqrt(dt)
    # Relative standard error of a sample std is ~1/sqrt(2n) (< 1.2% here); 5% is > 4 standard errors.
    assert abs(returns.std() / expected - 1) < 0.05
    assert abs(stats.kurtosis(returns)) < 0.3  # Gaussian without jumps


def test_zero_volatility_follows_the_drift_exactly() -> None:
    mu, s0 = 0.1, 50.0
    df = simulate_mjd(days=20, freq="daily", mu=mu, sigma=0.0, lam=0.0, s0=s0)
    bar_end_times = np.arange(1, 21) * DAILY_DT
    np.testing.assert_allclose(df["close"].to_numpy(), s0 * np.exp(mu * bar_end_times), rtol=1e-12)


def test_jumps_fatten_the_tails() -> None:
    jumpy = close_log_returns(simulate_mjd(days=3000, freq="daily", lam=50.0, jump_std=0.05, seed=1))
    assert stats.kurtosis(jumpy) > 2.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"days": 0}, "days"),
        ({"days": 2.5}, "days"),
        ({"sigma": -0.1}, "sigma"),
        ({"lam": -1.0}, "lam"),
        ({"jump_std": -0.01}, "jump_std"),
        ({"freq": "hourly"}, "freq"),
        ({"s0": 0.0}, "s0"),
        ({"start": "not a date"}, "start"),
    ],
)
def test_invalid_arguments_name_the_parameter(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}="):
        simulate_mjd(**kwargs)


def test_sp500_bundled_series_meets_contract() -> None:
    from arch.data import sp500

    raw = sp500.load()
    df = load_sp500()
    assert_contract(df)
    assert len(df) == len(raw) > 5000
    np.testing.assert_array_equal(df["close"].to_numpy(), raw["Close"].to_numpy())  # Close, not Adj Close
    assert df.index[0] == pd.Timestamp(raw.index[0]).tz_localize("UTC")
    assert (df[["open", "high", "low", "close"]] > 0).all().all()


# --- the planted-signal series -------------------------------------------------------------------------------
def test_planted_is_reproducible_honest_and_daily() -> None:
    from wavefin_core.data.simulate import simulate_planted

    df, regime = simulate_planted(days=3000, seed=4, return_regime=True)
    pd.testing.assert_frame_equal(df, simulate_planted(days=3000, seed=4))
    assert not np.allclose(df["close"], simulate_planted(days=3000, seed=5)["close"])
    assert_contract(df)
    assert_honest_bars(df)
    assert len(df) == 3000 and df.index[0] == pd.Timestamp("2000-01-03", tz="UTC")
    assert (df.index.dayofweek < 5).all()
    json.dumps(df.attrs)
    assert set(np.unique(regime)) == {0, 1}


def test_planted_direction_follows_the_volatility_regime_not_the_last_move() -> None:
    """The planted mechanism itself (ground truth, no model): the regime of the last bar sets the next sign,
    the regime shows as volatility, and neither naive rule gets close to it."""
    from wavefin_core.data.simulate import PLANTED_SIGMA_CALM, PLANTED_SIGMA_TURBULENT, simulate_planted

    df, regime = simulate_planted(days=20000, seed=1, start="1950-01-02", return_regime=True)
    r = np.diff(np.log(df["close"].to_numpy()))
    regime = regime[1:]  # regime of the bar each return ends at
    up = (r > 0).astype(int)
    regime_rule = np.mean(up[1:] == regime[:-1])
    previous = np.mean(up[1:] == up[:-1])
    majority = max(up.mean(), 1 - up.mean())
    # 20,000 draws: sampling sd of each rate ~0.003, so 0.05 margins are > 10 sd
    assert regime_rule > 0.80 and regime_rule - previous > 0.10 and regime_rule - majority > 0.15
    np.testing.assert_allclose([r[regime == 0].std(), r[regime == 1].std()],
                               [PLANTED_SIGMA_CALM, PLANTED_SIGMA_TURBULENT], rtol=0.1)  # + the ±signal drift
    assert abs(r.mean()) < 3e-3  # drifts cancel: no trend to ride


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"days": 1}, "days"), ({"signal": -1.0}, "signal"), ({"reversal": 1.0}, "reversal"),
     ({"calm_length": 1}, "calm_length"), ({"seed": -1}, "seed"), ({"days": 100000}, "days=100000"),
     ({"start": "not a date"}, "start")],
)
def test_planted_bad_arguments_name_the_field(kwargs: dict, field: str) -> None:
    from wavefin_core.data.simulate import simulate_planted

    with pytest.raises(ConfigError, match=f"^{field}"):
        simulate_planted(**kwargs)
