"""Metrics and significance tests: checked against scipy/statsmodels and on data with known properties."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.tsa.stattools import acf as sm_acf

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.evaluation.metrics import (
    batch_acf,
    classification_metrics,
    discriminative_score,
    pooled_acf,
    regression_metrics,
)
from wavefin_core.evaluation.stats_tests import binomial_test, diebold_mariano


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


def test_classification_metrics_mcc_and_macro_scores_match_sklearn() -> None:
    from sklearn.metrics import matthews_corrcoef, precision_score, recall_score

    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 200)
    pred = np.where(rng.random(200) < 0.7, y, 1 - y)
    m = classification_metrics(y, pred)
    # Same formulas computed in a different order (counts vs sklearn's confusion matrix): float tolerance.
    assert m["mcc"] == pytest.approx(matthews_corrcoef(y, pred), rel=1e-12)
    assert m["macro_precision"] == pytest.approx(precision_score(y, pred, average="macro"), rel=1e-12)
    assert m["macro_recall"] == pytest.approx(recall_score(y, pred, average="macro"), rel=1e-12)
    assert m["macro_recall"] == pytest.approx(m["balanced_accuracy"], rel=1e-12)  # both classes present
    always_up = classification_metrics(y, np.ones(200, dtype=int))
    assert always_up["mcc"] == 0.0 and always_up["balanced_accuracy"] == 0.5  # no information, no NaN


def test_regression_metrics_and_directional_accuracy() -> None:
    rng = np.random.default_rng(1)
    y = rng.standard_normal(500)
    good = regression_metrics(y, y + 0.1 * rng.standard_normal(500), naive_pred=np.zeros(500))
    assert good["rmse"] < good["naive_rmse"] and good["dm_stat"] < 0 and good["dm_p"] < 1e-6
    assert good["directional_accuracy"] > 0.9
    m = regression_metrics([1.0, -1.0, 2.0, 0.5], [0.5, 0.0, -1.0, 0.1])
    assert m["n_directional"] == 3 and m["directional_accuracy"] == pytest.approx(2 / 3)
    assert m["mae"] == pytest.approx((0.5 + 1 + 3 + 0.4) / 4) and "dm_p" not in m


def test_mse_and_mase_against_the_random_walk() -> None:
    y = np.array([1.0, -1.0, 2.0, 0.5])
    m = regression_metrics(y, [0.5, 0.0, -1.0, 0.1])
    assert m["mse"] == pytest.approx((0.25 + 1 + 9 + 0.16) / 4) and m["rmse"] == pytest.approx(np.sqrt(m["mse"]))
    assert m["mase"] == pytest.approx(m["mae"] / (4.5 / 4))  # the random walk (zero return) has MAE mean|y|
    assert regression_metrics(y, np.zeros(4))["mase"] == 1.0
    assert np.isnan(regression_metrics(np.zeros(3), [1.0, 0.0, 0.0])["mase"])


# ---------------------------------------------------------------------------------------------- ACFs
def test_batch_acf_matches_statsmodels_per_row() -> None:
    w = np.random.default_rng(4).standard_normal((3, 30))
    ours = batch_acf(w, 5)
    for i in range(3):
        np.testing.assert_allclose(ours[i], sm_acf(w[i], nlags=5, fft=False), atol=1e-12)


def test_pooled_acf_is_the_window_set_estimator() -> None:
    w = np.random.default_rng(6).standard_normal((20, 40))
    xc = w - w.mean()
    assert pooled_acf(w, 3)[2] == pytest.approx(np.mean(xc[:, 2:] * xc[:, :-2]) / np.mean(xc**2), rel=1e-12)


# ------------------------------------------------------------------------------ generation metrics
def test_discriminative_score() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((400, 32)), rng.standard_normal((500, 32))
    same = discriminative_score(a, b, seed=0)
    assert same["discriminative_score"] < 0.1
    diff = discriminative_score(a, 2.0 * b, seed=0)
    assert diff["discriminative_score"] > 0.35
    assert discriminative_score(a, 2.0 * b, seed=0) == diff  # seeded
