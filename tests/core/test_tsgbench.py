"""TSGBench's MDD, ACD, SD, KD: pinned to values computed with TSGBench's own code, and the two properties
that set its definitions apart from the pooled ones wavefin used before (per-time-step histograms, all lags)."""

from __future__ import annotations

import numpy as np
import pytest

from wavefin_core.errors import DataError
from wavefin_core.evaluation.tsgbench import acd, kd, mdd, sd, tsgbench_distances


def _pinned_input() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    real = rng.standard_t(4, (200, 24)) * 0.01
    synth = rng.standard_normal((150, 24)) * 0.012 + 0.001
    return real, synth


# Computed on _pinned_input() (as (N, T, 1) float64 arrays) with calculate_mdd / calculate_acd / calculate_sd /
# calculate_kd of TSGBench's src/feature_based_measures.py (github.com/YihaoAng/TSGBench, commit 6606bb5),
# torch 2.13.0 CPU, numpy 2.4.6. Not re-derived from wavefin's code.
TSGBENCH_REFERENCE = {
    "mdd": 4.060383319854736,
    "acd": 0.16026633727778836,
    "sd": 0.3650819952084543,
    "kd": 11.288467238303731,
}


def test_matches_tsgbench_reference_values() -> None:
    real, synth = _pinned_input()
    ours = tsgbench_distances(real, synth)
    # MDD: TSGBench builds its bin edges and densities in float32 (torch.linspace default dtype); ours are float64.
    assert ours["mdd"] == pytest.approx(TSGBENCH_REFERENCE["mdd"], rel=1e-6)
    # ACD/SD/KD: both float64; only the summation order differs (numpy vs torch reductions).
    for key in ("acd", "sd", "kd"):
        assert ours[key] == pytest.approx(TSGBENCH_REFERENCE[key], rel=1e-10), key


def _mdd_by_bin_centres(real: np.ndarray, synth: np.ndarray, n_bins: int = 50) -> float:
    """TSGBench's rule written out step by step: per time step t >= 1, the real values are histogrammed on 50
    bins over their [min, max]; a synthetic value belongs to the bin whose centre is closer than half a bin
    width; densities = count / (width * size); MDD = mean over bins and steps of |difference|."""
    per_step = []
    for t in range(1, real.shape[1]):
        lo, hi = real[:, t].min(), real[:, t].max()
        width = (hi - lo) / n_bins
        centres = lo + width * (np.arange(n_bins) + 0.5)
        real_count = np.histogram(real[:, t], bins=n_bins)[0].astype(float)  # torch.histc on [min, max]
        synth_count = np.array([np.sum(np.abs(synth[:, t] - c) < width / 2) for c in centres], dtype=float)
        per_step.append(np.mean(np.abs(synth_count / (width * len(synth)) - real_count / (width * len(real)))))
    return float(np.mean(per_step))


def test_mdd_matches_the_bin_centre_rule_on_another_input() -> None:
    rng = np.random.default_rng(11)
    real, synth = rng.standard_t(3, (120, 16)), 1.3 * rng.standard_t(5, (90, 16))
    # Continuous values almost surely avoid bin edges, where the two counting rules could differ.
    assert mdd(real, synth) == pytest.approx(_mdd_by_bin_centres(real, synth), rel=1e-9)


def test_identical_sets_give_zero() -> None:
    real, _ = _pinned_input()
    assert tsgbench_distances(real, real) == {"mdd": 0.0, "acd": 0.0, "sd": 0.0, "kd": 0.0}


def test_mdd_is_per_time_step_not_pooled() -> None:
    """Same pooled marginal, wrong per-step marginals: a pooled histogram sees nothing, TSGBench's MDD does."""
    rng = np.random.default_rng(1)
    real = rng.standard_normal((400, 20)) * np.where(np.arange(20) < 10, 1.0, 3.0)  # calm, then turbulent steps
    synth = real[:, ::-1].copy()  # the same values, turbulent steps first
    pooled = np.histogram(real, 50)[0] - np.histogram(synth, bins=np.histogram(real, 50)[1])[0]
    assert np.all(pooled == 0)
    assert mdd(real, synth) > 0.5 * mdd(real, rng.standard_normal((400, 20)) * 5.0)


def test_acd_sees_lags_up_to_the_window_length() -> None:
    """A dependence at lag 30 (beyond the old 10 lags) moves ACD; lags >= min(64, T) are not used."""
    rng = np.random.default_rng(2)
    e = rng.standard_normal((500, 48 + 30))
    lag30 = e[:, 30:] + 0.9 * e[:, :-30]
    white = rng.standard_normal((500, 48))
    assert acd(white, lag30) > 0.4  # ACF(30) = 0.9 / 1.81 = 0.50
    assert acd(white, rng.standard_normal((500, 48))) < 0.25  # sampling noise summed over 47 lags
    assert acd(white, 3.0 * white) == pytest.approx(0.0, abs=1e-12)  # scale-free


def test_sd_uses_ddof1_std_and_kd_is_fisher() -> None:
    from scipy import stats

    x = np.random.default_rng(3).gamma(2.0, size=(50, 10))
    flat, n = x.ravel(), x.size
    zeros = np.zeros_like(x) + np.linspace(-1, 1, 10)  # symmetric, skew 0
    assert sd(zeros, x) == pytest.approx(stats.skew(flat) * ((n - 1) / n) ** 1.5, rel=1e-10)
    assert kd(zeros, x) == pytest.approx(abs(stats.kurtosis(flat) - stats.kurtosis(zeros.ravel())), rel=1e-10)


def test_bad_input_names_the_fix() -> None:
    real, synth = _pinned_input()
    with pytest.raises(DataError, match="window_length"):
        mdd(real, synth[:, :12])
    with pytest.raises(DataError, match="NaN"):
        acd(real, np.where(synth > 0.02, np.nan, synth))
