"""Model and report assets, trained for real on the tiny pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wavefin_core.models import load_diffusion


def test_model_run_succeeded(pipeline):
    assert pipeline.model_result.success


def test_diffusion_model_is_saved_as_safetensors_and_loss_decreases(pipeline):
    manifest = pipeline.load("diffusion_model")
    model_dir = Path(manifest["path"])
    assert list(model_dir.rglob("*.safetensors"))
    assert not list(model_dir.rglob("*.bin")) and not list(model_dir.rglob("*.pkl"))
    model, scheduler, meta = load_diffusion(model_dir)
    assert model.config.in_channels == 2
    md = pipeline.materialization("diffusion_model").metadata
    assert md["loss_last20"].value < md["loss_first20"].value
    assert md["mlflow_run_id"].value == manifest["mlflow_run_id"]


def test_synthetic_series_invert_to_finite_returns(pipeline):
    table = pipeline.load("synthetic_series")
    assert table.num_rows == 24
    returns = table.column("returns").combine_chunks().flatten().to_numpy().reshape(24, -1)
    assert returns.shape == (24, 32) and np.isfinite(returns).all()
    residual = table.column("projection_residual").to_numpy()
    assert ((residual >= 0) & (residual <= 1.0 + 1e-6)).all()


def test_generation_report_contains_the_metrics(pipeline):
    out = pipeline.load("generation_report")
    text = Path(out["report"]).read_text()
    for needle in ("std", "skew", "kurtosis", "ACF", "discriminative"):
        assert needle.lower() in text.lower(), needle
    for image in Path(out["report"]).parent.glob("figures/*.png"):
        assert image.stat().st_size > 0
    assert np.isfinite(out["metrics"]["synth_std"])


def test_forecast_report_has_models_baselines_and_tests(pipeline):
    out = pipeline.load("forecast_report")
    text = Path(out["report"]).read_text()
    for needle in ("scalogram_cnn", "arima", "logistic", "lstm", "haar_lstm", "previous_direction", "majority", "zero"):
        assert needle in text, needle
    for needle in ("accuracy", "macro", "RMSE", "MAE", "binomial", "DM", "per series"):
        assert needle.lower() in text.lower(), needle
    predictions = Path(pipeline.load("forecasters")["predictions"])
    assert predictions.suffix == ".parquet"


def test_every_model_asset_logged_to_mlflow(pipeline):
    import mlflow

    from wavefin_assets.resources import default_mlflow

    client = mlflow.MlflowClient(tracking_uri=default_mlflow()._resolved_uri())
    for asset in ("diffusion_model", "forecasters", "generation_report", "forecast_report"):
        run_id = pipeline.load(asset)["mlflow_run_id"]
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.metrics or run.data.params
    artifacts = client.list_artifacts(pipeline.load("forecast_report")["mlflow_run_id"])
    assert artifacts
    assert not Path("mlruns").exists()
    json.dumps(pipeline.load("forecast_report")["metrics"])
