"""TimeGAN-protocol discriminative score and TSTR predictive score: known answers, seeds, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.evaluation.discriminative import posthoc_discriminative_score, tstr_predictive_score


def test_gaussian_vs_independent_gaussian_scores_within_noise_of_zero() -> None:
    rng = np.random.default_rng(0)
    out = posthoc_discriminative_score(rng.standard_normal((1000, 64)), rng.standard_normal((1200, 64)), seeds=5,
                                       steps=30)  # a null result needs no long training; keeps the test fast
    assert out["seeds"] == 5 and len(out["values"]) == 5 and out["n_test"] == 400
    assert out["n_train"] == 1600 and out["n_train_sharing_values"] == 0
    # One seed's accuracy on 400 held-out windows has std 0.5 / sqrt(400) = 0.025 under the null; the mean of
    # five |accuracy - 0.5| is ~0.02 in expectation. 0.05 = two single-seed standard deviations.
    assert out["mean"] < 0.05, out
    assert 0.0 <= out["std"] < 0.05


def test_overlapping_stride1_windows_do_not_leak_into_the_held_out_part() -> None:
    """Windows cut at stride 1 share values with their neighbours; a random split let the classifier recognise
    held-out windows (0.49 measured on i.i.d. data); the block split with purge scores them like fresh data."""
    rng = np.random.default_rng(5)
    stride1 = np.lib.stride_tricks.sliding_window_view(rng.standard_t(4, 1063), 64).copy()  # 1000 windows
    out = posthoc_discriminative_score(stride1, rng.standard_t(4, (1000, 64)), seeds=3, steps=50)
    assert out["mean"] < 0.1, out
    assert out["n_train_sharing_values"] == 0 and out["n_train"] < 1600  # the neighbours were dropped


def test_long_windows_over_a_short_period_hold_out_an_end_block_and_keep_the_purge() -> None:
    """253 stride-1 windows of 128 (the full profile's sp500 is 499 of 256): a held-out block of 51 in the middle
    shares values with 127 rows on each side, too many to drop, and the purge used to be skipped (a leak). The
    block moves to the nearer end, where the purge reaches one side only; short windows keep the seeded block."""
    from wavefin_core.evaluation.discriminative import _block_split

    long = np.lib.stride_tricks.sliding_window_view(np.random.default_rng(0).standard_normal(380), 128)
    short = np.lib.stride_tricks.sliding_window_view(np.random.default_rng(1).standard_normal(380), 16)
    for seed in range(6):
        train, test, shared = _block_split(long, 51, np.random.default_rng(seed))
        assert shared == 0 and test[0] in (0, len(long) - 51), seed
        assert not np.isin(long[train], long[test]).any() and len(train) >= (len(long) - 51) // 4
        seeded = int(np.random.default_rng(seed).integers(0, len(short) - 73 + 1))
        train, test, shared = _block_split(short, 73, np.random.default_rng(seed))
        assert shared == 0 and test[0] == seeded  # the seeded position whenever its purge holds
    replayed = np.tile(long[:3], (40, 1))  # the same values in every row: no position can purge, as before
    train, test, shared = _block_split(replayed, 24, np.random.default_rng(0))
    assert shared == len(train) == len(replayed) - 24


def test_detects_a_scale_difference_and_repeats_exactly() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((400, 64)), 2.0 * rng.standard_normal((600, 64))
    threads, state = torch.get_num_threads(), torch.random.get_rng_state()
    first = posthoc_discriminative_score(a, b, seeds=2, steps=30)
    assert first["mean"] > 0.4 and first["n_test"] == 160  # larger set subsampled to 400: 80 + 80 held out
    assert posthoc_discriminative_score(a, b, seeds=2, steps=30) == first  # the very same computation
    assert torch.get_num_threads() == threads and torch.equal(torch.random.get_rng_state(), state)
    with pytest.raises(DataError, match="window_length"):
        posthoc_discriminative_score(a, b[:, :32])
    with pytest.raises(ConfigError, match="seeds"):
        posthoc_discriminative_score(a, b, seeds=0)


def test_per_window_scale_ignores_a_level_shift_but_not_a_shape_difference() -> None:
    """The report's shape-only score: a generator with the right shapes at twice the volatility (a calm test split
    against a wild train split) is not caught; wrong dynamics at the right level are."""
    rng = np.random.default_rng(2)
    real = rng.standard_normal((400, 64))
    shifted = 2.0 * rng.standard_normal((400, 64))
    assert posthoc_discriminative_score(real, shifted, seeds=2, steps=30)["mean"] > 0.4
    assert posthoc_discriminative_score(real, shifted, seeds=2, steps=30, scale="per_window")["mean"] < 0.1
    dependent = _ar_windows(rng, 400, phi=0.9)  # 32 steps
    assert posthoc_discriminative_score(real[:, :32], dependent, seeds=2, steps=30,
                                        scale="per_window")["mean"] > 0.3


def _ar_windows(rng: np.random.Generator, n: int, phi: float = 0.7) -> np.ndarray:
    e = rng.standard_normal((n, 60))
    x = np.zeros_like(e)
    for t in range(1, 60):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x[:, 28:]  # 32 steps, started in the stationary distribution


def test_tstr_same_n_and_penalises_synthetic_without_dynamics() -> None:
    rng = np.random.default_rng(2)
    real_train, real_test = _ar_windows(rng, 600), _ar_windows(rng, 200)
    good = tstr_predictive_score(_ar_windows(rng, 400), real_train, real_test, seeds=2, steps=60)
    assert good["n"] == 400 and good["seeds"] == 2 and good["target"] == "return"
    # Same process, same N: the two MAEs differ only by sampling and training noise.
    assert good["mean"] == pytest.approx(good["real_mean"], rel=0.05), good
    iid = tstr_predictive_score(rng.standard_normal((400, 32)) * real_train.std(), real_train, real_test,
                                seeds=2, steps=60)
    assert iid["mean"] > 1.15 * iid["real_mean"], iid
    # The real-trained reference depends on the real data, n and the seed only, not on the synthetic set.
    assert iid["real_values"] == good["real_values"]
    with pytest.raises(ConfigError, match="lower it"):
        tstr_predictive_score(real_train, real_train, real_test, n=700)


def test_tstr_abs_return_target_rewards_the_right_scale() -> None:
    rng = np.random.default_rng(3)
    real_train, real_test = rng.standard_normal((300, 32)), rng.standard_normal((100, 32))
    right = tstr_predictive_score(rng.standard_normal((300, 32)), real_train, real_test, seeds=1, steps=60,
                                  target="abs_return")
    wrong = tstr_predictive_score(3.0 * rng.standard_normal((300, 32)), real_train, real_test, seeds=1, steps=60,
                                  target="abs_return")
    assert right["mean"] < 1.1 * right["real_mean"] and wrong["mean"] > 1.5 * wrong["real_mean"]
    with pytest.raises(ConfigError, match="target"):
        tstr_predictive_score(real_train, real_train, real_test, target="price")  # type: ignore[arg-type]


def test_grouped_networks_match_the_one_net_at_a_time_loop() -> None:
    """The report trains every seed of every generator as one grouped model, in threads; each net must end
    where it would have alone: same init, same minibatch rows, its own gradient and Adam state."""
    from wavefin_core.evaluation import discriminative as D

    rng = np.random.default_rng(7)
    real = np.lib.stride_tricks.sliding_window_view(rng.standard_t(4, 191), 32).copy()  # 160 stride-1 windows
    synths = {"gauss": rng.standard_normal((120, 32)), "wide": 1.5 * rng.standard_t(3, (140, 32))}
    grouped = D.posthoc_discriminative_scores(real, synths, seeds=2, steps=15, workers=2)
    alone = {name: posthoc_discriminative_score(real, w, seeds=2, steps=15, grouped=False)
             for name, w in synths.items()}
    for name in synths:  # 48 held-out windows per seed: one flipped window would move a value by 1/48
        assert grouped[name]["values"] == pytest.approx(alone[name]["values"], abs=1.5 / 48), name
        assert {k: v for k, v in grouped[name].items() if k not in ("values", "mean", "std")} == \
            {k: v for k, v in alone[name].items() if k not in ("values", "mean", "std")}
    # The raw outputs, including a net with fewer training rows than the batch (the padded, masked rows), agree
    # to float rounding: a grouped convolution sums in another order than a plain one, and 15 Adam steps carry
    # that difference along without amplifying it.
    fits = [D._Fit(rng.standard_normal((n, 32)).astype(np.float32), (rng.random(n) > 0.5).astype(np.float32),
                   seed, np.random.default_rng(seed), rng.standard_normal((50, 32)).astype(np.float32))
            for seed, n in enumerate((160, 90, 160))]
    copies = [D._Fit(f.x, f.y, f.seed, np.random.default_rng(f.seed), f.x_eval) for f in fits]
    together = D._train_all("classifier", fits, 15, 128, 16, 1e-2, grouped=True, workers=2)
    one_by_one = D._train_all("classifier", copies, 15, 128, 16, 1e-2, grouped=False, workers=None)
    for a, b in zip(together, one_by_one, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    # Which thread trains a group does not change a bit: the grouping depends on the number of nets only.
    again = D.posthoc_discriminative_scores(real, synths, seeds=2, steps=15, workers=1)
    assert again == grouped


def test_grouped_tstr_matches_the_loop_and_reuses_the_real_reference() -> None:
    from wavefin_core.evaluation import discriminative as D

    rng = np.random.default_rng(8)
    real_train, real_test = _ar_windows(rng, 300), _ar_windows(rng, 100)
    synths = {"ar": _ar_windows(rng, 200), "iid": rng.standard_normal((200, 32))}
    D._REAL_REFERENCE.clear()
    grouped = D.tstr_predictive_scores(synths, real_train, real_test, seeds=2, steps=25, workers=2)
    D._REAL_REFERENCE.clear()
    alone = {name: tstr_predictive_score(w, real_train, real_test, seeds=2, steps=25, grouped=False)
             for name, w in synths.items()}
    for name in synths:  # MAEs of nets trained in a grouped model vs alone: float rounding only (see above)
        for key in ("values", "real_values"):
            np.testing.assert_allclose(grouped[name][key], alone[name][key], rtol=2e-3)
        assert grouped[name]["n"] == alone[name]["n"] == 200
    assert grouped["ar"]["real_values"] == grouped["iid"]["real_values"]  # one real reference per seed
