"""Classical generators of return windows, the yardsticks wavefin's diffusion model is judged against.

Every generator is fitted on ONE series' TRAIN returns only (a contiguous 1-D array of log returns in the series'
own units) and samples ``n`` windows of length ``T`` with an explicit seed, so every row of the generation report
is reproducible and none of them has seen the held-out data:

- ``garch_t``: GARCH(1,1) with Student-t innovations and a constant mean (``arch``): volatility clustering and
  heavy tails, but symmetric (no leverage).
- ``gjr_garch_t``: GJR-GARCH(1,1)-t (``arch``, ``o=1``): adds the leverage term, so negative returns raise the
  next variance more than positive ones.
- ``block_bootstrap``: the stationary bootstrap (Politis & Romano) of the train returns (``arch.bootstrap``),
  mean block length from Politis & White's ``optimal_block_length`` (rule below).
- ``mjd_fit``: a Merton jump diffusion fitted by maximum likelihood (rule below).
- ``iid_gaussian``: i.i.d. normal with the train mean and standard deviation.
- ``real_train``: random stride-1 windows of the train returns themselves: the floor. A generator that is as
  hard to tell from the test data as real train windows is as good as the train data; nothing can be expected
  to beat it by more than noise.

``wavefin`` (the diffusion model) is listed in :data:`GENERATORS` for the report's order; it is sampled by the
``synthetic_series`` asset, not here.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from wavefin_core.errors import ConfigError, DataError

__all__ = [
    "GENERATORS",
    "CLASSICAL_GENERATORS",
    "Generator",
    "GeneratorFitError",
    "GarchT",
    "BlockBootstrap",
    "MertonJumpDiffusion",
    "IidGaussian",
    "RealTrain",
    "fit_generator",
    "fit_mjd",
]

GENERATORS: tuple[str, ...] = (
    "wavefin", "garch_t", "gjr_garch_t", "block_bootstrap", "mjd_fit", "iid_gaussian", "real_train",
)
CLASSICAL_GENERATORS: tuple[str, ...] = GENERATORS[1:]
MIN_TRAIN_RETURNS = 100
GARCH_BURN = 500
# arch's optimiser converges best when the data's variance is O(1)-O(1000) (it warns outside [1, 1000)); the
# returns are multiplied by TARGET_STD / std for the fit and the simulated values divided back.
GARCH_TARGET_STD = 10.0
MJD_MAX_JUMPS = 12  # Poisson terms kept in the likelihood: P(N > 12) < 1e-10 for the intensity bound below
MJD_MAX_INTENSITY = 1.0  # jumps per step: beyond this the "jumps" are the diffusion and the model is not identified


class GeneratorFitError(RuntimeError):
    """A generator could not be fitted (optimiser did not converge, explosive estimate, ...).

    Not a user error: the report shows the generator's row as unavailable with this message.
    """


def _train_returns(train_returns: Any, name: str, series: str) -> np.ndarray:
    y = np.asarray(train_returns, dtype=np.float64).ravel()
    if y.size < MIN_TRAIN_RETURNS:
        raise DataError(
            f"{name} for series {series!r} needs at least {MIN_TRAIN_RETURNS} train returns, got {y.size}; "
            "supply a longer series or a larger train_fraction."
        )
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise DataError(f"{name} for series {series!r}: train return {bad[0]} is NaN/inf; clean the prices first.")
    if y.std() <= 0:
        raise DataError(f"{name} for series {series!r}: the train returns are constant; nothing to fit.")
    return y


def _check_request(n: int, length: int) -> tuple[int, int]:
    if int(n) < 1 or int(length) < 1:
        raise ConfigError(f"sample(n={n}, length={length}): both must be >= 1.")
    return int(n), int(length)


class Generator(ABC):
    """A fitted generator: ``sample(n, length, seed)`` -> float64 array (n, length) of log returns.

    ``params`` holds the fitted parameters in the series' own units (JSON-able floats), ``description`` one line
    for the report.
    """

    name: str = ""
    description: str = ""

    def __init__(self) -> None:
        self.params: dict[str, float] = {}

    @abstractmethod
    def sample(self, n: int, length: int, seed: int = 0) -> np.ndarray:
        """``n`` windows of ``length`` log returns; the same seed gives the same windows."""


class GarchT(Generator):
    """GARCH(1,1)-t (``leverage=False``) or GJR-GARCH(1,1)-t (``leverage=True``), constant mean, from ``arch``.

    Windows are consecutive pieces of ONE simulated path (after a 500-step burn-in), so they follow the
    stationary distribution and keep the within-window volatility clustering. Parameters in ``params`` are in
    the series' units: ``mu``, ``omega`` (variance), ``alpha``, ``gamma`` (0 without leverage), ``beta``, ``nu``
    (Student-t degrees of freedom) and ``persistence`` = alpha + gamma / 2 + beta (< 1 for a stationary process).
    """

    def __init__(self, train_returns: Any, *, leverage: bool = False, series: str = "series") -> None:
        super().__init__()
        from arch.univariate import GARCH, ConstantMean, StudentsT

        self.name = "gjr_garch_t" if leverage else "garch_t"
        self.description = ("GJR-GARCH(1,1) with Student-t innovations (leverage term)" if leverage
                            else "GARCH(1,1) with Student-t innovations")
        y = _train_returns(train_returns, self.name, series)
        self._o = 1 if leverage else 0
        self._scale = GARCH_TARGET_STD / float(y.std())
        model = ConstantMean(y * self._scale, volatility=GARCH(1, self._o, 1), distribution=StudentsT())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # arch's ConvergenceWarning is checked through convergence_flag
            result = model.fit(disp="off")
        if result.convergence_flag != 0:
            raise GeneratorFitError(f"{self.name} fit on series {series!r} did not converge "
                                    f"(optimizer flag {result.convergence_flag}).")
        self._arch_params = np.asarray(result.params, dtype=np.float64)
        p = result.params
        gamma = float(p["gamma[1]"]) if leverage else 0.0
        self.params = {
            "mu": float(p["mu"]) / self._scale,
            "omega": float(p["omega"]) / self._scale**2,
            "alpha": float(p["alpha[1]"]),
            "gamma": gamma,
            "beta": float(p["beta[1]"]),
            "nu": float(p["nu"]),
        }
        self.params["persistence"] = self.params["alpha"] + gamma / 2 + self.params["beta"]
        if not self.params["persistence"] < 1.0:
            raise GeneratorFitError(
                f"{self.name} fit on series {series!r} is not covariance-stationary (alpha + gamma/2 + beta = "
                f"{self.params['persistence']:.4f} >= 1); its simulated variance would explode."
            )

    def sample(self, n: int, length: int, seed: int = 0) -> np.ndarray:
        from arch.univariate import GARCH, ConstantMean, StudentsT

        n, length = _check_request(n, length)
        sim_model = ConstantMean(None, volatility=GARCH(1, self._o, 1),
                                 distribution=StudentsT(seed=np.random.default_rng(seed)))
        sim = sim_model.simulate(self._arch_params, nobs=n * length, burn=GARCH_BURN)
        return np.asarray(sim["data"], dtype=np.float64).reshape(n, length) / self._scale


class BlockBootstrap(Generator):
    """Stationary bootstrap of the train returns (``arch.bootstrap.StationaryBootstrap``).

    Block length rule: the returns of a liquid asset have almost no linear autocorrelation, so Politis & White's
    ``optimal_block_length`` of r alone is ~1 and would destroy the volatility clustering; their dependence
    lives in r^2. The mean block length is therefore the larger of the two "stationary" optimal lengths of r and
    r^2, rounded up and clipped to [1, n_train / 10]. Windows are cut from the concatenated bootstrap resamples.
    """

    name = "block_bootstrap"

    def __init__(self, train_returns: Any, *, series: str = "series") -> None:
        super().__init__()
        from arch.bootstrap import optimal_block_length

        self._y = _train_returns(train_returns, self.name, series)
        obl = optimal_block_length(np.column_stack([self._y, self._y**2]))
        raw = float(np.nanmax(obl["stationary"].to_numpy()))
        upper = max(1, self._y.size // 10)
        self.block_size = int(min(max(math.ceil(raw) if math.isfinite(raw) else 1, 1), upper))
        self.params = {"mean_block_length": float(self.block_size), "optimal_block_length_raw": raw,
                       "n_train": float(self._y.size)}
        self.description = (f"stationary block bootstrap of the train returns, mean block length "
                            f"{self.block_size}")

    def sample(self, n: int, length: int, seed: int = 0) -> np.ndarray:
        from arch.bootstrap import StationaryBootstrap

        n, length = _check_request(n, length)
        bootstrap = StationaryBootstrap(self.block_size, self._y, seed=np.random.default_rng(seed))
        needed = n * length
        pieces, total = [], 0
        while total < needed:
            index = bootstrap.update_indices()
            pieces.append(self._y[index])
            total += index.size
        return np.concatenate(pieces)[:needed].reshape(n, length)


# ------------------------------------------------------------------------------------ Merton jump diffusion
def _mjd_negloglik(
    theta: np.ndarray, z: np.ndarray, k: np.ndarray, log_k_factorial: np.ndarray
) -> tuple[float, np.ndarray]:
    """Negative log-likelihood of the Poisson mixture of normals and its analytic gradient (5 parameters)."""
    mu, sigma, lam, jump_mean, jump_std = theta
    var = sigma**2 + k * jump_std**2  # (K,)
    dev = z[:, None] - mu - k * jump_mean  # (n, K)
    # log of Pois(k; lam) N(z; mu + k m, sigma^2 + k s^2) for every k, combined with log-sum-exp
    log_terms = k * math.log(lam) - lam - log_k_factorial - 0.5 * np.log(2 * np.pi * var) - 0.5 * dev**2 / var
    top = log_terms.max(axis=1, keepdims=True)
    weights = np.exp(log_terms - top)
    total = weights.sum(axis=1, keepdims=True)
    ll = top[:, 0] + np.log(total[:, 0])
    weights /= total  # posterior probability of k jumps at each step
    d_var = -0.5 / var + 0.5 * dev**2 / var**2
    grad = np.array([
        np.sum(weights * dev / var),
        np.sum(weights * d_var * 2 * sigma),
        np.sum(weights * (k / lam - 1.0)),
        np.sum(weights * k * dev / var),
        np.sum(weights * d_var * 2 * k * jump_std),
    ])
    return float(-ll.sum()), -grad


def fit_mjd(returns: Any, *, series: str = "series") -> dict[str, float]:
    """Maximum-likelihood Merton jump diffusion of per-step log returns, in the returns' own units.

    Model per step: r = mu + sigma * e + sum_{i <= N} Y_i with e ~ N(0, 1), N ~ Poisson(lam),
    Y_i ~ N(jump_mean, jump_std^2); the density is the Poisson mixture of normals, truncated after
    12 jumps per step (intensity bounded by 1 per step, where the truncation error is below 1e-10).
    Fitted with L-BFGS-B on the standardised returns from two starts (a robust method-of-moments guess: sigma
    from the median absolute deviation, jumps = moves beyond 4 robust sigmas; and a "10% small jumps" guess),
    keeping the better likelihood. ``mu`` is the diffusive drift per step (the compensated drift of
    ``simulate_mjd`` minus sigma^2/2 and the jump compensator, i.e. what a step adds besides jumps).
    With no jumps in the data (e.g. a minute series with a yearly jump rate) ``lam`` goes to its lower bound and
    the jump size parameters are not identified: read them as "no jumps".
    """
    from scipy.optimize import minimize
    from scipy.special import gammaln

    y = _train_returns(returns, "mjd_fit", series)
    loc, scale = float(y.mean()), float(y.std())
    z = (y - loc) / scale
    k = np.arange(MJD_MAX_JUMPS + 1, dtype=np.float64)
    log_k_factorial = gammaln(k + 1)
    med = float(np.median(z))
    robust_sigma = max(1.4826 * float(np.median(np.abs(z - med))), 0.05)
    big = np.abs(z - med) > 4 * robust_sigma
    lam0 = min(max(big.mean(), 1e-3), 0.5)
    jump_mean0 = float(z[big].mean() - med) if big.sum() >= 2 else 0.0
    jump_std0 = float(z[big].std()) if big.sum() >= 3 else 3 * robust_sigma
    starts = [
        np.array([med, robust_sigma, lam0, jump_mean0, max(jump_std0, 0.1)]),
        np.array([0.0, 0.8, 0.1, 0.0, 1.5]),
    ]
    bounds = [(-5.0, 5.0), (0.02, 10.0), (1e-6, MJD_MAX_INTENSITY), (-20.0, 20.0), (0.02, 20.0)]
    best = None
    for x0 in starts:
        x0 = np.clip(x0, [b[0] for b in bounds], [b[1] for b in bounds])
        res = minimize(_mjd_negloglik, x0, args=(z, k, log_k_factorial), jac=True, method="L-BFGS-B",
                       bounds=bounds)
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise GeneratorFitError(f"mjd_fit on series {series!r}: the likelihood was not finite at any start.")
    mu, sigma, lam, jump_mean, jump_std = (float(v) for v in best.x)
    return {
        "mu": loc + scale * mu,
        "sigma": scale * sigma,
        "lam": lam,
        "jump_mean": scale * jump_mean,
        "jump_std": scale * jump_std,
        "loglik": float(-best.fun - y.size * math.log(scale)),
        "converged": float(bool(best.success)),
    }


class MertonJumpDiffusion(Generator):
    """Merton jump diffusion fitted by :func:`fit_mjd`; samples i.i.d. steps (the MJD has independent increments)."""

    name = "mjd_fit"

    def __init__(self, train_returns: Any, *, series: str = "series") -> None:
        super().__init__()
        self.params = fit_mjd(train_returns, series=series)
        p = self.params
        self.description = (f"Merton jump diffusion (MLE): {p['lam']:.3g} jumps per step of "
                            f"N({p['jump_mean']:.3g}, {p['jump_std']:.3g}^2), diffusion sigma {p['sigma']:.3g}")

    def sample(self, n: int, length: int, seed: int = 0) -> np.ndarray:
        n, length = _check_request(n, length)
        p = self.params
        rng = np.random.default_rng(seed)
        diffusion = p["mu"] + p["sigma"] * rng.standard_normal((n, length))
        jumps = rng.poisson(p["lam"], (n, length))
        # The sum of N i.i.d. N(m, s^2) jumps is exactly N(N m, N s^2).
        return diffusion + jumps * p["jump_mean"] + np.sqrt(jumps) * p["jump_std"] * rng.standard_normal((n, length))


class IidGaussian(Generator):
    """I.i.d. normal returns with the train mean and standard deviation: no tails, no clustering, no leverage."""

    name = "iid_gaussian"
    description = "i.i.d. Gaussian with the train mean and std"

    def __init__(self, train_returns: Any, *, series: str = "series") -> None:
        super().__init__()
        y = _train_returns(train_returns, self.name, series)
        self.params = {"mean": float(y.mean()), "std": float(y.std())}

    def sample(self, n: int, length: int, seed: int = 0) -> np.ndarray:
        n, length = _check_request(n, length)
        rng = np.random.default_rng(seed)
        return self.params["mean"] + self.params["std"] * rng.standard_normal((n, length))


class RealTrain(Generator):
    """Random stride-1 windows of the train returns (without replacement while there are enough), in time order:
    the floor.

    Why time order: the discriminative score holds out a contiguous block of each set's rows and drops the
    training rows that share a value with it (overlapping windows would otherwise let the classifier recognise
    held-out windows it has effectively seen). In random order the held-out block's windows overlap windows all
    over the set, the purge would leave too few rows and was skipped: the floor was an upper bound (quick
    profile: 290-400 of the classifier's training rows shared values with held-out ones; in time order none do).
    Measured on `make run`'s data the change is within noise: mjd 0.051 -> 0.051, sp500 0.207 -> 0.224.
    """

    name = "real_train"
    description = "random stride-1 windows of the real train returns (the floor)"

    def __init__(self, train_returns: Any, *, series: str = "series") -> None:
        super().__init__()
        self._y = _train_returns(train_returns, self.name, series)
        self._series = series
        self.params = {"n_train": float(self._y.size)}

    def sample(self, n: int, length: int, seed: int = 0) -> np.ndarray:
        n, length = _check_request(n, length)
        if length > self._y.size:
            raise DataError(f"real_train for series {self._series!r}: windows of {length} need at least that many "
                            f"train returns, got {self._y.size}.")
        windows = np.lib.stride_tricks.sliding_window_view(self._y, length)
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(windows.shape[0], n, replace=n > windows.shape[0]))
        return np.ascontiguousarray(windows[rows])


def fit_generator(name: str, train_returns: Any, *, series: str = "series") -> Generator:
    """Fit the classical generator ``name`` (one of :data:`CLASSICAL_GENERATORS`) on one series' train returns.

    Raises ConfigError for an unknown name, DataError for unusable returns (too few, NaN, constant) and
    :class:`GeneratorFitError` when the fit itself fails.
    """
    if name == "garch_t":
        return GarchT(train_returns, leverage=False, series=series)
    if name == "gjr_garch_t":
        return GarchT(train_returns, leverage=True, series=series)
    factories = {"block_bootstrap": BlockBootstrap, "mjd_fit": MertonJumpDiffusion, "iid_gaussian": IidGaussian,
                 "real_train": RealTrain}
    if name not in factories:
        raise ConfigError(f"generator {name!r} is not one of {list(CLASSICAL_GENERATORS)}.")
    return factories[name](train_returns, series=series)
