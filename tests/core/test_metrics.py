"""Metrics and significance tests: checked against scipy/statsmodels and on data with known properties."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.diagnostic import acorr_ljungbox
from statsmodels.tsa.stattools import acf as sm_acf

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.evaluation.metrics import (
    batch_acf,
    classification_metrics,
    discriminative_score,
    distribution_distances,
    predictive_score,
    regression_metrics,
    return_stats,
    stylized_facts,
)
from wavefin_core.evaluation.stats_tests import binomial_test, diebold_mariano


def _gjr_windows(n_windows: int, w: int, seed: int) -> np.ndarray:
    """Returns with volatility clustering, leverage and heavy tails (GJR-GARCH, Student-t)."""
    rng = np.random.default_rng(seed)
    n = n_windows * w + 500
    z = rng.standard_t(6, n) / np.sqrt(1.5)
    r = np.zeros(n)
    s2 = 1.0
    for t in range(1, n):
        s2 = 0.02 + 0.9 * s2 + (0.02 + 0.12 * (r[t - 1] < 0)) * r[t - 1] ** 2
        r[t] = np.sqrt(s2) * z[t]
    return r[500:].reshape(n_windows, w) * 0.01


# ------------------------------------------------------------------------------------- stats tests
@pytest.mark.parametrize(("k", "n"), [(55, 100), (60, 100), (7, 10), (0, 5), (530, 1000)])
def test_binomial_matches_scipy(k: int, n: int) -> None:
    assert binomial_test(k, n) == pytest.approx(stats.binomtest(k, n, 0.5).pvalue, rel=1e-12)
    assert np.isnan(binomial_test(0, 0))


def test_dm_detects_clearly_better_forecast() -> None:
    rng = np.random.default_rng(0)
    y = rng.standard_normal(300)
    good, bad = y + 0.3 * rng.standard_normal(300), y + 1.0 * rng.standard_normal(300)
    stat, p = diebold_mariano(y - good, y - bad, horizon=1)
    assert stat < 0 and p < 1e-6
    stat2, p2 = diebold_mariano(y - bad, y - good, horizon=1)  # antisymmetric
    assert stat2 == pytest.approx(-stat) and p2 == pytest.approx(p)


def test_dm_equal_quality_is_not_significant() -> None:
    ps = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        y = rng.standard_normal(400)
        _, p = diebold_mariano(y - (y + rng.standard_normal(400)), y - (y + rng.standard_normal(400)), horizon=3)
        ps.append(p)
    assert np.median(ps) > 0.2
    assert diebold_mariano(np.ones(10), np.ones(10)) == (0.0, 1.0)


def test_dm_matches_hand_formula_with_hac_lags() -> None:
    rng = np.random.default_rng(3)
    e1, e2 = rng.standard_normal(120), 1.1 * rng.standard_normal(120)
    d = e1**2 - e2**2
    n, h = d.size, 3
    dc = d - d.mean()
    g = [dc[k:] @ dc[: n - k] / n for k in range(h)]
    dm = d.mean() / np.sqrt((g[0] + 2 * (g[1] + g[2])) / n)
    stat_ref = dm * np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    stat, p = diebold_mariano(e1, e2, horizon=h)
    assert stat == pytest.approx(stat_ref, rel=1e-10)
    assert p == pytest.approx(2 * stats.t.sf(abs(stat_ref), n - 1), rel=1e-10)
    with pytest.raises(ConfigError, match="loss"):
        diebold_mariano(e1, e2, loss="huber")


# ---------------------------------------------------------------------------------- forecast metrics
def test_classification_metrics() -> None:
    y = np.array([1, 1, 1, 1, 0, 0, 1, 1, 0, 1])
    always_up = classification_metrics(y, np.ones(10, dtype=int))
    assert always_up["accuracy"] == 0.7 and always_up["balanced_accuracy"] == 0.5
    assert always_up["macro_f1"] == pytest.approx((0 + 2 * 0.7 / 1.7) / 2)
    assert always_up["binomial_p"] == pytest.approx(stats.binomtest(7, 10).pvalue)
    assert "roc_auc" not in always_up
    perfect = classification_metrics(y, y, proba=y * 0.8 + 0.1)
    assert perfect["accuracy"] == 1.0 and perfect["roc_auc"] == 1.0 and perfect["n"] == 10
    with pytest.raises(DataError, match="y_true has 10"):
        classification_metrics(y, y[:5])


def test_regression_metrics_and_directional_accuracy() -> None:
    rng = np.random.default_rng(1)
    y = rng.standard_normal(500)
    good = regression_metrics(y, y + 0.1 * rng.standard_normal(500), naive_pred=np.zeros(500))
    assert good["rmse"] < good["naive_rmse"] and good["dm_stat"] < 0 and good["dm_p"] < 1e-6
    assert good["directional_accuracy"] > 0.9
    m = regression_metrics([1.0, -1.0, 2.0, 0.5], [0.5, 0.0, -1.0, 0.1])
    assert m["n_directional"] == 3 and m["directional_accuracy"] == pytest.approx(2 / 3)
    assert m["mae"] == pytest.approx((0.5 + 1 + 3 + 0.4) / 4) and "dm_p" not in m


# --------------------------------------------------------------------------------------- return stats
def test_return_stats_student_t_iid() -> None:
    r = np.random.default_rng(5).standard_t(5, 5000) * 0.01
    s = return_stats(r, nlags=10)
    assert s["excess_kurtosis"] > 1.5
    assert np.max(np.abs(s["acf"][1:])) < 0.05 and np.max(np.abs(s["acf_abs"][1:])) < 0.05
    np.testing.assert_allclose(s["acf"], sm_acf(r, nlags=10, fft=True), atol=1e-12)
    lb = acorr_ljungbox(r, lags=[10])
    assert s["ljung_box_p"] == pytest.approx(float(lb["lb_pvalue"].iloc[0]), rel=1e-8)
    assert s["ljung_box_p"] > 0.01 and np.all(np.abs(s["leverage"]) < 0.05)


def test_return_stats_leverage_negative() -> None:
    rng = np.random.default_rng(2)
    r = np.zeros(4000)
    for t in range(1, 4000):  # a down move raises the next volatility
        r[t] = (1.0 + 1.5 * (r[t - 1] < 0)) * rng.standard_normal()
    s = return_stats(r)
    assert s["leverage"][0] < -0.1
    assert s["ljung_box_p"] > 1e-3  # r itself stays (nearly) uncorrelated
    clustered = return_stats(_gjr_windows(40, 100, seed=1).ravel())
    assert clustered["ljung_box_abs_p"] < 1e-6 and clustered["acf_abs"][1] > 0.1


def test_batch_acf_matches_statsmodels_per_row() -> None:
    w = np.random.default_rng(4).standard_normal((3, 30))
    ours = batch_acf(w, 5)
    for i in range(3):
        np.testing.assert_allclose(ours[i], sm_acf(w[i], nlags=5, fft=False), atol=1e-12)


def test_stylized_facts_real_like_vs_gaussian() -> None:
    facts = stylized_facts(_gjr_windows(150, 64, seed=0))
    assert all(facts.values()), facts
    gauss = stylized_facts(np.random.default_rng(0).standard_normal((150, 64)))
    assert gauss["no_linear_autocorrelation"] and not gauss["heavy_tails"]
    assert not gauss["volatility_clustering"] and not gauss["leverage_effect"]


# ------------------------------------------------------------------------------ generation metrics
def test_distribution_distances_zero_for_identical_and_grow_with_scale() -> None:
    real = np.random.default_rng(0).standard_t(5, (300, 32)) * 0.01
    same = distribution_distances(real, real)
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in same.values())
    mdds = [distribution_distances(real, real * s)["mdd"] for s in (1.2, 1.5, 3.0)]
    assert 0 < mdds[0] < mdds[1] < mdds[2]
    gauss = distribution_distances(real, np.random.default_rng(1).standard_normal((300, 32)) * real.std())
    assert gauss["kd"] > 1.0
    with pytest.raises(DataError, match="window_length"):
        distribution_distances(real, real[:, :16])


def test_discriminative_score() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((400, 32)), rng.standard_normal((500, 32))
    same = discriminative_score(a, b, seed=0)
    assert same["discriminative_score"] < 0.1
    diff = discriminative_score(a, 2.0 * b, seed=0)
    assert diff["discriminative_score"] > 0.35
    assert discriminative_score(a, 2.0 * b, seed=0) == diff  # seeded


def test_predictive_score_penalises_synthetic_without_dynamics() -> None:
    rng = np.random.default_rng(0)

    def ar_windows(n: int) -> np.ndarray:
        e = rng.standard_normal((n, 40))
        x = np.zeros_like(e)
        for t in range(1, 40):
            x[:, t] = 0.7 * x[:, t - 1] + e[:, t]
        return x[:, 20:]

    real_train, real_test = ar_windows(400), ar_windows(200)
    good = predictive_score(real_train, ar_windows(400), real_test)
    assert good["predictive_mae_ratio"] == pytest.approx(1.0, abs=0.05)
    iid = predictive_score(real_train, rng.standard_normal((400, 20)) * real_train.std(), real_test)
    assert iid["predictive_mae_synth"] > 1.15 * iid["predictive_mae_real"]
