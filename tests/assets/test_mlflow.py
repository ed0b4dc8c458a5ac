"""MLflow as its users expect: run tags back to Dagster, the runs view, registered models, the champion alias.

Everything runs against a real sqlite tracking store and a real model registry in the tests' temporary storage:
the session's store (creating a sqlite store runs MLflow's migrations, seconds), with an experiment, an artifact
directory and registered model names of this module's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from wavefin_assets import tracking
from wavefin_assets.resources import MLflowResource


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> MLflowResource:
    """A store of its own, NOT the session's `MLFLOW_TRACKING_URI`: mlflow's registry resolves `models:/<id>`
    sources through its global tracking URI, and registering must work when that points elsewhere."""
    root = tmp_path_factory.mktemp("mlflow-test")
    return MLflowResource(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", experiment="wavefin-test",
                          artifact_root=str(root / "artifacts"))


def _logistic_json(path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    from wavefin_core.baselines import LogisticBaseline

    rng = np.random.default_rng(0)
    windows = rng.normal(size=(64, 16))
    model = LogisticBaseline().fit(windows, (windows[:, -1] > 0).astype(int))
    path.write_text(json.dumps(model.to_dict()))
    return path, windows[:3], model.predict_proba(windows[:3])


def test_a_materialization_makes_one_tagged_run_with_a_registered_pyfunc(store, tmp_path, monkeypatch):
    name = "test-forecaster-logistic"
    params, windows, expected = _logistic_json(tmp_path / "logistic.json")
    partitions = dg.StaticPartitionsDefinition(["mjd", "sp500"])

    @dg.asset(partitions_def=partitions, code_version="7")
    def tracked(context, mlflow: MLflowResource) -> dg.MaterializeResult:  # no annotation: __future__ strings
        with mlflow.start_run("tracked", context=context) as run:
            version = tracking.log_and_register(run, name, "forecaster.py",
                                                {"params": params}, model_config={"model": "logistic", "loader": "logistic"},
                                                series=["mjd"], metrics={"params": 17.0})
        return dg.MaterializeResult(metadata={"mlflow_run": run.url_metadata(), "version": version.version})

    result = dg.materialize([tracked], partition_key="sp500", resources={"mlflow": store})
    client = store.client()
    experiment = client.get_experiment_by_name("wavefin-test")
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"  # the UI's runs view
    runs = client.search_runs([experiment.experiment_id], f"tags.`dagster.run_id` = '{result.run_id}'")
    assert len(runs) == 1  # one MLflow run per materialization
    tags = runs[0].data.tags
    assert tags["dagster.asset_key"] == "tracked" and tags["dagster.partition_key"] == "sp500"
    assert tags["dagster.code_version"] == "7" and tags["dagster.job"] == result.dagster_run.job_name
    url = result.asset_materializations_for_node("tracked")[0].metadata["mlflow_run"]
    assert isinstance(url, dg.UrlMetadataValue)
    assert url.url == f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs/{runs[0].info.run_id}"

    version = client.get_model_version(name, "1")
    assert version.run_id == runs[0].info.run_id and version.tags[tracking.SERIES_TAG] == "mjd"
    assert version.tags["train.params"] == "17.0"
    files = [p for p in Path(store.artifact_root).rglob("*") if p.is_file()]
    assert any(p.name == "forecaster.py" for p in files) and any(p.name == "logistic.json" for p in files)
    assert not [p for p in files if p.suffix in (".pkl", ".pickle")]  # models from code: nothing pickled

    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store._resolved_uri())
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    np.testing.assert_allclose(loaded.predict(windows), expected, rtol=1e-12)  # same parameters, same formula


def test_an_http_tracking_server_is_its_own_ui():
    url = tracking.run_url("https://mlflow.example.com/", "3", "abc")
    assert url == "https://mlflow.example.com/#/experiments/3/runs/abc"
    assert tracking.run_url("sqlite:///x.db", "3", "abc", ui_url="http://box:5000") == \
        "http://box:5000/#/experiments/3/runs/abc"


def test_champion_moves_only_when_a_version_beats_it(store):
    client = store.client()
    name = "test-champion-lstm"
    client.create_registered_model(name)

    def new_version(series: str = "mjd") -> str:
        return client.create_model_version(name, source="file:///nowhere", tags={tracking.SERIES_TAG: series}).version

    def promote(version: str, value: float) -> tracking.Promotion:
        return tracking.promote_if_better(client, name, version, "balanced_accuracy", value, higher_is_better=True)

    def champion() -> str:
        return client.get_model_version_by_alias(name, tracking.CHAMPION).version

    first, worse, better, tie, broken = new_version(), new_version(), new_version(), new_version(), new_version()
    other_series = new_version("sp500")
    assert promote(first, 0.55).promoted and champion() == first  # no champion yet
    decided = promote(worse, 0.52)
    assert not decided.promoted and champion() == first and decided.previous_value == 0.55
    assert promote(better, 0.60).promoted and champion() == better
    assert not promote(tie, 0.60).promoted and champion() == better  # a tie is not an improvement
    assert not promote(broken, float("nan")).promoted and champion() == better
    assert not promote(other_series, 0.99).promoted and champion() == better  # other series: not comparable
    assert client.get_model_version(name, worse).tags["test.balanced_accuracy"] == "0.52"

    # Lower is better for the diffusion model's discriminative score; a champion set by hand without a score
    # is left alone.
    diffusion = "test-champion-diffusion"
    client.create_registered_model(diffusion)
    a, b = (client.create_model_version(diffusion, source="file:///nowhere").version for _ in range(2))
    assert tracking.promote_if_better(client, diffusion, a, "discriminative_mean", 0.30, False).promoted
    assert tracking.promote_if_better(client, diffusion, b, "discriminative_mean", 0.10, False).promoted
    by_hand = client.create_model_version(diffusion, source="file:///nowhere").version
    client.set_registered_model_alias(diffusion, tracking.CHAMPION, by_hand)
    c = client.create_model_version(diffusion, source="file:///nowhere").version
    decided = tracking.promote_if_better(client, diffusion, c, "discriminative_mean", 0.01, False)
    assert not decided.promoted and "set by hand" in decided.reason


def test_the_pipeline_registers_its_models_and_they_load_from_the_registry(pipeline, monkeypatch):
    import mlflow

    from wavefin_assets.resources import default_mlflow

    resource = default_mlflow()
    client = resource.client()
    run_id = pipeline.model_result.run_id
    experiment = client.get_experiment_by_name(resource.experiment)
    for asset in ("diffusion_model", "forecasters", "generation_report", "forecast_report"):
        runs = client.search_runs([experiment.experiment_id],
                                  f"tags.`dagster.run_id` = '{run_id}' and tags.`dagster.asset_key` = '{asset}'")
        assert len(runs) == 1, asset
        assert runs[0].data.tags["dagster.code_version"]
        md = pipeline.materialization(asset).metadata
        assert md["mlflow_run"].url.endswith(f"/runs/{runs[0].info.run_id}"), asset

    diffusion = pipeline.load("diffusion_model")["registered_model"]
    version = client.get_model_version(diffusion["name"], diffusion["version"])
    assert version.tags["test.discriminative_mean"]  # scored by generation_report
    assert client.get_model_version_by_alias("wavefin-diffusion", tracking.CHAMPION).version  # first: champion
    manifest = pipeline.load("forecasters")
    registered = manifest["registered_models"]
    trained = {*manifest.get("direction_models", []), *manifest.get("return_models", [])}
    # every self-contained model is registered; gradient boosting restores only by refitting on its train data
    assert set(registered) == trained - {"gbm", "gbm_return", "arima_sign"} and "lstm" in registered
    for model, entry in registered.items():
        assert entry["name"] == f"wavefin-forecaster-{model}"
        assert any(k.startswith("test.") for k in client.get_model_version(entry["name"], entry["version"]).tags)
    assert "mlflow_registry" in pipeline.materialization("forecast_report").metadata

    artifacts = Path(resource.artifact_root)
    assert list(artifacts.rglob("*.safetensors")) and not list(artifacts.rglob("*.pkl"))

    monkeypatch.setenv("MLFLOW_TRACKING_URI", resource._resolved_uri())
    generator = mlflow.pyfunc.load_model(f"models:/{diffusion['name']}/{diffusion['version']}")
    series = pipeline.load("diffusion_model")["series"][0]
    windows = generator.predict(pd.DataFrame({"series": [series], "n_samples": [2], "num_inference_steps": [2]}))
    assert len(windows) == 2 and np.isfinite(np.stack(windows["returns"])).all()
    lstm = mlflow.pyfunc.load_model(f"models:/{registered['lstm']['name']}/{registered['lstm']['version']}")
    proba = lstm.predict(np.zeros((3, 32)))
    assert proba.shape == (3,) and ((proba >= 0) & (proba <= 1)).all()


def test_every_self_contained_forecaster_is_found_and_gradient_boosting_is_not(tmp_path):
    for name, fmt in (("scalogram_cnn", "wavefin-classifier"), ("lstm", "wavefin-sequence-classifier"),
                      ("cnn1d", "wavefin-conv1d-classifier")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"format": fmt}))
    for name in ("logistic", "ridge", "gbm", "gbm_return", "model_info", "walk_forward", "arima_mjd", "arima_sp500"):
        (tmp_path / f"{name}.json").write_text("{}")
    found = tracking.forecaster_artifacts(tmp_path)
    assert {model: loader for model, (loader, _) in found.items()} == {
        "scalogram_cnn": "classifier", "lstm": "sequence", "cnn1d": "conv1d", "logistic": "logistic",
        "ridge": "ridge", "arima": "arima"}
    assert sorted(found["arima"][1]) == ["arima_mjd", "arima_sp500"]


def test_loading_the_pyfuncs_prints_no_mlflow_type_hint_warning() -> None:
    """Every load of a logged model runs its module; MLflow warned "Add type hints to the `predict` method" each
    time (9 times in one `make run`). The DataFrame hint silences it without giving MLflow a schema to enforce."""
    import subprocess
    import sys

    probe = ("import warnings\n"
             "with warnings.catch_warnings(record=True) as caught:\n"
             "    warnings.simplefilter('always')\n"
             "    import wavefin_assets.mlflow_models.diffusion, wavefin_assets.mlflow_models.forecaster\n"
             "print([str(w.message) for w in caught if 'type hints to the' in str(w.message)])\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout
