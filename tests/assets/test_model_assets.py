"""Model and report assets, trained for real on the tiny pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from wavefin_core.models import load_diffusion


def test_model_run_succeeded(pipeline):
    assert pipeline.model_result.success


def test_diffusion_model_is_saved_as_safetensors_and_loss_decreases(pipeline):
    manifest = pipeline.load("diffusion_model")
    model_dir = Path(manifest["path"])
    assert list(model_dir.rglob("*.safetensors"))
    assert not list(model_dir.rglob("*.bin")) and not list(model_dir.rglob("*.pkl"))
    model, scheduler, meta = load_diffusion(model_dir)
    from wavefin_core.wavelets.representations import representation_from_dict

    channels = {representation_from_dict(rep).channels for rep in meta["representations"].values()}
    assert channels == {model.config.in_channels}  # the images of the configured representation (1: haar)
    # issue 8: one model over the series, conditioned on them; EMA weights beside the trained ones
    # ... and on 2 volatility buckets per series (the tiny config): one class per (series, bucket)
    assert model.config.num_class_embeds == 2 * len(manifest["series"]) and meta["series"] == manifest["series"]
    assert sorted(meta["regimes"]) == sorted(manifest["series"])
    assert all(r["k"] == 2 and r["normalize"] == "window" for r in meta["regimes"].values())
    assert meta["weights"] == "unet_ema" and (model_dir / "unet" / "config.json").is_file()
    assert sorted(meta["representations"]) == sorted(manifest["series"])
    md = pipeline.materialization("diffusion_model").metadata
    assert md["loss_last20"].value < md["loss_first20"].value
    assert md["mlflow_run_id"].value == manifest["mlflow_run_id"]


def test_synthetic_series_follow_the_output_contract(pipeline):
    table = pipeline.load("synthetic_series")
    meta = json.loads(table.schema.metadata[b"wavefin.synthetic"])
    series = meta["series"]
    assert sorted(series) == sorted(pipeline.load("diffusion_model")["series"]) and len(series) == 3
    assert {"series", "sample", "returns", "price", "projection_residual"} <= set(table.column_names)
    for column in ("returns", "price"):  # fixed-size lists of 32 float64 (the tiny window)
        kind = table.schema.field(column).type
        assert pa.types.is_fixed_size_list(kind) and kind.list_size == 32 and kind.value_type == pa.float64()
    names = np.asarray(table.column("series").to_pylist())
    returns = table.column("returns").combine_chunks().flatten().to_numpy().reshape(-1, 32)
    price = table.column("price").combine_chunks().flatten().to_numpy().reshape(-1, 32)
    assert np.isfinite(returns).all() and (price > 0).all()
    residual = table.column("projection_residual").to_numpy()
    assert ((residual >= 0) & (residual <= 1.0 + 1e-6)).all()
    assert meta["projected"] and residual.max() < 1e-5  # range projection at every step: realizable samples
    seeds = set()
    for name in series:
        rows = names == name
        assert rows.sum() == 24 and sorted(table.column("sample").to_numpy()[rows]) == list(range(24))
        info = meta["per_series"][name]
        seeds.add(info["seed"])
        # decoded in the series' own units: the spread of its returns is of the order of its train std
        assert 0.05 < returns[rows].std() / info["train_return_std"] < 20, name
        # the price path starts from the last train close: price_t = close * exp(cumsum(r))
        np.testing.assert_allclose(price[rows], info["start_price"] * np.exp(np.cumsum(returns[rows], axis=1)),
                                   rtol=1e-12)  # the same float64 formula recomputed
    assert len(seeds) == 3  # distinct draws per series
    # one class-conditioned model: each series sampled with its own class label (the model's series order)
    model_series = pipeline.load("diffusion_model")["series"]
    assert {name: meta["per_series"][name]["class_label"] for name in series} == {
        name: model_series.index(name) for name in series}
    assert set(meta["samplers"]) == {"ddpm", "ddim", "dpmsolver"}


def test_generation_report_writes_per_series_sections_and_metrics_json(pipeline):
    from tests.core.test_reports import assert_generation_metrics_schema

    out = pipeline.load("generation_report")
    report = Path(out["report"])
    text = report.read_text()
    series = json.loads(pipeline.load("synthetic_series").schema.metadata[b"wavefin.synthetic"])["series"]
    for name in series:
        assert f"## {name}" in text, name
    for needle in ("Verdict", "discriminative", "TSTR", "MDD", "hill_tail_index", "## Samplers", "DDPM(1000)"):
        assert needle in text, needle
    for image in report.parent.glob("figures/*.png"):
        assert image.stat().st_size > 0
    metrics_json = Path(out["metrics_json"])
    assert metrics_json == report.parent / "metrics.json"
    doc = json.loads(metrics_json.read_text())
    assert_generation_metrics_schema(doc, series)
    for name in series:
        assert doc["series"][name]["n_real_test"] > 100  # stride 1: one window per test return, not per stride
    for sampler in ("ddpm", "ddim", "dpmsolver"):  # measured here: no nulls
        entry = doc["samplers"][sampler]
        assert entry["seconds_per_1000"] > 0 and 0 <= entry["discriminative_score"] <= 0.5, sampler
    assert doc["samplers"]["ddpm"]["steps"] == 1000 and doc["samplers"]["ddpm"]["n_samples"] == 10
    assert np.isfinite(out["metrics"][f"{series[0]}.wavefin.discriminative_mean"])
    # "Does synthetic data help a forecaster?" (issue 9): real only vs real + wavefin windows, per series
    assert text.count("### Does synthetic data help a forecaster?") == len(series)
    for name in series:
        aug = doc["series"][name]["augmentation"]
        for key in ("model", "seeds", "horizon", "input_length", "n_real_train", "n_synthetic_added",
                    "synthetic_rule", "n_val", "n_test", "majority_rate", "real_only", "real_plus_synthetic",
                    "difference", "test", "verdict", "verdict_text", "tstr", "train_seconds"):
            assert key in aug, (name, key)
        assert aug["n_synthetic_added"] == min(24, aug["n_real_train"])  # N = real train examples, or all 24
        assert aug["n_test"] == doc["series"][name]["n_real_test"]  # the same real stride-1 test windows
        for arm in ("real_only", "real_plus_synthetic", "difference"):
            for metric in ("accuracy", "balanced_accuracy"):
                assert len(aug[arm][metric]["values"]) == 2 and np.isfinite(aug[arm][metric]["mean"]), arm
        assert 0 <= aug["test"]["p_value"] <= 1 and aug["verdict"] in ("help", "no_significant_difference", "hurt")
        assert aug["tstr"]["see"] == f"series.{name}.generators.wavefin.predictive_score"
        assert out["metrics"][f"{name}.augmentation.p_value"] == aug["test"]["p_value"]
    md = pipeline.materialization("generation_report").metadata
    assert "floor" in md["verdicts"].value and md["report"].value.count("data:image/png;base64") >= 1


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


# --- Versioned model directories, divergence, resume. These run on their own storage holding one small series
# (no dependency on the `pipeline` fixture, and nothing they write can affect the tests above).

import os  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

import dagster as dg  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tests.assets.conftest import series_instance  # noqa: E402


@pytest.fixture(scope="module")
def own_storage(tmp_path_factory):
    """(storage root, resources) with the data assets of the `mjd` series materialized.

    Torch runs on one thread meanwhile: with tiny tensors on a busy 2-core machine, intra-op threads spin and a
    training step takes seconds instead of milliseconds.
    """
    from tests.assets.conftest import DATA_ASSETS, TINY_DATA_CONFIG
    from wavefin_assets.definitions import defs
    from wavefin_assets.io_manager import WavefinIOManager
    from wavefin_assets.resources import StorageResource

    root = tmp_path_factory.mktemp("own-storage")
    resources = {**defs.resources, "io_manager": WavefinIOManager(base_dir=str(root / "io")),
                 "storage": StorageResource(root=str(root))}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    dg.materialize(list(defs.assets), selection=DATA_ASSETS, partition_key="mjd", resources=resources,
                   instance=series_instance(), run_config=TINY_DATA_CONFIG)
    yield root, resources
    torch.set_num_threads(threads)


def _materialize(resources, asset, config, instance=None, **kwargs):
    from wavefin_assets.definitions import defs

    return dg.materialize(list(defs.assets), selection=[asset], resources=resources,
                          instance=instance or series_instance(),
                          run_config={"ops": {asset: {"config": config}}}, **kwargs)


def _logs(instance, run_id) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


def _failure(result) -> str:
    (event,) = result.get_step_failure_events()
    return event.step_failure_data.error.to_string()


TINY_DIFFUSION = {"block_out_channels": [16, 32], "batch_size": 16, "max_steps": 4, "checkpoint_every": 2}


def test_diffusion_versions_divergence_and_resume(own_storage):
    root, resources = own_storage
    load = lambda: json.loads((root / "io" / "diffusion_model" / "__all__.json").read_text())  # noqa: E731
    versions = root / "models" / "diffusion_model"
    for age, old_run in enumerate(["older-run", "oldest-run"], start=1):  # versions of earlier runs
        (versions / old_run).mkdir(parents=True)
        os.utime(versions / old_run, (time.time() - 60 * age,) * 2)
    good = _materialize(resources, "diffusion_model", {**TINY_DIFFUSION, "keep_versions": 2})
    manifest = load()
    assert Path(manifest["path"]) == versions / good.run_id
    assert json.loads((Path(manifest["path"]) / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in versions.iterdir()) == sorted([good.run_id, "older-run"])  # kept the newest 2
    assert not list((root / "checkpoints" / "diffusion_model").iterdir())  # removed after the final save

    # A diverging configuration fails the run naming the step and the knob, and leaves the good model in place.
    diverging = {**TINY_DIFFUSION, "learning_rate": 1e12, "checkpoint_every": 1}
    instance = series_instance()
    bad = _materialize(resources, "diffusion_model", diverging, instance, raise_on_error=False)
    assert not bad.success
    diverged = re.search(r"TrainingDivergedError: diffusion training diverged at step (\d+): the loss is "
                         r"(nan|inf).*Lower learning_rate", _failure(bad), re.S)
    assert diverged, _failure(bad)
    step = int(diverged.group(1))  # 2 here: the first step multiplies the weights by ~1e12
    assert load() == manifest
    assert sorted(p.name for p in versions.iterdir()) == sorted([good.run_id, "older-run"])
    model, _, _ = load_diffusion(manifest["path"])
    assert all(torch.isfinite(p).all() for p in model.parameters())

    # Re-materializing the same configuration resumes from its last (finite) checkpoint, the step before.
    again = _materialize(resources, "diffusion_model", diverging, instance, raise_on_error=False)
    assert any(m.startswith(f"resuming from step {step - 1} ") for m in _logs(instance, again.run_id))
    assert f"diverged at step {step}" in _failure(again) and load() == manifest


def test_each_run_reads_the_forecasters_version_it_trained(own_storage):
    """Run A trains, run B trains, then run A's report step runs: it must read A's predictions, not B's."""
    from wavefin_assets.definitions import defs

    root, resources = own_storage
    # which version each run reads is under test, not the models: one cheap model, no extra tasks
    config = {"epochs": 1, "batch_size": 32, "models": ["logistic"], "walk_forward_folds": 0,
              "volatility_task": False, "volume_translation": False}
    run_a = _materialize(resources, "forecasters", config)
    run_b = _materialize(resources, "forecasters", {**config, "seed": 7})
    latest = json.loads((root / "io" / "forecasters" / "__all__.json").read_text())
    assert latest["version"] == run_b.run_id  # what the IO manager hands to run A's report step

    job = dg.Definitions(assets=list(defs.assets), resources=resources,
                         jobs=[dg.define_asset_job("models")]).resolve_job_def("models")
    instance = series_instance()  # run A's id, replayed as that run's later step
    report = job.execute_in_process(asset_selection=[dg.AssetKey("forecast_report")], run_id=run_a.run_id,
                                    instance=instance)
    assert report.success
    assert any(f"reading forecasters version {run_a.run_id}" in m for m in _logs(instance, run_a.run_id))
    for run in (run_a, run_b):
        assert (root / "models" / "forecasters" / run.run_id / "predictions.parquet").is_file()


