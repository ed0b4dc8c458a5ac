"""icwt is the exact least-squares inverse of cwt, and covering_scales makes it well-conditioned."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import pywt
import torch

from wavefin_core.errors import ConfigError
from wavefin_core.wavelets import (
    IllConditionedScalesWarning,
    condition_number,
    covering_scales,
    cwt,
    icwt,
)


def return_windows(count, window, seed=0):
    """Student-t(3) log-returns: heavy tails and occasional jumps, like real daily data."""
    return np.random.default_rng(seed).standard_t(3, size=(count, window)) * 0.01


def rel_l2(actual, expected):
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


@pytest.mark.parametrize("window", [64, 256])
def test_reconstructs_return_windows_to_float_precision(window):
    scales = covering_scales(window)
    x = return_windows(12, window)
    assert rel_l2(icwt(cwt(x, scales), scales), x) < 1e-6
    x32 = x.astype(np.float32)
    back32 = icwt(cwt(x32, scales), scales)
    assert back32.dtype == np.float32 and rel_l2(back32, x32) < 1e-4
    back_t = icwt(cwt(torch.from_numpy(x32), scales), scales)
    assert isinstance(back_t, torch.Tensor) and back_t.dtype == torch.float32
    assert rel_l2(back_t.numpy(), x32) < 1e-4
    assert rel_l2(icwt(cwt(torch.from_numpy(x), scales), scales).numpy(), x) < 1e-6


def test_condition_numbers_of_the_default_grid():
    # Measured, and documented in covering_scales: the weakest direction is the constant (DC) component,
    # the strongest the lowest frequencies (pywt's sqrt(scale) normalisation favours large scales).
    assert condition_number(64, covering_scales(64)) == pytest.approx(7.25, abs=0.1)
    assert condition_number(256, covering_scales(256)) == pytest.approx(10.26, abs=0.1)


@pytest.mark.parametrize("wavelet", ["morl", "mexh", "gaus1", "cmor0.5-2.0"])
def test_other_wavelets_are_exactly_invertible_too(wavelet):
    scales = covering_scales(64, wavelet)
    x = return_windows(4, 64, seed=1)
    assert rel_l2(icwt(cwt(x, scales, wavelet), scales, wavelet), x) < 1e-6


def test_inverts_any_leading_shape():
    scales = covering_scales(64)
    x = return_windows(6, 64).reshape(2, 3, 64)
    back = icwt(cwt(x, scales), scales)
    assert back.shape == (2, 3, 64) and rel_l2(back, x) < 1e-6


def test_noise_is_projected_onto_the_nearest_real_series():
    window = 64
    scales = covering_scales(window)
    rng = np.random.default_rng(2)
    shape = (3, scales.size, window)
    noise = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    series = icwt(noise, scales)
    residual = noise - cwt(series, scales)
    impulse_responses = cwt(np.eye(window), scales)  # cwt(e_k) for every basis vector e_k
    # Normal equations: the residual is orthogonal (real inner product) to the range of the real CWT.
    inner = np.einsum("kst,bst->bk", impulse_responses.conj(), residual).real
    assert np.abs(inner).max() < 1e-10 * np.linalg.norm(noise)
    # A projection is idempotent.
    np.testing.assert_allclose(
        icwt(cwt(series, scales), scales), series, rtol=0, atol=1e-12 * np.abs(series).max()
    )
    # And nothing nearby does better.
    best = np.linalg.norm(residual)
    for _ in range(5):
        nudged = series + 1e-3 * rng.standard_normal(series.shape)
        assert np.linalg.norm(noise - cwt(nudged, scales)) > best


def test_real_coefficients_are_read_as_zero_imaginary_part():
    scales = covering_scales(64)
    coefs = cwt(return_windows(2, 64), scales)
    expected = icwt(coefs.real + 0j, scales)
    # The real input takes a cheaper path through the pseudo-inverse: equal to float64 rounding, not bitwise.
    np.testing.assert_allclose(icwt(coefs.real, scales), expected, rtol=0, atol=1e-13 * np.abs(expected).max())


def test_covering_scales_span_nyquist_to_the_window():
    scales = covering_scales(256)
    centre = pywt.central_frequency("cmor1.5-1.0", precision=12)
    assert scales[0] == pytest.approx(2 * centre)  # 0.5 cycles/sample (w0 / pi for Morlet)
    assert scales[-1] == pytest.approx(256 * centre)  # 1 / window cycles/sample
    assert scales.size == 8 * 7 + 1  # 8 voices per octave over 7 octaves
    assert np.all(np.diff(np.log(scales)) > 0)
    np.testing.assert_allclose(pywt.scale2frequency("cmor1.5-1.0", scales[[0, -1]]), [0.5, 1 / 256])
    assert covering_scales(64, "morl", num=10).size == 10


def test_poorly_covering_scales_warn_and_missing_band_raises():
    x = return_windows(2, 64)
    sparse = np.geomspace(6, 64, 24)  # skips the highest frequencies
    with pytest.warns(IllConditionedScalesWarning, match="covering_scales"):
        icwt(cwt(x, sparse), sparse)
    narrow = np.geomspace(2, 4, 6)  # only the top octave
    with pytest.raises(ConfigError, match=r"do not cover.*covering_scales\(64"):
        icwt(cwt(x, narrow), narrow)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        icwt(cwt(x, covering_scales(64)), covering_scales(64))


def test_bad_arguments_raise_config_error():
    scales = covering_scales(64)
    coefs = cwt(return_windows(1, 64), scales)
    with pytest.raises(ConfigError, match=r"must be \(\.\.\., 41, T\)"):
        icwt(coefs[:, :-1], scales)
    with pytest.raises(ConfigError, match="wavelet='nope'"):
        icwt(coefs, scales, "nope")
    with pytest.raises(ConfigError, match="window=2"):
        covering_scales(2)
    with pytest.raises(ConfigError, match="num=1"):
        covering_scales(64, num=1)
