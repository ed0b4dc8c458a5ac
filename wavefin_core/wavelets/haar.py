"""Haar wavelet tools: causal denoising and an exactly invertible Haar DWT image.

Why causal denoising: denoising a whole series with a DWT (wavedec / threshold / waverec) makes the value
at ``t`` depend on samples after ``t``. Applied before a train/test split, or to the inputs of a forecaster,
that is a look-ahead leak and inflates every score. :func:`haar_denoise` with ``causal=True`` denoises, for
each ``t``, only the trailing block of ``2**level`` samples ending at ``t`` and keeps its last sample, and
estimates the noise level from past samples only, so its output at ``t`` is a function of ``x[..t]``.
"""

from __future__ import annotations

import math

import numpy as np
import pywt
from numpy.lib.stride_tricks import sliding_window_view

from wavefin_core.errors import ConfigError

#: MAD of a standard normal: sigma = median(|d|) / 0.6745 for the finest Haar details of white noise.
MAD_TO_SIGMA = 0.6744897501960817
#: Elements per block of the trailing-median computation (bounds its memory).
_MEDIAN_BLOCK = 1 << 22


def _as_float_array(x, name: str = "x") -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ConfigError(f"{name} has dtype {arr.dtype}; pass a real numeric array whose last axis is time.")
    if arr.ndim == 0:
        raise ConfigError(f"{name} is a scalar; pass an array whose last axis is time.")
    return arr.astype(np.float32 if arr.dtype == np.float32 else np.float64, copy=False)


def _check_level(level, name: str = "level") -> int:
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level < 1:
        raise ConfigError(f"{name}={level!r} must be an integer >= 1 (number of Haar halvings).")
    return int(level)


def _shrink(coef: np.ndarray, threshold, mode: str) -> np.ndarray:
    """Soft (shrink towards 0) or hard (keep if ``|coef| >= threshold``) thresholding, like pywt.threshold."""
    magnitude = np.abs(coef)
    if mode == "soft":
        return np.sign(coef) * np.maximum(magnitude - threshold, 0)
    return np.where(magnitude >= threshold, coef, 0)


def _check_threshold(threshold, mode: str) -> None:
    if mode not in ("soft", "hard"):
        raise ConfigError(f"mode={mode!r} must be 'soft' or 'hard'.")
    if isinstance(threshold, str):
        if threshold != "universal":
            raise ConfigError(f"threshold={threshold!r} must be 'universal' or a non-negative number.")
    elif isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not threshold >= 0:
        raise ConfigError(f"threshold={threshold!r} must be 'universal' or a non-negative number.")


