"""Batched continuous wavelet transform that reproduces ``pywt.cwt`` at FFT speed.

Why not ``pywt.cwt``: it loops over scales in Python and, with ``method='conv'``, over every window of a
batch as well. Here the scales are grouped by the FFT length they need (short filters, i.e. small scales,
need much shorter FFTs than long ones; see :mod:`.filters`). For each group the batch is transformed with
one forward FFT, multiplied by the group's frequency responses (computed once and cached) and brought back
with one batched inverse FFT, chunk by chunk, straight into a preallocated output. Chunks are sized so that
the work buffer (~1 MB) stays in the CPU cache: the multiply, the inverse FFT and the copy of the ``n`` valid
samples then never go through main memory, which made the benchmark workload 1.3-1.6x faster than with
64 MB chunks; peak memory is the output plus a few MB.

Threads: the numpy path uses scipy.fft's default worker count (1), because Dagster may run several
partitions in parallel processes; pass ``workers=n`` or wrap a call in ``with scipy.fft.set_workers(n):`` to
use ``n`` cores.

``method="analytic"`` selects the band-limited, analytic complex Morlet of :mod:`.analytic` (the
fCWT / ssqueezepy construction, circular boundary) instead of pywt's discretisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft as sfft

from wavefin_core.errors import ConfigError
from wavefin_core.wavelets.analytic import (
    analytic_bank,
    analytic_cwt_numpy,
    analytic_cwt_torch,
    morlet_parameters,
)
from wavefin_core.wavelets.filters import (
    PYWT_PRECISION,
    FilterBank,
    continuous_wavelet,
    filter_bank,
    wavelet_name,
)

try:  # torch is a core dependency, but keep the numpy path importable without it
    import torch
except ImportError:  # pragma: no cover
    torch = None

#: Target size of one chunk's complex work buffer on the numpy path: small enough to stay in the L2/L3 cache
#: (0.5-2 MB measured equally fast, 4 MB already slower, 64 MB 1.3-1.6x slower end to end).
CHUNK_BYTES = 2**20
#: The same for torch, whose FFTs may run on a GPU: bigger chunks mean fewer kernel launches.
TORCH_CHUNK_BYTES = 64 * 2**20

ArrayLike = Any  # numpy array, array-like or torch.Tensor


def is_tensor(x: Any) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def checked_scales(scales: ArrayLike) -> np.ndarray:
    """Scales as a 1-D array (float32 kept, everything else float64, like pywt); ConfigError otherwise."""
    if is_tensor(scales):
        scales = scales.detach().cpu().numpy()
    arr = np.atleast_1d(np.asarray(scales))
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iuf":
        raise ConfigError(
            f"scales must be a non-empty 1-D sequence of positive numbers, got shape {arr.shape} and dtype "
            f"{arr.dtype}. Use e.g. covering_scales(window) or np.geomspace(2, window, 48)."
        )
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        bad = arr[~(np.isfinite(arr) & (arr > 0))][:3]
        raise ConfigError(
            f"scales must all be positive and finite; got {bad.tolist()}. Use e.g. covering_scales(window)."
        )
    return arr


_TORCH_DTYPES = {} if torch is None else {
    torch.float16: np.dtype(np.float32), torch.bfloat16: np.dtype(np.float32),
    torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64),
    torch.complex32: np.dtype(np.complex64), torch.complex64: np.dtype(np.complex64),
    torch.complex128: np.dtype(np.complex128),
}


def _precision_dtypes(dtype: np.dtype) -> tuple[np.dtype, np.dtype]:
    """(real, complex) working dtypes: single precision stays single, everything else is double."""
    single = dtype in (np.float32, np.complex64, np.float16)
    return (np.dtype(np.float32), np.dtype(np.complex64)) if single else (
        np.dtype(np.float64), np.dtype(np.complex128))


def bank_for(wavelet: str, scales: np.ndarray, n: int, real_dtype: np.dtype, complex_input: bool,
             precision: int = PYWT_PRECISION) -> tuple[FilterBank, bool]:
    """Cached filter bank for this transform and whether the output is complex."""
    name = wavelet_name(wavelet)
    complex_wavelet = bool(continuous_wavelet(name).complex_cwt)
    onesided = not (complex_wavelet or complex_input)
    bank = filter_bank(name, tuple(scales.tolist()), scales.dtype.str, n, real_dtype.str, onesided,
                       precision)
    return bank, not onesided


def _chunk_rows(chunk_size: int | None) -> int | None:
    """The user's windows per chunk, validated; None = size each group's chunks by its buffer bytes."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ConfigError(f"chunk_size={chunk_size!r} must be a positive integer (windows per chunk) or None.")
    return int(chunk_size)


