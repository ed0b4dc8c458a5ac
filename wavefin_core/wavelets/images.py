"""Turn CWT coefficients into network-ready images and back (numpy arrays or torch tensors).

Why real + imaginary channels (``to_channels``) rather than ``|CWT|``: the pair keeps phase, so a generated
image can be mapped back to a series with :func:`icwt`; magnitudes are for classifiers only.
All functions are vectorised over any leading batch axes and keep torch tensors on their device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wavefin_core.errors import ConfigError
from wavefin_core.wavelets.cwt import is_tensor

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = None
    F = None


def _check_scalogram(coefs: Any, name: str = "coefs") -> Any:
    if not is_tensor(coefs):
        coefs = np.asarray(coefs)
        if coefs.dtype.kind not in "biufc":
            raise ConfigError(f"{name} has dtype {coefs.dtype}; pass numeric CWT coefficients.")
    if coefs.ndim < 2:
        raise ConfigError(f"{name} has shape {tuple(coefs.shape)}; it must be (..., S, T) as cwt returns.")
    return coefs


def to_channels(coefs: Any) -> Any:
    """Complex coefficients ``(..., S, T)`` -> real image ``(..., 2, S, T)`` (channel 0 real, 1 imaginary).

    complex64 gives float32 and complex128 float64; real coefficients get a zero imaginary channel so every
    wavelet yields the same layout.
    """
    coefs = _check_scalogram(coefs)
    if is_tensor(coefs):
        if not coefs.is_complex():
            coefs = coefs.to(torch.float64 if coefs.dtype == torch.float64 else torch.float32)
            return torch.stack([coefs, torch.zeros_like(coefs)], dim=-3)
        return torch.view_as_real(coefs).movedim(-1, -3).contiguous()
    if coefs.dtype.kind != "c":
        coefs = coefs.astype(np.float64 if coefs.dtype == np.float64 else np.float32, copy=False)
        return np.stack([coefs, np.zeros_like(coefs)], axis=-3)
    return np.stack([coefs.real, coefs.imag], axis=-3)


def from_channels(img: Any) -> Any:
    """Inverse of :func:`to_channels`: ``(..., 2, S, T)`` real -> ``(..., S, T)`` complex (complex64 for
    float32 and narrower, complex128 for float64)."""
    img = _check_scalogram(img, "img")
    if img.ndim < 3 or img.shape[-3] != 2:
        raise ConfigError(
            f"img has shape {tuple(img.shape)}; it must be (..., 2, S, T) with the real and imaginary parts "
            "as channels (what to_channels returns)."
        )
    if is_tensor(img):
        real_dtype = torch.float64 if img.dtype == torch.float64 else torch.float32
        return torch.complex(img[..., 0, :, :].to(real_dtype), img[..., 1, :, :].to(real_dtype))
    if img.dtype.kind == "c":
        raise ConfigError("img is complex; from_channels expects the real (..., 2, S, T) image from to_channels.")
    complex_dtype = np.complex128 if img.dtype == np.float64 else np.complex64
    out = np.empty(img.shape[:-3] + img.shape[-2:], dtype=complex_dtype)
    out.real = img[..., 0, :, :]
    out.imag = img[..., 1, :, :]
    return out


def magnitude(coefs: Any) -> Any:
    """``|coefs|`` (real dtype of the same precision): the classic scalogram, phase discarded."""
    coefs = _check_scalogram(coefs)
    return coefs.abs() if is_tensor(coefs) else np.abs(coefs)


def log_magnitude(coefs: Any, eps: float = 1e-8) -> Any:
    """``log(|coefs| + eps)``: compresses the heavy-tailed dynamic range of return scalograms."""
    if not isinstance(eps, (int, float, np.number)) or not eps > 0:
        raise ConfigError(f"eps={eps!r} must be a positive number (it keeps log away from log(0)).")
    mag = magnitude(coefs)
    return torch.log(mag + eps) if is_tensor(mag) else np.log(mag + np.asarray(eps, dtype=mag.dtype))


def resize(img: Any, size: tuple[int, int] = (64, 64), *, antialias: bool = True) -> Any:
    """Bilinear resize of the last two axes (scale, time) to ``size = (H, W)``.

    Uses ``torch.nn.functional.interpolate`` (antialiased when shrinking, so downsampled scalograms do not
    alias); numpy in gives numpy out. Complex input is resized channel-wise (real and imaginary).
    """
    img = _check_scalogram(img, "img")
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in size)):
        raise ConfigError(f"size={size!r} must be a pair of positive integers (height=scales, width=time).")
    numpy_in = not is_tensor(img)
    tensor = torch.from_numpy(np.ascontiguousarray(img)) if numpy_in else img
    if tensor.is_complex():
        out = torch.complex(resize(tensor.real, size, antialias=antialias),
                            resize(tensor.imag, size, antialias=antialias))
        return out.numpy() if numpy_in else out
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float32)
    lead = tuple(tensor.shape[:-2])
    flat = tensor.reshape((-1, 1) + tuple(tensor.shape[-2:]))
    shrinking = size[0] < flat.shape[-2] or size[1] < flat.shape[-1]
    out = F.interpolate(flat, size=tuple(int(v) for v in size), mode="bilinear", align_corners=False,
                        antialias=bool(antialias and shrinking))
    out = out.reshape(lead + tuple(int(v) for v in size))
    return out.numpy() if numpy_in else out
