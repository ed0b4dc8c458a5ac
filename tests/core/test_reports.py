"""Generation and forecast reports: files written, tables present, honest verdicts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.core.test_metrics import _gjr_windows
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.evaluation.reports import write_forecast_report, write_generation_report


def _assert_figures(result, out_dir: Path) -> None:
    md = result.markdown_path.read_text()
    assert result.figures
    for fig in result.figures:
        assert fig.exists() and fig.stat().st_size > 1000 and fig.read_bytes()[:4] == b"\x89PNG"
        assert f"](figures/{fig.name})" in md
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):  # every embedded link resolves
        assert (out_dir / link).exists()
    assert not list(out_dir.rglob(".*"))  # no temp files left behind


@pytest.fixture(scope="module")
def gen_data() -> dict[str, np.ndarray]:
    r = _gjr_windows(260, 32, seed=3)
    rng = np.random.default_rng(0)
    return {
        "train_returns": r[:160].ravel(),
        "real_test": r[160:],
        "synth": rng.standard_normal((120, 32)) * r.std(),  # Gaussian: no tails, no clustering
    }


def test_generation_report_with_garch(tmp_path: Path, gen_data: dict[str, np.ndarray]) -> None:
    res = write_generation_report(
        gen_data["real_test"], gen_data["synth"], tmp_path, title="Gen test", context={"model": "gauss", "T": 5},
        real_scalograms=np.random.default_rng(1).standard_normal((4, 2, 8, 32)),
        synth_scalograms=np.abs(np.random.default_rng(2).standard_normal((4, 8, 32))),
        seed=0, train_returns=gen_data["train_returns"],
    )
    md = res.markdown_path.read_text()
    assert md.startswith("# Gen test") and "**model**: `gauss`" in md
    assert "| statistic | real (held-out test) | synthetic | difference | GARCH-t | GARCH-t difference |" in md
    for row in ("| excess kurtosis |", "| ACF(r) lag 5 |", "| ACF(abs r) lag 1 |", "discriminative score",
                "predictive score (TSTR MAE)", "MDD", "ACD", "heavy tails"):
        assert row in md
    m = res.metrics
    for key in ("real_std", "synth_std", "garch_std", "mdd", "acd", "sd", "kd", "acf_abs_diff",
                "discriminative_score", "predictive_mae_synth", "predictive_mae_real", "garch_mdd",
                "garch_discriminative_score", "real_acf_abs_1", "synth_fact_heavy_tails"):
        assert isinstance(m[key], float) and np.isfinite(m[key]), key
    assert m["real_fact_heavy_tails"] == 1.0 and m["synth_fact_heavy_tails"] == 0.0
    assert m["kd"] > 1.0 and m["discriminative_score"] > 0.1
    assert len(res.figures) == 5
    _assert_figures(res, tmp_path)


def test_generation_report_without_train_returns(tmp_path: Path, gen_data: dict[str, np.ndarray]) -> None:
    res = write_generation_report(gen_data["real_test"], gen_data["real_test"][::-1].copy(), tmp_path,
                                  title="same", context={})
    md = res.markdown_path.read_text()
    assert "GARCH-t difference" not in md and not any(k.startswith("garch_") for k in res.metrics)
    assert res.metrics["mdd"] == pytest.approx(0.0) and res.metrics["synth_facts_matching_real"] == 5.0
    assert "first half of the real test windows" in md
    _assert_figures(res, tmp_path)
    with pytest.raises(DataError, match="window_length"):
        write_generation_report(gen_data["real_test"], gen_data["synth"][:, :16], tmp_path, title="x", context={})


@pytest.fixture(scope="module")
def fc_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 300
    windows = rng.standard_normal((n, 20)) * 0.01
    y_ret = rng.standard_normal(n) * 0.01
    return {"windows": windows, "y_ret": y_ret, "y_dir": (y_ret > 0).astype(int),
            "train_dir": (rng.random(500) < 0.55).astype(int), "rng_noise": rng.standard_normal(n) * 0.01}


def test_forecast_report_verdicts(tmp_path: Path, fc_data: dict[str, np.ndarray]) -> None:
    y_dir, y_ret = fc_data["y_dir"], fc_data["y_ret"]
    results = [
        {"model": "contrarian", "kind": "direction", "pred": 1 - y_dir, "proba": None},  # always wrong
        {"model": "peeker", "kind": "direction", "pred": None, "proba": np.where(y_dir == 1, 0.8, 0.3)},
        {"model": "noisy_arima", "kind": "return", "pred": y_ret + 3 * fc_data["rng_noise"]},
        {"model": "oracle", "kind": "return", "pred": y_ret + 0.1 * fc_data["rng_noise"]},
    ]
    res = write_forecast_report(results, tmp_path, title="Forecast test", context={"horizon": 1},
                                y_true_direction=y_dir, y_true_return=y_ret, windows=fc_data["windows"],
                                train_direction=fc_data["train_dir"], horizon=1,
                                figures_data={"training_losses": {"peeker": [1.0, 0.7, 0.5]}})
    md = res.markdown_path.read_text()
    assert "| model | accuracy | macro-F1 | balanced acc | ROC AUC | binomial p | beats best naive? |" in md
    assert "| model | RMSE | MAE | directional acc | DM stat | DM p | beats naive? |" in md
    for naive in ("| previous_direction |", "| majority_class |", "| zero_return |"):
        assert naive in md  # baselines always in the tables
    best = res.metrics["best_naive_accuracy"]
    assert f"contrarian does not beat the naive baseline (accuracy 0.0000 vs {best:.4f}" in md
    assert "noisy_arima does not beat the naive baseline (RMSE" in md
    assert "peeker does not beat" not in md and "oracle does not beat" not in md
    m = res.metrics
    assert m["contrarian_beats_naive"] == 0.0 and m["peeker_beats_naive"] == 1.0
    assert m["noisy_arima_beats_naive"] == 0.0 and m["oracle_beats_naive"] == 1.0
    assert m["peeker_accuracy"] == 1.0 and m["peeker_roc_auc"] == 1.0 and m["peeker_binomial_p"] < 1e-50
    assert m["oracle_dm_stat"] < 0 and m["oracle_dm_p"] < 1e-6 and m["noisy_arima_dm_stat"] > 0
    assert m["zero_return_rmse"] == pytest.approx(np.sqrt(np.mean(y_ret**2)))
    assert m["majority_class_accuracy"] == pytest.approx(y_dir.mean())  # train majority is "up"
    assert all(isinstance(v, float) for v in m.values())
    names = {f.name for f in res.figures}
    assert {"confusion_contrarian.png", "confusion_peeker.png", "forecast_vs_actual.png",
            "training_peeker.png"} <= names
    _assert_figures(res, tmp_path)


def test_forecast_report_requires_naive_inputs(tmp_path: Path, fc_data: dict[str, np.ndarray]) -> None:
    y_dir, y_ret = fc_data["y_dir"], fc_data["y_ret"]
    model = [{"model": "m", "kind": "direction", "pred": y_dir}]
    with pytest.raises(ConfigError, match="previous_direction"):
        write_forecast_report(model, tmp_path, title="t", context={}, y_true_direction=y_dir, y_true_return=y_ret)
    with pytest.raises(ConfigError, match="unique"):
        write_forecast_report(model * 2, tmp_path, title="t", context={}, y_true_direction=y_dir,
                              y_true_return=y_ret, windows=fc_data["windows"], train_direction=fc_data["train_dir"])
    with pytest.raises(DataError, match="predictions for 300"):
        write_forecast_report([{"model": "m", "kind": "return", "pred": y_ret[:10]}], tmp_path, title="t",
                              context={}, y_true_direction=y_dir, y_true_return=y_ret,
                              windows=fc_data["windows"], train_direction=fc_data["train_dir"])
    # naive baselines passed explicitly instead of the inputs to compute them
    given = [{"model": "previous_direction", "kind": "direction", "pred": np.ones_like(y_dir)},
             {"model": "majority_class", "kind": "direction", "pred": np.zeros_like(y_dir)}, *model]
    res = write_forecast_report(given, tmp_path, title="t", context={}, y_true_direction=y_dir, y_true_return=y_ret)
    assert res.metrics["m_beats_naive"] == 1.0 and "zero_return_rmse" in res.metrics


def test_forecast_report_per_series_accuracy(tmp_path: Path, fc_data: dict[str, np.ndarray]) -> None:
    y_dir, y_ret = fc_data["y_dir"], fc_data["y_ret"]
    groups = np.where(np.arange(y_dir.size) % 2 == 0, "even", "odd")
    # Right on the "even" series only: pooled accuracy hides it, the per-series table shows it.
    pred = np.where(groups == "even", y_dir, 1 - y_dir)
    res = write_forecast_report([{"model": "half", "kind": "direction", "pred": pred}], tmp_path, title="t",
                                context={}, y_true_direction=y_dir, y_true_return=y_ret,
                                windows=fc_data["windows"], train_direction=fc_data["train_dir"], groups=groups)
    md = res.markdown_path.read_text()
    assert "## Direction accuracy per series" in md and "| model | even | odd |" in md
    assert res.metrics["half_accuracy_even"] == 1.0 and res.metrics["half_accuracy_odd"] == 0.0
    with pytest.raises(DataError, match="groups"):
        write_forecast_report([{"model": "half", "kind": "direction", "pred": pred}], tmp_path, title="t",
                              context={}, y_true_direction=y_dir, y_true_return=y_ret,
                              windows=fc_data["windows"], train_direction=fc_data["train_dir"], groups=groups[:3])
