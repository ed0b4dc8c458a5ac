"""Augmentation of TRAIN return windows (seed 000): time-shift crops and magnitude jitter.

Both keep what a direction label is attached to: the window's END (the forecast origin) and the sign of every
return.

- Time shift: replace the oldest `s` returns (s drawn in 0..shift per window) by zeros (the mean of
  standardised returns): the window sees a shorter history while its most recent returns stay aligned with
  the label. Shifting the end
  instead would move the origin and leave the label belonging to another window.
- Magnitude jitter: multiply each window by exp(jitter * z), z ~ N(0, 1): a volatility-level change that keeps
  every sign, so a direction label stays true (a regression target would have to be scaled too; use it for
  direction tasks only).

Apply to training windows only, after the split and normalisation; validation and test windows stay real.
"""

from __future__ import annotations

import numpy as np

from wavefin_core.errors import ConfigError, DataError

__all__ = ["augment_windows"]


def augment_windows(
    windows: np.ndarray, rng: np.random.Generator, shift: int = 0, jitter: float = 0.0
) -> np.ndarray:
    """One augmented copy of each window (N, T), same shape and dtype; `windows` is left unchanged.

    `shift`: the most returns dropped from a window's start (0 = no time shift, < T). `jitter`: the standard
    deviation of the log scale factor (0 = none; 0.1 scales by about +-10%). The draws come from `rng` only, so
    a seeded generator gives the same copies every time.
    """
    x = np.asarray(windows)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"windows has shape {x.shape}; expected a non-empty array of return windows (N, T).")
    if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all():
        raise DataError("windows must hold finite floating-point returns; clean or drop NaN/inf windows first.")
    if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or not 0 <= shift < x.shape[1]:
        raise ConfigError(f"shift={shift!r} must be an integer in [0, window length {x.shape[1]}); e.g. 4.")
    if not (isinstance(jitter, (int, float, np.floating)) and np.isfinite(jitter) and jitter >= 0):
        raise ConfigError(f"jitter={jitter!r} must be a finite number >= 0; e.g. 0.1.")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError("rng must be a numpy Generator, e.g. np.random.default_rng(seed).")
    out = x.copy()
    n, length = x.shape
    if shift:
        drops = rng.integers(0, shift + 1, size=n)
        kept = np.arange(length)[None, :] >= drops[:, None]  # the oldest `drops` returns become zeros
        out = np.where(kept, x, 0).astype(x.dtype)
    if jitter:
        out = out * np.exp(jitter * rng.standard_normal(n))[:, None].astype(x.dtype)
    return out.astype(x.dtype, copy=False)
