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
from scipy.signal import lfilter

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
    # Volume co-moves with the bar's |log return| in diffusive units (as real volume does; a jump bar trades
    # ~20x more), times an independent lognormal draw. Drawn after the prices, so prices do not change.
    bar_log_close = np.concatenate([[math.log(s0)], log_path[substeps - 1 :: substeps]])
    abs_move = np.abs(np.diff(bar_log_close)) / (sigma * math.sqrt(dt) if sigma > 0 else 1.0)
    volume = np.exp(VOLUME_LOG_MEAN + np.log1p(abs_move) + VOLUME_LOG_STD * rng.standard_normal(n_bars))

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


# ------------------------------------------------------------------------------------------------ planted
#: Daily volatility of the calm and the turbulent regime of :func:`simulate_planted` (a 2.5x ratio: plainly
#: visible in the fine scales of a scalogram over the last ~10 bars, not from one return alone).
PLANTED_SIGMA_CALM = 0.006
PLANTED_SIGMA_TURBULENT = 0.015


def simulate_planted(
    days: int = 6000,
    signal: float = 1.0,
    reversal: float = 0.7,
    calm_length: float = 60.0,
    start: str = "2000-01-03",
    s0: float = 100.0,
    seed: int = 0,
    return_regime: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, np.ndarray]:
    """A daily OHLCV series whose next-bar direction is planted in what a window's scalogram shows.

    Why: on real prices nobody knows whether a model *can* learn, so "no model beats the naive baselines" could
    mean a broken pipeline. Here the answer is known. The series alternates between a calm regime (volatility
    ``PLANTED_SIGMA_CALM``) and a turbulent one (``PLANTED_SIGMA_TURBULENT``) with geometric spell lengths, and
    each return is ``sigma_regime * (±signal + u_t)``: ``+signal`` in the turbulent regime, ``-signal`` in the
    calm one, with ``u`` a unit-variance AR(1) noise of coefficient ``-reversal``. A window's scalogram shows
    the current regime (the energy of its recent fine scales), which sets the sign of the next return with
    probability ``Phi(signal)`` (0.84 for 1.0) except right after a regime switch.

    The naive baselines are kept honest on purpose: calm spells last ``calm_length`` bars on average and
    turbulent ones ``calm_length * calm/turbulent`` (24 for the defaults), so the two drifts cancel and the
    price has no trend; the majority class (down, ~0.63) only gets the calm share, and the reversal noise breaks
    the sign persistence "previous direction" would otherwise read off the regime (0.67 instead of 0.72 without
    it), against 0.82 for the true regime of the last bar (all measured on 60,000 bars with the defaults).

    ``days`` business-day bars from ``start`` (UTC); the same arguments give the identical frame. Volume is an
    independent lognormal draw (no signal). ``return_regime=True`` also returns each bar's regime (1 = turbulent),
the ground truth for tests.
    """
    if not isinstance(days, numbers.Integral) or isinstance(days, bool) or days < 2:
        raise ConfigError(f"days={days!r} must be an integer >= 2 (number of daily bars of the planted series).")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be a non-negative integer.")
    if not _finite(signal) or signal < 0:
        raise ConfigError(f"signal={signal!r} must be a finite number >= 0 (drift in regime volatilities).")
    if not _finite(reversal) or not 0 <= reversal < 1:
        raise ConfigError(f"reversal={reversal!r} must be in [0, 1) (minus the AR(1) coefficient of the noise).")
    if not _finite(calm_length) or calm_length < 2:
        raise ConfigError(f"calm_length={calm_length!r} must be a finite number >= 2 (mean bars of a calm spell).")
    if not _finite(s0) or s0 <= 0:
        raise ConfigError(f"s0={s0!r} must be a finite price > 0.")
    try:
        start_ts = pd.Timestamp(start)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"start={start!r} is not a date; use e.g. '2000-01-03'.") from exc
    start_ts = start_ts.tz_localize("UTC") if start_ts.tz is None else start_ts.tz_convert("UTC")
    _business_days(start_ts, days)  # refuse an impossible calendar before drawing anything

    rng = np.random.default_rng(seed)
    turbulent_length = calm_length * PLANTED_SIGMA_CALM / PLANTED_SIGMA_TURBULENT
    regime = np.empty(days, dtype=np.int64)
    t, state = 0, 0
    while t < days:  # alternate calm (0) and turbulent (1) spells of geometric length
        mean_length = turbulent_length if state else calm_length
        length = int(rng.geometric(1.0 / mean_length))
        regime[t : t + length] = state
        t, state = t + length, 1 - state
    sigma = np.where(regime == 1, PLANTED_SIGMA_TURBULENT, PLANTED_SIGMA_CALM)
    shocks = rng.standard_normal(days) * math.sqrt(1.0 - reversal**2)
    shocks[0] = rng.standard_normal()  # the stationary start: unit variance from the first bar on
    noise = lfilter([1.0], [1.0, reversal], shocks)  # AR(1): noise[t] = -reversal * noise[t-1] + shocks[t]
    returns = sigma * (signal * np.where(regime == 1, 1.0, -1.0) + noise)
    close = s0 * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[s0], close[:-1]])
    wick = sigma * np.abs(rng.standard_normal((2, days))) * 0.5
    volume = np.exp(VOLUME_LOG_MEAN + VOLUME_LOG_STD * rng.standard_normal(days))
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * np.exp(wick[0]),
            "low": np.minimum(open_, close) * np.exp(-wick[1]),
            "close": close,
            "volume": volume,
        },
        index=_business_days(start_ts, days),
    )
    frame.attrs = {
        "source": "simulate_planted",
        "params": {"days": int(days), "signal": float(signal), "reversal": float(reversal),
                   "calm_length": float(calm_length),
                   "start": str(start), "s0": float(s0), "seed": int(seed),
                   "sigma_calm": PLANTED_SIGMA_CALM, "sigma_turbulent": PLANTED_SIGMA_TURBULENT},
    }
    out = validate_ohlcv(frame, f"simulate_planted(seed={seed})")
    return (out, regime) if return_regime else out


def _business_days(start: pd.Timestamp, days: int) -> pd.DatetimeIndex:
    try:
        return pd.bdate_range(start, periods=days).as_unit("ns")
    except (OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise ConfigError(f"days={days} business days from {start.date()} run past the year 2262 (pandas' "
                          "nanosecond calendar); use fewer days or an earlier start.") from exc
