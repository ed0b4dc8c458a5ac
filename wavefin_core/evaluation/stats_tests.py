"""Significance tests attached to every headline number.

Why: on a few hundred test windows, 53% direction accuracy or a 2% lower RMSE is often noise. The binomial
test says whether an accuracy differs from a coin flip; the Diebold-Mariano test says whether one forecast's
losses are really lower than another's, accounting for the overlap (autocorrelation) of h-step errors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from wavefin_core.errors import ConfigError, DataError

__all__ = ["binomial_test", "diebold_mariano", "holm", "mcnemar_exact", "t_test_p"]


def binomial_test(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial p-value of ``k`` successes in ``n`` trials vs success probability ``p``.

    Returns NaN for ``n == 0`` (no evidence either way).
    """
    k, n = int(k), int(n)
    if n == 0:
        return float("nan")
    if not 0 <= k <= n:
        raise DataError(f"binomial_test needs 0 <= k <= n; got k={k}, n={n}.")
    if not 0.0 < p < 1.0:
        raise ConfigError(f"binomial_test `p` must be in (0, 1); got {p}.")
    return float(stats.binomtest(k, n, p, alternative="two-sided").pvalue)


def diebold_mariano(e1: Any, e2: Any, horizon: int = 1, loss: str = "squared") -> tuple[float, float]:
    """Diebold-Mariano test of equal predictive accuracy, with the Harvey-Leybourne-Newbold correction.

    ``e1``, ``e2`` are the forecast errors (actual - forecast) of forecast 1 and forecast 2 on the same
    targets. The loss differential is ``d_t = L(e1_t) - L(e2_t)`` (``loss`` = "squared" or "absolute"), so a
    NEGATIVE statistic means forecast 1 has the lower loss.

    Long-run variance of ``d``: autocovariances up to lag ``horizon - 1`` (h-step errors of overlapping targets
    are MA(h-1)), with the rectangular weights of the original DM test, on which the HLN small-sample factor
    ``sqrt((n + 1 - 2h + h(h-1)/n) / n)`` is derived. If that estimate is not positive (possible with
    rectangular weights), Newey-West (Bartlett) weights are used instead, which are always non-negative.
    The p-value is two-sided from a Student t with n - 1 degrees of freedom.

    Degenerate cases: identical losses give (0.0, 1.0); a constant non-zero differential gives (+-inf, 0.0);
    fewer than 3 pairs give (nan, nan).
    """
    a = np.asarray(e1, dtype=np.float64).ravel()
    b = np.asarray(e2, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise DataError(f"diebold_mariano: error arrays differ in length ({a.size} vs {b.size}).")
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ConfigError(f"diebold_mariano `horizon` must be a positive integer; got {horizon!r}.")
    if loss == "squared":
        d = a**2 - b**2
    elif loss == "absolute":
        d = np.abs(a) - np.abs(b)
    else:
        raise ConfigError(f"diebold_mariano `loss` must be 'squared' or 'absolute'; got {loss!r}.")
    d = d[np.isfinite(d)]
    n = d.size
    if n < 3:
        return float("nan"), float("nan")
    h = int(horizon)
    d_bar = float(d.mean())
    dc = d - d_bar
    max_lag = min(h - 1, n - 1)
    gammas = np.array([dc[k:] @ dc[: n - k] / n for k in range(max_lag + 1)])
    scale = max(float(np.abs(d).max()), 1e-300)
    if gammas[0] <= (1e-14 * scale) ** 2:  # no variation in the loss differential
        if abs(d_bar) <= 1e-14 * scale:
            return 0.0, 1.0
        return math.copysign(math.inf, d_bar), 0.0
    lrv = gammas[0] + 2.0 * gammas[1:].sum()
    if lrv <= 0:
        weights = 1.0 - np.arange(1, max_lag + 1) / (max_lag + 1)
        lrv = gammas[0] + 2.0 * float(weights @ gammas[1:])
    dm = d_bar / math.sqrt(lrv / n)
    hln = math.sqrt(max(n + 1 - 2 * h + h * (h - 1) / n, 0.0) / n)
    stat = dm * hln
    p = float(2.0 * stats.t.sf(abs(stat), df=n - 1))
    return float(stat), p


def mcnemar_exact(y_true: Any, pred_a: Any, pred_b: Any) -> tuple[float, int, int]:
    """Exact McNemar test of two classifiers scored on the SAME windows: ``(p, a_only, b_only)``.

    Why this and not two separate accuracies: both models see the same test windows, so their errors are
    paired. Only the discordant windows carry evidence: ``a_only`` = windows A gets right and B wrong,
    ``b_only`` the reverse. Under the null of equal accuracy each discordant window is a fair coin, so the
    p-value is the two-sided exact binomial test of ``a_only`` out of ``a_only + b_only`` at 1/2. A model that
    copies B has no discordant pair and gets p = 1; one extra correct window out of 691 gets p = 1 too.
    """
    yt = np.asarray(y_true).ravel()
    a = np.asarray(pred_a).ravel()
    b = np.asarray(pred_b).ravel()
    if not yt.size == a.size == b.size:
        raise DataError(f"mcnemar_exact: y_true ({yt.size}), pred_a ({a.size}) and pred_b ({b.size}) must have "
                        "one entry per test window each.")
    right_a, right_b = a == yt, b == yt
    a_only = int(np.count_nonzero(right_a & ~right_b))
    b_only = int(np.count_nonzero(right_b & ~right_a))
    if a_only + b_only == 0:
        return 1.0, 0, 0
    return binomial_test(a_only, a_only + b_only, 0.5), a_only, b_only


def t_test_p(mean: float, se: float, df: float) -> float:
    """Two-sided p-value of a mean difference ``mean`` with standard error ``se`` under Student's t with ``df``
    degrees of freedom (a paired t-test: the per-seed differences' mean, se and n - 1; Welch: its df).

    A zero se is a difference without noise: p 1 if the mean is 0, else 0. NaN when nothing can be tested
    (df < 1, or a non-finite input).
    """
    if not (math.isfinite(mean) and math.isfinite(se) and math.isfinite(df)) or df < 1:
        return math.nan
    if se <= 0:
        return 1.0 if mean == 0 else 0.0
    return float(min(1.0, 2.0 * stats.t.sf(abs(mean) / se, df)))


def holm(p_values: Any) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as the input); reject where adjusted p < alpha.

    Why: a table of ten models tested at 5% calls one "significant" by luck alone about 40% of the time.
    Holm controls the family-wise error rate at alpha for any dependence between the tests and is uniformly
    more powerful than Bonferroni. A NaN p-value (a test without evidence) still counts in m, is ranked as
    p = 1 (never rejected) and comes back as NaN.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.size, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = p.size
    if finite.size == 0:
        return out
    filled = np.where(np.isfinite(p), p, 1.0)
    order = np.argsort(filled, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * filled[order]))
    result = np.empty(m)
    result[order] = adjusted
    out[finite] = result[finite]
    return out
