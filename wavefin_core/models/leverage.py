"""Leverage calibration of generated window shapes (issue 8: the leverage effect at the quick budget).

Why: in equity returns a fall raises the variance that follows (corr(r_t, r^2_{t+k}) < 0, the leverage effect).
With window normalisation (``wavefin_core.models.regimes``) part of it comes from ACROSS windows (falling windows
are the volatile ones: the drift-matched scale draw keeps that part) and part from INSIDE each normalised window:
sp500's train shapes carry -0.049 of its -0.083. A small UNet trained for the quick profile's 600 steps on a CPU
learns almost none of the within-window part (its shapes: -0.004 to -0.009); the full-size UNet on a GPU does.

This module gives the generated shapes the train shapes' within-window leverage curve with the smallest
parametric change that can carry it, an asymmetric volatility response to the window's own past (EGARCH's
leverage term, applied inside the window):

    z'_t = z_t * exp(-theta * s_t),   s_t = (1 - memory) * sum_{j >= 1} memory^(j-1) * z_{t-j}

(s_0 = 0: causal, nothing before the window is invented). ``theta > 0`` raises the variance after falls. The two
numbers are fitted per series on its generated set (its first MAX_FIT_WINDOWS windows), by grid search, so that
the leverage curve (k = 1..10)
of the finished shapes (after the rest of the calibration chain: the per-bucket marginal map and RMS 1) is
closest to the train shapes' curve; ``theta = 0`` (no change) is on the grid, so a series without leverage (mjd)
or a model that already has it is left alone. Everything it matches is fitted on the train windows only.

What it costs, measured (README, "Leverage calibration"): the modulation is a volatility response, so it also
adds a little volatility clustering. It is a calibration, not learning: the report and the metadata say it ran and
with which theta and memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from wavefin_core.errors import ConfigError

#: Lags of the leverage curve that is matched (the stylized fact's: corr(r_t, r^2_{t+k}), k = 1..10).
LEVERAGE_LAGS = 10
#: EWMA memories tried for s_t (half-lives from 1 to ~34 steps: the response can be short or last the window).
MEMORIES = (0.5, 0.7, 0.85, 0.93, 0.96, 0.98)
#: theta is searched coarse to fine: this grid (0, no change, on it) for every memory, then THETA_FINE_STEP steps
#: within one coarse step of the best (so |theta| <= 3.5). The grid covers sp500's fitted 1.1-2.05 with room.
THETAS = np.round(np.linspace(-3.0, 3.0, 13), 10)
THETA_FINE_STEP = 0.05
#: |theta * s_t| is clipped here, so one extreme generated value cannot scale what follows it by more than e^2.
MAX_LOG_MODULATION = 2.0
#: At most this many shapes (the first ones: deterministic) enter the grid search; the fit then applies to all.
#: 1,000 windows of 64 resolve a lag's correlation to ~0.004, below the grid's steps.
MAX_FIT_WINDOWS = 1000
#: Fewer values than this (N x T) and nothing is fitted (theta 0): the curve of a handful of windows is noise
#: (8 windows of 64: ~0.045 per lag, as large as the effect), and a fit to it would add an arbitrary response.
#: 10,000 values = ~160 windows of 64; generate a few hundred windows at once.
MIN_FIT_VALUES = 10_000


@dataclass(frozen=True)
class LeverageFit:
    """The fitted modulation and what it achieved (curves: k = 1..LEVERAGE_LAGS, on the fitted shapes)."""

    theta: float
    memory: float
    target: np.ndarray  # the train shapes' leverage curve
    before: np.ndarray  # the generated shapes' curve, calibrated without the modulation
    after: np.ndarray  # with it
    fitted: bool = True  # False: too few values to fit (MIN_FIT_VALUES) or windows too short; theta is 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the metadata of ``synthetic_series``): theta, memory and the three curves' means (None for
        an empty curve: no train curve, or windows too short for one)."""
        def mean(curve: np.ndarray) -> float | None:
            return float(np.mean(curve)) if len(curve) else None

        return {"theta": float(self.theta), "memory": float(self.memory), "fitted": bool(self.fitted),
                "train_leverage": mean(self.target), "leverage_before": mean(self.before),
                "leverage_after": mean(self.after)}


def leverage_curve(windows: np.ndarray, max_lag: int = LEVERAGE_LAGS) -> np.ndarray:
    """corr(z_t, z^2_{t+k}) for k = 1..max_lag, pooling the pairs inside every window (the stylized fact's
    estimator, ``wavefin_core.evaluation.facts.leverage_curve``, which this calls)."""
    # imported here: wavefin_core.evaluation imports wavefin_core.models
    from wavefin_core.evaluation.facts import leverage_curve as pooled_leverage_curve

    return pooled_leverage_curve(windows, max_lag)


