"""Metrics for forecasts (classification / regression) and for generated series (distribution distances,
discriminative and predictive scores, stylized facts).

Why these: DESIGN's evaluation rules. Every accuracy comes with a binomial p-value, every error with a
Diebold-Mariano test against the naive forecast; generation is judged against HELD-OUT real windows with the
published TSGBench-style measures plus the stylized facts of returns. All functions take numpy arrays and
return plain dicts of floats (and small arrays where noted), so they are easy to log anywhere.

Windows are (N, W) arrays of log-returns. Statistics of a window SET pool all N*W values (and, for ACFs and
leverage, every lagged pair inside a window); per-window features appear only inside the discriminator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from wavefin_core.errors import DataError
from wavefin_core.evaluation.stats_tests import binomial_test, diebold_mariano

__all__ = [
    "classification_metrics",
    "regression_metrics",
    "batch_acf",
    "pooled_acf",
    "return_stats",
    "window_stats",
    "stylized_facts",
    "distribution_distances",
    "discriminative_score",
    "predictive_score",
]


# ------------------------------------------------------------------------------------------------ helpers
def _vec(x: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    arr = np.asarray(x, dtype=dtype).ravel()
    if arr.size == 0:
        raise DataError(f"`{name}` is empty; the split being evaluated has no windows.")
    return arr


def _windows(x: Any, name: str, min_rows: int = 1) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] < min_rows or arr.shape[1] < 2:
        raise DataError(f"`{name}` must be (n_windows >= {min_rows}, window_length >= 2); got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"`{name}` contains NaN/inf values.")
    return arr


def _same_length(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.size != b.size:
        raise DataError(f"{what}: y_true has {a.size} entries but the prediction has {b.size}.")


# ------------------------------------------------------------------------------------------ classification
def classification_metrics(y_true: Any, y_pred: Any, proba: Any = None) -> dict[str, float]:
    """Direction metrics: ``accuracy``, ``macro_f1``, ``balanced_accuracy``, ``n``, ``n_correct``,
    ``binomial_p`` (two-sided exact test of n_correct vs p = 0.5) and ``roc_auc`` when ``proba``
    (P(up)) is given and both classes occur in ``y_true``.

    Balanced accuracy is the mean recall over the classes present in ``y_true``; macro-F1 averages the F1 of
    classes 0 and 1 (a class never predicted has F1 0), so "always up" scores ~0.5 balanced accuracy and a
    low macro-F1 however high its accuracy.
    """
    from sklearn.metrics import f1_score, roc_auc_score

    yt = _vec(y_true, "y_true", np.int64)
    yp = _vec(y_pred, "y_pred", np.int64)
    _same_length(yt, yp, "classification_metrics")
    correct = int((yt == yp).sum())
    recalls = [float((yp[yt == c] == c).mean()) for c in np.unique(yt)]
    out: dict[str, float] = {
        "accuracy": correct / yt.size,
        "macro_f1": float(f1_score(yt, yp, labels=[0, 1], average="macro", zero_division=0)),
        "balanced_accuracy": float(np.mean(recalls)),
        "n": float(yt.size),
        "n_correct": float(correct),
        "binomial_p": binomial_test(correct, yt.size, 0.5),
    }
    if proba is not None:
        pr = _vec(proba, "proba")
        _same_length(yt, pr, "classification_metrics(proba)")
        if np.unique(yt).size == 2:
            out["roc_auc"] = float(roc_auc_score(yt, pr))
    return out


# --------------------------------------------------------------------------------------------- regression
def regression_metrics(y_true: Any, y_pred: Any, naive_pred: Any = None, horizon: int = 1) -> dict[str, float]:
    """Return-forecast metrics: ``rmse``, ``mae``, ``n``, ``directional_accuracy`` (sign(pred) vs
    sign(true) over the ``n_directional`` windows with pred != 0; NaN if there are none) and, when
    ``naive_pred`` is given, ``naive_rmse``, ``naive_mae``, ``dm_stat``, ``dm_p``: the Diebold-Mariano test
    (squared loss, HLN-corrected, ``horizon - 1`` autocovariance lags) of this forecast vs the naive one.
    ``dm_stat < 0`` means this forecast has the LOWER squared error.
    """
    yt = _vec(y_true, "y_true")
    yp = _vec(y_pred, "y_pred")
    _same_length(yt, yp, "regression_metrics")
    err = yt - yp
    out: dict[str, float] = {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "n": float(yt.size),
    }
    nz = yp != 0
    out["n_directional"] = float(nz.sum())
    out["directional_accuracy"] = (
        float((np.sign(yp[nz]) == np.sign(yt[nz])).mean()) if nz.any() else float("nan")
    )
    if naive_pred is not None:
        nv = _vec(naive_pred, "naive_pred")
        _same_length(yt, nv, "regression_metrics(naive_pred)")
        e_naive = yt - nv
        out["naive_rmse"] = float(np.sqrt(np.mean(e_naive**2)))
        out["naive_mae"] = float(np.mean(np.abs(e_naive)))
        out["dm_stat"], out["dm_p"] = diebold_mariano(err, e_naive, horizon=horizon, loss="squared")
    return out


# ---------------------------------------------------------------------------------------- return stats
def batch_acf(windows: Any, nlags: int) -> np.ndarray:
    """Sample ACF of every row, shape (N, nlags + 1) with column k = lag k (column 0 is 1).

    Same estimator as ``statsmodels.tsa.stattools.acf`` (demeaned, denominator sum of squares over the full
    row), vectorised over rows. A constant row gets ACF 0 at lags >= 1.
    """
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    length = x.shape[1]
    nlags = int(min(nlags, length - 1))
    xc = x - x.mean(axis=1, keepdims=True)
    denom = np.einsum("ij,ij->i", xc, xc)
    out = np.zeros((x.shape[0], nlags + 1))
    safe = denom > 0
    out[:, 0] = 1.0
    for k in range(1, nlags + 1):
        num = np.einsum("ij,ij->i", xc[:, k:], xc[:, : length - k])
        out[safe, k] = num[safe] / denom[safe]
    return out


def _ljung_box_p(acf: np.ndarray, n: int, lags: int) -> float:
    k = np.arange(1, lags + 1)
    q = n * (n + 2) * np.sum(acf[1 : lags + 1] ** 2 / (n - k))
    return float(stats.chi2.sf(q, df=lags))


def _leverage(x: np.ndarray, max_lag: int) -> np.ndarray:
    """corr(r_t, |r_{t+k}|), k = 1..max_lag, pooling the (t, t+k) pairs of every row of ``x``."""
    out = np.full(max_lag, np.nan)
    for k in range(1, max_lag + 1):
        if x.shape[1] <= k:
            break
        a, b = x[:, :-k].ravel(), np.abs(x[:, k:]).ravel()
        if a.std() > 0 and b.std() > 0:
            out[k - 1] = float(np.corrcoef(a, b)[0, 1])
    return out


def return_stats(returns: Any, nlags: int = 10) -> dict[str, Any]:
    """Stylized-fact statistics of ONE return series.

    Keys: ``n``, ``mean``, ``std`` (ddof 0), ``skew``, ``excess_kurtosis`` (Fisher, 0 for a Gaussian),
    ``acf`` / ``acf_abs`` (arrays of length nlags + 1, index = lag) of r and |r|, ``ljung_box_p`` /
    ``ljung_box_abs_p`` (Ljung-Box at lag min(10, n - 1)), ``leverage`` (array: corr(r_t, |r_{t+k}|),
    k = 1..5; negative in real equity data).
    """
    r = _vec(returns, "returns")
    if r.size < 3 or not np.all(np.isfinite(r)):
        raise DataError(f"return_stats needs >= 3 finite returns; got {r.size} (NaN/inf removed upstream?).")
    acf = batch_acf(r, nlags)[0]
    acf_abs = batch_acf(np.abs(r), nlags)[0]
    lb_lags = min(10, r.size - 1, acf.size - 1)
    return {
        "n": float(r.size),
        "mean": float(r.mean()),
        "std": float(r.std()),
        "skew": float(stats.skew(r)) if r.std() > 0 else 0.0,
        "excess_kurtosis": float(stats.kurtosis(r)) if r.std() > 0 else 0.0,
        "acf": acf,
        "acf_abs": acf_abs,
        "ljung_box_p": _ljung_box_p(acf, r.size, lb_lags),
        "ljung_box_abs_p": _ljung_box_p(acf_abs, r.size, lb_lags),
        "leverage": _leverage(r[None, :], 5),
    }


def pooled_acf(windows: Any, nlags: int) -> np.ndarray:
    """ACF of a SET of windows seen as pieces of one stationary process, index = lag (length nlags + 1).

    Uses the pooled mean and variance of all values and averages the lag-k products over every (t, t+k)
    pair inside each window. Unlike averaging per-window ACFs, it has no -1/W demeaning bias and it keeps
    volatility clustering that shows up as calm vs turbulent WINDOWS (which per-window demeaning of |r|
    removes), so it is the estimator used for window sets throughout the reports.
    """
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
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


def window_stats(windows: Any, nlags: int = 10) -> dict[str, Any]:
    """Statistics of a SET of windows (the unit a generator produces).

    ``mean``, ``std``, ``skew``, ``excess_kurtosis`` pool all N*W values; ``acf`` / ``acf_abs`` are
    :func:`pooled_acf` of r and |r| (index = lag); ``leverage`` (k = 1..5) pools within-window pairs.
    """
    w = _windows(windows, "windows")
    flat = w.ravel()
    sd = flat.std()
    return {
        "n_windows": float(w.shape[0]),
        "window_length": float(w.shape[1]),
        "mean": float(flat.mean()),
        "std": float(sd),
        "skew": float(stats.skew(flat)) if sd > 0 else 0.0,
        "excess_kurtosis": float(stats.kurtosis(flat)) if sd > 0 else 0.0,
        "acf": pooled_acf(w, nlags),
        "acf_abs": pooled_acf(np.abs(w), nlags),
        "leverage": _leverage(w, 5),
    }


# Thresholds of the stylized-facts checklist: heuristics, stated in the report next to each verdict.
FACT_RULES: dict[str, str] = {
    "no_linear_autocorrelation": "max |mean ACF(r)| over lags 1-5 < 0.1",
    "volatility_clustering": "mean ACF(|r|) over lags 1-5 > 0.05 and > mean |ACF(r)| over lags 1-5",
    "slow_decay_abs_acf": "mean ACF(|r|) over lags 6-10 > 0.02 (still positive after a week)",
    "heavy_tails": "pooled excess kurtosis > 1",
    "leverage_effect": "mean corr(r_t, |r_t+k|), k = 1-5, < -2/sqrt(#pairs) (significantly negative)",
}


def stylized_facts(windows: Any) -> dict[str, bool]:
    """Check the stylized facts of returns on a set of windows (rules in :data:`FACT_RULES`)."""
    s = window_stats(windows, nlags=10)
    w = np.asarray(windows, dtype=np.float64)
    acf, acf_abs = s["acf"], s["acf_abs"]
    mean_abs_lin = float(np.mean(np.abs(acf[1:6])))
    lev = s["leverage"][np.isfinite(s["leverage"])]
    n_pairs = max(w.shape[0] * (w.shape[1] - 3), 1)
    return {
        "no_linear_autocorrelation": bool(np.max(np.abs(acf[1:6])) < 0.1),
        "volatility_clustering": bool(np.mean(acf_abs[1:6]) > max(0.05, mean_abs_lin)),
        "slow_decay_abs_acf": bool(acf_abs.size > 10 and np.mean(acf_abs[6:11]) > 0.02),
        "heavy_tails": bool(s["excess_kurtosis"] > 1.0),
        "leverage_effect": bool(lev.size > 0 and lev.mean() < -2.0 / np.sqrt(n_pairs)),
    }


# ---------------------------------------------------------------------------------- distribution distances
def distribution_distances(real: Any, synth: Any, bins: int = 50, nlags: int = 10) -> dict[str, float]:
    """TSGBench-style feature distances between real (N, W) and synthetic (M, W) windows. 0 = identical.

    - ``mdd``: marginal distribution difference. Both sets' pooled values are histogrammed on ``bins`` equal
      bins spanning the REAL values' [min, max]; values outside are counted in the edge bins (so a too-wide
      synthetic distribution is penalised rather than silently widening the bins). Histograms are
      probability masses (sum 1); MDD = mean over bins of |p_real - p_synth| (range [0, 2 / bins]).
    - ``acd``: ACF difference, the L2 norm over lags 1..nlags of (ACF of real - ACF of synth), both the
      :func:`pooled_acf` of the window set.
    - ``acf_abs_diff``: the same on |r| (volatility clustering).
    - ``sd`` / ``kd``: |skew_real - skew_synth| and |excess kurtosis_real - excess kurtosis_synth|, pooled.
    """
    r = _windows(real, "real")
    s = _windows(synth, "synth")
    if r.shape[1] != s.shape[1]:
        raise DataError(f"real windows have length {r.shape[1]} but synthetic ones {s.shape[1]}; "
                        "generate windows of the same `window_length`.")
    rf, sf = r.ravel(), s.ravel()
    lo, hi = float(rf.min()), float(rf.max())
    if hi <= lo:
        hi = lo + 1e-12
    edges = np.linspace(lo, hi, bins + 1)
    p = np.histogram(np.clip(rf, lo, hi), bins=edges)[0] / rf.size
    q = np.histogram(np.clip(sf, lo, hi), bins=edges)[0] / sf.size
    rs, ss = window_stats(r, nlags), window_stats(s, nlags)
    return {
        "mdd": float(np.mean(np.abs(p - q))),
        "acd": float(np.linalg.norm(rs["acf"][1:] - ss["acf"][1:])),
        "acf_abs_diff": float(np.linalg.norm(rs["acf_abs"][1:] - ss["acf_abs"][1:])),
        "sd": abs(rs["skew"] - ss["skew"]),
        "kd": abs(rs["excess_kurtosis"] - ss["excess_kurtosis"]),
    }


def _disc_features(w: np.ndarray) -> np.ndarray:
    return np.column_stack([np.sort(w, axis=1), batch_acf(w, 5)[:, 1:], batch_acf(np.abs(w), 5)[:, 1:],
                            w.std(axis=1)])


def discriminative_score(real: Any, synth: Any, seed: int = 0, test_size: float = 0.3) -> dict[str, float]:
    """Post-hoc real-vs-synthetic classifier; ``discriminative_score`` = |test accuracy - 0.5|.

    0 means the classifier cannot tell them apart (good), 0.5 means it always can. The larger set is
    subsampled (seeded) to the size of the smaller, so chance is exactly 50%. Features per window: its sorted
    values (the empirical quantiles: scale and tails), ACF lags 1-5 of r and |r|, and its std; classifier: L2
    logistic regression on standardised features, 70/30 stratified split. (TimeGAN's original uses a small
    RNN; a fixed, fast, seeded classifier makes runs comparable.)

    Caveat: real windows cut with stride 1 overlap, and a held-out test period is one volatility regime while
    a stationary generator samples all regimes; both make real windows easier to recognise, so compare the
    score with the GARCH-t baseline's rather than with 0.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    r = _windows(real, "real", min_rows=5)
    s = _windows(synth, "synth", min_rows=5)
    if r.shape[1] != s.shape[1]:
        raise DataError(f"real windows have length {r.shape[1]} but synthetic ones {s.shape[1]}.")
    rng = np.random.default_rng(seed)
    m = min(r.shape[0], s.shape[0])
    r = r[np.sort(rng.choice(r.shape[0], m, replace=False))]
    s = s[np.sort(rng.choice(s.shape[0], m, replace=False))]
    x = np.vstack([_disc_features(r), _disc_features(s)])
    y = np.r_[np.zeros(m, dtype=int), np.ones(m, dtype=int)]
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    clf.fit(x_tr, y_tr)
    acc = float((clf.predict(x_te) == y_te).mean())
    return {"discriminative_score": abs(acc - 0.5), "discriminative_accuracy": acc,
            "discriminative_n_test": float(y_te.size)}


