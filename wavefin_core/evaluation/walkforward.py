"""Walk-forward (expanding-window) evaluation: k chronological test folds, each model refitted on all the
data before its fold.

Why: one train/test split gives one number whose noise includes the luck of which period became the test
set. Walk-forward scores every model on k consecutive periods, each time trained only on the past, and reports
the mean and standard deviation of the k fold accuracies next to the single split. It is the protocol the
forecasting literature expects for time series (no shuffled K-fold: that trains on the future).

Samples are indexed in time order ``0 .. n-1`` (e.g. windows starting at consecutive rows). The last
``test_fraction`` of them is cut into ``k`` equal, consecutive test folds; fold ``i`` trains on every sample
before its first test sample minus ``embargo`` samples, so with ``embargo >= window + horizon`` (windows one
row apart) no train window or label shares a return with a test window or label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from wavefin_core.errors import ConfigError, DataError

__all__ = ["Fold", "walk_forward_splits", "walk_forward_windows", "walk_forward_evaluate", "summarize_folds"]


@dataclass(frozen=True)
class Fold:
    """Indices of one walk-forward fold: train ``[0, train_end)`` (every ``train_stride``-th), test
    ``[test_start, test_end)``."""

    index: int
    train: np.ndarray
    test: np.ndarray

    @property
    def test_start(self) -> int:
        return int(self.test[0])


def walk_forward_splits(
    n: int, k: int, embargo: int, *, test_fraction: float = 0.3, min_train: int = 1, train_stride: int = 1
) -> list[Fold]:
    """``k`` expanding-window folds over ``n`` time-ordered samples.

    The last ``round(n * test_fraction)`` samples form ``k`` consecutive test folds of (almost) equal size;
    fold ``i`` trains on samples ``0 .. test_start_i - embargo - 1`` (every ``train_stride``-th; the
    ``embargo`` samples just before a test fold are never used for training). Test folds never overlap, are in
    time order, and every train index is at least ``embargo + 1`` before its fold's first test index.

    Raises :class:`ConfigError` naming the argument when ``k``, ``embargo``, ``test_fraction`` or
    ``train_stride`` is invalid, or when the first fold would train on fewer than ``min_train`` samples (with
    how many samples it would need).
    """
    n = _int_at_least("n", n, 1)
    k = _int_at_least("walk_forward_folds", k, 1)
    embargo = _int_at_least("embargo", embargo, 0)
    train_stride = _int_at_least("train_stride", train_stride, 1)
    min_train = _int_at_least("min_train", min_train, 1)
    if not (isinstance(test_fraction, (int, float)) and 0 < test_fraction < 1):
        raise ConfigError(f"walk_forward_test_fraction={test_fraction!r} must be in (0, 1), e.g. 0.3.")
    n_test = int(round(n * test_fraction))
    if n_test < k:
        raise ConfigError(f"walk_forward_folds={k} needs at least {k} test samples, but the last "
                          f"{test_fraction:g} of {n} samples holds {n_test}; use fewer folds or more data.")
    first_test = n - n_test
    edges = first_test + np.round(np.linspace(0, n_test, k + 1)).astype(np.int64)
    folds = []
    for i in range(k):
        train_end = int(edges[i]) - embargo
        train = np.arange(0, max(train_end, 0), train_stride, dtype=np.int64)
        if train.size < min_train:
            raise ConfigError(
                f"walk-forward fold {i + 1} of {k} would train on {train.size} samples (fewer than {min_train}): "
                f"{n} samples, test_fraction {test_fraction:g}, embargo {embargo}. Lower walk_forward_folds or "
                "walk_forward_test_fraction, or supply a longer series."
            )
        folds.append(Fold(i, train, np.arange(edges[i], edges[i + 1], dtype=np.int64)))
    return folds


def walk_forward_windows(returns: Any, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Every stride-1 window of a contiguous return series and its next-``horizon`` return (the label sum).

    Sample ``i`` covers returns ``i .. i+window-1`` and its label ``i+window .. i+window+horizon-1``, so
    consecutive samples are one row apart and :func:`walk_forward_splits`' embargo is in rows.
    """
    x = np.asarray(returns, dtype=np.float64).ravel()
    window, horizon = _int_at_least("window", window, 1), _int_at_least("horizon", horizon, 1)
    n = x.size - window - horizon + 1
    if n < 2:
        raise DataError(f"walk-forward needs more than window + horizon = {window + horizon} returns; got "
                        f"{x.size}. Supply a longer series or lower segments.window.")
    if not np.isfinite(x).all():
        raise DataError("walk-forward returns contain NaN/inf; clean the prices first.")
    windows = np.lib.stride_tricks.sliding_window_view(x, window)[:n]
    target = np.lib.stride_tricks.sliding_window_view(x, horizon).sum(axis=1)[window : window + n]
    return windows, target


