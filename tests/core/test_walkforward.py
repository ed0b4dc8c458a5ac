"""Walk-forward splits: chronological, non-overlapping test folds, embargoed expanding training sets."""

from __future__ import annotations

import numpy as np
import pytest

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.evaluation.walkforward import (
    summarize_folds,
    walk_forward_evaluate,
    walk_forward_splits,
    walk_forward_windows,
)


@pytest.mark.parametrize(("n", "k", "embargo", "stride"), [(1000, 5, 65, 1), (333, 3, 10, 4), (50, 1, 0, 1)])
def test_splits_never_overlap_respect_the_embargo_and_keep_time_order(n, k, embargo, stride) -> None:
    folds = walk_forward_splits(n, k, embargo, test_fraction=0.3, train_stride=stride)
    assert len(folds) == k
    tests = [f.test for f in folds]
    # test folds: consecutive, disjoint, chronological, together the last 30% of the samples
    joined = np.concatenate(tests)
    np.testing.assert_array_equal(joined, np.arange(n - round(0.3 * n), n))
    assert all(t.size >= 1 for t in tests) and max(t.size for t in tests) - min(t.size for t in tests) <= 1
    for fold in folds:
        assert fold.train.size and fold.train.max() < fold.test.min() - embargo  # embargo rows left unused
        assert np.intersect1d(fold.train, fold.test).size == 0
        assert (np.diff(fold.train) == stride).all() and fold.train[0] == 0
    for earlier, later in zip(folds, folds[1:], strict=False):  # expanding: each fold trains on at least the previous data
        assert earlier.test.max() < later.test.min()
        assert set(earlier.train) <= set(later.train)


def test_splits_refuse_impossible_settings_naming_the_knob() -> None:
    with pytest.raises(ConfigError, match="walk_forward_folds=0"):
        walk_forward_splits(100, 0, 5)
    with pytest.raises(ConfigError, match="walk_forward_folds=40 needs at least 40 test samples"):
        walk_forward_splits(100, 40, 5)
    with pytest.raises(ConfigError, match="fold 1 of 2 would train on 0 samples.*Lower walk_forward_folds"):
        walk_forward_splits(100, 2, 80)
    with pytest.raises(ConfigError, match="walk_forward_test_fraction"):
        walk_forward_splits(100, 2, 5, test_fraction=1.5)


def test_windows_and_labels_are_the_stride1_cut() -> None:
    x = np.arange(20, dtype=float)
    windows, target = walk_forward_windows(x, window=4, horizon=2)
    assert windows.shape == (15, 4) and target.shape == (15,)
    np.testing.assert_array_equal(windows[3], [3, 4, 5, 6])
    assert target[3] == 7 + 8
    with pytest.raises(DataError, match="window \\+ horizon = 21"):
        walk_forward_windows(x, window=20, horizon=1)


def test_evaluate_refits_per_fold_on_the_past_only() -> None:
    rng = np.random.default_rng(0)
    returns = rng.standard_normal(600)
    returns = np.abs(returns) * np.where(np.arange(600) % 2, 1.0, -1.0)  # signs alternate: down, up, down, ...
    windows, target = walk_forward_windows(returns, window=8, horizon=1)
    seen_train_sizes = []

    def oracle(train_w, train_y, test_w):
        seen_train_sizes.append(len(train_y))
        # learns from the training data only whether the next move repeats or reverses the last one
        reverses = np.mean(train_y != (train_w[:, -1] > 0)) > 0.5
        return ((test_w[:, -1] > 0) != reverses).astype(int)

    result = walk_forward_evaluate(windows, target, {"oracle": oracle}, k=3, embargo=9, test_fraction=0.3)
    assert [f["fold"] for f in result["folds"]] == [1, 2, 3]
    assert seen_train_sizes == [f["n_train"] for f in result["folds"]] and seen_train_sizes == sorted(seen_train_sizes)
    summary = result["summary"]
    assert set(summary) == {"majority_class", "previous_direction", "oracle"}
    assert summary["oracle"]["mean"] == 1.0 and summary["previous_direction"]["mean"] == 0.0
    assert 0.4 < summary["majority_class"]["mean"] < 0.6
    accs = [f["accuracy"]["oracle"] for f in result["folds"]]
    assert summary["oracle"]["mean"] == pytest.approx(np.mean(accs))
    assert summary["oracle"]["std"] == pytest.approx(np.std(accs, ddof=1))


def test_summary_of_one_fold_has_zero_std() -> None:
    out = summarize_folds([{"accuracy": {"m": 0.6}}])
    assert out == {"m": {"mean": 0.6, "std": 0.0, "folds": [0.6]}}
