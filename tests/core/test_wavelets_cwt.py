"""cwt must be numerically pywt.cwt (just faster), on numpy and torch, whatever the chunking."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import torch

from wavefin_core.errors import ConfigError
from wavefin_core.wavelets import cwt, scale_frequencies
from wavefin_core.wavelets.cwt import bank_for
from wavefin_core.wavelets.filters import FAST_LENGTH_FACTORS, fast_length, filter_bank

WAVELETS = ["morl", "mexh", "gaus1", "cmor1.5-1.0"]
# Wide range on purpose: from sub-sample scales to filters far longer than the window.
SCALES = np.geomspace(0.8, 150, 23)


def returns(shape, dtype=np.float64, seed=0):
    """Heavy-tailed, return-like windows."""
    return (np.random.default_rng(seed).standard_t(3, size=shape) * 0.01).astype(dtype)


def pywt_reference(x, scales, wavelet):
    coefs, _ = pywt.cwt(x, scales, wavelet, axis=-1)
    return np.moveaxis(coefs, 0, -2)  # pywt puts scales first; we put them next to time


def assert_close_to(actual, expected, rel=1e-4):
    scale = np.abs(expected).max()
    assert np.abs(actual - expected).max() <= rel * scale


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_matches_pywt_on_a_batch_of_windows(wavelet, dtype):
    x = returns((6, 100), dtype)
    ours = cwt(x, SCALES, wavelet)
    ref = pywt_reference(x, SCALES, wavelet)
    assert ours.shape == (6, SCALES.size, 100)
    assert ours.dtype == ref.dtype  # float32 -> float32 / complex64, float64 -> float64 / complex128
    assert_close_to(ours, ref)
    if dtype == np.float64:  # in double precision the agreement is to rounding, not just 1e-4
        assert_close_to(ours, ref, rel=1e-12)


def test_other_wavelet_families_and_complex_input_match_pywt():
    x = returns((3, 64))
    for wavelet in ["cmor0.5-2.0", "shan1-1", "cgau2", "fbsp1-1.5-1.0", "gaus3"]:
        assert_close_to(cwt(x, SCALES, wavelet), pywt_reference(x, SCALES, wavelet), rel=1e-12)
    z = x + 1j * returns((3, 64), seed=1)
    for wavelet in ["morl", "cmor1.5-1.0"]:
        assert_close_to(cwt(z, SCALES, wavelet), pywt_reference(z, SCALES, wavelet), rel=1e-12)


def test_shapes_follow_leading_axes():
    x = returns((2, 3, 50))
    out = cwt(x, [2.0, 4.0], "morl")
    assert out.shape == (2, 3, 2, 50)
    # One row alone vs inside a batch: the FFT may vectorise rows differently, so equal to float64 rounding.
    assert_close_to(out[1, 2], cwt(x[1, 2], [2.0, 4.0], "morl"), rel=1e-13)
    single = cwt(x[0, 0], 3.0, "mexh")  # scalar scale, 1-D signal
    assert single.shape == (1, 50)
    assert_close_to(single, pywt_reference(x[0, 0], [3.0], "mexh"), rel=1e-12)


@pytest.mark.parametrize("wavelet", ["morl", "cmor1.5-1.0"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_path_agrees_with_numpy(wavelet, dtype):
    x = returns((5, 96), np.float64)
    x_t = torch.from_numpy(x).to(dtype)
    out_t = cwt(x_t, SCALES, wavelet)
    out_np = cwt(x_t.numpy(), SCALES, wavelet)
    assert isinstance(out_t, torch.Tensor) and out_t.device == x_t.device
    assert out_t.dtype == torch.from_numpy(out_np).dtype
    assert_close_to(out_t.numpy(), out_np, rel=1e-6 if dtype == torch.float32 else 1e-13)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensor_stays_on_device_and_agrees():
    x = returns((4, 128), np.float32)
    out = cwt(torch.from_numpy(x).cuda(), SCALES, "cmor1.5-1.0")
    assert out.is_cuda
    assert_close_to(out.cpu().numpy(), cwt(x, SCALES, "cmor1.5-1.0"), rel=1e-5)


@pytest.mark.parametrize("wavelet", ["mexh", "cmor1.5-1.0"])
def test_chunking_does_not_change_the_result(wavelet):
    x = returns((7, 80))
    whole = cwt(x, SCALES, wavelet)
    # Chunks change the FFT batch layout (and torch uses another FFT library): equal to float64 rounding of the
    # largest coefficient, not bit for bit.
    for chunk in (1, 3, 7, 100):
        assert_close_to(cwt(x, SCALES, wavelet, chunk_size=chunk), whole, rel=1e-13)
    x_t = torch.from_numpy(x)
    assert_close_to(cwt(x_t, SCALES, wavelet, chunk_size=2).numpy(), whole, rel=1e-13)


def test_unsorted_scales_match_pywt_on_numpy_and_torch():
    # Unsorted scales put scales of one FFT length at non-contiguous positions (index arrays, not slices).
    scales = np.random.default_rng(3).permutation(SCALES)
    x = returns((3, 90))
    for wavelet in ["morl", "cmor1.5-1.0"]:
        ref = pywt_reference(x, scales, wavelet)
        assert_close_to(cwt(x, scales, wavelet), ref, rel=1e-12)
        assert_close_to(cwt(torch.from_numpy(x), scales, wavelet).numpy(), ref, rel=1e-12)


def test_small_scales_get_shorter_ffts():
    scales = np.geomspace(1, 128, 64)
    bank, _ = bank_for("morl", scales, 256, np.dtype(np.float64), complex_input=False)
    lengths = [group.fft_len for group in bank.groups]
    assert lengths == sorted(lengths) and lengths[0] < 300 and lengths[-1] == 512  # 2n for the longest filters
    assert sum(group.responses.shape[0] for group in bank.groups) == scales.size


def test_fast_length_is_the_smallest_allowed_length():
    def allowed(length):
        return any(length % m == 0 and (length // m) & (length // m - 1) == 0 for m in FAST_LENGTH_FACTORS)

    for need in range(1, 3000):
        length = fast_length(need)
        assert allowed(length) and not any(allowed(k) for k in range(need, length))


def test_gradients_flow_through_the_torch_path():
    x = returns((2, 64))
    x_t = torch.from_numpy(x).requires_grad_()
    weights = torch.from_numpy(returns((2, SCALES.size, 64), seed=4))
    (cwt(x_t, SCALES, "morl", chunk_size=1) * weights).sum().backward()
    impulses = cwt(np.eye(64), SCALES, "morl")  # (k, S, t): the CWT of each unit impulse
    expected = np.einsum("kst,bst->bk", impulses, weights.numpy())
    np.testing.assert_allclose(x_t.grad.numpy(), expected, rtol=0, atol=1e-12)


def test_filter_responses_are_cached():
    x = returns((2, 77))
    cwt(x, SCALES, "gaus1")
    hits = filter_bank.cache_info().hits
    cwt(x + 1, SCALES, "gaus1")
    assert filter_bank.cache_info().hits == hits + 1


def test_sampling_period_changes_frequencies_not_coefficients():
    x = returns((2, 64))
    np.testing.assert_array_equal(cwt(x, SCALES, "morl", 0.5), cwt(x, SCALES, "morl"))
    _, freqs = pywt.cwt(x, SCALES, "morl", sampling_period=0.5)
    np.testing.assert_allclose(scale_frequencies(SCALES, "morl", 0.5), freqs, rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"wavelet": "morlet"}, ["wavelet='morlet'", "cmor1.5-1.0"]),
        ({"wavelet": "db4"}, ["wavelet='db4'", "continuous"]),
        ({"scales": [1.0, -2.0]}, ["scales", "positive", "covering_scales"]),
        ({"scales": []}, ["scales", "non-empty"]),
        ({"scales": [[1.0, 2.0]]}, ["scales", "1-D"]),
        ({"scales": [1e-5]}, ["too small", "covering_scales"]),
        ({"chunk_size": 0}, ["chunk_size=0", "positive integer"]),
        ({"sampling_period": 0.0}, ["sampling_period", "positive"]),
        ({"x": np.float64(1.0)}, ["x has shape", "time"]),
    ],
)
def test_bad_arguments_raise_config_error_naming_the_fix(kwargs, words):
    args = {"x": returns((2, 32)), "scales": [1.0, 2.0], "wavelet": "morl"} | kwargs
    with pytest.raises(ConfigError) as info:
        cwt(args.pop("x"), args.pop("scales"), **args)
    for word in words:
        assert word in str(info.value)


def test_too_small_scale_is_also_refused_by_pywt():
    with pytest.raises(ValueError, match="too small"):
        pywt.cwt(returns(32), [1e-5], "morl")
