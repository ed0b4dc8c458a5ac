"""run_suite: every selected model fitted on the same train rows, predicting every row, saved without pickle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wavefin_core.data.simulate import simulate_planted
from wavefin_core.errors import ConfigError
from wavefin_core.forecast_suite import SuiteConfig, SuiteInputs, run_suite
from wavefin_core.scalograms import build_scalograms, contiguous_returns
from wavefin_core.segments import make_segments
from wavefin_core.wavelets import cwt, to_channels


@pytest.fixture(scope="module")
def planted_set():
    prices = simulate_planted(days=1500, seed=3)
    returns = pd.Series(np.diff(np.log(prices["close"].to_numpy())), index=prices.index[1:])
    return build_scalograms(make_segments(returns, window=16, stride=4), num_scales=8, series="planted")


def _inputs(s) -> SuiteInputs:
    n = len(s)
    return SuiteInputs(images=s.images, standardized=(s.windows - s.norm_mean) / s.norm_std, windows=s.windows,
                       direction=s.direction, target_return=s.target_return, return_scale=np.full(n, s.norm_std),
                       split=s.split, series=np.full(n, "planted"), arima_train={"planted": contiguous_returns(s, "train")},
                       horizon={"planted": 1})


def test_every_model_predicts_every_row_and_is_saved_without_pickle(planted_set, tmp_path, single_thread) -> None:
    s = planted_set

    def image_fn(windows: np.ndarray, names: np.ndarray) -> np.ndarray:
        return to_channels(cwt(windows.astype(np.float32), s.scales, s.wavelet) / s.channel_scale[:, None])

    # the stored images are exactly what image_fn makes of the stored windows (same float32 CWT, same scaling)
    np.testing.assert_allclose(image_fn(_inputs(s).standardized[:5], None), s.images[:5], rtol=1e-5, atol=1e-6)
    cfg = SuiteConfig(models=("scalogram", "cnn1d", "logistic", "logistic_wavelet", "gbm", "ridge", "gbm_return",
                              "arima"), epochs=1, batch_size=64, gbm_max_iter=10, arima_order=(1, 1), augment=True)
    result = run_suite(_inputs(s), cfg, "cpu", tmp_path, image_fn=image_fn)
    assert set(result.direction_proba) == {"scalogram_cnn", "scalogram_cnn_augmented", "cnn1d", "logistic",
                                           "logistic_wavelet", "gbm"}
    assert set(result.returns) == {"ridge", "gbm_return", "arima"}
    for name, values in {**result.direction_proba, **result.returns}.items():
        assert values.shape == (len(s),) and np.isfinite(values).all(), name
    for proba in result.direction_proba.values():
        assert ((proba >= 0) & (proba <= 1)).all()
    assert {*result.direction_proba, *result.returns, "arima_sign"} <= set(result.info)
    assert all(info["params"] > 0 and info["train_seconds"] >= 0 for info in result.info.values())
    assert "augmentation" in result.info["scalogram_cnn_augmented"]
    saved = {p.name for p in tmp_path.iterdir()}
    assert {"scalogram_cnn", "scalogram_cnn_augmented", "cnn1d", "logistic.json", "ridge.json",
            "arima_planted.json"} <= saved
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib", ".pt", ".bin")]


def test_unknown_models_and_augment_without_scalogram_are_config_errors(planted_set, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"forecasters.models names \['transformerx'\]"):
        run_suite(_inputs(planted_set), SuiteConfig(models=("transformerx",)), "cpu", tmp_path)
    with pytest.raises(ConfigError, match="add 'scalogram' to forecasters.models"):
        run_suite(_inputs(planted_set), SuiteConfig(models=("logistic",), augment=True), "cpu", tmp_path)
