"""Causal Haar denoising never looks ahead; the whole-series version does (and is documented to)."""

from __future__ import annotations

import numpy as np
import pytest
import pywt

from wavefin_core.errors import ConfigError
from wavefin_core.wavelets import haar_denoise, haar_dwt_image, haar_idwt_image


def prices(shape, seed=0):
    rng = np.random.default_rng(seed)
    return 100 + np.cumsum(rng.standard_t(4, size=shape), axis=-1)


def block_denoise_last(block, level, threshold, mode):
    """Reference: pywt-denoise the block, keep its last sample."""
    coeffs = pywt.wavedec(block, "haar", level=level)
    coeffs = [coeffs[0]] + [pywt.threshold(d, threshold, mode) for d in coeffs[1:]]
    return pywt.waverec(coeffs, "haar")[-1]


@pytest.mark.parametrize("threshold", ["universal", 0.7])
@pytest.mark.parametrize("mode", ["soft", "hard"])
@pytest.mark.parametrize("level", [1, 3, 5])
def test_causal_output_ignores_the_future_bitwise(level, mode, threshold):
    x = prices((3, 400))
    cut = 250
    future_changed = x.copy()
    future_changed[:, cut:] += np.random.default_rng(1).standard_normal((3, 400 - cut)) * 10
    a = haar_denoise(x, level, threshold, mode)
    b = haar_denoise(future_changed, level, threshold, mode)
    np.testing.assert_array_equal(a[:, :cut], b[:, :cut])
    assert not np.array_equal(a[:, cut:], b[:, cut:])


def test_whole_series_mode_leaks_the_future():
    x = prices((2, 400))
    future_changed = x.copy()
    future_changed[:, 250:] += 5.0
    a = haar_denoise(x, 4, causal=False)
    b = haar_denoise(future_changed, 4, causal=False)
    assert not np.array_equal(a[:, :250], b[:, :250])  # the look-ahead leak the causal mode exists to avoid


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_causal_equals_denoising_each_trailing_block(mode):
    x = prices(90, seed=3)
    level, threshold = 3, 0.8
    out = haar_denoise(x, level, threshold, mode)
    for t in range(x.size):
        usable = min(level, int(np.log2(t + 1)))  # shorter history -> shorter level; t = 0 passes through
        expected = (
            x[t] if usable == 0 else block_denoise_last(x[t - 2**usable + 1 : t + 1], usable, threshold, mode)
        )
        assert out[t] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("causal", [True, False])
def test_zero_threshold_is_the_identity(causal):
    x = prices((2, 130))
    np.testing.assert_allclose(haar_denoise(x, 4, 0.0, causal=causal), x, rtol=1e-13)


@pytest.mark.parametrize("causal", [True, False])
def test_universal_threshold_removes_noise(causal):
    t = np.arange(2048)
    clean = np.sin(2 * np.pi * t / 256) + 0.5 * np.sin(2 * np.pi * t / 700)
    noisy = clean + 0.3 * np.random.default_rng(4).standard_normal(t.size)
    denoised = haar_denoise(noisy, 4, causal=causal)
    assert np.mean((denoised - clean) ** 2) < 0.5 * np.mean((noisy - clean) ** 2)


def test_dtype_and_shape_are_kept():
    x = prices((2, 3, 64)).astype(np.float32)
    for causal in (True, False):
        out = haar_denoise(x, 2, causal=causal)
        assert out.shape == x.shape and out.dtype == np.float32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"level": 0}, "level=0"),
        ({"level": 2.5}, "level=2.5"),
        ({"mode": "medium"}, "mode='medium'"),
        ({"threshold": -1.0}, "threshold=-1.0"),
        ({"threshold": "sure"}, "threshold='sure'"),
        ({"sigma_window": 1}, "sigma_window=1"),
        ({"causal": False, "level": 9}, "use level <= 6"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, message):
    args = {"level": 2} | kwargs
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        haar_denoise(prices(100), **args)


def test_haar_image_is_exactly_invertible():
    x = prices((4, 64)) / 100
    img = haar_dwt_image(x, 3)
    assert img.shape == (4, 4, 64)
    np.testing.assert_allclose(haar_idwt_image(img), x, rtol=1e-14)
    coeffs = pywt.wavedec(x, "haar", level=3, mode="periodization", axis=-1)
    np.testing.assert_allclose(img[..., 1, ::8], coeffs[1])  # rows are time-aligned, repeated coefficients


def test_haar_image_inverse_projects_generated_images():
    rng = np.random.default_rng(5)
    img = rng.standard_normal((2, 5, 32))
    series = haar_idwt_image(img)
    np.testing.assert_allclose(haar_idwt_image(haar_dwt_image(series, 4)), series, rtol=1e-13)
    # The projected image is the nearest valid one: the residual is orthogonal to every valid image.
    residual = img - haar_dwt_image(series, 4)
    basis = haar_dwt_image(np.eye(32), 4)
    assert np.abs(np.einsum("kij,bij->bk", basis, residual)).max() < 1e-12


def test_haar_image_bad_lengths_raise():
    with pytest.raises(ConfigError, match="not divisible by 2\\*\\*level = 8"):
        haar_dwt_image(np.zeros(60), 3)
    with pytest.raises(ConfigError, match="haar_dwt_image"):
        haar_idwt_image(np.zeros((4, 60)))
