"""cwt(..., method="analytic"): the band-limited analytic Morlet, checked against a slow reference written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pywt
import torch

import wavefin_core.wavelets.analytic as analytic
from wavefin_core.errors import ConfigError
from wavefin_core.wavelets import condition_number, covering_scales, cwt, icwt


def returns(shape, dtype=np.float64, seed=0):
    """Heavy-tailed, return-like windows with a non-zero mean (the analytic transform ignores it)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_t(3, size=shape) * 0.01 + 0.002).astype(dtype)


def reference(x, scales, bandwidth=1.5, centre=1.0):
    """The definition, term by term, with explicit DFT matrices (no FFT, no band truncation, float64):
    W[s, t] = 1/n sum_{k=1}^{n//2} X[k] sqrt(s) exp(-pi^2 B (s k/n - C)^2) exp(2 pi i k t / n)."""
    n = x.shape[-1]
    bins, times = np.arange(1, n // 2 + 1), np.arange(n)
    spectrum = np.asarray(x, dtype=np.complex128) @ np.exp(-2j * np.pi * np.outer(times, bins) / n)
    synthesis = np.exp(2j * np.pi * np.outer(bins, times) / n) / n
    rows = []
    for s in scales:
        response = math.sqrt(s) * np.exp(-math.pi**2 * bandwidth * (s * bins / n - centre) ** 2)
        rows.append((spectrum * response) @ synthesis)
    return np.stack(rows, axis=-2)


def relative_error(actual, expected):
    return np.abs(np.asarray(actual) - expected).max() / np.abs(expected).max()


@pytest.mark.parametrize("n", [256, 63])
def test_matches_the_slow_reference_in_both_precisions(n):
    x = returns((9, n))
    scales = np.geomspace(2, n / 2, 24)
    expected = reference(x, scales)
    out64 = cwt(x, scales, "cmor1.5-1.0", method="analytic")
    assert out64.shape == (9, 24, n) and out64.dtype == np.complex128
    assert relative_error(out64, expected) < 1e-12  # double precision: rounding only
    out32 = cwt(x.astype(np.float32), scales, "cmor1.5-1.0", method="analytic")
    assert out32.dtype == np.complex64
    # float32 arithmetic (~6e-8 per operation over 256-term sums) plus the bins dropped below 1e-8 of a peak.
    assert relative_error(out32, expected) < 2e-6


def test_other_morlet_parameters_unsorted_scales_and_complex_input():
    x = returns((4, 128))
    scales = np.geomspace(64, 2, 30)[np.random.default_rng(1).permutation(30)]  # FFT and GEMM scales interleaved
    assert relative_error(cwt(x, scales, "cmor0.5-2.0", method="analytic"),
                          reference(x, scales, 0.5, 2.0)) < 1e-12
    z = x + 1j * returns((4, 128), seed=2)  # negative frequencies of a complex input are dropped too
    assert relative_error(cwt(z, scales, method="analytic"), reference(z, scales)) < 1e-12


def test_chunking_threads_and_fft_backend_do_not_change_the_result(monkeypatch):
    x = returns((40, 128), np.float32)
    scales = np.geomspace(2, 64, 40)
    base = cwt(x, scales, method="analytic")
    # Other chunk sizes change the row counts of the BLAS calls (different kernels and summation order),
    # threads only which thread does a chunk: float32 rounding-level differences are allowed.
    assert relative_error(cwt(x, scales, method="analytic", chunk_size=3, workers=2), base) < 1e-6
    assert relative_error(cwt(x, scales, method="analytic", workers=3), base) < 1e-6
    monkeypatch.setattr(analytic, "FFT_BACKEND", "scipy")  # pocketfft instead of FFTW (when installed)
    assert relative_error(cwt(x, scales, method="analytic"), base) < 1e-6


def test_out_argument_is_filled_and_returned():
    x = returns((2, 3, 64), np.float32)
    scales = np.geomspace(2, 32, 12)
    out = np.empty((2, 3, 12, 64), dtype=np.complex64)
    assert cwt(x, scales, method="analytic", out=out) is out
    assert relative_error(out, cwt(x, scales, method="analytic")) < 1e-6  # same computation, other buffer
    with pytest.raises(ConfigError, match="out must be a C-contiguous numpy array"):
        cwt(x, scales, method="analytic", out=np.empty((2, 3, 12, 64), dtype=np.complex128))
    with pytest.raises(ConfigError, match="method='analytic' only"):
        cwt(x, scales, out=out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_path_agrees_with_numpy(dtype):
    x = returns((5, 96))
    scales = np.geomspace(2, 48, 20)
    out_t = cwt(torch.from_numpy(x).to(dtype), scales, method="analytic")
    assert isinstance(out_t, torch.Tensor)
    assert out_t.dtype == (torch.complex64 if dtype == torch.float32 else torch.complex128)
    out_np = cwt(x.astype(np.float32 if dtype == torch.float32 else np.float64), scales, method="analytic")
    # The torch path uses every bin and one FFT per scale; numpy drops sub-precision bins and uses GEMMs for
    # narrow bands: equal to float rounding.
    assert relative_error(out_t.numpy(), out_np) < (2e-6 if dtype == torch.float32 else 1e-12)


def test_round_trip_is_exact_up_to_the_mean_and_icwt_is_a_projection():
    window = 64
    scales = covering_scales(window)
    x = returns((6, window))
    coefs = cwt(x, scales, method="analytic")
    zero_mean = icwt(coefs, scales, method="analytic")
    assert np.abs(zero_mean.mean(axis=-1)).max() < 1e-14
    assert relative_error(zero_mean, x - x.mean(axis=-1, keepdims=True)) < 1e-12
    assert relative_error(icwt(coefs, scales, method="analytic", mean=x.mean(axis=-1)), x) < 1e-12
    coefs32 = cwt(x.astype(np.float32), scales, method="analytic")
    # float32 coefficients through a float32 copy of the pseudo-inverse: single-precision rounding.
    assert relative_error(icwt(coefs32, scales, method="analytic", mean=x.mean(axis=-1)), x) < 1e-5
    noise = np.random.default_rng(3).standard_normal(coefs.shape) * (1 + 1j)
    projected = icwt(noise, scales, method="analytic")
    assert relative_error(icwt(cwt(projected, scales, method="analytic"), scales, method="analytic"),
                          projected) < 1e-12
    tensor = icwt(torch.from_numpy(coefs), scales, method="analytic", mean=torch.from_numpy(x.mean(axis=-1)))
    assert relative_error(tensor.numpy(), x) < 1e-12  # same float64 matmul on torch


def test_condition_number_of_covering_scales():
    # Measured 5.25 (window 64, 41 scales): the mean is excluded, every other direction is well covered.
    assert 1 < condition_number(64, covering_scales(64), method="analytic") < 7


def test_close_to_pywt_away_from_the_edges():
    """Same wavelet, other discretisation: pywt's output lags half a sample; its index jitter and negative
    lobe are what remains (measured 2.6% at s = 8, 4.2% at s = 20 of the largest coefficient)."""
    n = 1024
    x = np.random.default_rng(1).standard_normal(n)
    scales = np.array([8.0, 20.0])
    ours = cwt(x, scales, method="analytic")
    bins = np.fft.fftfreq(n)
    half_sample = np.fft.ifft(np.fft.fft(ours, axis=-1) * np.exp(-1j * np.pi * bins), axis=-1)
    theirs, _ = pywt.cwt(x, scales, "cmor1.5-1.0")
    inner = slice(200, n - 200)
    assert relative_error(half_sample[:, inner], theirs[:, inner]) < 0.06


def test_user_errors_name_the_fix():
    x = returns((2, 32))
    with pytest.raises(ConfigError, match="complex Morlet only"):
        cwt(x, [2.0, 4.0], "morl", method="analytic")
    with pytest.raises(ConfigError, match="is not a CWT method"):
        cwt(x, [2.0, 4.0], method="fast")
    with pytest.raises(ConfigError, match="workers"):
        cwt(x, [2.0, 4.0], method="analytic", workers=0)
    coefs = cwt(x, covering_scales(32))
    with pytest.raises(ConfigError, match="drop mean="):
        icwt(coefs, covering_scales(32), mean=0.0)
