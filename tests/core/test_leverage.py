"""Leverage calibration of generated shapes (issue 8): known answers on a planted leverage effect."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.evaluation.facts import stylized_facts
from wavefin_core.models.leverage import fit_leverage, leverage_curve, modulate, past_drift
from wavefin_core.models.regimes import VolRegimes, plan_samples, realized_volatility

pytestmark = pytest.mark.usefixtures("single_thread")  # tests/core/conftest.py

WINDOW = 64


def gjr_windows(n: int, seed: int, gamma: float = 0.25) -> np.ndarray:
    """Non-overlapping windows of one GJR-GARCH(1,1) path: the variance reacts more to falls (gamma > 0), so the
    windows carry a within-window leverage effect (gamma = 0: none). A process unrelated to the modulation the
    calibration fits, so recovering its leverage is a real test."""
    rng = np.random.default_rng(seed)
    omega, alpha, beta = 0.02, 0.02, 0.85
    total = n * WINDOW
    r = np.empty(total)
    var, prev = omega / (1 - alpha - beta - gamma / 2), 0.0
    for t in range(total):
        var = omega + (alpha + gamma * (prev < 0)) * prev**2 + beta * var
        prev = np.sqrt(var) * rng.standard_normal()
        r[t] = prev
    return 0.01 * r.reshape(n, WINDOW)


def unit_rms(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.mean(x**2, axis=1, keepdims=True))


def test_the_modulation_is_causal_inside_the_window():
    z = np.random.default_rng(0).standard_normal((5, WINDOW))
    changed = z.copy()
    changed[:, 30] += 5.0
    a, b = modulate(z, 1.5, 0.9), modulate(changed, 1.5, 0.9)
    np.testing.assert_array_equal(a[:, :30], b[:, :30])  # nothing before t = 30 sees the change
    assert not np.allclose(a[:, 31:], b[:, 31:])  # what follows it does
    assert np.array_equal(past_drift(z, 0.9)[:, 0], np.zeros(5))  # s_0 = 0: no invented past
    np.testing.assert_array_equal(modulate(z, 0.0, 0.9), z)
    # a fall raises what follows (theta > 0): the leverage effect's sign
    assert np.mean(leverage_curve(modulate(np.random.default_rng(1).standard_normal((2000, WINDOW)), 1.5, 0.9))) < -0.02
    with pytest.raises(ConfigError, match="memory"):
        past_drift(z, 1.0)


def test_fit_recovers_a_planted_leverage_curve_and_leaves_none_alone():
    """Target: the within-window leverage of GJR-GARCH windows (normalised by their own volatility, as the train
    shapes are). Generated shapes: Gaussian noise, no leverage. The fitted modulation gives them the target's
    mean leverage; against a target without leverage it changes (almost) nothing."""
    train = gjr_windows(1500, 0)
    target = leverage_curve(train / realized_volatility(train)[:, None])
    assert np.mean(target) < -0.04  # the planted effect is there
    generated = unit_rms(np.random.default_rng(2).standard_normal((800, WINDOW)))
    fit = fit_leverage(generated, target, unit_rms)
    assert abs(np.mean(fit.before)) < 0.01
    assert fit.theta > 0.5
    # the fit's own curve and a fresh application to every window agree with the target's mean leverage
    # (tolerance: the sampling noise of ~50,000 pairs per lag, ~0.005, and the grid's steps)
    assert abs(np.mean(fit.after) - np.mean(target)) < 0.01
    applied = unit_rms(modulate(generated, fit.theta, fit.memory))
    assert abs(np.mean(leverage_curve(applied)) - np.mean(target)) < 0.01
    assert set(fit.to_dict()) == {"theta", "memory", "fitted", "train_leverage", "leverage_before", "leverage_after"}

    calm = gjr_windows(1500, 3, gamma=0.0)
    none = fit_leverage(generated, leverage_curve(calm / realized_volatility(calm)[:, None]), unit_rms)
    assert abs(none.theta) <= 0.5
    assert abs(np.mean(none.after)) < 0.01
    # windows too short for a curve, or too few values for a curve that is not noise, are left alone
    short = fit_leverage(generated[:, :2], target, unit_rms)
    assert short.theta == 0.0 and not short.fitted
    assert short.to_dict()["leverage_after"] is None  # no curve: None in the metadata, not NaN
    few = fit_leverage(generated[:20], target, unit_rms)
    assert few.theta == 0.0 and not few.fitted and few.to_dict()["fitted"] is False
    assert fit.fitted


def test_marginal_leverage_calibration_through_the_sampling_plan():
    """VolRegimes fitted on GJR windows keep the train shapes' leverage curve (through JSON); the plan's
    "marginal_leverage" calibration gives leverage-free generated shapes that leverage and the train marginal,
    and records the fit. Old dicts without the curve say what to do."""
    train = gjr_windows(1500, 0)
    regimes = VolRegimes.fit(train, 2, "window")
    loaded = VolRegimes.from_dict(json.loads(json.dumps(regimes.to_dict())))
    np.testing.assert_array_equal(loaded.shape_leverage, regimes.shape_leverage)
    assert len(loaded.shape_leverage) == 10 and np.mean(loaded.shape_leverage) < -0.04

    shapes = np.random.default_rng(5).standard_normal((600, WINDOW)) * 0.9
    plan = plan_samples(loaded, 0, len(shapes), seed=7, scale_draw="drift", shape_calibration="marginal_leverage")
    returns = plan.rescale(shapes)
    assert plan.leverage_fit is not None and plan.leverage_fit.theta > 0.5
    calibrated, fit = loaded.calibrate_shapes_with_fit(shapes, "marginal_leverage", plan.buckets)
    np.testing.assert_allclose(np.sqrt(np.mean(calibrated**2, axis=1)), 1.0, rtol=1e-12)
    assert fit.theta == plan.leverage_fit.theta  # deterministic: the same shapes, the same fit
    # the leverage of the shapes is the train shapes' (noise ~0.005 + the grid) ...
    assert abs(stylized_facts(calibrated)["leverage"] - np.mean(loaded.shape_leverage)) < 0.015
    # ... and "marginal" alone leaves them without it
    assert abs(stylized_facts(loaded.calibrate_shapes(shapes, "marginal", plan.buckets))["leverage"]) < 0.01
    assert np.all(np.isfinite(returns)) and returns.shape == shapes.shape
    # a small set of the same series (another sampler's 40 windows: too few to fit) calibrated with this fit
    small = shapes[:40]
    small_plan = plan_samples(loaded, 0, len(small), seed=8, shape_calibration="marginal_leverage")
    small_plan.reuse_leverage = plan.leverage_fit
    small_plan.rescale(small)
    assert (small_plan.leverage_fit.theta, small_plan.leverage_fit.memory) == (fit.theta, fit.memory)
    unfitted = plan_samples(loaded, 0, len(small), seed=8, shape_calibration="marginal_leverage")
    unfitted.rescale(small)
    assert unfitted.leverage_fit.theta == 0.0 and not unfitted.leverage_fit.fitted

    # a series too short for a train curve that is not noise (100 windows of 64): nothing is fitted, the shapes
    # get the marginal map alone
    short = VolRegimes.fit(train[:100], 2, "window")
    assert len(VolRegimes.from_dict(json.loads(json.dumps(short.to_dict()))).shape_leverage) == 0
    short_plan = plan_samples(short, 0, len(shapes), seed=7, shape_calibration="marginal_leverage")
    np.testing.assert_array_equal(short_plan.rescale(shapes),
                                  plan_samples(short, 0, len(shapes), seed=7, shape_calibration="marginal").rescale(shapes))
    assert short_plan.leverage_fit is not None and not short_plan.leverage_fit.fitted

    saved = regimes.to_dict()
    del saved["shape_leverage"]  # a model saved before the curve existed: "marginal" works, the new mode says why
    old = VolRegimes.from_dict(saved)
    assert old.calibrate_shapes(shapes, "marginal", plan.buckets).shape == shapes.shape
    with pytest.raises(DataError, match="shape_calibration='marginal'"):
        old.calibrate_shapes(shapes, "marginal_leverage", plan.buckets)
    saved["shape_leverage"] = [0.1, 2.0]
    with pytest.raises(DataError, match="shape_leverage"):
        VolRegimes.from_dict(saved)