def _trailing_sigma(x: np.ndarray, window: int) -> np.ndarray:
    """Noise level at each ``t`` from the MAD of the finest Haar details in ``x[t-window+1 .. t]``.

    The finest details are ``(x[s-1] - x[s]) / sqrt(2)`` for every ``s`` (all pairs, not only the dyadic
    ones, so every ``t`` gets an estimate). Before ``window`` details exist the median runs over all that do;
    ``t = 0`` has none and gets 0.
    """
    rows = x.reshape(-1, x.shape[-1])
    length = rows.shape[-1]
    details = np.abs(np.diff(rows, axis=-1)) / math.sqrt(2)  # details[:, s-1] belongs to time s
    sigma = np.zeros_like(rows)
    for t in range(1, min(window, length)):  # expanding start-up: at most `window` small medians
        sigma[:, t] = np.median(details[:, :t], axis=-1)
    if length > window:
        views = sliding_window_view(details, window, axis=-1)  # views[:, i] ends at time i + window
        step = max(1, _MEDIAN_BLOCK // (window * rows.shape[0]))
        for start in range(0, views.shape[1], step):
            block = views[:, start:start + step]
            sigma[:, window + start:window + start + block.shape[1]] = np.median(block, axis=-1)
    return (sigma / MAD_TO_SIGMA).reshape(x.shape)


def _causal_denoise(x: np.ndarray, level: int, threshold, mode: str, sigma_window: int) -> np.ndarray:
    """Last sample of the Haar-denoised trailing block, for every ``t``, with elementwise ops only.

    The last sample of a block of ``2**L`` samples rebuilds from the block mean and, at each level ``j``,
    the one detail coefficient whose support ends at the block's end:
    ``x_last = mean - sum_j d_j * 2**(-j/2)`` with ``d_j = (S_w(t-w) - S_w(t)) * 2**(-j/2)``, ``w = 2**(j-1)``,
    where ``S_w(t)`` is the sum of the ``w`` samples ending at ``t`` (built by doubling: ``S_2w(t) = S_w(t) +
    S_w(t-w)``). Thresholding those ``d_j`` equals denoising the whole block and keeping its last sample.
    Only shifts and elementwise arithmetic are used, so a value at ``t`` is bitwise independent of later
    samples. Samples with less than ``2**level`` of history use the largest level their history allows
    (``t = 0`` passes through).
    """
    length = x.shape[-1]
    t = np.arange(length)
    usable = np.minimum(level, np.floor(np.log2(t + 1)).astype(int))  # level each t can afford
    if threshold == "universal":
        sigma = _trailing_sigma(x, sigma_window)
        lam = (sigma * np.sqrt(2 * np.log(np.maximum(2.0 ** usable, 2.0)))).astype(x.dtype)
    else:
        lam = np.asarray(threshold, dtype=x.dtype)
    sums = x.copy()
    correction = np.zeros_like(x)
    denoised = x.copy()  # level 0 (t = 0) passes through
    for j in range(1, level + 1):
        width = 2 ** (j - 1)
        earlier = np.zeros_like(sums)
        earlier[..., width:] = sums[..., :-width]  # S_w(t - w)
        detail = (earlier - sums) * 2.0 ** (-j / 2)
        active = usable >= j
        correction = np.where(active, correction + _shrink(detail, lam, mode) * 2.0 ** (-j / 2), correction)
        sums = sums + earlier  # S_2w
        denoised = np.where(usable == j, sums * 2.0 ** (-j) - correction, denoised)
    return denoised.astype(x.dtype, copy=False)


def _whole_series_denoise(x: np.ndarray, level: int, threshold, mode: str) -> np.ndarray:
    length = x.shape[-1]
    max_level = pywt.dwt_max_level(length, 2)
    if level > max_level:
        raise ConfigError(f"level={level} is too deep for {length} samples; use level <= {max_level}.")
    coeffs = pywt.wavedec(x, "haar", level=level, axis=-1)
    if threshold == "universal":
        sigma = np.median(np.abs(coeffs[-1]), axis=-1, keepdims=True) / MAD_TO_SIGMA
        threshold = sigma * math.sqrt(2 * math.log(length))
    coeffs = [coeffs[0]] + [_shrink(d, threshold, mode) for d in coeffs[1:]]
    return pywt.waverec(coeffs, "haar", axis=-1)[..., :length].astype(x.dtype, copy=False)


def haar_denoise(x, level: int, threshold: float | str = "universal", mode: str = "soft", causal: bool = True,
                 *, sigma_window: int = 256) -> np.ndarray:
    """Haar-wavelet denoising along the last axis.

    Parameters
    ----------
    x : array (..., T), last axis = time.
    level : number of Haar levels; the causal mode denoises trailing blocks of ``2**level`` samples.
    threshold : a number (applied to orthonormal detail coefficients at every level) or ``"universal"``:
        ``sigma * sqrt(2 log n)`` with sigma from the MAD of the finest details and ``n`` the length being
        denoised (the series, or the trailing block in causal mode).
    mode : ``"soft"`` (shrink) or ``"hard"`` (keep or kill).
    causal : True (default): the output at ``t`` depends only on ``x[..t]`` -- sigma comes from the finest
        details in the trailing ``sigma_window`` samples, the block from the trailing ``2**level``. False:
        classic whole-series ``wavedec / threshold / waverec``. That version LEAKS LOOK-AHEAD: every output
        uses future samples, so never apply it before a train/test split or to a forecaster's inputs.
    sigma_window : samples of history used for the causal noise estimate.

    Returns
    -------
    Array of ``x``'s shape, float32 for float32 input else float64.
    """
    arr = _as_float_array(x)
    level = _check_level(level)
    _check_threshold(threshold, mode)
    if not isinstance(causal, (bool, np.bool_)):
        raise ConfigError(f"causal={causal!r} must be True or False.")
    if isinstance(sigma_window, bool) or not isinstance(sigma_window, (int, np.integer)) or sigma_window < 2:
        raise ConfigError(f"sigma_window={sigma_window!r} must be an integer >= 2 (samples of history).")
    if arr.shape[-1] < 2:
        return arr.copy()
    if causal:
        return _causal_denoise(arr, level, threshold, mode, int(sigma_window))
    return _whole_series_denoise(arr, level, threshold, mode)


def haar_dwt_image(x, level: int) -> np.ndarray:
    """Exactly invertible Haar DWT of each window as an image ``(..., level + 1, T)``.

    Row 0 holds the level-``level`` approximation, row ``k`` the details of level ``level - k + 1`` (coarse
    to fine, like ``pywt.wavedec``), each coefficient repeated over the ``2**j`` samples it covers so every
    row is time-aligned. Orthonormal coefficients of white noise have the same variance at every level, so
    rows of a returns window have comparable scales. ``T`` must be divisible by ``2**level``.
    """
    arr = _as_float_array(x)
    level = _check_level(level)
    length = arr.shape[-1]
    if length % (2 ** level):
        raise ConfigError(
            f"window length {length} is not divisible by 2**level = {2 ** level}; use a window that is a "
            f"multiple of {2 ** level} or a smaller level."
        )
    coeffs = pywt.wavedec(arr, "haar", level=level, mode="periodization", axis=-1)
    repeats = [2 ** level] + [2 ** j for j in range(level, 0, -1)]
    rows = [np.repeat(c, r, axis=-1) for c, r in zip(coeffs, repeats, strict=True)]
    return np.stack(rows, axis=-2).astype(arr.dtype, copy=False)


def haar_idwt_image(img) -> np.ndarray:
    """Inverse of :func:`haar_dwt_image`, exact on its images; on any other image (e.g. generated) each
    coefficient is the mean over the samples it was repeated on, which is the least-squares nearest valid
    image, then inverted. The level is ``img.shape[-2] - 1``."""
    arr = _as_float_array(img, "img")
    if arr.ndim < 2 or arr.shape[-2] < 2:
        raise ConfigError(f"img has shape {arr.shape}; it must be (..., level + 1, T) as haar_dwt_image returns.")
    level = arr.shape[-2] - 1
    length = arr.shape[-1]
    if length % (2 ** level):
        raise ConfigError(
            f"img has {level + 1} rows, so level {level}, but its length {length} is not divisible by "
            f"{2 ** level}; pass an image produced by haar_dwt_image."
        )
    repeats = [2 ** level] + [2 ** j for j in range(level, 0, -1)]
    coeffs = [arr[..., row, :].reshape(arr.shape[:-2] + (length // r, r)).mean(axis=-1)
              for row, r in enumerate(repeats)]
    return pywt.waverec(coeffs, "haar", mode="periodization", axis=-1).astype(arr.dtype, copy=False)
