"""1-D CNN and 1-D CNN + self-attention direction classifiers on return windows: learning, the single-batch
overfit check, save/load, determinism and config errors, on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.models import (
    Conv1dConfig,
    ReturnCNN1d,
    load_conv1d,
    overfit_single_batch,
    predict_conv1d_proba,
    save_conv1d,
    train_conv1d,
)
from wavefin_core.models.conv1d import build_conv1d, prepare_windows

T = 16
ARCHS = ["cnn1d", "cnn1d_attention"]
FAST = {"channels": (8, 16), "num_heads": 2, "batch_size": 32, "learning_rate": 1e-2, "dropout": 0.0}

pytestmark = pytest.mark.usefixtures("single_thread")  # tests/core/conftest.py


def rule_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal windows whose last 3 returns share a random +-1 drift; label = sign of their sum."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T))
    x[:, -3:] += np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None]
    return x.astype(np.float32), (x[:, -3:].sum(axis=1) > 0).astype(np.int64)


@pytest.mark.parametrize("arch", ARCHS)
def test_learns_a_learnable_rule_and_overfits_one_batch(arch):
    x_train, y_train = rule_data(384, seed=0)
    x_val, y_val = rule_data(128, seed=1)
    cfg = Conv1dConfig(arch=arch, **FAST, epochs=6, patience=6, seed=0)
    result = train_conv1d(x_train, y_train, x_val, y_val, cfg, "cpu")
    assert result.calibrated["val_accuracy"] > 0.85
    predicted = predict_conv1d_proba(result.model, x_val).argmax(1)
    # Prediction and validation may batch differently, so a near-tie may flip one window: allow one.
    assert (predicted == y_val).mean() == pytest.approx(result.calibrated["val_accuracy"], abs=1.01 / len(y_val))
    assert result.params > 0 and result.train_seconds > 0 and not result.model.training
    assert (result.model.attention is not None) == (arch == "cnn1d_attention")

    rng = np.random.default_rng(0)
    windows = prepare_windows(rng.standard_normal((16, T)))
    loss = overfit_single_batch(lambda: build_conv1d(cfg), windows, rng.integers(0, 2, 16), steps=60)
    assert loss < 0.05


@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_round_trip_and_determinism(arch, tmp_path):
    x, y = rule_data(64, seed=0)
    y3 = np.where(x[:, -1] > 0.5, 2, np.where(x[:, -1] < -0.5, 0, 1))
    cfg = Conv1dConfig(arch=arch, **FAST, epochs=2, max_steps=3, seed=4)
    first = train_conv1d(x, y3, x, y3, cfg, "cpu")
    again = train_conv1d(x, y3, x, y3, cfg, "cpu")
    assert first.history == again.history and first.n_classes == 3
    save_conv1d(first.model, cfg, tmp_path / "c1d", extra={"horizon": 1})
    model, loaded_cfg, meta = load_conv1d(tmp_path / "c1d")
    assert loaded_cfg == cfg and meta["arch"] == arch and meta["n_outputs"] == 3
    expected = predict_conv1d_proba(first.model, x)
    assert expected.shape == (64, 3)
    # Same weights, batch layout and threads: the very same computation, so exact.
    np.testing.assert_array_equal(predict_conv1d_proba(model, x), expected)
    np.testing.assert_array_equal(predict_conv1d_proba(again.model, x), expected)


def test_any_window_length_and_errors():
    for attention in (False, True):
        model = ReturnCNN1d(channels=(4, 8), attention=attention, num_heads=2).eval()
        for length in (1, 7, 40):
            assert model(torch.randn(3, length)).shape == (3, 2)
    cfg = Conv1dConfig(**FAST)
    assert Conv1dConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad, field in [({"arch": "rnn"}, "arch"), ({"kernel_size": 4}, "kernel_size"),
                       ({"arch": "cnn1d_attention", "channels": (8, 10), "num_heads": 4}, "num_heads"),
                       ({"channels": ()}, "channels"), ({"dropout": 1.0}, "dropout")]:
        with pytest.raises(ConfigError, match=field):
            Conv1dConfig(**bad).validate()
    x, y = rule_data(8, seed=0)
    with pytest.raises(DataError, match="x_val"):
        train_conv1d(x, y, x[:, :, None], y, cfg, "cpu")
    with pytest.raises(DataError, match="class"):
        train_conv1d(x, np.zeros(8, dtype=int), x, y, cfg, "cpu")
