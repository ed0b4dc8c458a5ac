"""Generation representations: exact round trips, exact and idempotent projections, JSON round trip, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.scalograms import build_scalograms
from wavefin_core.segments import make_segments
from wavefin_core.wavelets import covering_scales
from wavefin_core.wavelets.representations import (
    REPRESENTATIONS,
    make_representation,
    representation_from_dict,
)

WINDOW = 64
SCALES = covering_scales(WINDOW, num=16)  # the quick profile's grid


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    """Heavy-tailed daily-sized returns with a non-zero mean (so undoing the standardisation matters)."""
    return np.random.default_rng(7).standard_t(4, size=(96, WINDOW)) * 0.01 + 3e-4


@pytest.fixture(scope="module")
def fitted(windows):
    return {name: make_representation(name, WINDOW, scales=SCALES).fit(windows[:64]) for name in REPRESENTATIONS}


def _rel(a, b) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).norm() / b.norm())


def test_complex_images_are_what_the_scalograms_asset_stores():
    returns = pd.Series(np.random.default_rng(1).standard_t(4, 1000) * 0.01,
                        index=pd.date_range("2020-01-01", periods=1000, freq="D", tz="UTC"))
    segs = make_segments(returns, window=WINDOW, stride=8)
    stored = build_scalograms(segs, scales=SCALES)
    train = segs.mask("train")
    rep = make_representation("complex", WINDOW, scales=SCALES).fit(segs.windows[train])
    assert rep.mean == pytest.approx(segs.mean, rel=1e-12) and rep.std == pytest.approx(segs.std, rel=1e-12)
    np.testing.assert_allclose(rep.channel_scale, stored.channel_scale, rtol=1e-6)
    # Same float32 computation (bitwise equal when measured); the tolerance covers an FFT engine that rounds
    # differently for the two batch shapes (train windows only here, all windows in build_scalograms).
    np.testing.assert_allclose(rep.encode(segs.windows), stored.images, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", REPRESENTATIONS)
def test_encode_decode_round_trip_and_zero_residual(fitted, windows, name):
    rep = fitted[name]
    images = rep.encode(windows[64:])
    assert images.shape == (32, *rep.image_shape) and images.dtype == np.float32
    assert rep.image_shape[0] == rep.channels
    returns, residual = rep.decode(images)
    assert returns.dtype == np.float64 and residual.shape == (32,)
    # float32 images: the reconstruction is exact up to float32 rounding of the coefficients (~1e-7 relative).
    np.testing.assert_allclose(returns, windows[64:], atol=1e-6 * np.abs(windows).max())
    assert residual.max() < 1e-5


@pytest.mark.parametrize("name", REPRESENTATIONS)
def test_projection_is_exact_and_idempotent(fitted, windows, name):
    rep = fitted[name]
    real = torch.from_numpy(rep.encode(windows[64:]))
    projected = rep.project(real)
    assert projected.shape == real.shape and projected.dtype == real.dtype and projected.device == real.device
    # float32 matmuls over K = C*16*64 terms: rounding ~1e-7 relative per pass.
    assert _rel(projected, real) < 1e-6
    noise = torch.randn((64, *rep.image_shape), generator=torch.Generator().manual_seed(0))
    once = rep.project(noise)
    assert _rel(rep.project(once), once) < 1e-6
    assert _rel(once, noise) > 0.1  # noise is mostly outside the range
    once64 = rep.project(noise.double())
    assert once64.dtype == torch.float64 and _rel(rep.project(once64), once64) < 1e-12
    assert _rel(once, once64) < 1e-5  # float32 vs float64 path: rounding only
    np.testing.assert_allclose(rep.project(noise.numpy()), once.numpy(), atol=1e-5)  # numpy path (float64 inside)


@pytest.mark.parametrize("name", REPRESENTATIONS)
def test_residual_is_zero_for_real_and_large_for_noise(fitted, windows, name):
    rep = fitted[name]
    noise = np.random.default_rng(3).standard_normal((16, *rep.image_shape)).astype(np.float32)
    _, residual = rep.decode(noise)
    assert residual.min() > 0.3
    decoded, residual_projected = rep.decode(rep.project(noise))
    assert residual_projected.max() < 1e-5
    # A generated image and its projection decode to the same series (decode and project share one inverse).
    np.testing.assert_allclose(decoded, rep.decode(noise)[0], atol=1e-5 * np.abs(decoded).max())


def test_haar_projection_zeroes_what_is_not_a_coefficient(fitted):
    rep = fitted["haar"]
    level = rep.level
    assert rep.image_shape == (1, level + 1, WINDOW)
    projected = rep.project(np.random.default_rng(4).standard_normal((4, *rep.image_shape)))
    repeats = [2 ** level] + [2 ** j for j in range(level, 0, -1)]
    for row, width in enumerate(repeats):  # each coefficient's cells are equal: no energy off the coefficients
        blocks = projected[:, 0, row].reshape(4, WINDOW // width, width)
        np.testing.assert_allclose(blocks, np.broadcast_to(blocks.mean(axis=-1, keepdims=True), blocks.shape),
                                   atol=1e-12)


@pytest.mark.parametrize("name", REPRESENTATIONS)
def test_to_dict_round_trip(fitted, windows, name):
    rep = fitted[name]
    again = representation_from_dict(json.loads(json.dumps(rep.to_dict())))
    assert type(again) is type(rep) and again.image_shape == rep.image_shape
    np.testing.assert_array_equal(again.encode(windows[64:70]), rep.encode(windows[64:70]))
    unfitted = representation_from_dict(json.loads(json.dumps(make_representation(name, WINDOW).to_dict())))
    assert not unfitted.fitted


def test_fit_uses_only_the_windows_it_is_given(windows):
    first = make_representation("logmag_phase", WINDOW, scales=SCALES).fit(windows[:64])
    before = first.to_dict()
    first.encode(windows[64:])  # encoding other windows never refits
    first.decode(first.encode(windows[64:]))
    assert first.to_dict() == before
    same = make_representation("logmag_phase", WINDOW, scales=SCALES).fit(windows[:64].copy())
    assert same.to_dict() == before
    assert first.mean == pytest.approx(windows[:64].mean()) and first.std == pytest.approx(windows[:64].std())
    other = make_representation("logmag_phase", WINDOW, scales=SCALES).fit(windows[32:])
    assert other.to_dict()["fitted"] != before["fitted"]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda w: make_representation("wavelet", WINDOW), ConfigError, "complex, logmag_phase, haar"),
        (lambda w: make_representation("haar", 48, haar_level=5), ConfigError, "haar_level"),
        (lambda w: make_representation("haar", 63), ConfigError, "even window"),
        (lambda w: make_representation("complex", 2), ConfigError, "window=2"),
        (lambda w: make_representation("complex", WINDOW, method="analytic"), ConfigError, "method='pywt'"),
        (lambda w: make_representation("complex", WINDOW, scales=[2.0, 3.0]).fit(w), ConfigError, "covering_scales"),
        (lambda w: make_representation("complex", WINDOW).decode(np.zeros((1, 2, 41, WINDOW), np.float32)),
         ConfigError, "fit(train_windows)"),
        (lambda w: make_representation("haar", WINDOW).fit(w[:, :32]), DataError, "train_windows has shape"),
        (lambda w: make_representation("haar", WINDOW).fit(np.zeros((3, WINDOW))), DataError, "zero variance"),
        (lambda w: make_representation("haar", WINDOW).fit(w).decode(np.full((2, 1, 7, WINDOW), np.nan)),
         DataError, "images row 0"),
        (lambda w: representation_from_dict({"name": "complex"}), DataError, "Representation.to_dict()"),
    ],
)
def test_user_errors_name_the_field_and_the_fix(windows, call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(windows)


def test_haar_level_calibration_matches_the_train_energy_and_keeps_samples_realizable(fitted, windows):
    """Issue 8's per-level calibration: every level of a generated set gets the train windows' mean square (1 per
    row by construction of the row scaling), and projected (realizable) images stay realizable."""
    rep = fitted["haar"]
    np.testing.assert_allclose(rep.level_energy(rep.encode(windows[:64])), 1.0, rtol=1e-5)  # float32 images
    rng = np.random.default_rng(11)
    # A toy "generated" set: realizable images with 3x too much energy at the finest level, 0.5x at the coarsest.
    distortion = np.ones(rep.level + 1)
    distortion[-1], distortion[0] = 3.0, 0.5
    images = (rep.project(rng.standard_normal((40, *rep.image_shape)).astype(np.float32))
              * distortion[None, None, :, None]).astype(np.float32)
    calibrated, factors = rep.calibrate_levels(images)
    assert calibrated.shape == images.shape and calibrated.dtype == np.float32 and factors.shape == (rep.level + 1,)
    # float32 images, energy summed in float64: rounding well below 1e-5.
    np.testing.assert_allclose(rep.level_energy(calibrated), 1.0, rtol=1e-5)
    _, residual = rep.decode(calibrated)
    assert residual.max() < 1e-5
    # The level-wise rescaling is exactly what each row got: the finest row shrinks, the coarsest grows.
    np.testing.assert_allclose(calibrated / images, np.broadcast_to(factors[None, None, :, None], images.shape)
                               .astype(np.float32), rtol=1e-6)
    assert factors[-1] < 1.0 < factors[0]


def test_haar_level_calibration_to_a_target_energy_such_as_one_volatility_buckets(fitted, windows):
    """The per-bucket calibration: a given target (one bucket's train level energies) replaces the whole train set's
    1 per row; a target of the wrong length or with negative energies is a ConfigError that says what to pass."""
    rep = fitted["haar"]
    # A low-volatility "bucket": half the returns' size, so about a quarter of the train energy at every level (the
    # approximation row also carries the train mean, which is not halved).
    target = rep.level_energy(rep.encode(windows[:32] * 0.5))
    assert np.all((target > 0.1) & (target < 0.4))
    images = rep.project(np.random.default_rng(3).standard_normal((24, *rep.image_shape)).astype(np.float32))
    calibrated, factors = rep.calibrate_levels(images, target_energy=target)
    # float32 images, energy summed in float64: rounding well below 1e-5.
    np.testing.assert_allclose(rep.level_energy(calibrated), target, rtol=1e-5)
    assert rep.decode(calibrated)[1].max() < 1e-5  # still exactly realizable
    default, _ = rep.calibrate_levels(images)
    same, _ = rep.calibrate_levels(images, target_energy=np.ones(rep.level + 1))
    np.testing.assert_array_equal(same, default)  # the same computation: the default target is all ones
    for bad in (np.ones(rep.level), -np.ones(rep.level + 1)):
        with pytest.raises(ConfigError, match="target_energy .* level_energy"):
            rep.calibrate_levels(images, target_energy=bad)
