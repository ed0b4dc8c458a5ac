"""Baselines: direction labels with a flat band, naive forecasts (return and direction), ARIMA (fixed or
AIC-chosen order, fitted params only, exact vs statsmodels), logistic; JSON round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from statsmodels.tsa.arima.model import ARIMA

from wavefin_core.baselines import (
    ArimaForecaster,
    LogisticBaseline,
    direction_labels,
    fit_flat_band,
    naive_forecasts,
)
from wavefin_core.errors import ConfigError, DataError


def _arma(n: int, phi: float, theta: float, mu: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n + 200) * 0.01
    u = np.zeros(n + 200)
    for t in range(1, n + 200):
        u[t] = phi * u[t - 1] + e[t] + theta * e[t - 1]
    return mu + u[200:]


@pytest.fixture(scope="module")
def ar1() -> np.ndarray:
    return _arma(2400, 0.5, 0.0, 0.0005, seed=0)


@pytest.fixture(scope="module")
def arma_model() -> ArimaForecaster:
    model = ArimaForecaster().fit(_arma(800, 0.5, 0.3, 0.0005, seed=1), order=(1, 0, 1))
    assert model.fallback_reason is None
    return model


def test_naive_forecasts_structure_and_values() -> None:
    w = np.array([[0.1, -0.3, 0.2], [0.1, 0.2, -0.1], [0.0, -0.1, -0.2]])
    out = naive_forecasts(np.array([1, 1, 0, 1]), w, horizon=2)
    assert set(out) == {"return", "direction"}
    np.testing.assert_array_equal(out["return"]["zero_return"], np.zeros(3))
    np.testing.assert_array_equal(out["direction"]["previous_direction"], [0, 1, 0])  # -0.1, 0.1, -0.3
    np.testing.assert_array_equal(out["direction"]["majority_class"], [1, 1, 1])
    assert naive_forecasts(np.array([0, 0, 1]), w, 1)["direction"]["majority_class"].tolist() == [0, 0, 0]
    with pytest.raises(ConfigError, match="horizon"):
        naive_forecasts(np.array([1]), w, horizon=4)


def test_arima_recovers_ar1_phi(ar1: np.ndarray) -> None:
    m = ArimaForecaster().fit(ar1[:2000], order=(1, 0, 0))
    assert m.fallback_reason is None
    assert abs(m.params["ar.L1"] - 0.5) < 0.05
    assert abs(m.params["const"] - 0.0005) < 0.002


HAND_SET = {
    (1, 0, 0): {"const": 0.001, "ar.L1": -0.4, "sigma2": 1e-4},
    (0, 0, 1): {"const": -0.002, "ma.L1": 0.7, "sigma2": 1e-4},
    (2, 0, 2): {"const": 0.0, "ar.L1": 0.5, "ar.L2": -0.3, "ma.L1": 0.4, "ma.L2": 0.2, "sigma2": 2e-4},
}


def _check_against_statsmodels(m: ArimaForecaster, windows: np.ndarray, h: int) -> None:
    ours = m.forecast(windows, h)
    params = np.array(list(m.params.values()))
    for i in range(0, len(windows), 2):  # statsmodels' own Kalman filter on the window, same fixed params
        ref = ARIMA(windows[i], order=m.order, trend="c").filter(params).forecast(h).sum()
        assert ours[i] == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("order", sorted(HAND_SET))
def test_vectorised_forecast_matches_statsmodels(order: tuple[int, int, int], ar1: np.ndarray) -> None:
    m = ArimaForecaster.from_dict({"order": list(order), "params": HAND_SET[order], "train_mean": 0.0})
    _check_against_statsmodels(m, np.lib.stride_tricks.sliding_window_view(ar1[2000:], 40)[::50], h=3)


def test_fitted_forecast_matches_statsmodels(arma_model: ArimaForecaster, ar1: np.ndarray) -> None:
    _check_against_statsmodels(arma_model, np.lib.stride_tricks.sliding_window_view(ar1[2000:], 24)[::60], h=1)


def test_forecast_uses_fitted_params_only(arma_model: ArimaForecaster, ar1: np.ndarray) -> None:
    before = dict(arma_model.params)
    test = np.lib.stride_tricks.sliding_window_view(ar1[2000:], 32)[::20]
    f1 = arma_model.forecast(test, 5)
    other = np.random.default_rng(9).standard_normal((50, 32)) * 0.05  # very different surrounding data
    f2 = arma_model.forecast(np.vstack([other, test[3:4], other]), 5)
    assert f2[50] == f1[3]
    assert arma_model.params == before


def test_arima_json_round_trip(arma_model: ArimaForecaster, ar1: np.ndarray) -> None:
    test = np.lib.stride_tricks.sliding_window_view(ar1[2000:], 32)[::10]
    clone = ArimaForecaster.from_dict(json.loads(json.dumps(arma_model.to_dict())))
    np.testing.assert_array_equal(clone.forecast(test, 2), arma_model.forecast(test, 2))


def test_arima_fit_failure_falls_back_to_train_mean(monkeypatch: pytest.MonkeyPatch, ar1: np.ndarray) -> None:
    def boom(self, *a, **k):
        raise ValueError("synthetic failure")

    monkeypatch.setattr(ARIMA, "fit", boom)
    with pytest.warns(RuntimeWarning, match="falling back to the train-mean"):
        m = ArimaForecaster().fit(ar1[:500])
    assert m.params is None and "synthetic failure" in m.fallback_reason
    np.testing.assert_allclose(m.forecast(np.zeros((3, 10)), 4), 4 * ar1[:500].mean())
    assert ArimaForecaster.from_dict(json.loads(json.dumps(m.to_dict()))).forecast(np.zeros((1, 5)), 1)[0] == (
        pytest.approx(ar1[:500].mean()))


def test_arima_rejects_differencing_and_bad_files() -> None:
    with pytest.raises(ConfigError, match="d=1"):
        ArimaForecaster().fit(np.zeros(100), order=(1, 1, 0))
    with pytest.raises(ConfigError, match="non-stationary"):
        ArimaForecaster.from_dict({"order": [1, 0, 0], "train_mean": 0.0,
                                   "params": {"const": 0.0, "ar.L1": 1.2, "sigma2": 1.0}})


def _momentum_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, 16)) * 0.01
    y = (w[:, -3:].sum(axis=1) + rng.standard_normal(n) * 0.005 > 0).astype(int)
    return w, y


def test_logistic_learns_and_round_trips() -> None:
    w, y = _momentum_data(1500, seed=1)
    m = LogisticBaseline(seed=0).fit(w[:1000], y[:1000])
    acc = float((m.predict(w[1000:]) == y[1000:]).mean())
    assert acc > 0.8
    clone = LogisticBaseline.from_dict(json.loads(json.dumps(m.to_dict())))
    np.testing.assert_array_equal(clone.predict_proba(w[1000:]), m.predict_proba(w[1000:]))
    p = m.predict_proba(w[1000:])
    assert p.shape == (500,) and np.all((p > 0) & (p < 1))


def test_logistic_errors() -> None:
    w, _ = _momentum_data(50, seed=2)
    with pytest.raises(DataError, match="single class"):
        LogisticBaseline().fit(w, np.ones(50, dtype=int))
    m = LogisticBaseline().fit(*_momentum_data(200, seed=3))
    with pytest.raises(DataError, match="window_length"):
        m.predict_proba(np.zeros((2, 8)))


def test_direction_labels_and_flat_band() -> None:
    r = np.array([-0.3, -0.1, 0.0, 0.05, 0.1, 0.2])
    assert direction_labels(r).tolist() == [0, 0, 0, 1, 1, 1]  # a flat move counts as down
    assert direction_labels(r, band=0.1).tolist() == [0, 0, 1, 1, 2, 2]  # |r| < band is flat; up is last
    train = np.random.default_rng(0).standard_normal(3000)
    band = fit_flat_band(train)
    counts = np.bincount(direction_labels(train, band), minlength=3) / train.size
    np.testing.assert_allclose(counts, [1 / 3, 1 / 3, 1 / 3], atol=0.02)  # the 1/3 quantile of |r|
    with pytest.raises(ConfigError, match="band"):
        direction_labels(r, band=0.0)
    with pytest.raises(DataError, match="quantile"):
        fit_flat_band(np.zeros(10))


def test_naive_forecasts_for_returns_and_three_classes() -> None:
    w = np.array([[0.1, -0.3, 0.2], [0.1, 0.2, -0.1], [0.0, -0.1, -0.2]])
    train_targets = np.array([0.02, 0.04, -0.03])
    out = naive_forecasts(np.array([1, 1, 0]), w, horizon=2, train_targets=train_targets)
    np.testing.assert_allclose(out["return"]["previous_return"], [-0.1, 0.1, -0.3])
    np.testing.assert_allclose(out["return"]["historical_mean"], [0.01] * 3)
    assert out["direction"]["historical_mean"].tolist() == [1, 1, 1]
    with_band = naive_forecasts(np.array([0, 1, 1, 2, 2]), w, 2, train_targets=train_targets, band=0.15)
    assert with_band["direction"]["previous_direction"].tolist() == [1, 1, 0]  # flat, flat, down
    assert with_band["direction"]["majority_class"].tolist() == [2, 2, 2]  # a 1-2 tie goes to the higher label
    assert with_band["direction"]["historical_mean"].tolist() == [1, 1, 1]  # 0.01 is inside the band


def test_arima_order_chosen_by_aic(ar1: np.ndarray) -> None:
    m = ArimaForecaster().fit_aic(ar1[:1000], max_p=1, max_q=1)
    assert m.order in {(1, 0, 0), (1, 0, 1)} and m.fallback_reason is None
    aic = m.selection["aic"]
    assert set(aic) == {"(0,0,0)", "(0,0,1)", "(1,0,0)", "(1,0,1)"}
    assert aic[f"({m.order[0]},0,{m.order[2]})"] == min(v for v in aic.values() if v is not None)
    assert aic["(0,0,0)"] > aic["(1,0,0)"] + 100  # phi = 0.5 on 1,000 points: white noise is far worse
    clone = ArimaForecaster.from_dict(json.loads(json.dumps(m.to_dict())))
    assert clone.selection == m.selection and clone.order == m.order
    test = np.lib.stride_tricks.sliding_window_view(ar1[2000:], 32)[::25]
    np.testing.assert_array_equal(clone.forecast(test, 3), m.forecast(test, 3))
    with pytest.raises(ConfigError, match="max_p"):
        ArimaForecaster().fit_aic(ar1[:200], max_p=9)