def _cwt_numpy(rows: np.ndarray, bank: FilterBank, complex_out: bool, chunk: int | None) -> np.ndarray:
    """CWT of ``rows`` (B, n) -> (B, S, n) with scipy.fft, group by group and chunk by chunk."""
    batch, n = rows.shape
    out = np.empty((batch, bank.num_scales, n), dtype=bank.dtype if complex_out else rows.real.dtype)
    for group in bank.groups:
        fft_len, responses = group.fft_len, group.responses
        step = chunk or max(1, CHUNK_BYTES // responses.nbytes)
        work = np.empty((min(step, batch),) + responses.shape, dtype=responses.dtype)
        for start in range(0, batch, step):
            block = rows[start:start + step]
            spectra = work[:block.shape[0]]
            if bank.onesided:
                np.multiply(sfft.rfft(block, n=fft_len, axis=-1)[:, None, :], responses, out=spectra)
                signal = sfft.irfft(spectra, n=fft_len, axis=-1, overwrite_x=True)
            else:
                np.multiply(sfft.fft(block, n=fft_len, axis=-1)[:, None, :], responses, out=spectra)
                signal = sfft.ifft(spectra, axis=-1, overwrite_x=True)
            out[start:start + block.shape[0], group.index] = signal[..., :n]
    return out


@lru_cache(maxsize=32)
def _torch_groups(bank: FilterBank, device: str) -> tuple[tuple[int, Any, torch.Tensor], ...]:
    """(fft_len, index, responses) per group, the responses uploaded to ``device`` once per (bank, device)."""
    return tuple(
        (group.fft_len,
         group.index if isinstance(group.index, slice) else torch.tensor(group.index, device=device),
         torch.from_numpy(np.array(group.responses)).to(device))
        for group in bank.groups
    )


def _cwt_torch(rows: torch.Tensor, bank: FilterBank, complex_out: bool, chunk: int | None) -> torch.Tensor:
    """Same algorithm as :func:`_cwt_numpy` with torch.fft on ``rows``' device.

    Chunks (of ~64 MB by default: on a GPU fewer, larger launches pay) are written into a preallocated
    output; when autograd tracks ``rows`` those in-place writes are recorded, so gradients flow.
    """
    batch, n = rows.shape
    groups = _torch_groups(bank, str(rows.device))
    if chunk is None:
        widest = max(responses.shape[-1] for _, _, responses in groups)
        chunk = max(1, TORCH_CHUNK_BYTES // (bank.num_scales * widest * bank.dtype.itemsize))
    out_dtype = groups[0][2].dtype if complex_out else rows.real.dtype
    out = torch.empty((batch, bank.num_scales, n), dtype=out_dtype, device=rows.device)
    for start in range(0, batch, chunk):
        block = rows[start:start + chunk]
        for fft_len, index, responses in groups:
            if bank.onesided:
                spectrum = torch.fft.rfft(block, n=fft_len, dim=-1)
                signal = torch.fft.irfft(spectrum[:, None, :] * responses, n=fft_len, dim=-1)
            else:
                spectrum = torch.fft.fft(block, n=fft_len, dim=-1)
                signal = torch.fft.ifft(spectrum[:, None, :] * responses, dim=-1)
            out[start:start + block.shape[0], index] = signal[..., :n]
    return out


def _checked_out(out: Any, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """``out`` if it is a C-contiguous numpy array of ``shape`` and ``dtype``; ConfigError otherwise."""
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        got = (f"{type(out).__name__} of shape {getattr(out, 'shape', None)} and dtype {getattr(out, 'dtype', None)}")
        raise ConfigError(
            f"out must be a C-contiguous numpy array of shape {shape} and dtype {dtype}, got a {got}; allocate it "
            f"with np.empty({shape}, dtype=np.{dtype.name}) or leave out=None."
        )
    return out


#: ``method`` values: pywt's own two method names give pywt's coefficients (they differ only in speed there).
PYWT_METHODS = ("pywt", "fft", "conv")
METHODS = PYWT_METHODS + ("analytic",)


def checked_method(method: str) -> str:
    """'pywt' or 'analytic'; ConfigError naming the accepted values otherwise."""
    if method not in METHODS:
        raise ConfigError(
            f"method={method!r} is not a CWT method; use 'pywt' (default: pywt.cwt's coefficients; 'fft' and "
            "'conv' are accepted as aliases) or 'analytic' (band-limited analytic complex Morlet, circular)."
        )
    return "analytic" if method == "analytic" else "pywt"


def checked_workers(workers: int | None) -> int:
    """Threads to use: ``workers`` or, when None, scipy.fft's current setting (1 unless set_workers)."""
    if workers is None:
        return int(sfft.get_workers())
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ConfigError(f"workers={workers!r} must be a positive integer (threads) or None (scipy.fft's setting).")
    return int(workers)


def cwt(x: ArrayLike, scales: Sequence[float] | np.ndarray, wavelet: str = "cmor1.5-1.0",
        sampling_period: float = 1.0, *, method: str = "pywt", chunk_size: int | None = None,
        workers: int | None = None, out: np.ndarray | None = None) -> ArrayLike:
    """Continuous wavelet transform along the last axis, equal to ``pywt.cwt(x, scales, wavelet, axis=-1)``.

    Parameters
    ----------
    x : numpy array (or array-like) or torch.Tensor, last axis = time
        A torch tensor is transformed with torch.fft on its own device (CPU or CUDA) and a tensor comes back.
    scales : 1-D sequence of positive scales (samples); see :func:`covering_scales`.
    wavelet : any continuous PyWavelets wavelet name ('cmor1.5-1.0', 'morl', 'mexh', 'gaus1', ...).
    sampling_period : kept for ``pywt.cwt`` parity; like there, it does not change the coefficients (only
        the frequencies a scale maps to, see ``pywt.scale2frequency``).
    method : 'pywt' (default; 'fft' and 'conv' are aliases): pywt's coefficients, zero-padded boundary.
        'analytic': the band-limited analytic complex Morlet (fCWT / ssqueezepy construction) for 'cmorB-C'
        wavelets only, with a circular boundary and the window's mean ignored; ~3x faster than 'pywt' on
        256-sample windows (bench/README.md).
        Not pywt's numbers: see :mod:`wavefin_core.wavelets.analytic`. Invert it with
        ``icwt(..., method="analytic")``.
    chunk_size : windows per FFT chunk; the default sizes chunks per group of scales so that the complex work
        buffer is ~1 MB (numpy, cache-resident) or ~64 MB (torch). The result does not depend on it.
    workers : threads for the numpy path (None: scipy.fft's current setting, 1 by default). Same result.
    out : ``method="analytic"``, numpy input only: a C-contiguous complex array of the output's shape and
        dtype to write into (reusing it across calls saves the page faults of a fresh output, ~1/4 of the
        time on the benchmark workload). It is returned.

    Returns
    -------
    Coefficients of shape ``x.shape[:-1] + (len(scales), x.shape[-1])`` (pywt puts scales first; here they
    sit next to time so a batch of windows gives a batch of images). float32 input gives float32 (real
    wavelet) or complex64 (complex wavelet); everything else double precision.
    """
    if not isinstance(sampling_period, (int, float, np.number)) or not sampling_period > 0:
        raise ConfigError(f"sampling_period={sampling_period!r} must be a positive number (1.0 = per sample).")
    scale_values = checked_scales(scales)
    tensor = is_tensor(x)
    if not tensor:
        x = np.asarray(x)
        if x.dtype.kind not in "biufc":
            raise ConfigError(f"x has dtype {x.dtype}; pass a numeric array whose last axis is time.")
        dtype = x.dtype
    else:
        dtype = _TORCH_DTYPES.get(x.dtype, np.dtype(np.float64))
    if x.ndim == 0 or x.shape[-1] < 1:
        raise ConfigError(f"x has shape {tuple(x.shape)}; it needs a last (time) axis with at least one sample.")
    real_dtype, complex_dtype = _precision_dtypes(dtype)
    complex_input = dtype.kind == "c"
    n = int(x.shape[-1])
    chunk = _chunk_rows(chunk_size)
    threads = checked_workers(workers)
    lead = tuple(x.shape[:-1])
    if checked_method(method) == "analytic":
        bandwidth, centre = morlet_parameters(wavelet_name(wavelet))
        analytic = analytic_bank(bandwidth, centre, tuple(scale_values.astype(np.float64).tolist()), n,
                                 real_dtype.str)
        shape = lead + (scale_values.size, n)
        if tensor:
            if out is not None:
                raise ConfigError("out= is for numpy input; a tensor input returns a new tensor (drop out=).")
            target = getattr(torch, (complex_dtype if complex_input else real_dtype).name)
            return analytic_cwt_torch(x.to(target).reshape(-1, n), analytic, chunk).reshape(shape)
        rows = np.ascontiguousarray(x, dtype=complex_dtype if complex_input else real_dtype).reshape(-1, n)
        target = None if out is None else _checked_out(out, shape, complex_dtype).reshape(-1, scale_values.size, n)
        result = analytic_cwt_numpy(rows, analytic, threads, chunk, target)
        return out if out is not None else result.reshape(shape)
    if out is not None:
        raise ConfigError("out= is supported with method='analytic' only; drop it for method='pywt'.")
    bank, complex_out = bank_for(wavelet, scale_values, n, real_dtype, complex_input)
    if tensor:
        target = getattr(torch, (complex_dtype if complex_input else real_dtype).name)
        rows = x.to(target).reshape(-1, n)
        out = _cwt_torch(rows, bank, complex_out, chunk)
    else:
        rows = np.ascontiguousarray(x, dtype=complex_dtype if complex_input else real_dtype).reshape(-1, n)
        with sfft.set_workers(threads):
            out = _cwt_numpy(rows, bank, complex_out, chunk)
    return out.reshape(lead + (scale_values.size, n))


def scale_frequencies(scales: Sequence[float] | np.ndarray, wavelet: str = "cmor1.5-1.0",
                      sampling_period: float = 1.0) -> np.ndarray:
    """Centre frequency of each scale in cycles per ``sampling_period`` unit (pywt's second cwt output)."""
    import pywt

    name = wavelet_name(wavelet)
    freqs = pywt.scale2frequency(continuous_wavelet(name), checked_scales(scales), PYWT_PRECISION)
    return np.atleast_1d(freqs) / float(sampling_period)


__all__ = ["cwt", "scale_frequencies"]