# --- issue 9: every model on the same splits, the metrics.json contract, walk-forward -------------------------
def test_forecast_report_scores_every_model_on_stride1_test_windows(pipeline):
    from wavefin_assets.assets.forecasting import ForecastersConfig

    manifest = pipeline.load("forecasters")
    expected = {"scalogram_cnn", "lstm", "haar_lstm", "cnn1d", "logistic", "logistic_wavelet", "gbm"}
    assert expected <= set(manifest["direction_models"]) and {"arima", "ridge", "gbm_return"} <= set(
        manifest["return_models"])
    assert set(ForecastersConfig().models) >= {"scalogram", "arima"}  # the quick profile picks the models
    doc = json.loads(Path(pipeline.load("forecast_report")["metrics_json"]).read_text())
    predictions = __import__("pandas").read_parquet(manifest["predictions"])
    for name, sec in doc["series"].items():
        test = predictions[(predictions["series"] == name) & (predictions["split"] == "test")]
        assert sec["n_test"] == len(test)
        # the contract's keys, for every fitted model and every naive baseline
        assert {"n_test", "majority_rate", "best_naive", "models"} <= set(sec)
        models = sec["models"]
        assert expected | {"arima_sign", "previous_direction", "majority_class", "historical_mean"} <= set(models)
        for model, entry in models.items():
            for key in ("accuracy", "balanced_accuracy", "mcc", "macro_f1", "significant", "params",
                        "train_seconds"):
                assert key in entry, (name, model, key)
            assert isinstance(entry["significant"], bool) and entry["params"] is not None, (name, model)
            if not entry["naive"]:
                assert entry["params"] > 0 and entry["train_seconds"] >= 0 and 0 <= entry["p_vs_best_naive"] <= 1
        for model in ("arima", "ridge", "gbm_return", "zero_return", "historical_mean"):
            entry = sec["return_models"][model]
            assert entry["mse"] == pytest.approx(entry["rmse"] ** 2)  # the same numbers, squared
            assert entry["mase"] > 0
        assert sec["return_models"]["zero_return"]["mase"] == pytest.approx(1.0)  # the random walk itself
    # stride-1 test windows: consecutive test windows of a series end one bar apart
    mjd = predictions[(predictions["series"] == "mjd") & (predictions["split"] == "test")]
    steps = np.diff(mjd["end_time"].to_numpy()).astype("timedelta64[s]").astype(int)
    assert (steps == 60).all()


