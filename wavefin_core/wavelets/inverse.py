"""Exact least-squares inverse of :func:`cwt` for real signals.

For a fixed window length ``T`` the CWT is a linear map ``W: R^T -> C^(S*T)``. A scalogram that some real
series produced is inverted exactly by ``x = G^-1 Re(W^H c)`` with ``G = Re(W^H W)``; a scalogram that no
series produced (a generated one, or noise) is mapped to the real series whose CWT is nearest in L2 -- the
least-squares projection. ``W`` is built by transforming the identity with the same engine, so the inverse
matches the forward transform to rounding, and the ``T x (S*T)`` pseudo-inverse is precomputed once (float64,
cached) and applied as a single batched matmul.

Why not the textbook single-integral ICWT: it is only approximate for sampled, truncated scales and cannot
project an arbitrary image onto the range of the transform.

``method="analytic"`` (the band-limited, circular transform of :mod:`.analytic`): the same construction on
that transform's impulse responses. It has no DC response, so the window's mean is its one null direction:
the pseudo-inverse is taken on the zero-mean series (the constant eigenvector of ``G`` is dropped) and
``icwt(..., mean=...)`` adds a known mean back.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from wavefin_core.errors import ConfigError
from wavefin_core.wavelets.cwt import checked_method, checked_scales, cwt, is_tensor
from wavefin_core.wavelets.filters import continuous_wavelet, wavelet_name

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

#: Above this condition number (largest / smallest singular value of the CWT operator) ``icwt`` warns: the
#: scales leave part of the band weakly represented, so noise there is amplified by the inverse. A covering
#: grid gives 7.25 (window 64), 10.3 (256), 13.9 (512): see covering_scales for why it is not ~1.
WARN_CONDITION = 50.0
#: Above this the scales miss part of the band; the inverse would be dominated by rounding noise.
MAX_CONDITION = 1e4
#: Largest precomputed pseudo-inverse we agree to build (float64 bytes).
MAX_OPERATOR_BYTES = 2 * 2**30


class IllConditionedScalesWarning(UserWarning):
    """The scales cover the window's band poorly; icwt works but amplifies errors in the weak directions."""


@dataclass(frozen=True, eq=False)  # hashed by identity: operators are cached singletons
class InverseOperator:
    """``pinv_t`` maps flattened coefficients ``(..., K)`` to series ``(..., T)`` by ``flat @ pinv_t``.

    ``K = 2*S*T`` for complex wavelets, with real and imaginary parts interleaved exactly as a C-contiguous
    complex array viewed as real (so applying it needs no copy); ``K = S*T`` for real wavelets.
    """

    pinv_t: np.ndarray
    condition: float
    complex_coefs: bool
    num_scales: int
    window: int


@lru_cache(maxsize=8)
def _operator(name: str, scales: tuple, scales_dtype: str, window: int, method: str = "pywt") -> InverseOperator:
    scale_values = np.asarray(scales, dtype=scales_dtype)
    complex_coefs = bool(continuous_wavelet(name).complex_cwt)
    rows = (2 if complex_coefs else 1) * scale_values.size * window
    if rows * window * 8 > MAX_OPERATOR_BYTES:
        raise ConfigError(
            f"icwt for window={window} with {scale_values.size} scales needs a {rows * window * 8 / 2**30:.1f} GiB "
            "precomputed inverse; use shorter windows (<= 512 samples) or fewer scales (covering_scales(window, "
            "num=...))."
        )
    impulses = cwt(np.eye(window), scale_values, name, method=method)  # (T, S, T): row k = CWT of e_k
    adjoint = (impulses.view(np.float64) if complex_coefs else impulses).reshape(window, rows)  # = W^T
    gram = np.dot(adjoint, adjoint.T)  # Re(W^H W); np.dot is several times faster than @ for this shape
    eigvals, eigvecs = np.linalg.eigh(gram)
    if method == "analytic":  # drop the mean: the constant eigenvector, which the transform maps to ~0
        constant = int(np.argmax(np.abs(eigvecs.sum(axis=0))))
        keep = np.arange(window) != constant
        eigvals, eigvecs = eigvals[keep], eigvecs[:, keep]
        if eigvals.size == 0:
            return InverseOperator(np.zeros((rows, window)), 1.0, complex_coefs, scale_values.size, window)
    smallest, largest = float(eigvals[0]), float(eigvals[-1])
    condition = math.sqrt(largest / smallest) if smallest > 0 else math.inf
    if condition > MAX_CONDITION:
        return InverseOperator(np.empty((0, window)), condition, complex_coefs, scale_values.size, window)
    gram_inverse = (eigvecs / eigvals) @ eigvecs.T  # symmetric, so W G^-1 is pinv(W)^T
    pinv_t = adjoint.T @ gram_inverse  # (K, T), the layout the batched matmul wants
    pinv_t.flags.writeable = False
    return InverseOperator(pinv_t, condition, complex_coefs, scale_values.size, window)


