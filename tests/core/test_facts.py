"""Stylized facts with known answers: AR(1) ACF, Student-t tail index, white-noise Hurst exponent, GJR vs
GARCH leverage (simulated with `arch` itself), and the present-and-within-tolerance rule of compare_facts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from arch.univariate import GARCH, StudentsT, ZeroMean

from wavefin_core.errors import DataError
from wavefin_core.evaluation.facts import (
    FACT_PRESENCE,
    FACT_TOLERANCES,
    FACTS,
    acf,
    aggregated_kurtosis,
    compare_facts,
    gain_loss_asymmetry,
    hill_tail_index,
    hurst_exponent,
    leverage_curve,
    present_in_real,
    psd_distance,
    stylized_facts,
    within_tolerance,
)


def _garch_t(seed: int, n: int, gamma: float) -> np.ndarray:
    """GJR-GARCH(1,1)-t returns from `arch` (gamma = 0: plain GARCH); persistence 0.98 in both cases."""
    model = ZeroMean(None, volatility=GARCH(p=1, o=1, q=1), distribution=StudentsT(seed=np.random.default_rng(seed)))
    alpha = 0.08 - gamma / 2
    return model.simulate([0.02, alpha, gamma, 0.9, 6.0], n, burn=500)["data"].to_numpy().copy()


def _ar1(phi: float, shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((shape[0], shape[1] + 100))
    x = np.zeros_like(e)
    for t in range(1, e.shape[1]):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x[:, 100:]  # burn-in: every window starts in the stationary distribution


def test_fact_tables_cover_every_fact() -> None:
    assert set(FACT_TOLERANCES) == set(FACTS) == set(FACT_PRESENCE)
    assert len(set(FACTS)) == len(FACTS) and all(f == f.lower() and " " not in f for f in FACTS)


def test_acf_of_ar1_is_phi_to_the_lag() -> None:
    a = acf(_ar1(0.5, (1000, 64), seed=0), 3)
    # 64k values: sampling std of the lag-1 ACF ~ sqrt((1 - phi^2) / n) ~ 0.004 (overlap-free windows).
    assert a[0] == 1.0
    assert a[1] == pytest.approx(0.5, abs=0.02)
    assert a[2] == pytest.approx(0.25, abs=0.02)
    assert acf(np.ones((3, 10)), 2).tolist() == [1.0, 0.0, 0.0]


def test_hill_index_of_student_t3_is_3() -> None:
    x = np.random.default_rng(0).standard_t(3, 20_000)
    assert hill_tail_index(x) == pytest.approx(3.0, rel=0.15)
    gauss = hill_tail_index(np.random.default_rng(1).standard_normal(20_000))
    assert gauss > 6.0 and not present_in_real("hill_tail_index", gauss)
    with pytest.raises(DataError, match="tail_fraction"):
        hill_tail_index(x, tail_fraction=0.7)


def test_hurst_of_white_noise_is_half_and_moves_the_right_way() -> None:
    rng = np.random.default_rng(0)
    assert hurst_exponent(rng.standard_normal((1000, 64))) == pytest.approx(0.5, abs=0.03)
    assert hurst_exponent(rng.standard_normal(20_000)) == pytest.approx(0.5, abs=0.03)
    assert hurst_exponent(_ar1(0.9, (300, 64), seed=1)) > 0.7  # persistent at these scales
    assert hurst_exponent(np.diff(rng.standard_normal((300, 65)), axis=1)) < 0.3  # anti-persistent


def test_gjr_garch_shows_leverage_and_garch_does_not() -> None:
    gjr = _garch_t(seed=1, n=64_000, gamma=0.12).reshape(1000, 64)
    garch = _garch_t(seed=2, n=64_000, gamma=0.0).reshape(1000, 64)
    lev_gjr, lev_garch = leverage_curve(gjr, 10), leverage_curve(garch, 10)
    assert lev_gjr.shape == (10,) and lev_gjr.mean() < -0.025 and lev_gjr[0] < -0.04
    assert abs(lev_garch.mean()) < 0.015
    assert present_in_real("leverage", float(lev_gjr.mean()))
    assert not present_in_real("leverage", float(lev_garch.mean()))
    # corr(r_t, r_{t+k}^2) (the variance proxy), not |r|: check lag 2 by hand on the pooled pairs
    by_hand = np.corrcoef(gjr[:, :-2].ravel(), (gjr[:, 2:] ** 2).ravel())[0, 1]
    assert lev_gjr[1] == pytest.approx(by_hand, rel=1e-12)


def test_psd_distance_is_shape_only() -> None:
    rng = np.random.default_rng(4)
    white = rng.standard_normal((500, 64))
    assert psd_distance(white, 5.0 * white) == pytest.approx(0.0, abs=1e-12)
    assert psd_distance(white, rng.standard_normal((500, 64))) < 0.2
    assert psd_distance(white, _ar1(0.5, (500, 64), seed=5)) > 0.5  # red spectrum vs flat


def test_aggregational_gaussianity_and_gain_loss_asymmetry() -> None:
    rng = np.random.default_rng(6)
    iid = rng.standard_t(6, (2000, 64))  # excess kurtosis 3; a sum of k i.i.d. steps has 3 / k
    k1, k5, k20 = (aggregated_kurtosis(iid, k) for k in (1, 5, 20))
    assert k1 > 2.0 and k5 < 0.5 * k1 and k20 < 0.5
    assert aggregated_kurtosis(iid, 1) == pytest.approx(stylized_facts(iid)["excess_kurtosis"], rel=1e-12)
    assert abs(gain_loss_asymmetry(rng.standard_normal((500, 64)))) < 0.05
    assert gain_loss_asymmetry(-rng.gamma(2.0, size=(500, 64))) > 0.3  # long left tail: losses larger


def test_stylized_facts_gives_every_fact_as_a_float() -> None:
    f = stylized_facts(_garch_t(seed=3, n=32_000, gamma=0.12).reshape(500, 64))
    assert list(f) == list(FACTS)
    assert all(isinstance(v, float) and math.isfinite(v) for v in f.values())
    assert f["excess_kurtosis"] > 1 and f["acf_abs_r_mean_1_20"] > 0.05 and f["hurst_exponent_abs_r"] > 0.52


def test_compare_facts_counts_only_facts_present_in_real() -> None:
    real = _garch_t(seed=1, n=64_000, gamma=0.12).reshape(1000, 64)
    twin = compare_facts(real, _garch_t(seed=4, n=64_000, gamma=0.12).reshape(1000, 64))
    gauss = compare_facts(real, np.random.default_rng(0).standard_normal((1000, 64)) * real.std())
    assert list(twin) == list(FACTS) and set(twin["leverage"]) == {"real", "synthetic", "reproduced"}
    for fact in ("hill_tail_index", "acf_abs_r_mean_1_20", "leverage", "acf_r_max_abs_1_20"):
        assert twin[fact]["reproduced"], (fact, twin[fact])
    for fact in ("excess_kurtosis", "hill_tail_index", "acf_abs_r_mean_1_20", "leverage"):
        assert not gauss[fact]["reproduced"], (fact, gauss[fact])
    # an absent fact is never "reproduced", even when the synthetic value equals the real one
    white = np.random.default_rng(1).standard_normal((300, 64))
    same = compare_facts(white, white)
    assert not same["leverage"]["reproduced"] and not same["excess_kurtosis"]["reproduced"]
    assert same["acf_r_lag1"]["reproduced"]  # "no linear autocorrelation" is present in white noise
    assert same["psd_distance"]["synthetic"] == 0.0


def test_presence_and_tolerance_rules() -> None:
    assert present_in_real("kurtosis_agg_5", 2.0, {"kurtosis_agg_1": 6.0})
    assert not present_in_real("kurtosis_agg_5", 7.0, {"kurtosis_agg_1": 6.0})  # no decline with aggregation
    assert not present_in_real("kurtosis_agg_5", 2.0)  # a relation: needs the real kurtosis_agg_1
    assert not present_in_real("hill_tail_index", float("inf"))
    with pytest.raises(DataError, match="known facts"):
        present_in_real("fat_tails", 1.0)
    assert within_tolerance("excess_kurtosis", 6.0, 9.0) and not within_tolerance("excess_kurtosis", 6.0, 9.6)
    assert within_tolerance("psd_distance", 0.10, 0.0) and not within_tolerance("psd_distance", 0.10, 0.16)
    with pytest.raises(DataError, match="window_length"):
        compare_facts(np.zeros((5, 64)), np.zeros((5, 32)))
