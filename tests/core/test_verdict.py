"""The forecast verdict tests the right null: known answers for McNemar, Holm and the significance rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from wavefin_core.evaluation.reports import judge_direction_models, judge_return_models
from wavefin_core.evaluation.stats_tests import holm, mcnemar_exact


def _index(n: int = 691, up: float = 0.56, seed: int = 0) -> np.ndarray:
    """A held-out 'index' with exactly round(up * n) up windows, in random order."""
    y = np.zeros(n, dtype=np.int64)
    y[: int(round(up * n))] = 1
    return np.random.default_rng(seed).permutation(y)


def _naive(y: np.ndarray, seed: int = 1) -> dict[str, np.ndarray]:
    return {"majority_class": np.ones_like(y),
            "previous_direction": np.random.default_rng(seed).integers(0, 2, y.size)}


def test_mcnemar_counts_only_discordant_windows() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    a = np.array([1, 1, 1, 0, 0, 0, 0, 1])  # right on the first 6
    b = np.array([1, 0, 0, 1, 0, 0, 0, 1])  # right on 0, 4, 5
    p, a_only, b_only = mcnemar_exact(y, a, b)
    assert (a_only, b_only) == (3, 0)
    assert p == pytest.approx(stats.binomtest(3, 3, 0.5).pvalue, rel=1e-12)  # same computation path
    assert mcnemar_exact(y, a, a) == (1.0, 0, 0)


def test_holm_known_values() -> None:
    # Hand-computed: sorted p (0.01, 0.02, 0.03, 0.5) x (4, 3, 2, 1) = (0.04, 0.06, 0.06, 0.5), cumulative max.
    adjusted = holm([0.03, 0.5, 0.01, 0.02])
    np.testing.assert_allclose(adjusted, [0.06, 0.5, 0.04, 0.06], rtol=1e-12)  # float products, no other path
    assert np.isnan(holm([np.nan, 0.01])[0]) and holm([np.nan, 0.01])[1] == pytest.approx(0.02)
    assert holm([0.9, 0.8]).max() <= 1.0


def test_a_copy_of_the_majority_class_is_never_significant() -> None:
    y = _index()
    out = judge_direction_models(y, {"copy": {"pred": np.ones_like(y), "proba": None}}, _naive(y),
                                 best_naive="majority_class")
    assert out["copy"]["p_vs_best_naive"] == 1.0 and out["copy"]["balanced_accuracy"] == 0.5
    assert not out["copy"]["significant"]
    # Even when the best naive chosen on train is a weaker one, balanced accuracy 0.5 rules it out.
    out = judge_direction_models(y, {"copy": {"pred": np.ones_like(y), "proba": None}}, _naive(y),
                                 best_naive="previous_direction")
    assert out["copy"]["accuracy"] > out["previous_direction"]["accuracy"] and not out["copy"]["significant"]
    assert all(not e["significant"] for e in out.values())


def test_one_window_better_than_majority_with_auc_049_is_not_significant() -> None:
    """The issue's case: 691 windows, 56% up, a model with 1 more correct window than 'always up'."""
    y = _index()
    pred = np.ones_like(y)
    downs = np.flatnonzero(y == 0)
    ups = np.flatnonzero(y == 1)
    pred[downs[:3]] = 0  # 3 down windows now right ...
    pred[ups[:2]] = 0  # ... and 2 up windows now wrong: net +1
    proba = np.where(pred == 1, 0.6, 0.4) + np.random.default_rng(3).normal(0, 0.3, y.size)
    out = judge_direction_models(y, {"logistic": {"pred": pred, "proba": proba}}, _naive(y), "majority_class")
    e = out["logistic"]
    assert e["n_correct"] == out["majority_class"]["n_correct"] + 1
    assert e["roc_auc"] < 0.5 + 0.03  # noise-only probabilities: AUC ~0.5
    assert e["p_vs_best_naive"] == pytest.approx(1.0) and e["p_vs_majority"] > 0.9
    assert e["p_vs_50"] < 0.01  # the old null: "significant" against a coin flip
    assert not e["significant"]


def test_a_strong_model_is_significant_and_holm_counts_the_table() -> None:
    y = _index()
    rng = np.random.default_rng(4)
    strong = np.where(rng.random(y.size) < 0.75, y, 1 - y)  # right 75% of the time, both classes
    weak = np.where(np.random.default_rng(6).random(y.size) < 0.64, y, 1 - y)  # accuracy 0.622, p ~0.02
    out = judge_direction_models(y, {"strong": {"pred": strong, "proba": None}}, _naive(y), "majority_class")
    assert out["strong"]["significant"] and out["strong"]["p_holm"] < 1e-6
    assert out["strong"]["mcc"] > 0.3 and out["majority_class"]["significant"] is False

    # The weak model alone: its p is what it is; with 9 noise models in the same table Holm multiplies it.
    noise = {f"noise{i}": {"pred": rng.integers(0, 2, y.size), "proba": None} for i in range(9)}
    alone = judge_direction_models(y, {"weak": {"pred": weak, "proba": None}}, _naive(y), "majority_class")
    table = judge_direction_models(y, {"weak": {"pred": weak, "proba": None}, **noise}, _naive(y),
                                   "majority_class")
    p_raw = max(alone["weak"]["p_vs_best_naive"], alone["weak"]["p_vs_majority"])
    assert alone["weak"]["p_holm"] == p_raw
    # Holm multiplies the k-th smallest of 10 p-values by 10 - k + 1 (noise models worse than the baseline
    # also have small two-sided p-values and can rank before it): at least x5 here, and past 0.05.
    assert table["weak"]["p_holm"] >= 5 * p_raw
    assert 0.005 < p_raw < 0.05 and alone["weak"]["significant"] and not table["weak"]["significant"]
    assert not any(table[f"noise{i}"]["significant"] for i in range(9))


def test_return_verdict_needs_dm_against_every_naive_forecast() -> None:
    rng = np.random.default_rng(5)
    y = 0.3 + rng.standard_normal(500)  # drift: the historical mean beats the random walk
    naive = {"zero_return": np.zeros(500), "historical_mean": np.full(500, 0.3)}
    models = {"oracle": y + 0.3 * rng.standard_normal(500), "drift_copy": np.full(500, 0.3001)}
    out = judge_return_models(y, models, naive, horizon=1)
    assert out["oracle"]["significant"] and out["oracle"]["p_holm"] < 1e-6
    assert out["drift_copy"]["dm_p_vs_zero_return"] < 0.01  # beats the random walk ...
    assert not out["drift_copy"]["significant"]  # ... but not the historical mean
    assert not out["zero_return"]["significant"] and not out["historical_mean"]["significant"]
