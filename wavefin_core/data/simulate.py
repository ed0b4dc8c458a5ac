"""Merton jump-diffusion (MJD) price series: the default data, with known ground truth.

Why MJD: it has the two features wavelets are good at separating (a diffusive background and rare jumps),
its parameters are interpretable, and with ``lam=0`` it reduces to geometric Brownian motion, whose return
distribution is known exactly, which makes it a good test signal for the whole pipeline.

The log-price is simulated with the exact discretisation (no Euler error), on ``substeps`` sub-steps per bar:

    dX = (mu - lam*k - sigma^2/2) dt + sigma dW + sum_{i <= dN} Y_i,   Y_i ~ N(jump_mean, jump_std^2),
    k = exp(jump_mean + jump_std^2/2) - 1,   dN ~ Poisson(lam dt)

The ``-lam*k`` compensator makes ``mu`` the expected price growth rate including jumps. Bars are built from
the sub-step path the way an exchange builds them: open = first sub-step price, high = max, low = min,
close = last. Volume is an independent lognormal draw per bar (MJD says nothing about volume; it is there
to satisfy the contract, not to carry signal).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

from wavefin_core.data.validate import validate_ohlcv
from wavefin_core.errors import ConfigError

MINUTES_PER_DAY = 1440
MINUTE_DT = 1.0 / (365 * MINUTES_PER_DAY)  # crypto/FX-style calendar: trading every minute of the year
DAILY_DT = 1.0 / 252  # business days per year
VOLUME_LOG_MEAN = math.log(1_000.0)
VOLUME_LOG_STD = 0.5


def simulate_mjd(
    days: int = 30,
    mu: float = 0.05,
    sigma: float = 0.2,
    lam: float = 0.1,
    jump_mean: float = -0.02,
    jump_std: float = 0.1,
    start: str = "2022-01-01",
    freq: str = "minute",
    s0: float = 100.0,
    seed: int = 0,
    substeps: int = 4,
) -> pd.DataFrame:
    """Simulate an OHLCV frame from a Merton jump diffusion (annualised ``mu``, ``sigma``, ``lam``).

    ``freq="minute"``: ``days * 1440`` one-minute bars starting at ``start`` (UTC), ``dt = 1/(365*1440)``.
    ``freq="daily"``: ``days`` business-day bars from the first business day at or after ``start``,
    ``dt = 1/252``. The same arguments always give the identical frame (numpy ``Generator`` seeded with
    ``seed``). Raises :class:`ConfigError` naming the offending parameter.
    """
    _check_args(days, sigma, lam, jump_std, freq, s0, substeps, seed, mu, jump_mean)
    try:
        start_ts = pd.Timestamp(start)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"start={start!r} is not a date; use e.g. '2022-01-01'.") from exc
    start_ts = start_ts.tz_localize("UTC") if start_ts.tz is None else start_ts.tz_convert("UTC")

    if freq == "minute":
        n_bars, dt = days * MINUTES_PER_DAY, MINUTE_DT
        index = pd.date_range(start_ts, periods=n_bars, freq="min")
    else:
        n_bars, dt = days, DAILY_DT
        index = pd.bdate_range(start_ts, periods=n_bars)

    rng = np.random.default_rng(seed)
    n_steps = n_bars * substeps
    h = dt / substeps
    k = math.exp(jump_mean + 0.5 * jump_std**2) - 1.0
    drift = (mu - lam * k - 0.5 * sigma**2) * h
    diffusion = sigma * math.sqrt(h) * rng.standard_normal(n_steps)
    n_jumps = rng.poisson(lam * h, n_steps)
    # Sum of n iid N(m, s^2) jumps is exactly N(n m, n s^2).
    jumps = n_jumps * jump_mean + np.sqrt(n_jumps) * jump_std * rng.standard_normal(n_steps)
    log_path = math.log(s0) + np.cumsum(drift + diffusion + jumps)
    prices = np.exp(log_path).reshape(n_bars, substeps)
    volume = np.exp(VOLUME_LOG_MEAN + VOLUME_LOG_STD * rng.standard_normal(n_bars))

    frame = pd.DataFrame(
        {
            "open": prices[:, 0],
            "high": prices.max(axis=1),
            "low": prices.min(axis=1),
            "close": prices[:, -1],
            "volume": volume,
        },
        index=index,
    )
    frame.attrs = {
        "source": "simulate_mjd",
        "params": {
            "days": int(days),
            "mu": float(mu),
            "sigma": float(sigma),
            "lam": float(lam),
            "jump_mean": float(jump_mean),
            "jump_std": float(jump_std),
            "start": str(start),
            "freq": freq,
            "s0": float(s0),
            "seed": int(seed),
            "substeps": int(substeps),
            "dt": dt,
        },
    }
    return validate_ohlcv(frame, f"simulate_mjd(seed={seed})")


def _check_args(
    days: int,
    sigma: float,
    lam: float,
    jump_std: float,
    freq: str,
    s0: float,
    substeps: int,
    seed: int,
    mu: float,
    jump_mean: float,
) -> None:
    def is_int(x: object) -> bool:
        return isinstance(x, numbers.Integral) and not isinstance(x, bool)

    if not is_int(days) or days <= 0:
        raise ConfigError(f"days={days!r} must be a positive integer (number of days to simulate).")
    if not is_int(substeps) or substeps < 1:
        raise ConfigError(f"substeps={substeps!r} must be an integer >= 1 (sub-steps per bar).")
    if not is_int(seed) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be a non-negative integer.")
    if freq not in ("minute", "daily"):
        raise ConfigError(f"freq={freq!r} must be 'minute' or 'daily'.")
    for name, value, minimum in (
        ("sigma", sigma, 0.0),
        ("lam", lam, 0.0),
        ("jump_std", jump_std, 0.0),
    ):
        if not _finite(value) or value < minimum:
            raise ConfigError(f"{name}={value!r} must be a finite number >= {minimum}.")
    for name, value in (("mu", mu), ("jump_mean", jump_mean)):
        if not _finite(value):
            raise ConfigError(f"{name}={value!r} must be a finite number.")
    if not _finite(s0) or s0 <= 0:
        raise ConfigError(f"s0={s0!r} must be a finite price > 0.")


def _finite(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))
