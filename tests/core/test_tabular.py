"""Tabular forecasters (ridge, logistic, gradient boosting) on lagged returns + wavelet-energy features, and the
train-window augmentation: known answers, learning, JSON round trips, refit determinism, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.models import (
    GradientBoostingForecaster,
    LogisticDirection,
    RidgeForecaster,
    augment_windows,
    tabular_features,
    wavelet_features,
)

T = 32


def test_haar_energies_are_a_parseval_split_of_the_window():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, T))
    energy = np.exp(wavelet_features(x, "haar", level=3))  # bands: approx (4), details 4, 8, 16 coefficients
    counts = np.array([4, 4, 8, 16])
    # Orthonormal DWT: band energies add up to the window's energy (float rounding only).
    np.testing.assert_allclose(energy @ counts, (x**2).sum(axis=1), rtol=1e-9)
    alternating = np.tile([1.0, -1.0], T // 2)[None]
    finest = np.exp(wavelet_features(alternating, "haar", level=3))[0]
    assert finest[-1] == pytest.approx(2.0) and np.all(finest[:-1] < 1e-10)  # all in the finest details

    cwt = wavelet_features(x, "cwt", n_scales=6)
    assert cwt.shape == (5, 6) and np.isfinite(cwt).all()
    slow = np.sin(2 * np.pi * np.arange(T) / T)[None]
    fast = np.tile([1.0, -1.0], T // 2)[None]
    # Scales run from Nyquist (fine) to the window (coarse): the energy peak follows the frequency.
    assert np.argmax(wavelet_features(fast, "cwt", n_scales=6)) < np.argmax(wavelet_features(slow, "cwt", n_scales=6))
    assert tabular_features(x, lags=4, wavelet="none").tolist() == x[:, -4:].tolist()
    assert tabular_features(x, lags=4).shape == (5, 4 + 5)  # default level min(4, 5) -> 5 bands


def _momentum(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows (scaled like daily returns) whose next-h return follows the last 3 returns plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T)) * 0.01
    target = 0.5 * x[:, -3:].sum(axis=1) + rng.standard_normal(n) * 0.005
    return x, target


def test_ridge_learns_and_round_trips():
    x, target = _momentum(1200, seed=0)
    model = RidgeForecaster(alpha=1.0, lags=5).fit(x[:800], target[:800])
    forecast = model.predict(x[800:])
    mse, naive = np.mean((forecast - target[800:]) ** 2), np.mean(target[800:] ** 2)
    assert mse < 0.5 * naive
    assert model.count_parameters() == 5 + 5 + 1  # 5 lags, 5 Haar bands (level 4), intercept
    clone = RidgeForecaster.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_array_equal(clone.predict(x[800:]), forecast)
    with pytest.raises(DataError, match="window_length"):
        model.predict(np.zeros((2, T + 1)))


def test_logistic_two_and_three_classes_round_trip():
    x, target = _momentum(1200, seed=1)
    band = np.quantile(np.abs(target[:800]), 1 / 3)
    y3 = np.where(target >= band, 2, np.where(target <= -band, 0, 1))
    for y in ((target > 0).astype(int), y3):
        model = LogisticDirection(lags=5, wavelet="cwt", n_scales=4).fit(x[:800], y[:800])
        proba = model.predict_proba(x[800:])
        assert proba.shape == (400, y.max() + 1)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
        assert (proba.argmax(1) == y[800:]).mean() > (0.8 if y.max() == 1 else 0.6)
        assert model.count_parameters() == (1 if y.max() == 1 else 3) * (5 + 4 + 1)  # 5 lags, 4 CWT scales, bias
        clone = LogisticDirection.from_dict(json.loads(json.dumps(model.to_dict())))
        np.testing.assert_array_equal(clone.predict_proba(x[800:]), proba)
    with pytest.raises(DataError, match="class"):
        LogisticDirection().fit(x[:50], np.zeros(50, dtype=int))


@pytest.mark.parametrize("task", ["direction", "return"])
def test_gradient_boosting_is_deterministic_and_refits_from_json(task):
    x, target = _momentum(600, seed=2)
    y = (target > 0).astype(int) if task == "direction" else target
    knobs = {"task": task, "max_iter": 30, "lags": 5, "seed": 3}
    model = GradientBoostingForecaster(**knobs).fit(x[:400], y[:400])
    again = GradientBoostingForecaster(**knobs).fit(x[:400], y[:400])
    # Same data, config and seed, same machine and threads: the very same computation, so exact.
    np.testing.assert_array_equal(again.predict(x[400:]), model.predict(x[400:]))
    params = json.loads(json.dumps(model.to_dict()))
    refit = GradientBoostingForecaster.from_dict(params, x[:400], y[:400])
    np.testing.assert_array_equal(refit.predict(x[400:]), model.predict(x[400:]))
    assert model.count_parameters() > 0
    if task == "direction":
        assert (model.predict(x[400:]) == y[400:]).mean() > 0.7
        assert model.predict_proba(x[400:]).shape == (200, 2)
    else:
        assert np.mean((model.predict(x[400:]) - y[400:]) ** 2) < 0.7 * np.mean(y[400:] ** 2)
    with pytest.raises(DataError, match="fingerprint"):
        GradientBoostingForecaster.from_dict(params, x[1:401], y[1:401])


def test_feature_errors():
    with pytest.raises(ConfigError, match="wavelet"):
        wavelet_features(np.zeros((2, T)), "db4")
    with pytest.raises(ConfigError, match="level"):
        wavelet_features(np.zeros((2, T)), "haar", level=9)
    with pytest.raises(ConfigError, match="lags"):
        tabular_features(np.zeros((2, T)), lags=T + 1)
    with pytest.raises(DataError, match="finite"):
        wavelet_features(np.full((2, T), np.nan))
    with pytest.raises(ConfigError, match="task"):
        GradientBoostingForecaster(task="volatility")


def test_augment_windows_keeps_the_end_and_the_signs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, T)).astype(np.float32)
    out = augment_windows(x, np.random.default_rng(1), shift=6, jitter=0.2)
    assert out.shape == x.shape and out.dtype == x.dtype and not np.shares_memory(out, x)
    scale = out[:, -1] / x[:, -1]
    assert np.all(scale > 0) and scale.std() > 0.05  # a positive factor per window: every sign kept
    # The last T - 6 returns are the originals times that window's factor (float32 rounding).
    np.testing.assert_allclose(out[:, 6:], x[:, 6:] * scale[:, None], rtol=1e-5)
    dropped = (out == 0).sum(axis=1)
    assert dropped.min() == 0 and dropped.max() == 6 and np.all(out[:, :6][out[:, :6] != 0] != 0)
    for row in range(200):  # the zeros are the oldest returns: a prefix
        assert np.all(out[row, : dropped[row]] == 0)
    again = augment_windows(x, np.random.default_rng(1), shift=6, jitter=0.2)
    np.testing.assert_array_equal(again, out)
    np.testing.assert_array_equal(augment_windows(x, rng), x)
    with pytest.raises(ConfigError, match="shift"):
        augment_windows(x, rng, shift=T)
    with pytest.raises(ConfigError, match="jitter"):
        augment_windows(x, rng, jitter=-1)
