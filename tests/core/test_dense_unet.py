"""Dense U-Net volume translation: the model, its training and save/load, the pairs, the baseline and the metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from tests.core.conftest import crash_resume_and_rerun
from wavefin_core.data.simulate import simulate_mjd
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.evaluation.volume import (
    PerScaleLinear,
    VolumePairs,
    build_volume_pairs,
    evaluate_volume_translation,
    mae,
    psnr,
    volume_translation_table,
)
from wavefin_core.models.dense_unet import (
    DenseUNet,
    DenseUNetConfig,
    count_parameters,
    load_dense_unet,
    predict_dense_unet,
    save_dense_unet,
    train_dense_unet,
)
from wavefin_core.preprocess import clean_prices
from wavefin_core.segments import make_segments

pytestmark = pytest.mark.usefixtures("single_thread")  # tests/core/conftest.py

TINY = {"stem_channels": 8, "growth_rate": 6, "layers_per_block": 2, "levels": 2, "batch_size": 32,
        "learning_rate": 3e-3, "patience": 20}


def planted_pairs(n: int, seed: int, shape: tuple[int, int] = (8, 16)) -> tuple[np.ndarray, np.ndarray]:
    """Inputs |noise| and targets = the local (3 scales x 5 steps) mean of the squared input.

    A per-scale straight line on the same pixel cannot express a neighbourhood average of a square; a small
    convolutional network can.
    """
    rng = np.random.default_rng(seed)
    x = np.abs(rng.standard_normal((n, 1, *shape))).astype(np.float32)
    padded = np.pad(x[:, 0] ** 2, ((0, 0), (1, 1), (2, 2)), mode="edge")
    y = np.zeros_like(x[:, 0])
    for ds in range(3):
        for dt in range(5):
            y += padded[:, ds : ds + shape[0], dt : dt + shape[1]]
    return x, (y / 15.0)[:, None].astype(np.float32)


def pairs_from(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> VolumePairs:
    split = np.concatenate([np.full(len(x[s]), s) for s in ("train", "val", "test")])
    scales = np.ones(x["train"].shape[2])
    return VolumePairs(x=np.concatenate([x[s] for s in ("train", "val", "test")]),
                       y=np.concatenate([y[s] for s in ("train", "val", "test")]), split=split, scales=scales,
                       wavelet="cmor1.5-1.0", input_mode="magnitude", input_scale=scales, target_scale=scales,
                       log_volume_mean=0.0, log_volume_std=1.0)


@pytest.fixture(scope="module")
def trained():
    data = {split: planted_pairs(n, seed) for split, n, seed in (("train", 256, 0), ("val", 64, 1), ("test", 96, 2))}
    cfg = DenseUNetConfig(**TINY, epochs=10, seed=0)  # 80 steps; reached 0.32x the baseline's MAE when tuned
    result = train_dense_unet(*data["train"], *data["val"], cfg, "cpu")
    return data, result


def test_default_model_has_about_half_a_million_parameters() -> None:
    for channels in (1, 2):  # magnitude or real+imag inputs
        assert 300_000 <= count_parameters(DenseUNet(channels, 1)) <= 700_000
    with pytest.raises(ConfigError, match="compression"):
        DenseUNetConfig(compression=0.0).validate()


def test_any_scalogram_size_keeps_its_shape() -> None:
    model = DenseUNet(2, 1, DenseUNetConfig(**TINY))
    with torch.no_grad():
        assert model(torch.zeros(3, 2, 13, 21)).shape == (3, 1, 13, 21)  # not multiples of 2**levels


def test_learns_a_planted_relation_the_linear_baseline_cannot(trained) -> None:
    data, result = trained
    assert result.best_epoch >= 1 and len(result.history) >= result.best_epoch
    prediction = predict_dense_unet(result.model, data["test"][0])
    scores = evaluate_volume_translation(pairs_from({s: d[0] for s, d in data.items()},
                                                    {s: d[1] for s, d in data.items()}),
                                         {"dense_unet": prediction})
    models = scores["models"]
    assert scores["best"] == "dense_unet"
    # The baseline can only use the centre pixel (1/15 of the neighbourhood): it stays near the train mean.
    assert models["dense_unet"]["mae"] < 0.6 * models["per_scale_linear"]["mae"]
    assert models["per_scale_linear"]["mae"] <= models["train_mean"]["mae"]
    assert models["dense_unet"]["psnr"] > models["per_scale_linear"]["psnr"] + 3.0
    json.dumps(scores, allow_nan=False)
    table = volume_translation_table(scores)
    assert table.index("| dense_unet") < table.index("| per_scale_linear")


def test_save_load_round_trip_and_determinism(trained, tmp_path) -> None:
    data, result = trained
    x_test = data["test"][0]
    expected = predict_dense_unet(result.model, x_test)
    save_dense_unet(result.model, result.config, tmp_path / "unet", extra={"series": "mjd"})
    model, cfg, meta = load_dense_unet(tmp_path / "unet")
    assert cfg == result.config and meta["extra"] == {"series": "mjd"}
    assert meta["n_parameters"] == result.n_parameters
    # The very same weights and computation: exact equality.
    np.testing.assert_array_equal(predict_dense_unet(model, x_test), expected)
    # Same seed, same data: the same weights, bit for bit (one thread, CPU).
    short = DenseUNetConfig(**TINY, epochs=2, max_steps=3, seed=0)
    again = train_dense_unet(*data["train"], *data["val"], short, "cpu")
    twice = train_dense_unet(*data["train"], *data["val"], short, "cpu")
    for (name, a), b in zip(again.model.state_dict().items(), twice.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(DataError, match="not a saved wavefin"):
        load_dense_unet(tmp_path / "missing")
    with pytest.raises(DataError, match="channel"):
        predict_dense_unet(model, np.zeros((2, 2, 8, 16), np.float32))


def test_mae_and_psnr_by_hand() -> None:
    truth = np.array([[0.0, 1.0], [2.0, 3.0]])
    guess = np.array([[0.0, 1.0], [2.0, 5.0]])
    assert mae(truth, guess) == pytest.approx(0.5)  # |5 - 3| / 4
    assert psnr(truth, guess, data_range=3.0) == pytest.approx(10 * math.log10(9 / 1.0))  # MSE = 4 / 4
    assert psnr(truth, truth, data_range=3.0) == math.inf
    with pytest.raises(ConfigError, match="data_range"):
        psnr(truth, guess, data_range=0.0)
    with pytest.raises(DataError, match="do not match"):
        mae(truth, guess[:1])


def test_per_scale_linear_recovers_a_line_per_scale() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 2, 3, 10))  # real+imag: the baseline uses the magnitude
    slope, intercept = np.array([2.0, -1.0, 0.5]), np.array([0.5, 1.0, 0.0])
    y = (intercept[:, None] + slope[:, None] * np.hypot(x[:, 0], x[:, 1]))[:, None]
    fitted = PerScaleLinear.fit(x, y, "real_imag")
    # Exact linear data, closed-form least squares: only float64 rounding.
    np.testing.assert_allclose(fitted.slope, slope, rtol=1e-10)
    np.testing.assert_allclose(fitted.intercept, intercept, atol=1e-10)
    assert PerScaleLinear.from_dict(json.loads(json.dumps(fitted.to_dict()))).predict(x).shape == y.shape


def mjd_segments_and_volume(days: int = 1):
    clean = clean_prices(simulate_mjd(days=days, seed=0), source="mjd")
    return make_segments(clean["log_return"], window=32, stride=8), clean["volume"]


@pytest.mark.parametrize("mode, channels", [("magnitude", 1), ("real_imag", 2)])
def test_volume_pairs_shapes_and_train_only_scaling(mode: str, channels: int) -> None:
    segments, volume = mjd_segments_and_volume()
    pairs = build_volume_pairs(segments, volume, input_mode=mode, num_scales=8, source="mjd")
    n = len(segments)
    assert pairs.x.shape == (n, channels, 8, 32) and pairs.y.shape == (n, 1, 8, 32)
    assert pairs.x.dtype == pairs.y.dtype == np.float32
    train_y = pairs.arrays("train")[1]
    # Each scale of the train targets has RMS 1 by construction (float32 sums: a loose tolerance).
    np.testing.assert_allclose(np.sqrt((train_y.astype(np.float64) ** 2).mean(axis=(0, 1, 3))), 1.0, rtol=1e-4)
    json.dumps(pairs.metadata())

    # Changing the volume of test bars changes no train-fitted statistic and no train target.
    test_bars = segments.start_time[segments.mask("test")][0]
    changed = volume.copy()
    changed[changed.index >= test_bars] *= 50.0
    other = build_volume_pairs(segments, changed, input_mode=mode, num_scales=8, source="mjd")
    assert other.log_volume_mean == pairs.log_volume_mean and other.log_volume_std == pairs.log_volume_std
    np.testing.assert_array_equal(other.target_scale, pairs.target_scale)
    np.testing.assert_array_equal(other.arrays("train")[1], train_y)


def test_volume_pairs_refuse_unusable_volume() -> None:
    segments, volume = mjd_segments_and_volume()
    with pytest.raises(DataError, match="volume is constant"):
        build_volume_pairs(segments, pd.Series(0.0, index=volume.index), source="fx")
    with pytest.raises(DataError, match="not all in the volume series"):
        build_volume_pairs(segments, volume.iloc[100:], source="mjd")
    with pytest.raises(ConfigError, match="input_mode"):
        build_volume_pairs(segments, volume, input_mode="phase")


@pytest.mark.parametrize("every", [3, 5], ids=["mid-epoch", "epoch-end"])
def test_training_killed_and_resumed_equals_an_uninterrupted_run(every: int, tmp_path) -> None:
    """5 steps per epoch: every=3 resumes in the middle of epoch 2, every=5 just before its validation."""
    (x_train, y_train), (x_val, y_val) = planted_pairs(40, 3), planted_pairs(16, 4)
    cfg = DenseUNetConfig(**{**TINY, "batch_size": 8, "patience": 10}, epochs=4, seed=1)

    def train(checkpointing=None, progress=None):
        return train_dense_unet(x_train, y_train, x_val, y_val, cfg, "cpu", progress, checkpointing)

    uninterrupted, resumed, again = crash_resume_and_rerun(train, tmp_path, every, 9 if every == 3 else 10)
    # The resumed run replays the very same operations (same process, one thread): exact equality.
    assert resumed.history == uninterrupted.history and resumed.best_epoch == uninterrupted.best_epoch
    for (name, a), b in zip(resumed.model.state_dict().items(), uninterrupted.model.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    # A finished training leaves a final checkpoint: training again returns the same model at once.
    assert again.train_seconds == 0.0 and again.history == uninterrupted.history
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(),
                                                 uninterrupted.model.state_dict().values(), strict=True))


@pytest.mark.parametrize("mode", ["magnitude", "real_imag"])
def test_pairs_from_stored_scalograms_equal_the_pairs_from_segments(mode: str) -> None:
    """What the forecasters asset builds from the `scalograms` asset is what build_volume_pairs builds."""
    from wavefin_core.evaluation.volume import volume_pairs_from_scalograms
    from wavefin_core.scalograms import build_scalograms

    segments, volume = mjd_segments_and_volume()
    direct = build_volume_pairs(segments, volume, input_mode=mode, num_scales=8, source="mjd")
    stored = volume_pairs_from_scalograms(build_scalograms(segments, num_scales=8, series="mjd"), volume,
                                          input_mode=mode)
    # Targets: the very same computation on the same volume windows.
    np.testing.assert_array_equal(stored.y, direct.y)
    np.testing.assert_array_equal(stored.split, direct.split)
    assert (stored.log_volume_mean, stored.log_volume_std) == (direct.log_volume_mean, direct.log_volume_std)
    # Inputs: the training RMS is summed in float32 there and float64 here, and the magnitude is taken before
    # (np.abs of complex64) or after (np.hypot) the float32 channel split: float32 rounding only.
    np.testing.assert_allclose(stored.x, direct.x, rtol=1e-5, atol=1e-6)
    thinned = stored.thinned("test", 4)
    assert len(thinned.arrays("test")[0]) == len(range(0, int((stored.split == "test").sum()), 4))
    assert len(thinned.arrays("train")[0]) == len(stored.arrays("train")[0])
    with pytest.raises(DataError, match="not all in the volume series"):
        volume_pairs_from_scalograms(build_scalograms(segments, num_scales=8), volume.iloc[200:])
    with pytest.raises(DataError, match="volume is constant"):
        volume_pairs_from_scalograms(build_scalograms(segments, num_scales=8), volume * 0.0)


def test_volume_example_figure_is_a_small_png(tmp_path) -> None:
    from wavefin_core.evaluation.plots import save_figure
    from wavefin_core.evaluation.volume import plot_volume_example

    image = np.random.default_rng(0).random((8, 16))
    fig = plot_volume_example({"true": image, "dense_unet": image * 0.9, "per_scale_linear": image * 1.1}, "mjd")
    path = save_figure(fig, tmp_path / "volume.png", dpi=60)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 60_000
    with pytest.raises(DataError, match="one shape"):
        plot_volume_example({"true": image, "dense_unet": image[:4]})
