"""Wavelet transforms for wavefin.

- :func:`cwt`: batched FFT continuous wavelet transform, numerically equal to ``pywt.cwt`` (numpy or torch,
  CPU or CUDA), with the per-scale filters cached; ``method="analytic"`` gives the faster band-limited,
  analytic complex Morlet (fCWT / ssqueezepy construction, circular boundary; see :mod:`.analytic`).
- :func:`icwt`: its exact least-squares inverse (either method) for real series (reconstructs a window to float precision,
  projects any other scalogram onto the nearest real series); :func:`covering_scales` gives scale grids
  for which that inverse is well-conditioned, :func:`condition_number` measures it.
- :func:`haar_denoise`: Haar DWT denoising, causal by default (no look-ahead).
- :func:`haar_dwt_image` / :func:`haar_idwt_image`: exactly invertible Haar DWT image of a window.
- :mod:`.images`: scalogram <-> network image helpers (real/imag channels, magnitudes, resize).
- :func:`make_representation`: the generator's image representations (``complex``, ``logmag_phase``, ``haar``)
  with train-fitted scaling, exact decoding and the range projection used at every sampler step.
"""

from wavefin_core.wavelets.cwt import cwt, scale_frequencies
from wavefin_core.wavelets.haar import haar_denoise, haar_dwt_image, haar_idwt_image
from wavefin_core.wavelets.images import from_channels, log_magnitude, magnitude, resize, to_channels
from wavefin_core.wavelets.inverse import IllConditionedScalesWarning, condition_number, icwt
from wavefin_core.wavelets.representations import (
    REPRESENTATIONS,
    Representation,
    make_representation,
    representation_from_dict,
)
from wavefin_core.wavelets.scales import covering_scales

__all__ = [
    "REPRESENTATIONS",
    "IllConditionedScalesWarning",
    "Representation",
    "condition_number",
    "covering_scales",
    "cwt",
    "from_channels",
    "haar_denoise",
    "haar_dwt_image",
    "haar_idwt_image",
    "icwt",
    "log_magnitude",
    "magnitude",
    "make_representation",
    "representation_from_dict",
    "resize",
    "scale_frequencies",
    "to_channels",
]
