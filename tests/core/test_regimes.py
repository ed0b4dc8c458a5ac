"""Volatility-regime conditioning (issue 8): train-only buckets, sampled frequencies, save/load, projection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.models import (
    DiffusionConfig,
    load_diffusion,
    sample_diffusion,
    save_diffusion,
    train_diffusion,
)
from wavefin_core.models.regimes import (
    DRIFT_POOL_SIZE,
    VolRegimes,
    class_labels,
    encode_training_windows,
    normalised_drift,
    plan_samples,
    realized_volatility,
    regimes_from_meta,
)
from wavefin_core.wavelets.representations import make_representation

pytestmark = pytest.mark.usefixtures("single_thread")  # tests/core/conftest.py

WINDOW = 16


def clustered_windows(n: int, seed: int, vol_range: tuple[float, float] = (1e-3, 3e-2)) -> np.ndarray:
    """Windows whose volatility varies 30x between windows (log-uniform), Student-t(4) inside each."""
    rng = np.random.default_rng(seed)
    vols = np.exp(rng.uniform(*np.log(vol_range), size=(n, 1)))
    return vols * rng.standard_t(4, size=(n, WINDOW)) / np.sqrt(2.0)


def test_realized_volatility_is_the_rms_per_window():
    windows = np.array([[1.0, -1.0, 1.0, -1.0], [0.0, 0.0, 0.0, 2.0]])
    np.testing.assert_allclose(realized_volatility(windows), [1.0, 1.0])


def test_buckets_come_from_the_train_windows_only():
    train, test = clustered_windows(400, 0), clustered_windows(200, 1, vol_range=(1e-4, 1.0))
    regimes = VolRegimes.fit(train, 4)
    vols = realized_volatility(train)
    np.testing.assert_allclose(regimes.edges, np.quantile(vols, [0.25, 0.5, 0.75]))
    np.testing.assert_allclose(regimes.frequencies, 0.25)  # quantile edges: a quarter of the train windows each
    # Test windows are assigned with the train edges; fitting on train + test would move them (the test can fail).
    assert not np.allclose(VolRegimes.fit(np.concatenate([train, test]), 4).edges, regimes.edges)
    test_vols = realized_volatility(test)
    buckets = regimes.buckets_of(test)
    assert (buckets[test_vols < vols.min()] == 0).all() and (buckets[test_vols > vols.max()] == 3).all()
    # encode_training_windows fits one set of regimes per series on the windows it is given, labels series-major
    reps = {name: make_representation("haar", WINDOW) for name in ("a", "b")}
    images, labels, fitted = encode_training_windows({"a": train, "b": 10 * train}, reps, 4)
    assert images.shape == (800, *reps["a"].image_shape)
    np.testing.assert_array_equal(labels, np.concatenate([regimes.buckets_of(train), 4 + regimes.buckets_of(train)]))
    np.testing.assert_allclose(fitted["b"].edges, 10 * regimes.edges)


def test_sampled_buckets_follow_the_train_frequencies_and_scales_come_from_their_bucket():
    from scipy.stats import chisquare

    train = clustered_windows(300, 2)
    train[:60] = 1e-3 * np.random.default_rng(3).standard_normal((60, WINDOW))  # a crowd of calm windows
    regimes = VolRegimes.fit(train, 8, "window")
    n = 4000
    buckets, scales = regimes.draw(n, seed=0)
    counts = np.bincount(buckets, minlength=8)
    # A multinomial draw: a chi-square goodness-of-fit test at the 0.1% level (fixed seed, so it cannot flake).
    assert chisquare(counts, n * regimes.frequencies).pvalue > 1e-3, (counts, n * regimes.frequencies)
    # Each scale is an empirical draw from its bucket's train volatilities: inside that bucket's edges.
    lower = np.concatenate([[0.0], regimes.edges])[buckets]
    upper = np.concatenate([regimes.edges, [np.inf]])[buckets]
    assert ((scales >= lower) & (scales <= upper)).all()
    same = regimes.draw(n, seed=0)
    np.testing.assert_array_equal(same[0], buckets)  # the very same seeded draw
    labels = plan_samples(regimes, 1, 10, seed=5, scale_draw="independent").labels
    np.testing.assert_array_equal(labels, class_labels(1, regimes.draw(10, 5)[0], 8))
    np.testing.assert_array_equal(labels // 8, 1)
    # normalisation: windows divided by their own volatility have RMS 1; by their bucket's median, not exactly
    prepared, _ = regimes.prepare(train)
    np.testing.assert_allclose(realized_volatility(prepared), 1.0, rtol=1e-12)
    off = VolRegimes.fit(train, 0)
    np.testing.assert_array_equal(off.prepare(train)[0], train)
    assert (off.draw(5, 0)[1] == 1.0).all() and (plan_samples(off, 2, 5, 0).labels == 2).all()


# One tiny model with the lever on: two toy series whose windows switch between a calm and a wild regime.
LEVER = {"block_out_channels": (8, 16), "batch_size": 16, "epochs": 1000, "learning_rate": 3e-3, "max_steps": 40,
         "conditioning": "class", "prediction_type": "v_prediction", "warmup_steps": 5, "lr_schedule": "cosine",
         "ema_decay": 0.9, "seed": 0}


@pytest.fixture(scope="module")
def conditioned():
    windows = {"calm": clustered_windows(64, 4, (1e-3, 1e-2)), "wild": clustered_windows(64, 5, (1e-2, 1e-1))}
    reps = {name: make_representation("haar", WINDOW) for name in windows}
    images, labels, regimes = encode_training_windows(windows, reps, 2, "window")
    result = train_diffusion(images, DiffusionConfig(**LEVER), "cpu", labels=labels, num_classes=4)
    return result, reps, regimes


def test_a_conditioned_model_round_trips_with_its_regimes(conditioned, tmp_path):
    result, reps, regimes = conditioned
    assert result.sampling_model.config.num_class_embeds == 4  # 2 series x 2 buckets
    target = tmp_path / "model"
    save_diffusion(result, target, series=list(reps), representations={n: r.to_dict() for n, r in reps.items()},
                   regimes={n: r.to_dict() for n, r in regimes.items()})
    model, scheduler, meta = load_diffusion(target)
    for index, name in enumerate(reps):
        loaded = regimes_from_meta(meta, name)
        assert loaded.to_dict() == regimes[name].to_dict()
        # Same weights, seed, batch and threads: the very same computation, so bit for bit.
        plan = plan_samples(loaded, index, 6, seed=index, scale_draw="independent")
        labels, scales = plan.labels, plan.scales
        again_plan = plan_samples(regimes[name], index, 6, seed=index, scale_draw="independent")
        again = (again_plan.labels, again_plan.scales)
        np.testing.assert_array_equal(labels, again[0])
        np.testing.assert_array_equal(scales, again[1])
        kwargs = {"num_inference_steps": 3, "class_labels": labels, "sampler": "dpmsolver", "seed": index}
        np.testing.assert_array_equal(
            sample_diffusion(model, meta["sample_shape"], 6, train_scheduler=scheduler, **kwargs),
            sample_diffusion(result.ema_model, result.sample_shape, 6, train_scheduler=result.scheduler, **kwargs))
    with pytest.raises(ConfigError, match="2 series with 1 volatility bucket"):
        save_diffusion(result, tmp_path / "other", series=list(reps))  # the regimes are part of the label space
    meta_path = target / "wavefin.json"
    broken = json.loads(meta_path.read_text())
    broken["regimes"]["calm"]["frequencies"] = [0.5]
    with pytest.raises(DataError, match="frequencies"):
        regimes_from_meta(broken, "calm")
    assert regimes_from_meta({"regimes": {}}, "calm").k == 0  # a model without regimes: the lever is off


def test_projection_stays_exact_with_the_lever_on(conditioned):
    result, reps, regimes = conditioned
    plan = plan_samples(regimes["wild"], 1, 12, seed=0, scale_draw="independent")
    labels, scales = plan.labels, plan.scales
    images = sample_diffusion(result.sampling_model, result.sample_shape, 12, sampler="dpmsolver",
                              num_inference_steps=6, train_scheduler=result.scheduler, class_labels=labels,
                              project=reps["wild"].project, batch_size=8)
    returns, residual = reps["wild"].decode(images)
    # float32 sampling, projection in float32, checked in float64: rounding is ~1e-7. Each image is the image of
    # its decoded (normalised) window, up to the float32 rounding of encoding; the scale then multiplies the
    # window (linear), so the rescaled window is realizable too.
    assert residual.max() < 1e-5
    np.testing.assert_allclose(reps["wild"].encode(returns), images, atol=1e-5 * float(np.abs(images).max()))
    assert np.isfinite(returns * scales[:, None]).all() and (scales > 0).all()


def test_bad_regime_settings_name_the_field_and_the_fix():
    with pytest.raises(ConfigError, match="vol_buckets=1 must be 0 .off. or an integer in 2"):
        VolRegimes.fit(clustered_windows(10, 0), 1)
    with pytest.raises(ConfigError, match="vol_normalize='scale'"):
        VolRegimes.fit(clustered_windows(10, 0), 4, "scale")
    with pytest.raises(ConfigError, match="needs volatility buckets"):
        VolRegimes.fit(clustered_windows(10, 0), 0, "window")
    with pytest.raises(DataError, match="row 3 has a non-finite value"):
        VolRegimes.fit(np.where(np.arange(10)[:, None] == 3, np.nan, clustered_windows(10, 0)), 4)
    with pytest.raises(DataError, match="volatility regimes dict is not"):
        VolRegimes.from_dict({"format": "something else"})


# -- scale_draw="drift": the volatility drawn from train windows of a similar drift (issue 8's leverage effect) --
def planted_leverage(n: int, seed: int) -> np.ndarray:
    """Windows with a planted drift <-> volatility association: half fall (drift -0.5 sd per step) with 3x the
    volatility of the other half, which rise; volatility also varies 10x within each half (across the buckets)."""
    rng = np.random.default_rng(seed)
    falling = rng.random(n) < 0.5
    vols = 1e-3 * np.exp(rng.uniform(0.0, np.log(10.0), size=n)) * np.where(falling, 3.0, 1.0)
    shapes = rng.standard_normal((n, WINDOW)) + np.where(falling, -0.5, 0.5)[:, None]
    return vols[:, None] * shapes


def _log_scale_gap(scales: np.ndarray, falling: np.ndarray, rows: np.ndarray) -> float:
    """Mean log scale of the falling minus the rising windows among ``rows``."""
    return float(np.log(scales[rows & falling]).mean() - np.log(scales[rows & ~falling]).mean())


def test_drift_draw_keeps_the_drift_scale_association_of_the_train_windows():
    train = planted_leverage(2000, 0)
    regimes = VolRegimes.fit(train, 2, "window")
    train_falling, train_buckets = normalised_drift(train) < 0, regimes.buckets_of(train)
    shapes, _ = regimes.prepare(planted_leverage(1000, 11))  # fresh shapes, normalised as generated ones are
    falling = normalised_drift(shapes) < 0
    plan = plan_samples(regimes, 0, 1000, seed=3, scale_draw="drift")
    drift_scales = plan.scales_for(shapes)
    # same buckets and independent scales whichever draw: the drift draw has its own random stream
    independent = plan_samples(regimes, 0, 1000, seed=3, scale_draw="independent").scales_for(shapes)
    np.testing.assert_array_equal(independent, plan.scales)
    for b in range(2):
        # Within a bucket the falling train windows are ~0.5 log units (1.6x) more volatile; the drift draw gives
        # falling shapes that gap (sampling noise ~0.07 per bucket), the independent draw none.
        train_gap = _log_scale_gap(realized_volatility(train), train_falling, train_buckets == b)
        assert train_gap > 0.4
        assert abs(_log_scale_gap(drift_scales, falling, plan.buckets == b) - train_gap) < 0.2
        assert abs(_log_scale_gap(independent, falling, plan.buckets == b)) < 0.2
    np.testing.assert_array_equal(plan.rescale(shapes), shapes * drift_scales[:, None])
    # seeded: the very same computation twice, bit for bit
    np.testing.assert_array_equal(plan.scales_for(shapes), drift_scales)


def test_drift_tables_round_trip_through_json_and_stay_small():
    regimes = VolRegimes.fit(planted_leverage(3000, 2), 4, "window")
    loaded = VolRegimes.from_dict(json.loads(json.dumps(regimes.to_dict())))
    assert loaded.to_dict() == regimes.to_dict() and regimes.to_dict()["version"] == 2
    assert all(len(pool) <= DRIFT_POOL_SIZE for bins in regimes.drift_pools for pool in bins)
    shapes, buckets = regimes.prepare(planted_leverage(50, 3))
    np.testing.assert_array_equal(loaded.matched_scales(buckets, shapes, 7), regimes.matched_scales(buckets, shapes, 7))
    assert VolRegimes.fit(planted_leverage(100, 0), 2, "bucket").to_dict()["drift_pools"] is None  # window only


def test_version_1_regimes_still_sample_independently_and_refuse_the_drift_draw():
    regimes = VolRegimes.fit(planted_leverage(400, 0), 2, "window")
    v1 = {k: v for k, v in regimes.to_dict().items() if not k.startswith("drift_")} | {"version": 1}
    old = VolRegimes.from_dict(v1)
    assert old.drift_edges is None
    np.testing.assert_array_equal(plan_samples(old, 0, 8, 1, "independent").scales, plan_samples(regimes, 0, 8, 1, "independent").scales)
    with pytest.raises(DataError, match="format version 1.*re-materialize diffusion_model.*scale_draw='independent'"):
        plan_samples(old, 0, 8, 1)  # the default draw is "drift"


def test_bad_scale_draw_inputs_name_the_field_and_the_fix():
    regimes = VolRegimes.fit(planted_leverage(400, 0), 2, "window")
    with pytest.raises(ConfigError, match="synthetic_series.scale_draw='nearest' is not one of"):
        plan_samples(regimes, 0, 8, 1, scale_draw="nearest")
    with pytest.raises(ConfigError, match="pass the buckets the samples' class labels were drawn with"):
        regimes.matched_scales(np.array([0, 5]), planted_leverage(2, 1), 0)
    with pytest.raises(ConfigError, match="needs vol_normalize='window'"):
        VolRegimes.fit(planted_leverage(400, 0), 2, "bucket").matched_scales(np.zeros(2, int), planted_leverage(2, 1), 0)
    broken = regimes.to_dict()
    broken["drift_pools"] = broken["drift_pools"][:1]
    with pytest.raises(DataError, match="drift_edges / drift_pools"):
        VolRegimes.from_dict(broken)


def test_shape_calibration_resets_the_rms_and_maps_onto_the_train_shapes_marginal():
    """Train shapes are Student-t(4) (heavy tails); "generated" shapes Gaussian with a scattered RMS. "rms" sets
    each to RMS 1 as every train shape is; "marginal" also gives them the train shapes' tails, keeping the order
    of the values inside each window (the dependence the model made)."""
    regimes = VolRegimes.fit(clustered_windows(2000, 0), 4, "window")
    rng = np.random.default_rng(1)
    shapes = rng.standard_normal((300, WINDOW)) * rng.uniform(0.6, 1.4, size=(300, 1))
    np.testing.assert_array_equal(regimes.calibrate_shapes(shapes, "none"), shapes)
    rms = regimes.calibrate_shapes(shapes, "rms")
    np.testing.assert_allclose(np.sqrt((rms**2).mean(axis=1)), 1.0, rtol=1e-12)
    buckets = rng.integers(0, 4, size=300)
    with pytest.raises(ConfigError, match="buckets"):
        regimes.calibrate_shapes(shapes, "marginal")
    marginal = regimes.calibrate_shapes(shapes, "marginal", buckets)
    np.testing.assert_allclose(np.sqrt((marginal**2).mean(axis=1)), 1.0, rtol=1e-12)
    assert (np.argsort(marginal, axis=1) == np.argsort(shapes, axis=1)).all()

    def kurtosis(x):
        return float(np.mean(x**4) / np.mean(x**2) ** 2 - 3.0)

    train_shapes = clustered_windows(2000, 0)
    train_shapes = train_shapes / realized_volatility(train_shapes)[:, None]
    assert kurtosis(rms) < 0.5 < kurtosis(train_shapes)  # a Gaussian set stays light-tailed with "rms" only
    # the train shapes' tails, up to the rescaling to RMS 1 (sampling noise of 4,800 values: ~0.3)
    assert abs(kurtosis(marginal) - kurtosis(train_shapes)) < 0.6
    # regimes without window normalisation leave the (unnormalised) shapes alone
    assert np.array_equal(VolRegimes.fit(clustered_windows(200, 0), 4).calibrate_shapes(shapes, "marginal"), shapes)
    # the plan applies it before scaling, and the quantiles survive JSON
    loaded = VolRegimes.from_dict(json.loads(json.dumps(regimes.to_dict())))
    np.testing.assert_array_equal(loaded.shape_quantiles, regimes.shape_quantiles)
    plan = plan_samples(loaded, 0, 300, seed=3, scale_draw="independent", shape_calibration="marginal")
    expected = regimes.calibrate_shapes(shapes, "marginal", plan.buckets) * plan.scales[:, None]
    np.testing.assert_allclose(plan.rescale(shapes), expected, rtol=1e-12)
    assert loaded.shape_quantiles.shape == (4, len(regimes.shape_quantiles[0]))  # one marginal per bucket


def test_shape_calibration_settings_and_old_dicts_are_checked():
    regimes = VolRegimes.fit(clustered_windows(400, 0), 4, "window")
    with pytest.raises(ConfigError, match="shape_calibration"):
        plan_samples(regimes, 0, 10, seed=0, shape_calibration="quantile")
    saved = regimes.to_dict()
    del saved["shape_quantiles"]  # a model saved before the quantiles existed: "rms" works, "marginal" says what to do
    old = VolRegimes.from_dict(saved)
    shapes = np.random.default_rng(0).standard_normal((20, WINDOW))
    assert old.calibrate_shapes(shapes, "rms").shape == shapes.shape
    with pytest.raises(DataError, match="re-materialize diffusion_model"):
        old.calibrate_shapes(shapes, "marginal")
    saved["shape_quantiles"] = [[1.0, 0.0]] * 4
    with pytest.raises(DataError, match="shape_quantiles"):
        VolRegimes.from_dict(saved)