def past_drift(shapes: np.ndarray, memory: float) -> np.ndarray:
    """s_t: the exponentially weighted mean of each window's values before t (0 at t = 0), weights summing to
    1 - memory^t. Causal inside the window."""
    if not 0.0 <= memory < 1.0:
        raise ConfigError(f"memory={memory!r} must be in [0, 1): the weight of the past in the EWMA.")
    x = np.asarray(shapes, dtype=np.float64)
    out = np.zeros_like(x)
    acc = np.zeros(x.shape[0])
    for t in range(1, x.shape[1]):
        acc = memory * acc + (1.0 - memory) * x[:, t - 1]
        out[:, t] = acc
    return out


def modulate(shapes: np.ndarray, theta: float, memory: float) -> np.ndarray:
    """z_t * exp(-theta * s_t) (log factor clipped at +-MAX_LOG_MODULATION); a new array."""
    x = np.asarray(shapes, dtype=np.float64)
    if theta == 0.0:
        return x.copy()
    log_factor = np.clip(-float(theta) * past_drift(x, memory), -MAX_LOG_MODULATION, MAX_LOG_MODULATION)
    return x * np.exp(log_factor)


def fit_leverage(shapes: np.ndarray, target: np.ndarray,
                 finish: Callable[[np.ndarray], np.ndarray]) -> LeverageFit:
    """(theta, memory) whose modulated, then ``finish``-ed shapes have the leverage curve closest to ``target``
    (least squares over the lags), by grid search over THETAS x MEMORIES.

    ``shapes`` (N, T): the decoded shapes at RMS 1; ``finish``: the rest of the calibration, called with the first
    min(N, MAX_FIT_WINDOWS) rows. The curve is matched at lags up to T - 2 (at least 2 pairs per window); windows
    of 2 steps or fewer, an empty target, or fewer than MIN_FIT_VALUES values (too noisy a curve) fit nothing:
    theta 0 and ``fitted`` False.
    """
    x = np.asarray(shapes, dtype=np.float64)
    goal = np.asarray(target, dtype=np.float64).reshape(-1)
    lags = min(len(goal), x.shape[1] - 2)
    if lags < 1 or len(x) == 0:
        flat = np.zeros(max(lags, 0))
        return LeverageFit(0.0, MEMORIES[0], goal[:max(lags, 0)], flat, flat, fitted=False)
    goal = goal[:lags]
    sample = x[:MAX_FIT_WINDOWS]
    before = leverage_curve(finish(sample), lags)
    if x.size < MIN_FIT_VALUES:
        return LeverageFit(0.0, MEMORIES[0], goal, before, before, fitted=False)
    best = (float(np.sum((before - goal) ** 2)), 0.0, MEMORIES[0], before)

    def search(memory: float, thetas: np.ndarray) -> None:
        nonlocal best
        drift = past_drift(sample, memory)  # modulate()'s EWMA, computed once per memory for every theta
        for theta in thetas:
            if theta == 0.0:
                continue
            log_factor = np.clip(-theta * drift, -MAX_LOG_MODULATION, MAX_LOG_MODULATION)
            curve = leverage_curve(finish(sample * np.exp(log_factor)), lags)
            error = float(np.sum((curve - goal) ** 2))
            if error < best[0]:
                best = (error, float(theta), memory, curve)

    for memory in MEMORIES:
        search(memory, THETAS)
    coarse = float(THETAS[1] - THETAS[0])
    search(best[2], np.round(best[1] + np.arange(-coarse, coarse + 1e-9, THETA_FINE_STEP), 10))
    _, theta, memory, after = best
    return LeverageFit(theta, memory, goal, before, after)


def apply_fit(fit: LeverageFit, shapes: np.ndarray, finish: Callable[[np.ndarray], np.ndarray]) -> LeverageFit:
    """``fit``'s theta and memory on other ``shapes`` of the same series (e.g. a smaller set drawn by another
    sampler, which should be calibrated like the main set rather than refitted on too few values): the same
    parameters, with the curves of these shapes before and after (``finish`` as in :func:`fit_leverage`)."""
    x = np.asarray(shapes, dtype=np.float64)
    lags = min(len(fit.target), x.shape[1] - 2)
    if lags < 1 or len(x) == 0:
        flat = np.zeros(max(lags, 0))
        return LeverageFit(fit.theta, fit.memory, fit.target[:max(lags, 0)], flat, flat, fitted=fit.fitted)
    sample = x[:MAX_FIT_WINDOWS]
    return LeverageFit(fit.theta, fit.memory, fit.target[:lags], leverage_curve(finish(sample), lags),
                       leverage_curve(finish(modulate(sample, fit.theta, fit.memory)), lags), fitted=fit.fitted)
