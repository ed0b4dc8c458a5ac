"""Stylized facts of returns as numbers, and whether a generator reproduces the ones real data shows.

Why numbers and not pass/fail checks: a quant wants to see the real value beside the synthetic one ("kurtosis
9.1 vs 3.2"), and a fact only counts as reproduced when the real data actually shows it (no credit for
"no leverage" in a series that has none) and the synthetic value is within a stated tolerance of the real one.
The facts follow Cont (2001), "Empirical properties of asset returns: stylized facts and statistical issues".

Inputs are (N, T) window sets of returns (a 1-D array is one window), in one unit system. Statistics of a window
SET pool every value, and lag-k statistics pool every (t, t+k) pair inside a window, with the pooled mean and
variance (the set is seen as pieces of one stationary process: calm and turbulent windows stay calm and
turbulent, which per-window demeaning would hide). Overlapping windows (stride 1) are fine for these
distributional statistics; they only make the pooled sample look larger than it is.

Fact names (:data:`FACTS`) are stable snake_case keys used in ``metrics.json``; their tolerances are in
:data:`FACT_TOLERANCES` and their presence rules in :data:`FACT_PRESENCE` (see :func:`present_in_real`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from wavefin_core.errors import DataError

__all__ = [
    "FACTS",
    "FACT_TOLERANCES",
    "FACT_PRESENCE",
    "HILL_TAIL_FRACTION",
    "acf",
    "leverage_curve",
    "hill_tail_index",
    "hurst_exponent",
    "psd_distance",
    "aggregated_kurtosis",
    "gain_loss_asymmetry",
    "stylized_facts",
    "present_in_real",
    "within_tolerance",
    "compare_facts",
]

FACTS: tuple[str, ...] = (
    "excess_kurtosis",
    "hill_tail_index",
    "acf_r_lag1",
    "acf_r_max_abs_1_20",
    "acf_abs_r_mean_1_20",
    "acf_sq_r_mean_1_20",
    "acf_abs_r_decay",
    "leverage",
    "hurst_exponent",
    "hurst_exponent_abs_r",
    "psd_distance",
    "kurtosis_agg_1",
    "kurtosis_agg_5",
    "kurtosis_agg_20",
    "gain_loss_asymmetry",
)

# |synthetic - real| <= abs + rel * |real| counts as "within tolerance" (psd_distance: synthetic <= real + abs,
# one-sided, because its "real" value is the real data's own split-half distance, a noise floor). Heuristics
# sized to the sampling noise of ~1,000 windows of 64 steps and to what a quant would call "the same"; stated in
# the report next to each verdict.
FACT_TOLERANCES: dict[str, dict[str, float]] = {
    "excess_kurtosis": {"abs": 0.5, "rel": 0.5},
    "hill_tail_index": {"abs": 0.0, "rel": 0.2},
    "acf_r_lag1": {"abs": 0.05, "rel": 0.0},
    "acf_r_max_abs_1_20": {"abs": 0.05, "rel": 0.0},
    "acf_abs_r_mean_1_20": {"abs": 0.03, "rel": 0.3},
    "acf_sq_r_mean_1_20": {"abs": 0.03, "rel": 0.3},
    "acf_abs_r_decay": {"abs": 0.2, "rel": 0.0},
    "leverage": {"abs": 0.01, "rel": 0.5},
    "hurst_exponent": {"abs": 0.05, "rel": 0.0},
    "hurst_exponent_abs_r": {"abs": 0.05, "rel": 0.0},
    "psd_distance": {"abs": 0.05, "rel": 0.0},
    "kurtosis_agg_1": {"abs": 0.5, "rel": 0.5},
    "kurtosis_agg_5": {"abs": 0.5, "rel": 0.5},
    "kurtosis_agg_20": {"abs": 0.5, "rel": 0.5},
    "gain_loss_asymmetry": {"abs": 0.1, "rel": 0.0},
}

# When the real data shows each fact (the rule :func:`present_in_real` applies to the REAL value).
FACT_PRESENCE: dict[str, str] = {
    "excess_kurtosis": "heavy tails: excess kurtosis > 1",
    "hill_tail_index": "power-law tails: Hill index < 5 (a Gaussian gives ~8 at a 2% tail fraction)",
    "acf_r_lag1": "no linear autocorrelation: |ACF(r) at lag 1| < 0.1",
    "acf_r_max_abs_1_20": "no linear autocorrelation: max |ACF(r)| over lags 1-20 < 0.1",
    "acf_abs_r_mean_1_20": "volatility clustering: mean ACF(|r|) over lags 1-20 > 0.05",
    "acf_sq_r_mean_1_20": "volatility clustering: mean ACF(r^2) over lags 1-20 > 0.05",
    "acf_abs_r_decay": "slow decay of ACF(|r|): it keeps > 30% of its lags 1-10 level at lags 11-20",
    "leverage": "leverage effect: mean corr(r_t, r^2_t+k), k = 1-10, < -0.02",
    "hurst_exponent": "no long memory in returns: |H(r) - 0.5| < 0.1",
    "hurst_exponent_abs_r": "long memory in volatility: H(|r|) > 0.52 (GARCH(1,1), persistence 0.98, gives 0.52-0.55)",
    "psd_distance": "always (the spectrum of real returns always exists; the real value is its split-half floor)",
    "kurtosis_agg_1": "heavy tails at the sampling step: excess kurtosis > 1",
    "kurtosis_agg_5": "aggregational Gaussianity: kurtosis_agg_1 > 1 and the kurtosis of 5-step sums is lower",
    "kurtosis_agg_20": "aggregational Gaussianity: kurtosis_agg_1 > 1 and the kurtosis of 20-step sums is lower",
    "gain_loss_asymmetry": "losses larger than gains: |5% quantile| / 95% quantile - 1 > 0.05",
}

HILL_TAIL_FRACTION = 0.02  # Student-t(3) -> ~2.85 (bias < 5%), Gaussian -> ~8; measured in tests/core/test_facts.py
ACF_LAGS = 20
LEVERAGE_LAGS = 10
AGGREGATIONS = (1, 5, 20)


# ------------------------------------------------------------------------------------------------- inputs
def _windows(x: Any, name: str = "windows", min_length: int = 2) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < min_length:
        raise DataError(f"`{name}` must be (n_windows, window_length >= {min_length}) returns; got shape "
                        f"{arr.shape}. Use longer windows (`window` in the segments config).")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"`{name}` contains NaN/inf; drop or fill those windows before computing facts.")
    return arr


# ------------------------------------------------------------------------------------------- building blocks
def acf(windows: Any, nlags: int) -> np.ndarray:
    """Pooled ACF of a window set, index = lag (length min(nlags, T-1) + 1; index 0 is 1).

    Lag-k products are averaged over every (t, t+k) pair inside each window and divided by the pooled
    variance, around the pooled mean (the same estimator as TSGBench's ACD and as ``metrics.pooled_acf``).
    A constant set has ACF 0 at lags >= 1.
    """
    x = _windows(windows)
    length = x.shape[1]
    nlags = int(min(nlags, length - 1))
    xc = x - x.mean()
    var = float(np.mean(xc**2))
    out = np.zeros(nlags + 1)
    out[0] = 1.0
    if var > 0:
        for k in range(1, nlags + 1):
            out[k] = float(np.mean(xc[:, k:] * xc[:, : length - k])) / var
    return out


def leverage_curve(windows: Any, max_lag: int = LEVERAGE_LAGS) -> np.ndarray:
    """corr(r_t, r^2_{t+k}) for k = 1..max_lag (index k-1), pooling the (t, t+k) pairs of every window.

    Negative in equity data: a fall raises the FUTURE variance (the leverage effect). Uses r^2, the variance
    proxy of the definition, not |r|. Lags that do not fit in a window, or with a constant side, give 0.
    """
    x = _windows(windows)
    out = np.zeros(int(max_lag))
    for k in range(1, min(int(max_lag), x.shape[1] - 1) + 1):
        a, b = x[:, :-k].ravel(), (x[:, k:] ** 2).ravel()
        if a.std() > 0 and b.std() > 0:
            out[k - 1] = float(np.corrcoef(a, b)[0, 1])
    return out


def hill_tail_index(x: Any, tail_fraction: float = HILL_TAIL_FRACTION) -> float:
    """Hill estimator of the tail index alpha of |x - median(x)| (both tails pooled).

    alpha = 1 / mean(log X_(i) - log X_(k+1)), i = 1..k, over the k = max(10, tail_fraction * n) largest
    absolute deviations. Student-t(nu) has alpha = nu; equity returns give ~3-4; a Gaussian has no power-law
    tail and gives a large value (~8 at the default 2%). A smaller fraction has less bias but more noise.
    """
    v = np.asarray(x, dtype=np.float64).ravel()
    if not 0 < tail_fraction < 0.5:
        raise DataError(f"hill_tail_index: tail_fraction must be in (0, 0.5); got {tail_fraction}.")
    if v.size < 20 or not np.all(np.isfinite(v)):
        raise DataError(f"hill_tail_index needs >= 20 finite values; got {v.size} (NaN/inf removed upstream?).")
    a = np.sort(np.abs(v - np.median(v)))[::-1]
    k = min(max(10, int(tail_fraction * a.size)), a.size - 1)
    if a[k] <= 0:
        return float("inf")  # more than k values at the median: no tail to measure
    mean_log_excess = float(np.mean(np.log(a[:k]) - np.log(a[k])))
    return 1.0 / mean_log_excess if mean_log_excess > 0 else float("inf")


def _dfa_scales(length: int) -> np.ndarray:
    top = max(4, length // 4)
    return np.unique(np.round(np.geomspace(4, top, num=8)).astype(int))


def _white_noise_f2(n: int) -> float:
    """Expected DFA-1 squared fluctuation of unit white noise in a segment of n steps: (n^2 - 4) / (15 n).

    This is trace(R C) / n, with C = min(i, j) the covariance of the random-walk profile and R the projector
    off a fitted line (exact: it equals the trace for every n; ~n / 15 for large n).
    """
    return (n * n - 4.0) / (15.0 * n)


def _segment_f2(segments: np.ndarray) -> float:
    """Mean squared residual of a least-squares line fitted to each row of ``segments`` (M, n)."""
    n = segments.shape[1]
    tc = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    centred = segments - segments.mean(axis=1, keepdims=True)
    slope = centred @ tc / float(tc @ tc)
    return float(np.mean((centred - slope[:, None] * tc) ** 2))


def hurst_exponent(x: Any) -> float:
    """Hurst exponent by detrended fluctuation analysis (DFA-1), of one series or pooled over a window set.

    Each window's profile (cumulative sum around the pooled mean) is cut into segments of n steps, n on a
    geometric grid from 4 to T/4; a line is fitted per segment and F^2(n) is the mean squared residual over all
    segments of all windows. H is the slope of log F(n) vs log n, after dividing F^2(n) by its exact
    white-noise expectation (so white noise gives 0.5 without DFA's small-segment bias, and windows as short as
    64 steps can be used). H ~ 0.5: no memory; > 0.5: persistent (long memory, e.g. |r| of real returns).
    """
    w = _windows(x, "x", min_length=16)
    y = np.cumsum(w - w.mean(), axis=1)
    scales = _dfa_scales(w.shape[1])
    log_n, log_f = [], []
    for n in scales:
        n_seg = w.shape[1] // n
        seg = y[:, : n_seg * n].reshape(-1, n)
        f2 = _segment_f2(seg)
        if f2 <= 0:
            return 0.5  # constant input: no fluctuation at any scale
        log_n.append(np.log(n))
        log_f.append(0.5 * np.log(f2 / _white_noise_f2(int(n))))
    slope = float(np.polyfit(log_n, log_f, 1)[0])
    return 0.5 + slope


def _mean_psd(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean()
    power = np.abs(np.fft.rfft(xc, axis=1)[:, 1:]) ** 2  # drop the zero frequency (the window mean)
    psd = power.mean(axis=0)
    total = float(psd.mean())
    return psd / total if total > 0 else np.ones_like(psd)


def psd_distance(real: Any, synth: Any) -> float:
    """RMS log-spectral distance between the mean periodograms of two window sets, shape only.

    Each set's windows (around the set's pooled mean) get their periodogram at the nonzero Fourier
    frequencies, averaged over windows and normalised to unit mean power, so variance differences (covered
    by MDD/KD) do not enter; the distance is sqrt(mean over frequencies of (ln S_real - ln S_synth)^2). 0 for
    identical spectral shapes; it measures the linear dependence structure (the Fourier pair of the ACF).
    """
    r = _windows(real, "real", min_length=4)
    s = _windows(synth, "synth", min_length=4)
    if r.shape[1] != s.shape[1]:
        raise DataError(f"real windows have length {r.shape[1]} but synthetic ones {s.shape[1]}; "
                        "generate windows of the same `window_length`.")
    return float(np.sqrt(np.mean((np.log(_mean_psd(r)) - np.log(_mean_psd(s))) ** 2)))


def _excess_kurtosis(v: np.ndarray) -> float:
    vc = v - v.mean()
    var = float(np.mean(vc**2))
    return float(np.mean(vc**4)) / var**2 - 3.0 if var > 0 else 0.0


def aggregated_kurtosis(windows: Any, k: int) -> float:
    """Excess kurtosis of the non-overlapping k-step sums inside each window (pooled over windows).

    Aggregational Gaussianity: for real returns this falls towards 0 as k grows. Windows shorter than k give
    no sum; k = 1 is the plain pooled excess kurtosis.
    """
    w = _windows(windows)
    if k < 1 or k > w.shape[1]:
        raise DataError(f"aggregated_kurtosis: k = {k} must be in 1..window_length ({w.shape[1]}).")
    n = w.shape[1] // k
    sums = w[:, : n * k].reshape(w.shape[0], n, k).sum(axis=2).ravel()
    return _excess_kurtosis(sums)


def gain_loss_asymmetry(windows: Any) -> float:
    """|5% quantile| / 95% quantile - 1 of the returns around their median: > 0 when losses are larger than
    gains of the same probability (Cont's gain/loss asymmetry). 0 for a symmetric distribution."""
    v = _windows(windows).ravel()
    v = v - np.median(v)
    lo, hi = np.quantile(v, [0.05, 0.95])
    return float(abs(lo) / hi - 1.0) if hi > 0 else 0.0


def _decay(acf_abs: np.ndarray) -> float:
    """``acf_abs_r_decay``: mean ACF(|r|) over the later half of the lags (11-20) / mean over the first half
    (1-10). ~1: slow (long-memory-like) decay; ~0: fast decay. Shape only; the level is acf_abs_r_mean_1_20."""
    half = (acf_abs.size - 1) // 2
    early, late = float(np.mean(acf_abs[1 : half + 1])), float(np.mean(acf_abs[half + 1 :]))
    # No clustering to decay (early level <= 0.02): report 0 rather than a ratio of two noises.
    return late / early if early > 0.02 else 0.0


# ----------------------------------------------------------------------------------------------- the facts
def stylized_facts(windows: Any) -> dict[str, float]:
    """Every fact of :data:`FACTS` for one window set, as floats. Windows need >= 16 steps; the "_1_20" facts use
    lags 1..min(20, T-2). Every value is finite except ``hill_tail_index``, which is +inf when more than 98% of
    the values are equal (no tail to measure).

    ``psd_distance`` here is the set's own split-half floor: the :func:`psd_distance` between its first and
    second half of windows (in the given order, chronological for real data), i.e. how much the spectrum of
    this very data moves between two periods. :func:`compare_facts` compares a synthetic set's distance to the
    real set against this floor. A set of fewer than 2 windows gets 0.
    """
    w = _windows(windows, min_length=16)
    lags = min(ACF_LAGS, w.shape[1] - 2)
    acf_r, acf_abs, acf_sq = acf(w, lags), acf(np.abs(w), lags), acf(w**2, lags)
    half = w.shape[0] // 2
    out = {
        "excess_kurtosis": _excess_kurtosis(w.ravel()),
        "hill_tail_index": hill_tail_index(w),
        "acf_r_lag1": float(acf_r[1]),
        "acf_r_max_abs_1_20": float(np.max(np.abs(acf_r[1:]))),
        "acf_abs_r_mean_1_20": float(np.mean(acf_abs[1:])),
        "acf_sq_r_mean_1_20": float(np.mean(acf_sq[1:])),
        "acf_abs_r_decay": _decay(acf_abs),
        "leverage": float(np.mean(leverage_curve(w, LEVERAGE_LAGS))),
        "hurst_exponent": hurst_exponent(w),
        "hurst_exponent_abs_r": hurst_exponent(np.abs(w)),
        "psd_distance": psd_distance(w[:half], w[half:]) if half >= 1 else 0.0,
        "gain_loss_asymmetry": gain_loss_asymmetry(w),
    }
    for k in AGGREGATIONS:
        out[f"kurtosis_agg_{k}"] = aggregated_kurtosis(w, min(k, w.shape[1]))
    return {name: out[name] for name in FACTS}


def present_in_real(fact: str, value: float, real: Mapping[str, float] | None = None) -> bool:
    """Does the REAL data show ``fact``, given its real ``value``? Rules in :data:`FACT_PRESENCE`.

    ``kurtosis_agg_5`` / ``kurtosis_agg_20`` are relations (kurtosis falls with aggregation), so they also need
    the real ``kurtosis_agg_1`` from ``real`` (all real facts, as :func:`stylized_facts` returns them); without
    it they are judged absent. A NaN/inf value is never present.
    """
    if fact not in FACT_PRESENCE:
        raise DataError(f"unknown stylized fact {fact!r}; known facts: {', '.join(FACTS)}.")
    if fact == "psd_distance":
        return True
    if not np.isfinite(value):
        return False
    rules = {
        "excess_kurtosis": value > 1.0,
        "kurtosis_agg_1": value > 1.0,
        "hill_tail_index": value < 5.0,
        "acf_r_lag1": abs(value) < 0.1,
        "acf_r_max_abs_1_20": value < 0.1,
        "acf_abs_r_mean_1_20": value > 0.05,
        "acf_sq_r_mean_1_20": value > 0.05,
        "acf_abs_r_decay": value > 0.3,
        "leverage": value < -0.02,
        "hurst_exponent": abs(value - 0.5) < 0.1,
        "hurst_exponent_abs_r": value > 0.52,
        "gain_loss_asymmetry": value > 0.05,
    }
    if fact in rules:
        return bool(rules[fact])
    base = None if real is None else real.get("kurtosis_agg_1")
    return bool(base is not None and base > 1.0 and value < base)


def within_tolerance(fact: str, real: float, synthetic: float) -> bool:
    """Is the synthetic value within :data:`FACT_TOLERANCES` of the real one? (psd_distance: one-sided,
    synthetic distance <= real floor + abs.) Non-finite values never are, except equal infinities."""
    tol = FACT_TOLERANCES[fact]
    if fact == "psd_distance":
        return bool(synthetic <= real + tol["abs"])
    if not (np.isfinite(real) and np.isfinite(synthetic)):
        return bool(real == synthetic)
    return bool(abs(synthetic - real) <= tol["abs"] + tol["rel"] * abs(real))


def compare_facts(real: Any, synth: Any) -> dict[str, dict[str, Any]]:
    """``{FACT: {"real": float, "synthetic": float, "reproduced": bool}}`` for every fact in :data:`FACTS`.

    reproduced = :func:`present_in_real` (the real data shows the fact) AND :func:`within_tolerance`.
    For ``psd_distance``, "real" is the real windows' split-half floor and "synthetic" the
    :func:`psd_distance` between the real and the synthetic windows.
    """
    r = _windows(real, "real", min_length=16)
    s = _windows(synth, "synth", min_length=16)
    if r.shape[1] != s.shape[1]:
        raise DataError(f"real windows have length {r.shape[1]} but synthetic ones {s.shape[1]}; "
                        "generate windows of the same `window_length`.")
    real_facts, synth_facts = stylized_facts(r), stylized_facts(s)
    synth_facts["psd_distance"] = psd_distance(r, s)
    out: dict[str, dict[str, Any]] = {}
    for fact in FACTS:
        rv, sv = float(real_facts[fact]), float(synth_facts[fact])
        out[fact] = {"real": rv, "synthetic": sv,
                     "reproduced": present_in_real(fact, rv, real_facts) and within_tolerance(fact, rv, sv)}
    return out
