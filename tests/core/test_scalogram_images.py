"""Scalogram <-> image helpers: lossless channels, magnitudes, resizing; numpy and torch alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wavefin_core.errors import ConfigError
from wavefin_core.wavelets import (
    covering_scales,
    cwt,
    from_channels,
    icwt,
    log_magnitude,
    magnitude,
    resize,
    to_channels,
)


@pytest.fixture(scope="module")
def coefs():
    x = np.random.default_rng(0).standard_t(3, size=(3, 64)).astype(np.float32) * 0.01
    return cwt(x, covering_scales(64))


def test_channels_roundtrip_is_lossless(coefs):
    img = to_channels(coefs)
    assert img.shape == (3, 2, coefs.shape[-2], 64) and img.dtype == np.float32
    np.testing.assert_array_equal(img[:, 0], coefs.real)
    np.testing.assert_array_equal(img[:, 1], coefs.imag)
    back = from_channels(img)
    assert back.dtype == np.complex64
    np.testing.assert_array_equal(back, coefs)
    assert from_channels(to_channels(coefs.astype(np.complex128))).dtype == np.complex128


def test_channels_keep_the_series_recoverable(coefs):
    scales = covering_scales(64)
    series = icwt(from_channels(to_channels(coefs)), scales)
    np.testing.assert_allclose(cwt(series, scales), coefs, atol=1e-5 * np.abs(coefs).max())


def test_torch_channels_match_numpy(coefs):
    img_t = to_channels(torch.from_numpy(coefs))
    assert isinstance(img_t, torch.Tensor) and img_t.dtype == torch.float32
    np.testing.assert_array_equal(img_t.numpy(), to_channels(coefs))
    np.testing.assert_array_equal(from_channels(img_t).numpy(), coefs)


def test_real_coefficients_get_a_zero_imaginary_channel():
    real = np.ones((2, 5, 8))
    img = to_channels(real)
    assert img.shape == (2, 2, 5, 8) and not img[:, 1].any()
    assert to_channels(torch.ones(5, 8)).shape == (2, 5, 8)


def test_magnitudes(coefs):
    np.testing.assert_allclose(magnitude(coefs), np.abs(coefs))
    assert magnitude(coefs).dtype == np.float32
    np.testing.assert_allclose(log_magnitude(coefs, eps=1e-6), np.log(np.abs(coefs) + 1e-6), rtol=1e-6)
    assert log_magnitude(np.zeros((2, 2))).max() == pytest.approx(np.log(1e-8))
    torch_log = log_magnitude(torch.from_numpy(coefs))
    np.testing.assert_allclose(torch_log.numpy(), log_magnitude(coefs), rtol=1e-5, atol=1e-6)


def test_resize_last_two_axes_numpy_and_torch(coefs):
    img = to_channels(coefs)
    small = resize(img, (16, 32))
    assert isinstance(small, np.ndarray) and small.shape == (3, 2, 16, 32) and small.dtype == np.float32
    np.testing.assert_allclose(resize(torch.from_numpy(img), (16, 32)).numpy(), small)
    np.testing.assert_allclose(resize(img, img.shape[-2:]), img, rtol=1e-6)  # same size: unchanged
    np.testing.assert_allclose(resize(np.full((4, 10), 2.5), (7, 3)), np.full((7, 3), 2.5))
    assert resize(coefs, (8, 8)).dtype == np.complex64


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: from_channels(np.zeros((3, 4, 5))), r"\(\.\.\., 2, S, T\)"),
        (lambda: to_channels(np.zeros(5)), r"\(\.\.\., S, T\)"),
        (lambda: resize(np.zeros((4, 4)), (0, 3)), "size="),
        (lambda: log_magnitude(np.ones((2, 2)), eps=0), "eps=0"),
    ],
)
def test_bad_inputs_raise_config_error(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
