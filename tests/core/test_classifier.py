"""Scalogram classifiers (CNN, ViT): learning, early stopping, class weighting and save/load, on tiny shapes.

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
    load_classifier,
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
    # Prediction and validation may batch differently, so a near-tie may flip one window: allow one.
    assert (predicted == y_val).mean() == pytest.approx(best["val_accuracy"], abs=1.01 / len(y_val))
    assert not result.model.training


def test_early_stopping_restores_the_best_weights():
    # Validation labels are the opposite of the training rule, so validation loss rises as training proceeds.
    x_train, y_train = band_data(128, seed=0)
    x_val, y_val = band_data(64, seed=1)
    cfg = ClassifierConfig(**CNN, epochs=30, patience=2, seed=0)
    result = train_classifier(x_train, y_train, x_val, 1 - y_val, cfg, "cpu")

    val_losses = [row["val_loss"] for row in result.history]
    assert result.best_epoch == int(np.argmin(val_losses)) + 1
    assert len(result.history) == result.best_epoch + cfg.patience < cfg.epochs  # stopped early

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
        cfg = ClassifierConfig(**CNN, epochs=6, patience=6, seed=0, balance_classes=balance)
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
        train_classifier(x, y + 1, x, y, ClassifierConfig(**CNN), "cpu")
    with pytest.raises(DataError, match="x_val"):
        train_classifier(x, y, x[:, :, :5], y, ClassifierConfig(**CNN), "cpu")