#: ``fit_predict(train_windows, train_direction, test_windows) -> 0/1 predictions for the test windows``.
FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def walk_forward_evaluate(
    windows: np.ndarray,
    target: np.ndarray,
    models: Mapping[str, FitPredict],
    *,
    k: int,
    embargo: int,
    horizon: int = 1,
    test_fraction: float = 0.3,
    train_stride: int = 1,
    min_train: int = 20,
) -> dict[str, Any]:
    """Direction accuracy of every model on each of ``k`` walk-forward folds, refitted per fold.

    ``windows`` (n, window) and ``target`` (n,) are time-ordered samples one row apart
    (:func:`walk_forward_windows`). Each model sees only its fold's train windows and directions (so any
    normalisation it fits is fitted on the past only). The naive ``majority_class`` (of the fold's train
    directions) and ``previous_direction`` baselines are always added. Returns ``{"folds": [{"fold", "n_train",
    "n_test", "test_start", "accuracy": {model: acc}}], "summary": {model: {"mean", "std", "folds"}}}``.
    """
    windows = np.asarray(windows, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64).ravel()
    if windows.ndim != 2 or windows.shape[0] != target.size:
        raise DataError(f"walk-forward: windows {windows.shape} and targets ({target.size}) must have one row per "
                        "sample; build them with walk_forward_windows.")
    horizon = _int_at_least("horizon", horizon, 1)
    direction = (target > 0).astype(np.int64)
    folds = walk_forward_splits(target.size, k, embargo, test_fraction=test_fraction, min_train=min_train,
                                train_stride=train_stride)
    rows = []
    for fold in folds:
        y_train, y_test = direction[fold.train], direction[fold.test]
        majority = 1 if 2 * int(y_train.sum()) >= y_train.size else 0
        preds = {"majority_class": np.full(y_test.size, majority),
                 "previous_direction": (windows[fold.test, -horizon:].sum(axis=1) > 0).astype(np.int64)}
        for name, fit_predict in models.items():
            pred = np.asarray(fit_predict(windows[fold.train], y_train, windows[fold.test])).ravel()
            if pred.shape != y_test.shape:
                raise DataError(f"walk-forward model {name!r} returned {pred.size} predictions for "
                                f"{y_test.size} test windows of fold {fold.index + 1}.")
            preds[name] = pred.astype(np.int64)
        rows.append({"fold": fold.index + 1, "n_train": int(fold.train.size), "n_test": int(fold.test.size),
                     "test_start": fold.test_start,
                     "accuracy": {name: float(np.mean(p == y_test)) for name, p in preds.items()}})
    return {"folds": rows, "summary": summarize_folds(rows), "k": len(folds), "embargo": int(embargo),
            "test_fraction": float(test_fraction), "train_stride": int(train_stride)}


def summarize_folds(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (ddof 1; 0 for one fold) of each model's fold accuracies."""
    names: list[str] = []
    for row in rows:
        names += [m for m in row["accuracy"] if m not in names]
    out = {}
    for name in names:
        values = np.array([row["accuracy"][name] for row in rows if name in row["accuracy"]], dtype=np.float64)
        out[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                     "folds": [float(v) for v in values]}
    return out


def _int_at_least(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}.")
    return int(value)