def inverse_operator(window: int, scales: Sequence[float] | np.ndarray, wavelet: str = "cmor1.5-1.0",
                     method: str = "pywt") -> InverseOperator:
    """The cached least-squares inverse for ``window`` samples; ConfigError / warning when ill-conditioned."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ConfigError(f"window={window!r} must be a positive integer (samples per window).")
    scale_values = checked_scales(scales)
    name = wavelet_name(wavelet)
    op = _operator(name, tuple(scale_values.tolist()), scale_values.dtype.str, int(window), checked_method(method))
    if op.condition > MAX_CONDITION:
        raise ConfigError(
            f"scales {scale_values.min():.3g}..{scale_values.max():.3g} ({scale_values.size} scales) do not cover "
            f"the band of a {window}-sample window (condition number {op.condition:.3g}), so the CWT cannot be "
            f"inverted; use scales=covering_scales({window}, {name!r})."
        )
    if op.condition > WARN_CONDITION:
        warnings.warn(
            f"CWT with scales {scale_values.min():.3g}..{scale_values.max():.3g} is ill-conditioned for a "
            f"{window}-sample window (condition number {op.condition:.3g} > {WARN_CONDITION:g}); icwt amplifies "
            f"errors in the frequencies the scales miss. Use scales=covering_scales({window}, {name!r}).",
            IllConditionedScalesWarning,
            stacklevel=3,
        )
    return op


def condition_number(window: int, scales: Sequence[float] | np.ndarray, wavelet: str = "cmor1.5-1.0",
                     method: str = "pywt") -> float:
    """Largest over smallest singular value of the CWT of real ``window``-sample series (1 = orthogonal).

    For ``method="analytic"`` over zero-mean series (the mean is outside that transform's range).
    """
    scale_values = checked_scales(scales)
    name = wavelet_name(wavelet)
    return _operator(name, tuple(scale_values.tolist()), scale_values.dtype.str, int(window),
                     checked_method(method)).condition


@lru_cache(maxsize=4)
def _pinv_in(op: InverseOperator, dtype: str) -> np.ndarray:
    return op.pinv_t if np.dtype(dtype) == np.float64 else op.pinv_t.astype(dtype)


@lru_cache(maxsize=4)
def _pinv_torch(op: InverseOperator, device: str, dtype: str) -> Any:
    return torch.from_numpy(np.array(_pinv_in(op, dtype))).to(device)


def icwt(coefs: Any, scales: Sequence[float] | np.ndarray, wavelet: str = "cmor1.5-1.0",
         sampling_period: float = 1.0, *, method: str = "pywt", mean: Any = None) -> Any:
    """Least-squares inverse of :func:`cwt`: the real series whose CWT is nearest to ``coefs`` in L2.

    Parameters
    ----------
    coefs : array or torch.Tensor of shape ``(..., S, T)`` as returned by ``cwt`` (complex for complex
        wavelets; a real array is read as having zero imaginary part).
    scales, wavelet : exactly those used in the forward transform.
    sampling_period : accepted for symmetry with :func:`cwt`; it does not change the transform.
    method : the ``method`` the coefficients were computed with ('pywt' or 'analytic').
    mean : ``method="analytic"`` only: the windows' means (a scalar, or an array / tensor of shape
        ``coefs.shape[:-2]``), added to the zero-mean least-squares series; None returns zero-mean series.

    Returns
    -------
    Real series of shape ``coefs.shape[:-2] + (T,)``: float32 for single-precision coefficients, float64
    otherwise; a tensor on the input's device for tensor input. For the CWT of a real series this is that
    series (to rounding); for any other ``coefs`` it is the least-squares projection, so
    ``icwt(cwt(icwt(c))) == icwt(c)``.

    Raises ConfigError when the scales do not cover the band (use :func:`covering_scales`) and warns with
    :class:`IllConditionedScalesWarning` when they cover it poorly.
    """
    if not isinstance(sampling_period, (int, float, np.number)) or not sampling_period > 0:
        raise ConfigError(f"sampling_period={sampling_period!r} must be a positive number (1.0 = per sample).")
    tensor = is_tensor(coefs)
    if not tensor:
        coefs = np.asarray(coefs)
        if coefs.dtype.kind not in "biufc":
            raise ConfigError(f"coefs has dtype {coefs.dtype}; pass the numeric output of cwt.")
    scale_values = checked_scales(scales)
    if coefs.ndim < 2 or coefs.shape[-2] != scale_values.size:
        raise ConfigError(
            f"coefs has shape {tuple(coefs.shape)} but must be (..., {scale_values.size}, T): one row per scale "
            "in `scales`, time last (the layout cwt returns)."
        )
    window = int(coefs.shape[-1])
    method = checked_method(method)
    if mean is not None and method != "analytic":
        raise ConfigError("mean= is for method='analytic' (whose transform ignores the mean); method='pywt' "
                          "recovers the mean itself, so drop mean=.")
    op = inverse_operator(window, scale_values, wavelet, method)
    lead = tuple(coefs.shape[:-2])
    series = _apply(coefs, op, tensor, lead, window)
    if mean is None:
        return series
    if tensor:
        return series + torch.as_tensor(mean, dtype=series.dtype, device=series.device)[..., None]
    return series + np.asarray(mean, dtype=series.dtype)[..., None]


def _apply(coefs: Any, op: InverseOperator, tensor: bool, lead: tuple, window: int) -> Any:
    """``flat @ pinv_t`` in the coefficients' precision, on their device for tensors."""
    if tensor:
        single = coefs.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.complex32, torch.complex64)
        real_name = "float32" if single else "float64"
        pinv = _pinv_torch(op, str(coefs.device), real_name)
        if op.complex_coefs:
            work = coefs.to(torch.complex64 if single else torch.complex128).contiguous()
            flat = torch.view_as_real(work).reshape(-1, pinv.shape[0])
        else:
            work = coefs.real if coefs.is_complex() else coefs
            flat = work.to(getattr(torch, real_name)).reshape(-1, pinv.shape[0])
        return (flat @ pinv).reshape(lead + (window,))
    single = coefs.dtype in (np.float16, np.float32, np.complex64)
    real_dtype = np.dtype(np.float32 if single else np.float64)
    pinv = _pinv_in(op, real_dtype.str)
    if op.complex_coefs:
        work = np.ascontiguousarray(coefs, dtype=np.result_type(real_dtype, np.complex64))
        flat = work.view(real_dtype).reshape(-1, pinv.shape[0])
    else:
        flat = np.ascontiguousarray(coefs.real, dtype=real_dtype).reshape(-1, pinv.shape[0])
    return (flat @ pinv).reshape(lead + (window,))