def test_forecast_report_shows_walk_forward_folds(pipeline):
    manifest = pipeline.load("forecasters")
    walk_forward = manifest["walk_forward"]
    assert walk_forward, "the quick profile runs walk-forward folds"
    out = pipeline.load("forecast_report")
    text = Path(out["report"]).read_text()
    doc = json.loads(Path(out["metrics_json"]).read_text())
    assert "## Walk-forward evaluation" in text
    for name, wf in walk_forward.items():
        starts = [f["test_start"] for f in wf["folds"]]
        assert starts == sorted(starts) and len(starts) == wf["k"]
        assert doc["series"][name]["walk_forward"]["summary"].keys() >= {"majority_class", "logistic"}
        summary = wf["summary"]["logistic"]
        assert summary["mean"] == pytest.approx(np.mean(summary["folds"]))
        assert f"{name}.logistic.walk_forward_mean" in out["metrics"]


# --- issue 9: the Dense U-Net volume translation in forecasters ------------------------------------------------
def test_forecasters_translate_volume_with_a_dense_unet(pipeline):
    import mlflow

    from wavefin_assets.resources import default_mlflow
    from wavefin_core.models.dense_unet import load_dense_unet, predict_dense_unet

    manifest = pipeline.load("forecasters")
    volume = manifest["volume_translation"]
    assert set(volume["series"]) == {"mjd", "sp500", "csv-good"} and not volume["skipped"]  # all have volume
    out = pipeline.load("forecast_report")
    doc = json.loads(Path(out["metrics_json"]).read_text())
    assert doc["volume_translation"]["series"].keys() == volume["series"].keys()
    text = Path(out["report"]).read_text()
    section = text[text.index("## Volume translation"):]
    metrics = mlflow.MlflowClient(tracking_uri=default_mlflow()._resolved_uri()).get_run(
        manifest["mlflow_run_id"]).data.metrics
    for name, result in doc["volume_translation"]["series"].items():
        assert f"### `{name}`" in section and "| dense_unet |" in section
        assert f"](figures/volume_{name}.png)" in section
        assert (Path(out["report"]).parent / "figures" / f"volume_{name}.png").stat().st_size < 60_000
        assert {"dense_unet", "per_scale_linear", "train_mean"} == set(result["models"])
        for row in result["models"].values():
            assert row["mae"] > 0 and np.isfinite(row["psnr"]) and len(row["mae_per_scale"]) == 16
        assert metrics[f"volume_{name}_dense_unet_mae"] == pytest.approx(result["models"]["dense_unet"]["mae"])
        model, cfg, meta = load_dense_unet(result["dense_unet"]["model_path"])
        assert meta["extra"]["series"] == name and meta["n_parameters"] == result["dense_unet"]["params"]
        assert cfg.max_steps == 4  # the tiny pipeline's budget
        image = np.zeros((2, *result["image_shape"]), np.float32)
        assert predict_dense_unet(model, image).shape == (2, 1, *result["image_shape"][1:])


def test_volume_translation_skips_a_series_without_usable_volume(pipeline, tmp_path):
    """A series whose volume is all zero (FX quotes, CSVs without a volume column) is skipped with its reason."""
    from wavefin_assets.assets.common import select_series
    from wavefin_assets.assets.forecasting import ForecastersConfig, _volume_translation
    from wavefin_core.evaluation.volume import volume_translation_markdown

    sets = select_series({"sp500": pipeline.load("scalograms", "sp500")}, [])
    prices = pipeline.load("clean_prices", "sp500").assign(volume=0.0)
    result = _volume_translation(dg.build_asset_context(), ForecastersConfig(), sets, {"sp500": prices}, tmp_path,
                                 "cpu", checkpoints=None)
    assert not result["series"] and "volume is constant" in result["skipped"]["sp500"]
    assert "- `sp500`: skipped, no usable volume: sp500: volume is constant" in volume_translation_markdown(result)
    assert not list(tmp_path.iterdir())
