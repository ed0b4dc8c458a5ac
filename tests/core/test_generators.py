"""Classical generators: each fitted on known data recovers what it should, samples are seeded and shaped."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wavefin_core.data import simulate_mjd
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.evaluation.generators import (
    CLASSICAL_GENERATORS,
    GENERATORS,
    BlockBootstrap,
    GarchT,
    fit_generator,
    fit_mjd,
)


def _arch_garch(n: int, gamma: float, seed: int) -> np.ndarray:
    """A (GJR-)GARCH(1,1)-t path simulated by arch itself: omega 0.05, alpha 0.05, beta 0.85, nu 8."""
    from arch.univariate import GARCH, ConstantMean, StudentsT

    model = ConstantMean(None, volatility=GARCH(1, 1, 1), distribution=StudentsT(seed=seed))
    sim = model.simulate([0.0, 0.05, 0.05, gamma, 0.85, 8.0], nobs=n, burn=500)
    return sim["data"].to_numpy() / 100.0  # returns of ~1%: the generator must handle the scaling itself


@pytest.fixture(scope="module")
def gaussian_train() -> np.ndarray:
    return 0.0003 + 0.012 * np.random.default_rng(0).standard_normal(3000)


def test_generator_names_match_the_report_contract() -> None:
    assert GENERATORS == ("wavefin", "garch_t", "gjr_garch_t", "block_bootstrap", "mjd_fit", "iid_gaussian",
                          "real_train")
    assert CLASSICAL_GENERATORS == GENERATORS[1:]


@pytest.mark.parametrize("name", CLASSICAL_GENERATORS)
def test_every_generator_samples_seeded_finite_windows(name: str, gaussian_train: np.ndarray) -> None:
    gen = fit_generator(name, gaussian_train, series="toy")
    a = gen.sample(40, 16, seed=1)
    assert a.shape == (40, 16) and a.dtype == np.float64 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, gen.sample(40, 16, seed=1))  # same computation repeated: exact
    assert not np.array_equal(a, gen.sample(40, 16, seed=2))
    assert gen.name == name and gen.description
    assert all(isinstance(v, float) and math.isfinite(v) for v in gen.params.values())


def test_iid_gaussian_matches_train_mean_and_std(gaussian_train: np.ndarray) -> None:
    gen = fit_generator("iid_gaussian", gaussian_train)
    x = gen.sample(2000, 50, seed=0)
    # 100k draws: standard errors of the mean and std are 0.012/316 = 4e-5 and 3e-5; allow ~4 of them
    assert x.mean() == pytest.approx(gaussian_train.mean(), abs=1.5e-4)
    assert x.std() == pytest.approx(gaussian_train.std(), rel=0.01)


def test_mjd_fit_recovers_the_parameters_of_a_simulated_mjd() -> None:
    # 5000 daily bars with 50 jumps a year (~1000 jumps): MLE standard errors are a few % for sigma and ~7%
    # for the jump intensity and sizes, hence the tolerances.
    frame = simulate_mjd(days=5000, freq="daily", mu=0.05, sigma=0.2, lam=50.0, jump_mean=-0.04,
                         jump_std=0.03, seed=0)
    r = np.diff(np.log(frame["close"].to_numpy()))
    p = fit_mjd(r)
    assert p["sigma"] == pytest.approx(0.2 / math.sqrt(252), rel=0.05)
    assert p["lam"] == pytest.approx(50.0 / 252, rel=0.2)
    assert p["jump_mean"] == pytest.approx(-0.04, rel=0.15)
    assert p["jump_std"] == pytest.approx(0.03, rel=0.2)
    assert p["converged"] == 1.0
    # and the fitted generator reproduces the series' spread and tails
    x = fit_generator("mjd_fit", r).sample(1000, 20, seed=0).ravel()
    assert x.std() == pytest.approx(r.std(), rel=0.05)
    kurt = lambda v: float(np.mean((v - v.mean()) ** 4) / v.var() ** 2 - 3)  # noqa: E731
    assert kurt(r) > 2 and kurt(x) == pytest.approx(kurt(r), rel=0.35)  # kurtosis is a noisy 4th moment


def test_gjr_fits_a_positive_gamma_on_a_gjr_simulation_and_garch_does_not_need_it() -> None:
    gjr = GarchT(_arch_garch(4000, gamma=0.15, seed=1), leverage=True)
    assert gjr.params["gamma"] > 0.07  # true 0.15, standard error ~0.03 at n = 4000
    sym = GarchT(_arch_garch(4000, gamma=0.0, seed=2), leverage=True)
    assert sym.params["gamma"] < 0.05
    plain = GarchT(_arch_garch(4000, gamma=0.0, seed=2), leverage=False)
    assert plain.params["gamma"] == 0.0
    assert plain.params["beta"] == pytest.approx(0.85, abs=0.1) and plain.params["persistence"] < 1
    # simulated leverage: corr(r_t, r_{t+1}^2) is negative for the GJR fit, ~0 for the symmetric one
    def lev(x: np.ndarray) -> float:
        return float(np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel() ** 2)[0, 1])

    assert lev(gjr.sample(400, 50, seed=0)) < -0.03
    assert abs(lev(plain.sample(400, 50, seed=0))) < 0.03


def test_block_bootstrap_resamples_train_values_with_the_documented_block_rule() -> None:
    iid = np.random.default_rng(3).standard_normal(2000)
    clustered = _arch_garch(2000, gamma=0.0, seed=3)
    short, long = BlockBootstrap(iid), BlockBootstrap(clustered)
    assert short.block_size <= 3  # no dependence in r or r^2
    assert long.block_size > short.block_size  # the dependence of r^2 sets it
    x = long.sample(30, 64, seed=0)
    assert np.isin(x, clustered).all()  # every value is a train return


def test_real_train_windows_are_contiguous_train_slices(gaussian_train: np.ndarray) -> None:
    x = fit_generator("real_train", gaussian_train).sample(25, 10, seed=0)
    windows = np.lib.stride_tricks.sliding_window_view(gaussian_train, 10)
    starts = [np.flatnonzero(windows[:, 0] == row[0])[0] for row in x]
    np.testing.assert_array_equal(x, windows[starts])
    assert len(set(starts)) == 25  # without replacement while enough windows exist
    assert starts == sorted(starts)  # in time order: the discriminative score's purge needs it (below)


def test_the_floor_keeps_the_discriminative_purge(gaussian_train: np.ndarray) -> None:
    """Real train windows overlap; in time order a held-out block of them shares values with few other rows, so
    the score's purge can drop those and the floor is not inflated by windows the classifier has seen."""
    from wavefin_core.evaluation.discriminative import posthoc_discriminative_score

    real = np.lib.stride_tricks.sliding_window_view(gaussian_train[:600], 32)
    # 400 windows of 32 from 2,369 starts: neighbours overlap (in random order 290 training rows kept shared values)
    floor = fit_generator("real_train", gaussian_train[600:]).sample(400, 32, seed=0)
    score = posthoc_discriminative_score(real, floor, seeds=2, steps=5)
    assert score["n_train_sharing_values"] == 0


def test_fit_errors_name_the_series_and_the_fix(gaussian_train: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="not one of"):
        fit_generator("gan", gaussian_train)
    with pytest.raises(DataError, match=r"series 'tiny'.*at least 100"):
        fit_generator("garch_t", gaussian_train[:50], series="tiny")
    with pytest.raises(DataError, match="NaN"):
        fit_generator("iid_gaussian", np.r_[gaussian_train, np.nan], series="x")
    with pytest.raises(DataError, match="windows of 5000"):
        fit_generator("real_train", gaussian_train, series="x").sample(2, 5000)
