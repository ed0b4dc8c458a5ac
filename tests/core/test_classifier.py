"""Scalogram classifiers (CNN, ViT): learning, early stopping, ReduceLROnPlateau, class balancing and prior
matching (no collapse), magnitude channels, indicators, 3 classes, the single-batch overfit check and save/load,
on tiny shapes.

S=12, T=20 are not multiples of the ViT patch size used here (8), so padding is exercised too.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.models import (
    ClassifierConfig,
    ScalogramCNN,
    ScalogramViT,
    build_classifier,
    class_weights,
    count_parameters,
    load_classifier,
    overfit_single_batch,
    predict_proba,
    save_classifier,
    train_classifier,
)

SHAPE = (2, 12, 20)
CNN = {"arch": "cnn", "channels": (8, 16), "batch_size": 32, "learning_rate": 3e-3}
VIT = {
    "arch": "vit",
    "patch_size": 8,
    "embed_dim": 32,
    "depth": 1,
    "num_heads": 4,
    "batch_size": 32,
    "learning_rate": 2e-3,
    "dropout": 0.0,
}


pytestmark = pytest.mark.usefixtures("single_thread")  # tests/core/conftest.py


def band_data(n: int, seed: int, p_up: float = 0.5, band: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Noise scalograms; class 1 has a bright band at scale 4 (band=0 makes the labels unpredictable)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < p_up).astype(np.int64)
    x = rng.standard_normal((n, *SHAPE)).astype(np.float32)
    x[y == 1, :, 4, :] += band
    return x, y


@pytest.mark.parametrize("arch_knobs", [CNN, VIT], ids=["cnn", "vit"])
def test_learns_a_separable_task(arch_knobs):
    x_train, y_train = band_data(192, seed=0)
    x_val, y_val = band_data(96, seed=1)
    cfg = ClassifierConfig(**arch_knobs, epochs=10, patience=10, seed=0)
    result = train_classifier(x_train, y_train, x_val, y_val, cfg, "cpu")

    best = result.history[result.best_epoch - 1]
    assert best["val_accuracy"] > 0.9
    predicted = predict_proba(result.model, x_val, "cpu").argmax(1)
    # `calibrated` is the returned model's validation accuracy (after prior matching). Prediction and
    # validation may batch differently, so a near-tie may flip one window: allow one.
    assert (predicted == y_val).mean() == pytest.approx(result.calibrated["val_accuracy"], abs=1.01 / len(y_val))
    assert result.calibrated["val_accuracy"] > 0.9
    assert not result.model.training
    assert result.params == count_parameters(result.model) > 0 and result.train_seconds > 0


def test_early_stopping_restores_the_best_weights():
    # Validation labels are the opposite of the training rule, so validation loss rises as training proceeds.
    x_train, y_train = band_data(128, seed=0)
    x_val, y_val = band_data(64, seed=1)
    # No prior matching: this test recomputes the best epoch's validation loss from the returned probabilities.
    cfg = ClassifierConfig(**CNN, epochs=30, patience=2, seed=0, lr_patience=0, prior_matching=False)
    result = train_classifier(x_train, y_train, x_val, 1 - y_val, cfg, "cpu")

    val_losses = [row["val_loss"] for row in result.history]
    assert result.best_epoch == int(np.argmin(val_losses)) + 1
    assert len(result.history) == result.best_epoch + cfg.patience < cfg.epochs  # stopped early
    # ReduceLROnPlateau (lr_patience=0): every epoch without a lower validation loss halves the learning rate.
    rates = [row["lr"] for row in result.history]
    assert rates[: result.best_epoch] == [cfg.learning_rate] * result.best_epoch
    assert rates[result.best_epoch + 1] == pytest.approx(rates[result.best_epoch] / 2)

    # The returned model is the best epoch's, not the last one's: recompute its weighted validation loss.
    proba = predict_proba(result.model, x_val, "cpu")
    weights = np.asarray(result.class_weights)
    labels = 1 - y_val
    nll = -np.log(proba[np.arange(len(labels)), labels])
    recomputed = (weights[labels] * nll).sum() / weights[labels].sum()
    assert recomputed == pytest.approx(val_losses[result.best_epoch - 1], rel=1e-4)
    assert recomputed < val_losses[-1]


def test_class_weights_counter_imbalance():
    y = np.array([0] * 90 + [1] * 10)
    np.testing.assert_allclose(class_weights(y), [100 / 180, 100 / 20])
    with pytest.raises(DataError, match="class"):
        class_weights(np.zeros(5, dtype=int))

    # Unpredictable labels, 90% down in both splits: unweighted training learns the prior (P(up) ~ 0.1);
    # weighted training moves towards indifference (P(up) ~ 0.5) instead of leaning on the majority class.
    x_train, y_train = band_data(320, seed=0, p_up=0.1, band=0.0)
    x_val, y_val = band_data(128, seed=1, p_up=0.1, band=0.0)
    mean_up = {}
    for balance in (True, False):
        # Prior matching off: this test is about the loss weighting alone.
        cfg = ClassifierConfig(**CNN, epochs=6, patience=6, seed=0, balance_classes=balance, prior_matching=False)
        result = train_classifier(x_train, y_train, x_val, y_val, cfg, "cpu")
        mean_up[balance] = predict_proba(result.model, x_val, "cpu")[:, 1].mean()
        assert result.class_weights == (
            pytest.approx(list(class_weights(y_train))) if balance else [1.0, 1.0]
        )
    assert mean_up[True] > 0.3
    assert mean_up[False] < 0.15


@pytest.mark.parametrize("arch_knobs", [CNN, VIT], ids=["cnn", "vit"])
def test_save_load_round_trip_gives_identical_predictions(arch_knobs, tmp_path):
    x, y = band_data(64, seed=0)
    cfg = ClassifierConfig(**arch_knobs, epochs=1, max_steps=2, seed=0)
    result = train_classifier(x, y, x, y, cfg, "cpu")
    target = tmp_path / "clf"
    save_classifier(result.model, cfg, SHAPE, target, extra={"horizon": 1})
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]

    model, loaded_cfg, meta = load_classifier(target)
    assert loaded_cfg == cfg
    assert meta["input_shape"] == SHAPE and meta["arch"] == cfg.arch and meta["extra"] == {"horizon": 1}
    # Same weights, same batch layout, same threads: the very same computation, so exact.
    np.testing.assert_array_equal(predict_proba(model, x, "cpu"), predict_proba(result.model, x, "cpu"))


def test_training_is_deterministic_and_reports_progress():
    x, y = band_data(64, seed=0)
    cfg = ClassifierConfig(**CNN, epochs=3, seed=5)
    calls = []
    first = train_classifier(x, y, x, y, cfg, "cpu", progress=lambda s, t, row: calls.append((s, t, row)))
    second = train_classifier(x, y, x, y, cfg, "cpu")
    assert first.history == second.history
    assert [(s, t) for s, t, _ in calls] == [(1, 3), (2, 3), (3, 3)]
    assert calls[0][2] == first.history[0]


def test_models_accept_any_scalogram_size():
    for size in [(3, 5), (12, 20), (33, 70)]:
        x = torch.zeros(2, 2, *size)
        assert ScalogramCNN(2, channels=(4, 8, 8)).eval()(x).shape == (2, 2)
        vit = ScalogramViT(2, size, patch_size=8, embed_dim=16, depth=1, num_heads=2).eval()
        assert vit(x).shape == (2, 2)


def test_config_round_trip_and_errors():
    cfg = ClassifierConfig(**VIT)
    assert ClassifierConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="arch"):
        build_classifier(ClassifierConfig(arch="rnn"), SHAPE)
    with pytest.raises(ConfigError, match="num_heads"):
        ClassifierConfig(arch="vit", embed_dim=30, num_heads=4).validate()
    with pytest.raises(ConfigError, match="pacience"):
        ClassifierConfig.from_dict({"pacience": 3})
    x, y = band_data(8, seed=0)
    with pytest.raises(DataError, match="y_train"):
        train_classifier(x, y + 5, x, y, ClassifierConfig(**CNN), "cpu")
    with pytest.raises(ConfigError, match="input_channels"):
        ClassifierConfig(input_channels="phase").validate()
    with pytest.raises(ConfigError, match="balance_method"):
        ClassifierConfig(balance_method="oversample").validate()
    with pytest.raises(ConfigError, match="lr_factor"):
        ClassifierConfig(lr_factor=1.5).validate()
    with pytest.raises(DataError, match="indicators_val"):
        train_classifier(x, y, x, y, ClassifierConfig(**CNN), "cpu", indicators_train=np.zeros((8, 2)))
    with pytest.raises(DataError, match="indicators_train"):
        train_classifier(x, y, x, y, ClassifierConfig(**CNN), "cpu", indicators_train=np.zeros((7, 2)),
                         indicators_val=np.zeros((8, 2)))
    with pytest.raises(DataError, match="x_val"):
        train_classifier(x, y, x[:, :, :5], y, ClassifierConfig(**CNN), "cpu")


def test_balancing_and_prior_matching_prevent_collapse():
    """70% down, a weak band signal: the model must use both classes and beat chance on balanced accuracy.

    Without any balancing an argmax on weak evidence lands on the majority class for nearly every window (the
    collapse of the quick run); with it, and the prior matching on top, both classes are predicted.
    """
    x_train, y_train = band_data(320, seed=0, p_up=0.3, band=0.6)
    x_val, y_val = band_data(128, seed=1, p_up=0.3, band=0.6)
    x_test, y_test = band_data(256, seed=2, p_up=0.3, band=0.6)
    for method in ("weights", "sampler"):
        cfg = ClassifierConfig(**CNN, epochs=6, patience=3, seed=0, balance_method=method)
        result = train_classifier(x_train, y_train, x_val, y_val, cfg, "cpu")
        predicted = predict_proba(result.model, x_test, "cpu").argmax(1)
        recalls = [np.mean(predicted[y_test == c] == c) for c in (0, 1)]
        assert 0.15 < predicted.mean() < 0.6, method  # both classes used, near the 30% prior
        assert np.mean(recalls) > 0.6, method
        assert result.logit_offset != [0.0, 0.0]


def test_prior_matching_offsets_hit_the_target_frequencies():
    from wavefin_core.models.training import prior_matching_offsets

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((600, 2)) * 0.01 + [0.0, 0.05]  # nearly constant: argmax says "up" for 100%
    offsets = prior_matching_offsets(logits, np.array([0.7, 0.3]))
    assert np.mean(np.argmax(logits + offsets, axis=1) == 1) == pytest.approx(0.3, abs=1 / 600)
    three = rng.standard_normal((900, 3)) * [0.01, 0.02, 0.01] + [0.1, 0.0, 0.05]
    target = np.array([0.3, 0.3, 0.4])
    counts = np.bincount(np.argmax(three + prior_matching_offsets(three, target), axis=1), minlength=3) / 900
    np.testing.assert_allclose(counts, target, atol=0.02)


def test_magnitude_channels_ignore_phase_and_indicators_are_used():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, *SHAPE)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi, size=(4, 1, *SHAPE[1:]))
    rotated = np.concatenate([x[:, :1] * np.cos(angle) - x[:, 1:] * np.sin(angle),
                              x[:, :1] * np.sin(angle) + x[:, 1:] * np.cos(angle)], axis=1).astype(np.float32)
    for arch in (CNN, VIT):
        cfg = ClassifierConfig(**arch, input_channels="magnitude")
        model = build_classifier(cfg, SHAPE).eval()
        # A phase rotation changes real and imag but not |W|: float32 rounding of cos/sin only.
        torch.testing.assert_close(model(torch.from_numpy(rotated)), model(torch.from_numpy(x)),
                                   atol=1e-5, rtol=1e-4)

    # Images are pure noise; the label is the sign of the 2nd indicator (given in raw units, offset and scaled).
    def sample(n, seed):
        gen = np.random.default_rng(seed)
        indicators = gen.standard_normal((n, 3)) * [1.0, 0.02, 5.0] + [0.0, 0.01, 100.0]
        return (gen.standard_normal((n, *SHAPE)).astype(np.float32), (indicators[:, 1] > 0.01).astype(np.int64),
                indicators)

    x_train, y_train, ind_train = sample(192, 0)
    x_val, y_val, ind_val = sample(96, 1)
    cfg = ClassifierConfig(**{**CNN, "channels": (4,), "learning_rate": 1e-2}, epochs=12, patience=12, seed=0)
    result = train_classifier(x_train, y_train, x_val, y_val, cfg, "cpu", indicators_train=ind_train,
                              indicators_val=ind_val)
    assert result.calibrated["val_accuracy"] > 0.9
    # Standardised with the TRAIN split's statistics, kept in the model (float32 buffers).
    np.testing.assert_allclose(result.model.indicators.indicator_mean.numpy(), ind_train.mean(0), rtol=1e-5)
    np.testing.assert_allclose(result.model.indicators.indicator_std.numpy(), ind_train.std(0), rtol=1e-5)
    with pytest.raises(ValueError, match="indicators"):
        predict_proba(result.model, x_val, "cpu")


def test_indicator_model_round_trips(tmp_path):
    x, y = band_data(32, seed=0)
    indicators = np.random.default_rng(0).standard_normal((32, 2))
    cfg = ClassifierConfig(**VIT, epochs=1, max_steps=1, input_channels="magnitude")
    result = train_classifier(x, y, x, y, cfg, "cpu", indicators_train=indicators, indicators_val=indicators)
    save_classifier(result.model, cfg, SHAPE, tmp_path / "clf")
    model, loaded_cfg, meta = load_classifier(tmp_path / "clf")
    assert loaded_cfg == cfg and meta["n_indicators"] == 2
    # Same weights, batch layout and threads: the very same computation, so exact.
    np.testing.assert_array_equal(predict_proba(model, x, indicators=indicators),
                                  predict_proba(result.model, x, indicators=indicators))


def test_three_classes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=288)
    x = rng.standard_normal((288, *SHAPE)).astype(np.float32)
    for label, scale in ((0, 2), (2, 8)):  # down: a band at scale 2, up: at scale 8, flat: none
        x[y == label, :, scale, :] += 2.0
    cfg = ClassifierConfig(**CNN, epochs=8, patience=8, seed=0)
    result = train_classifier(x[:192], y[:192], x[192:], y[192:], cfg, "cpu")
    assert result.n_classes == 3 and len(result.class_weights) == 3 and len(result.logit_offset) == 3
    proba = predict_proba(result.model, x[192:], "cpu")
    assert proba.shape == (96, 3)
    assert (proba.argmax(1) == y[192:]).mean() > 0.8


@pytest.mark.parametrize("arch_knobs", [CNN, VIT], ids=["cnn", "vit"])
def test_single_batch_can_be_overfit(arch_knobs):
    """Seed 004's wiring check: 16 samples with random labels, memorised to a near-zero loss."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, *SHAPE)).astype(np.float32)
    y = rng.integers(0, 2, size=16)
    cfg = ClassifierConfig(**{**arch_knobs, "dropout": 0.0})
    assert overfit_single_batch(lambda: build_classifier(cfg, SHAPE), x, y, steps=60) < 0.05
