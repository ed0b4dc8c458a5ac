"""Band-limited, analytic complex Morlet CWT: ``cwt(x, scales, "cmorB-C", method="analytic")``.

This is the construction fCWT and ssqueezepy use, not PyWavelets' discretisation. The complex Morlet
``psi(t) = (pi B)^-1/2 exp(-t^2 / B) exp(2 pi i C t)`` has the Gaussian spectrum
``psi_hat(f) = exp(-pi^2 B (f - C)^2)``; the analytic mode samples it in frequency and keeps only the
non-negative frequencies. For a window of ``n`` samples with DFT ``X[k]``, scale ``s`` gives

    W[s, t] = (1/n) * sum_{k=1}^{n//2} X[k] * sqrt(s) * psi_hat(s k / n) * exp(2 pi i k t / n)

i.e. the circular correlation of the window with ``s^-1/2 conj(psi(t / s))`` (pywt's normalisation),
band-limited to positive frequencies.

Boundary handling: **circular**. The window is one period of a periodic signal, nothing is padded, so the
FFT length is ``n`` for every scale (pywt's mode pads to up to ``2n``) and the two ends of the window
wrap into each other at large scales. The DC bin is excluded, so the transform ignores the window's mean
exactly: :func:`icwt` (``method="analytic"``) returns the zero-mean series and takes ``mean=`` to add a
known mean back (as MATLAB's ``icwt(..., SignalMean=...)`` and ssqueezepy's ``icwt(..., x_mean=...)`` do).

Differences from ``pywt.cwt(x, scales, "cmorB-C")`` (the default ``method="pywt"``): pywt works in the time
domain with zero padding, resamples the integrated wavelet with an integer index truncation (spectral
jitter at every scale), keeps the small negative-frequency lobe and delays its output by half a sample.
Away from the edges the two agree to a few percent of the largest coefficient for scales >= 8 once that
half-sample delay is applied; the analytic mode is the one whose coefficients are exactly the formula above.

Speed (why it is faster than the pywt mode and than fCWT on many short windows): one real FFT per window
(shared by all scales), and per scale only the bins where the Gaussian is above the working precision
(``RESPONSE_FLOOR``: below it a bin cannot change the result) are used. Wide bands (small scales) are
multiplied in place into the output and inverse-FFT'd at length ``n``; narrow bands (large scales: the
band holds ``~2 n / s`` bins) are synthesised by one real matrix product per group of neighbouring scales,
``(windows * scales, 2K) @ (2K, 2n)`` with the inverse DFT rows of the group's K bins, because a GEMM over K
bins costs less than an FFT of n points when K is small (BLAS runs near the core's peak, an FFT of 256
points far from it). Everything runs chunk
by chunk into the preallocated output so each chunk stays in cache.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft as sfft

from wavefin_core.errors import ConfigError
from wavefin_core.wavelets.filters import continuous_wavelet

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

try:  # optional: FFTW's planned transforms are ~1.7x faster than scipy.fft (pocketfft) at n = 256
    import pyfftw
except ImportError:  # pragma: no cover - depends on the environment
    pyfftw = None

#: Inverse FFTs of the numpy path: "pyfftw" when pyFFTW is installed, else "scipy". Same numbers to rounding;
#: set it to "scipy" to compare (bench/bench_cwt.py does).
FFT_BACKEND = "pyfftw" if pyfftw is not None else "scipy"

#: Bins whose response is below this fraction of the scale's peak are dropped: below single / double
#: precision's resolution they cannot change a float32 / float64 result.
RESPONSE_FLOOR = {np.dtype(np.float32): 1e-8, np.dtype(np.float64): 1e-16}
#: A scale whose band has at most ``GEMM_BINS_PER_LOG2 * log2(n)`` bins is synthesised by a matrix product
#: instead of an inverse FFT. Measured at n = 256 on the shared 2-vCPU machine (float32, 1024 windows, 64
#: scales geomspace(2, 128), CPU time): 2, 4, 6 and 9 x log2 n were within noise of each other (123-136 ms)
#: and all-FFT was slower (134 ms in that run, 1.5x with scipy.fft's pocketfft instead of FFTW); 6 is the middle.
GEMM_BINS_PER_LOG2 = 6.0
#: Neighbouring GEMM scales share one matrix product while their common band is at most this much wider
#: than the narrowest member's own band (the extra bins are wasted multiply-adds).
GROUP_WIDENING = 1.25
#: At most this many scales per matrix product (bounds the size of the cached matrix).
GROUP_SCALES = 8
#: Output bytes per chunk of windows on the numpy path: the chunk is written once and stays in cache
#: between the multiply, the inverse FFT and the matrix products.
CHUNK_BYTES = 2 * 2**20
#: Same for the torch path, whose FFTs may run on a GPU (fewer, larger launches pay there).
TORCH_CHUNK_BYTES = 64 * 2**20


def morlet_parameters(name: str) -> tuple[float, float]:
    """(bandwidth B, centre frequency C) of a complex Morlet; ConfigError for any other wavelet."""
    if not name.startswith("cmor"):
        raise ConfigError(
            f"method='analytic' is defined for the complex Morlet only, got wavelet={name!r}. Use a "
            "'cmorB-C' name such as 'cmor1.5-1.0', or method='pywt' for the other wavelets."
        )
    wavelet = continuous_wavelet(name)
    return float(wavelet.bandwidth_frequency), float(wavelet.center_frequency)


def morlet_responses(bandwidth: float, centre: float, scales: np.ndarray, n: int) -> np.ndarray:
    """``sqrt(s) * psi_hat(s k / n)`` for the non-negative bins ``k = 0 .. n//2``, DC set to 0: (S, n//2+1)."""
    freqs = np.arange(n // 2 + 1, dtype=np.float64) / n
    s = np.asarray(scales, dtype=np.float64)[:, None]
    responses = np.sqrt(s) * np.exp(-(math.pi**2) * bandwidth * (s * freqs - centre) ** 2)
    responses[:, 0] = 0.0  # the DC bin: the transform ignores the window's mean (see the module docstring)
    return responses


@dataclass(frozen=True, eq=False)  # hashed by identity: banks are cached singletons
class GemmGroup:
    """Neighbouring scales ``index`` (a slice of the scale axis) synthesised from bins ``lo .. hi - 1``.

    ``responses``: (len(scales), 2 * (hi - lo)) real, each response repeated for the (re, im) pair of its bin;
    ``dft``: (2 * (hi - lo), 2 * n) real, the inverse DFT rows of those bins (``exp(2 pi i k t / n) / n``)
    acting on interleaved (re, im) spectra and giving interleaved (re, im) output. The DFT matrix is shared
    by every scale of the group, so one matrix product covers ``windows x scales`` rows at once.
    """

    index: slice
    lo: int
    hi: int
    responses: np.ndarray
    dft: np.ndarray


@dataclass(frozen=True, eq=False)
class AnalyticBank:
    """The analytic transform of ``n``-sample windows at fixed scales, split into FFT and GEMM scales."""

    n: int
    num_scales: int
    real_dtype: np.dtype
    responses: np.ndarray  # (S, n//2+1) float64, the exact (untruncated) responses: the torch path uses them
    fft_index: slice | np.ndarray | None  # scales done by inverse FFT (None: none)
    fft_responses: np.ndarray  # (len(fft scales), 2 * (n//2+1)) real: responses / n, repeated for re and im
    gemm_groups: tuple[GemmGroup, ...]

    @property
    def complex_dtype(self) -> np.dtype:
        return np.result_type(self.real_dtype, np.complex64)


def _bands(responses: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Per scale, the bin range ``[lo, hi)`` outside which the response is below ``floor`` of its peak."""
    keep = responses >= floor * responses.max(axis=1, keepdims=True)
    keep[responses.max(axis=1) == 0] = False
    lo = keep.argmax(axis=1)
    hi = responses.shape[1] - keep[:, ::-1].argmax(axis=1)
    empty = ~keep.any(axis=1)
    lo[empty], hi[empty] = 1, 1
    return lo, hi


def _inverse_dft_rows(lo: int, hi: int, n: int, real_dtype: np.dtype) -> np.ndarray:
    """Real matrix taking interleaved bins ``lo..hi-1`` to the interleaved inverse DFT (``1/n`` included)."""
    phase = np.exp(2j * np.pi * np.outer(np.arange(lo, hi), np.arange(n)) / n) / n  # (K, n)
    matrix = np.empty((2 * (hi - lo), 2 * n), dtype=real_dtype)
    matrix[0::2, 0::2], matrix[0::2, 1::2] = phase.real, phase.imag  # Re Y[k] -> (Re, Im) of the output
    matrix[1::2, 0::2], matrix[1::2, 1::2] = -phase.imag, phase.real  # Im Y[k] -> (Re, Im) of the output
    matrix.flags.writeable = False
    return matrix


def _index(members: list[int]) -> slice | np.ndarray | None:
    if not members:
        return None
    if members == list(range(members[0], members[-1] + 1)):
        return slice(members[0], members[-1] + 1)
    index = np.array(members)
    index.flags.writeable = False
    return index


@lru_cache(maxsize=16)
def analytic_bank(bandwidth: float, centre: float, scales: tuple, n: int, real_dtype: str) -> AnalyticBank:
    """Build (once per key) the responses, the FFT/GEMM split and the GEMM matrices."""
    dtype = np.dtype(real_dtype)
    responses = morlet_responses(bandwidth, centre, np.asarray(scales), n)
    responses.flags.writeable = False
    lo, hi = _bands(responses, RESPONSE_FLOOR[dtype])
    gemm_limit = GEMM_BINS_PER_LOG2 * math.log2(max(n, 2))
    use_gemm = (hi - lo) <= gemm_limit
    fft_members = [i for i in range(len(scales)) if not use_gemm[i]]
    groups: list[GemmGroup] = []
    run: list[int] = []

    def close(members: list[int]) -> None:
        if members:
            g_lo, g_hi = int(lo[members].min()), int(hi[members].max())
            weights = np.repeat(responses[members, g_lo:g_hi], 2, axis=1).astype(dtype)
            weights.flags.writeable = False
            groups.append(GemmGroup(slice(members[0], members[-1] + 1), g_lo, g_hi, weights,
                                    _inverse_dft_rows(g_lo, g_hi, n, dtype)))

    for i in range(len(scales)):
        if not use_gemm[i]:
            close(run)
            run = []
            continue
        candidate = run + [i]
        width = int(hi[candidate].max() - lo[candidate].min())
        narrowest = int((hi[candidate] - lo[candidate]).min())
        if run and (len(candidate) > GROUP_SCALES or width > max(narrowest * GROUP_WIDENING, narrowest + 2)):
            close(run)
            candidate = [i]
        run = candidate
    close(run)
    # 1/n folded in: the inverse FFTs run unscaled (FFTW's execute() never scales).
    fft_responses = (np.repeat(responses[fft_members], 2, axis=1) / n).astype(dtype)
    fft_responses.flags.writeable = False
    return AnalyticBank(n=n, num_scales=len(scales), real_dtype=dtype, responses=responses,
                        fft_index=_index(fft_members), fft_responses=fft_responses, gemm_groups=tuple(groups))


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        return None
    return ThreadpoolController()


def _single_threaded_blas() -> Any:
    """Context limiting BLAS to one thread: the engine parallelises over chunks of windows itself."""
    controller = _blas_controller()
    if controller is None or all(lib.get("num_threads", 1) <= 1 for lib in controller.info()
                                 if lib.get("user_api") == "blas"):
        return nullcontext()
    return controller.limit(limits=1, user_api="blas")


def _inverse_fft_in_place(target: np.ndarray, plans: dict) -> None:
    """Unscaled inverse FFT along the last axis of ``target``, in place (the 1/n is in the responses).

    With pyFFTW, one plan per (shape, strides), made with FFTW_MEASURE on scratch memory of the same layout
    (planning overwrites its arrays; FFTW's wisdom makes every plan after the first ~0.2 ms) and run on
    ``target`` with ``update_arrays``. Plans are per call and per thread: executing one is not thread-safe.
    """
    if FFT_BACKEND != "pyfftw" or pyfftw is None:
        result = sfft.ifft(target, axis=-1, norm="forward", overwrite_x=True, workers=1)
        if not np.shares_memory(result, target):
            target[...] = result
        return
    key = (target.shape, target.strides)
    plan = plans.get(key)
    if plan is None:
        span = sum((size - 1) * stride for size, stride in zip(target.shape, target.strides, strict=True))
        memory = np.empty(span // target.itemsize + 1, dtype=target.dtype)
        scratch = np.lib.stride_tricks.as_strided(memory, target.shape, target.strides)
        plan = pyfftw.FFTW(scratch, scratch, axes=(-1,), direction="FFTW_BACKWARD",
                           flags=("FFTW_MEASURE", "FFTW_UNALIGNED"), threads=1)
        plans[key] = plan
    plan.update_arrays(target, target)
    plan.execute()


def _transform_chunks(spectra: np.ndarray, out: np.ndarray, bank: AnalyticBank, starts: range, step: int) -> None:
    """Fill ``out[start:start+step]`` for each start: in-place inverse FFTs, then the GEMM groups."""
    half = spectra.shape[1] // 2  # bins kept, n//2 + 1
    flat_spectra = spectra  # (B, 2 * half) real: interleaved (re, im) of bins 0 .. n//2
    out_real = out.view(bank.real_dtype)  # (B, S, 2n)
    n = bank.n
    index = bank.fft_index
    contiguous = isinstance(index, slice)
    work = None
    plans: dict = {}
    # Work buffers of the GEMM groups, reused for every chunk (cache-resident).
    largest = max((g.responses.size for g in bank.gemm_groups), default=0)
    weighted_buffer = np.empty(step * largest, dtype=bank.real_dtype)
    signal_buffer = np.empty(step * max((g.responses.shape[0] for g in bank.gemm_groups), default=0) * 2 * n,
                             dtype=bank.real_dtype)
    for start in starts:
        stop = min(start + step, out.shape[0])
        rows = stop - start
        block_spectra = flat_spectra[start:stop]
        if index is not None:
            if contiguous:
                target, target_real = out[start:stop, index], out_real[start:stop, index]
            else:
                if work is None:
                    work = np.empty((step, len(index), n), dtype=out.dtype)
                target = work[:rows]
                target_real = target.view(bank.real_dtype)
            np.multiply(block_spectra[:, None, :], bank.fft_responses, out=target_real[..., :2 * half])
            target_real[..., 2 * half:] = 0
            _inverse_fft_in_place(target, plans)
            if not contiguous:
                out[start:stop, index] = target
        for group in bank.gemm_groups:
            count, width = group.responses.shape
            weighted = np.multiply(block_spectra[:, None, 2 * group.lo:2 * group.hi], group.responses,
                                   out=weighted_buffer[:rows * count * width].reshape(rows, count, width))
            signal = np.matmul(weighted.reshape(rows * count, width), group.dft,
                               out=signal_buffer[:rows * count * 2 * n].reshape(rows * count, 2 * n))
            out_real[start:stop, group.index] = signal.reshape(rows, count, 2 * n)


def analytic_cwt_numpy(rows: np.ndarray, bank: AnalyticBank, workers: int, chunk: int | None,
                       out: np.ndarray | None = None) -> np.ndarray:
    """Analytic CWT of ``rows`` (B, n), real or complex, into ``out`` (or a new (B, S, n) complex array)."""
    batch, n = rows.shape
    real_dtype = bank.real_dtype
    half = n // 2 + 1
    if np.iscomplexobj(rows):
        spectrum = np.ascontiguousarray(sfft.fft(rows, axis=-1, workers=workers)[:, :half])
    else:
        spectrum = sfft.rfft(rows, axis=-1, workers=workers)
    spectrum = np.ascontiguousarray(spectrum, dtype=bank.complex_dtype)
    spectra = spectrum.view(real_dtype)  # (B, 2 * half)
    if out is None:
        out = np.empty((batch, bank.num_scales, n), dtype=bank.complex_dtype)
    step = chunk or max(1, CHUNK_BYTES // max(1, out[0].nbytes))
    starts = range(0, batch, step)
    with _single_threaded_blas():
        if workers <= 1 or len(starts) < 2:
            _transform_chunks(spectra, out, bank, starts, step)
        else:
            parts = min(workers, len(starts))
            with ThreadPoolExecutor(max_workers=parts) as pool:  # numpy, scipy.fft and BLAS release the GIL
                jobs = [pool.submit(_transform_chunks, spectra, out, bank, starts[p::parts], step)
                        for p in range(parts)]
                for job in jobs:
                    job.result()
    return out


@lru_cache(maxsize=16)
def _torch_responses(bank: AnalyticBank, device: str, real_dtype: str) -> Any:
    return torch.from_numpy(np.array(bank.responses, dtype=real_dtype)).to(device)


def analytic_cwt_torch(rows: Any, bank: AnalyticBank, chunk: int | None) -> Any:
    """The same transform with torch.fft on ``rows``' device: every scale by inverse FFT, full band.

    No truncation and no GEMM split (on a GPU one batched FFT launch per chunk is what pays), so it agrees
    with the numpy path to rounding plus the dropped bins (below the working precision by construction).
    """
    batch, n = rows.shape
    half = n // 2 + 1
    real_dtype = torch.float32 if rows.dtype in (torch.float32, torch.complex64) else torch.float64
    complex_dtype = torch.complex64 if real_dtype == torch.float32 else torch.complex128
    responses = _torch_responses(bank, str(rows.device), str(real_dtype).split(".")[-1])
    spectrum = torch.fft.fft(rows, dim=-1)[:, :half] if rows.is_complex() else torch.fft.rfft(rows, dim=-1)
    if chunk is None:
        chunk = max(1, TORCH_CHUNK_BYTES // (bank.num_scales * n * (8 if real_dtype == torch.float32 else 16)))
    out = torch.empty((batch, bank.num_scales, n), dtype=complex_dtype, device=rows.device)
    for start in range(0, batch, chunk):
        block = spectrum[start:start + chunk]
        spectra = torch.zeros((block.shape[0], bank.num_scales, n), dtype=complex_dtype, device=rows.device)
        spectra[..., :half] = block[:, None, :] * responses
        out[start:start + block.shape[0]] = torch.fft.ifft(spectra, dim=-1)
    return out


__all__ = ["AnalyticBank", "analytic_bank", "analytic_cwt_numpy", "analytic_cwt_torch", "morlet_parameters",
           "morlet_responses"]