def predictive_score(real_train: Any, synth: Any, real_test: Any, alpha: float = 1.0) -> dict[str, float]:
    """Train-on-synthetic, test-on-real (TSTR): a ridge regression on the first W-1 steps of a window
    predicts the last step. ``predictive_mae_synth`` is its MAE on real held-out windows when trained on the
    synthetic windows; ``predictive_mae_real`` is the same model trained on real train windows (the
    reference). Synthetic data is useful when the two are close; ``predictive_mae_ratio`` = synth / real.
    Features are standardised with each training set's own statistics.
    """
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tr = _windows(real_train, "real_train", min_rows=2)
    sy = _windows(synth, "synth", min_rows=2)
    te = _windows(real_test, "real_test", min_rows=1)
    if not tr.shape[1] == sy.shape[1] == te.shape[1]:
        raise DataError(f"window lengths differ (real_train {tr.shape[1]}, synth {sy.shape[1]}, "
                        f"real_test {te.shape[1]}); use the same `window_length`.")
    out: dict[str, float] = {}
    for name, train in (("synth", sy), ("real", tr)):
        model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
        model.fit(train[:, :-1], train[:, -1])
        out[f"predictive_mae_{name}"] = float(np.mean(np.abs(model.predict(te[:, :-1]) - te[:, -1])))
    out["predictive_mae_ratio"] = (out["predictive_mae_synth"] / out["predictive_mae_real"]
                                   if out["predictive_mae_real"] > 0 else float("nan"))
    return out
