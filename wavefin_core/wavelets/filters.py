"""PyWavelets' CWT discretisation, rewritten as one circular filter per scale.

``pywt.cwt`` does, for every scale ``s``: integrate the mother wavelet on a fine grid
(``integrate_wavelet(wavelet, precision)``), resample the integral at ``s`` samples per unit of the grid,
convolve the signal with it, take ``-sqrt(s) * diff`` and trim the result to the centre. All of that is
linear and shift-invariant, so it equals a single convolution with the *effective filter*
``g[j] = -sqrt(s) * (psi_s[j] - psi_s[j-1])`` read out at a fixed offset. Only the taps that can ever meet
the ``n`` samples of a window matter (at most ``2n - 1`` of them), so every scale becomes a circular filter
whose FFT length only has to exceed the span of lags the data can see: about ``n + 8 s`` for a Morlet, so
small scales get much shorter FFTs than the ``2n`` the largest ones need. Scales are grouped by FFT length
(see :class:`FilterGroup`); each group shares one forward FFT of the signal and costs one inverse FFT per
scale. Dropping taps that never touch the data is exact, not an approximation.

The discretisation details (float grid in the data's precision, the integer index truncation, the trim
offset) are replicated exactly so the coefficients agree with ``pywt.cwt`` to rounding. That index
truncation is also why the filters are *not* band-limited: the jitter it puts on the sampled integral spreads
every scale's response over the whole spectrum (for 'morl' at n = 256, dropping the bins below 1e-4 of the
largest response already costs 2.5e-4 of the largest coefficient), so band-limited shortcuts would break the
agreement with pywt.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pywt
import scipy.fft as sfft

from wavefin_core.errors import ConfigError

#: pywt's own default for ``cwt(..., precision=)`` (12 since PyWavelets 1.6); read from its signature so an
#: upgrade that changes it keeps us in agreement with ``pywt.cwt``.
PYWT_PRECISION: int = int(inspect.signature(pywt.cwt).parameters["precision"].default)


def wavelet_name(wavelet: str | pywt.ContinuousWavelet) -> str:
    """Validate a continuous wavelet given by name (or pywt object) and return its canonical name."""
    if isinstance(wavelet, pywt.ContinuousWavelet):
        return wavelet.name
    if not isinstance(wavelet, str):
        raise ConfigError(
            f"wavelet={wavelet!r} must be a continuous wavelet name such as 'cmor1.5-1.0', 'morl', 'mexh' or "
            "'gaus1' (see pywt.wavelist(kind='continuous'))."
        )
    try:
        return continuous_wavelet(wavelet).name
    except ValueError as exc:
        families = ", ".join(pywt.wavelist(kind="continuous"))
        raise ConfigError(
            f"wavelet={wavelet!r} is not a continuous wavelet PyWavelets knows ({exc}). Use one of: {families}; "
            "complex Morlet takes its bandwidth and centre frequency in the name, e.g. 'cmor1.5-1.0'."
        ) from None


@lru_cache(maxsize=64)
def continuous_wavelet(name: str) -> pywt.ContinuousWavelet:
    """The pywt ContinuousWavelet for ``name``; raises ValueError for unknown or discrete wavelets."""
    if name not in pywt.wavelist(kind="continuous") and not any(
        name.startswith(family) for family in ("cmor", "fbsp", "shan")
    ):
        raise ValueError(f"{name!r} is not in pywt.wavelist(kind='continuous')")
    return pywt.ContinuousWavelet(name)


@lru_cache(maxsize=32)
def _integrated_wavelet(name: str, precision: int) -> tuple[np.ndarray, np.ndarray]:
    """``(int_psi, grid)`` as pywt.cwt uses them (complex wavelets conjugated), float64 / complex128."""
    wavelet = continuous_wavelet(name)
    int_psi, grid = pywt.integrate_wavelet(wavelet, precision=precision)
    if wavelet.complex_cwt:
        int_psi = np.conj(int_psi)
    int_psi = np.asarray(int_psi)
    int_psi.flags.writeable = False
    grid = np.asarray(grid, dtype=np.float64)
    grid.flags.writeable = False
    return int_psi, grid


def _resampled_wavelet(int_psi: np.ndarray, grid: np.ndarray, scale) -> np.ndarray:
    """pywt's ``int_psi_scale`` for one scale: the integral read at ``scale`` samples per grid unit, reversed.

    ``grid`` must already be in the data's real precision: pywt computes the indices from a grid cast to the
    data dtype, and the integer truncation can move by one sample between float32 and float64.
    """
    step = grid[1] - grid[0]
    index = (np.arange(scale * (grid[-1] - grid[0]) + 1) / (scale * step)).astype(int)
    if index[-1] >= int_psi.size:
        index = index[index < int_psi.size]
    return int_psi[index][::-1]


#: FFT lengths are a power of two times one of these: the lengths pocketfft (scipy.fft) is fastest at.
FAST_LENGTH_FACTORS = (1, 3, 5, 9)


def fast_length(need: int) -> int:
    """Smallest ``2**k * m >= need`` with ``m`` in :data:`FAST_LENGTH_FACTORS`.

    Measured for batched FFTs of 256..512 points: high powers of 3 (324 = 4 * 81, 486 = 2 * 3**5) and
    factors 7 or 11 (which ``scipy.fft.next_fast_len`` also offers) cost 10-45% more per point than these,
    and allowing every fast length splits the scales into more length groups; this grid was the fastest
    end to end (6-10% ahead of ``2**a * 3**b``, 20-50% ahead of ``next_fast_len``).
    """
    return min(m << max(0, -(-need // m) - 1).bit_length() for m in FAST_LENGTH_FACTORS)


@dataclass(frozen=True, eq=False)  # hashed by identity: banks are cached singletons
class FilterGroup:
    """Scales that share one FFT length.

    ``index`` selects them on the scale axis (a slice when they are contiguous, as for sorted scales, else an
    integer array); ``responses`` has shape ``(len(scales), fft_len // 2 + 1)`` when the bank is ``onesided``
    and ``(len(scales), fft_len)`` otherwise.
    """

    fft_len: int
    index: slice | np.ndarray
    responses: np.ndarray


@dataclass(frozen=True, eq=False)  # hashed by identity: banks are cached singletons
class FilterBank:
    """Per-scale frequency responses of the CWT for windows of ``n`` samples, grouped by FFT length.

    ``onesided``: real wavelet and real data, so rfft/irfft; otherwise fft/ifft. Responses are computed in
    float64 and stored in the working precision (``dtype``).
    """

    groups: tuple[FilterGroup, ...]
    num_scales: int
    n: int
    onesided: bool
    dtype: np.dtype


def _effective_taps(filt: np.ndarray, scale: float) -> tuple[np.ndarray, int]:
    """The effective filter ``-sqrt(s) * diff`` of ``filt`` and pywt's trim offset for it."""
    length = filt.size
    if length < 2:
        raise ConfigError(
            f"scales contains {float(scale)!r}, too small for this wavelet: its resampled filter has "
            f"{length} tap (pywt.cwt refuses it too). Use larger scales, e.g. covering_scales(window, wavelet)."
        )
    taps = np.zeros(length + 1, dtype=filt.dtype)
    taps[:length] += filt
    taps[1:] -= filt
    taps *= -math.sqrt(float(scale))
    return taps, (length - 2) // 2


def _tap_span(tap_count: int, offset: int, n: int) -> tuple[int, int]:
    """Index range ``[lo, hi]`` of the taps that can meet an ``n``-sample window (others are exactly unused)."""
    return max(0, offset + 2 - n), min(tap_count - 1, offset + n)


def _group_index(members: list[int]) -> slice | np.ndarray:
    if members == list(range(members[0], members[-1] + 1)):
        return slice(members[0], members[-1] + 1)
    index = np.array(members)
    index.flags.writeable = False
    return index


@lru_cache(maxsize=64)
def filter_bank(name: str, scales: tuple, scales_dtype: str, n: int, real_dtype: str, onesided: bool,
                precision: int = PYWT_PRECISION) -> FilterBank:
    """Build (once per key: the cache is why all arguments are hashable) the frequency responses.

    Output sample ``t`` of scale ``s`` is ``sum_m x[m] * taps[t - m + 1 + offset]`` (pywt's full convolution,
    diff and centre trim). Storing tap ``j`` at circular position ``j - 1 - offset`` makes that a circular
    convolution read out at ``t = 0 .. n-1``, which is exact as long as the FFT length exceeds the span of
    lags the data can see: ``max_lag + n - 1`` and ``n - 1 - min_lag``. Each scale gets the shortest
    :func:`fast_length` satisfying that, and scales with equal lengths form one group.
    """
    int_psi, grid = _integrated_wavelet(name, precision)
    grid = grid.astype(real_dtype)
    scale_values = np.asarray(scales, dtype=scales_dtype)
    complex_dtype = np.result_type(real_dtype, np.complex64)
    by_length: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for position, scale in enumerate(scale_values):
        taps, offset = _effective_taps(_resampled_wavelet(int_psi, grid, scale), scale)
        lo, hi = _tap_span(taps.size, offset, n)
        lags = np.arange(lo, hi + 1) - 1 - offset
        fft_len = fast_length(max(n, int(lags.max()) + n, n - int(lags.min())))
        by_length.setdefault(fft_len, []).append((position, lags, taps[lo:hi + 1]))
    groups = []
    for fft_len, members in sorted(by_length.items()):
        bank = np.zeros((len(members), fft_len), dtype=int_psi.dtype)
        for row, (_, lags, taps) in zip(bank, members, strict=True):
            row[lags % fft_len] = taps
        responses = sfft.rfft(bank.real, axis=-1) if onesided else sfft.fft(bank, axis=-1)
        responses = np.ascontiguousarray(responses, dtype=complex_dtype)
        responses.flags.writeable = False
        groups.append(FilterGroup(fft_len, _group_index([m[0] for m in members]), responses))
    return FilterBank(groups=tuple(groups), num_scales=len(scale_values), n=n, onesided=onesided,
                      dtype=np.dtype(complex_dtype))
