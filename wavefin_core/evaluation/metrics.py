"""Metrics for forecasts (classification / regression) and the fast feature-based discriminative score.

Why these: DESIGN's evaluation rules. Every accuracy comes with a binomial p-value, every error with a
Diebold-Mariano test against the naive forecast. All functions take numpy arrays and return plain dicts of
floats, so they are easy to log anywhere.

Generation metrics live in their own modules: :mod:`.tsgbench` (TSGBench's MDD, ACD, SD, KD), :mod:`.facts`
(stylized facts as numbers, with tolerances) and :mod:`.discriminative` (TimeGAN's post-hoc discriminative and
predictive scores over seeds). :func:`discriminative_score` here is the quick logistic-on-features second
column; :func:`pooled_acf` / :func:`batch_acf` are the ACF estimators the plots use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wavefin_core.errors import DataError
from wavefin_core.evaluation.discriminative import _block_split
from wavefin_core.evaluation.stats_tests import binomial_test, diebold_mariano

__all__ = [
    "classification_metrics",
    "regression_metrics",
    "batch_acf",
    "pooled_acf",
    "discriminative_score",
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
    """Direction metrics: ``accuracy``, ``macro_f1``, ``macro_precision``, ``macro_recall`` (over classes 0 and
    1), ``balanced_accuracy``, ``mcc`` (Matthews correlation), ``n``, ``n_correct``,
    ``binomial_p`` (two-sided exact test of n_correct vs p = 0.5) and ``roc_auc`` when ``proba``
    (P(up)) is given and both classes occur in ``y_true``.

    Balanced accuracy is the mean recall over the classes present in ``y_true``; macro-F1 averages the F1 of
    classes 0 and 1 (a class never predicted has F1 0), so "always up" scores ~0.5 balanced accuracy and a
    low macro-F1 however high its accuracy.
    """
    from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score

    yt = _vec(y_true, "y_true", np.int64)
    yp = _vec(y_pred, "y_pred", np.int64)
    _same_length(yt, yp, "classification_metrics")
    correct = int((yt == yp).sum())
    recalls = [float((yp[yt == c] == c).mean()) for c in np.unique(yt)]
    precision, recall, _, _ = precision_recall_fscore_support(yt, yp, labels=[0, 1], zero_division=0)
    out: dict[str, float] = {
        "accuracy": correct / yt.size,
        "macro_f1": float(f1_score(yt, yp, labels=[0, 1], average="macro", zero_division=0)),
        "macro_precision": float(np.mean(precision)),
        "macro_recall": float(np.mean(recall)),
        "balanced_accuracy": float(np.mean(recalls)),
        "mcc": _mcc(yt, yp),
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


def _mcc(yt: np.ndarray, yp: np.ndarray) -> float:
    """Matthews correlation of two 0/1 vectors; 0 when a row or column of the confusion matrix is empty.

    Why 0 there (sklearn's convention): a constant prediction carries no information about the label, which
    is what MCC 0 means; NaN would make every "always up" baseline unprintable.
    """
    tp = float(np.count_nonzero((yt == 1) & (yp == 1)))
    tn = float(np.count_nonzero((yt == 0) & (yp == 0)))
    fp = float(np.count_nonzero((yt == 0) & (yp == 1)))
    fn = float(np.count_nonzero((yt == 1) & (yp == 0)))
    denom = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return 0.0 if denom == 0 else float((tp * tn - fp * fn) / np.sqrt(denom))


# --------------------------------------------------------------------------------------------- regression
def regression_metrics(y_true: Any, y_pred: Any, naive_pred: Any = None, horizon: int = 1) -> dict[str, float]:
    """Return-forecast metrics: ``mse``, ``rmse``, ``mae``, ``mase``, ``n``, ``directional_accuracy`` (sign(pred) vs
    sign(true) over the ``n_directional`` windows with pred != 0; NaN if there are none) and, when
    ``naive_pred`` is given, ``naive_rmse``, ``naive_mae``, ``dm_stat``, ``dm_p``: the Diebold-Mariano test
    (squared loss, HLN-corrected, ``horizon - 1`` autocovariance lags) of this forecast vs the naive one.
    ``dm_stat < 0`` means this forecast has the LOWER squared error.

    ``mase`` is the MAE scaled by the MAE of the random walk on the same targets (for log returns the random
    walk forecasts a zero return, so its MAE is ``mean(|y_true|)``): below 1 beats the random walk. Scaling by
    the out-of-sample random-walk error rather than Hyndman's in-sample one-step naive error keeps it
    comparable across horizons (an h-step naive error on overlapping sums is not the h-step forecast's scale);
    NaN if every target is 0.
    """
    yt = _vec(y_true, "y_true")
    yp = _vec(y_pred, "y_pred")
    _same_length(yt, yp, "regression_metrics")
    err = yt - yp
    mse, mae, rw_mae = float(np.mean(err**2)), float(np.mean(np.abs(err))), float(np.mean(np.abs(yt)))
    out: dict[str, float] = {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": mae,
        "mase": mae / rw_mae if rw_mae > 0 else float("nan"),
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


# ------------------------------------------------------------------------------------------------- ACFs
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


def pooled_acf(windows: Any, nlags: int) -> np.ndarray:
    """ACF of a SET of windows seen as pieces of one stationary process, index = lag (length nlags + 1).

    The pooled mean and variance of all values, lag-k products averaged over every (t, t+k) pair inside each
    window: :func:`wavefin_core.evaluation.facts.acf` (also TSGBench's ACD estimator). Unlike averaging
    per-window ACFs it has no -1/W demeaning bias, and it keeps the volatility clustering that shows up as
    calm vs turbulent WINDOWS.
    """
    from wavefin_core.evaluation.facts import acf

    return acf(windows, nlags)


def _disc_features(w: np.ndarray) -> np.ndarray:
    return np.column_stack([np.sort(w, axis=1), batch_acf(w, 5)[:, 1:], batch_acf(np.abs(w), 5)[:, 1:],
                            w.std(axis=1)])


def discriminative_score(real: Any, synth: Any, seed: int = 0, test_size: float = 0.3) -> dict[str, float]:
    """Fast post-hoc real-vs-synthetic classifier on window features; ``discriminative_score`` =
    |held-out accuracy - 0.5| for ONE seed.

    The quick second column next to TimeGAN's protocol
    (:func:`wavefin_core.evaluation.discriminative.posthoc_discriminative_score`, a small CNN over >= 5 seeds,
    which is the number to quote). 0 means the classifier cannot tell them apart, 0.5 that it always can. The
    larger set is subsampled (seeded) to the size of the smaller, so chance is exactly 50%. Features per
    window: its sorted values (the empirical quantiles: scale and tails), ACF lags 1-5 of r and |r|, and its
    std; classifier: L2 logistic regression on standardised features, trained on 70% and scored on a held-out
    block of 30% of each set, with training windows that share values with it dropped (overlapping stride-1
    windows otherwise leak: see :func:`wavefin_core.evaluation.discriminative._block_split`).

    Noise: one seed moves by ~0.5 / sqrt(n_test) from the test sample alone (0.03-0.06 measured on the quick
    profile), so call it over several seeds before ranking generators. A held-out test period is one volatility
    regime while a stationary generator samples all regimes, which makes real windows easier to recognise, so
    compare the score with the real-train floor rather than with 0.
    """
    from sklearn.linear_model import LogisticRegression
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
    n_test = max(1, int(round(m * test_size)))
    r_tr, r_te, _ = _block_split(r, n_test, rng)  # held-out block + purge: see posthoc_discriminative_score
    s_tr, s_te, _ = _block_split(s, n_test, rng)
    x_tr = np.vstack([_disc_features(r[r_tr]), _disc_features(s[s_tr])])
    y_tr = np.r_[np.zeros(r_tr.size, dtype=int), np.ones(s_tr.size, dtype=int)]
    x_te = np.vstack([_disc_features(r[r_te]), _disc_features(s[s_te])])
    y_te = np.r_[np.zeros(n_test, dtype=int), np.ones(n_test, dtype=int)]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    clf.fit(x_tr, y_tr)
    acc = float((clf.predict(x_te) == y_te).mean())
    return {"discriminative_score": abs(acc - 0.5), "discriminative_accuracy": acc,
            "discriminative_n_test": float(y_te.size)}
