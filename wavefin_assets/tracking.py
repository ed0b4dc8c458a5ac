"""MLflow the way MLflow users expect: runs that point back to Dagster, registered models, a `champion` alias.

Who does what (the registry design):

- Every materialization of a model or report asset opens exactly ONE MLflow run (`MLflowResource.start_run(...,
  context=context)`), tagged with the Dagster run id, asset key, partition (when partitioned) and code version
  (`dagster_tags`). The Dagster materialization links back to it with `MetadataValue.url` (`run_url`).
- The MODEL asset logs the trained model as an MLflow model and registers a new version of it
  (`wavefin-diffusion`, `wavefin-forecaster-<model>`), tagged with its training metrics. It does not know yet
  whether the model is any good, so it never touches the alias.
- The REPORT asset knows the test metric: it writes it onto the version (tag `test.<metric>`, and as a metric of
  the logged model), and moves the alias `champion` to that version only if it beats the current champion on
  that metric (`promote_if_better`). Ties, non-finite values and a champion without that tag (set by hand, or
  scored on another metric) leave the alias where it is.

  | registered model | metric (report) | better |
  |---|---|---|
  | `wavefin-diffusion` | `discriminative_mean`: wavefin's post-hoc discriminative score, mean over the series | lower |
  | `wavefin-forecaster-<direction model>` | `balanced_accuracy` on the test windows, mean over the series | higher |
  | `wavefin-forecaster-<return model>` (arima, ridge) | test `rmse` in train-std units, mean over the series | lower |

  Averages over series are only comparable between versions trained on the same series: each version carries
  the tag `wavefin.series`, and a version whose series differ from the champion's is not promoted over it.

Models are logged "from code" (`mlflow.pyfunc` with `python_model=<file in wavefin_assets/mlflow_models>` and the
safetensors / JSON files as `artifacts`), so nothing is pickled: MLflow copies the code file and the artifacts,
and `mlflow.pyfunc.load_model("models:/wavefin-diffusion@champion")` imports the code and reads the safetensors.

mlflow is imported inside the functions: loading the Dagster definitions stays light.
"""

from __future__ import annotations

import functools
import math
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg

    from wavefin_assets.resources import MLflowRun

# The MLflow 3 UI reads this experiment tag to choose its layout: `custom_model_development` opens the runs
# table (training runs, metrics, models); without it the UI may open the GenAI view (traces). Values from
# the UI's own enum in mlflow/server/js (GENAI_DEVELOPMENT / CUSTOM_MODEL_DEVELOPMENT).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

CHAMPION = "champion"
SERIES_TAG = "wavefin.series"
MODELS_DIR = Path(__file__).parent / "mlflow_models"
DIFFUSION_MODEL_NAME = "wavefin-diffusion"
FORECASTER_PREFIX = "wavefin-forecaster-"
# MLflow's own UI, as `make mlflow` serves it: where links point when the tracking store is a local file.
LOCAL_UI_URL = "http://127.0.0.1:5000"


def forecaster_model_name(model: str) -> str:
    """`wavefin-forecaster-<model>`, `<model>` as the forecast report names it (scalogram_cnn, lstm, ...)."""
    return f"{FORECASTER_PREFIX}{model}"


# --- run tags ---------------------------------------------------------------------------------------------------


@functools.cache
def package_code_version() -> str:
    """`wavefin <version>+g<git sha>` (`-dirty` with uncommitted changes); the version alone outside a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("wavefin")
    except PackageNotFoundError:
        release = "unknown"
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return release
    return f"{release}+g{sha}{'-dirty' if dirty else ''}" if sha else release


def code_version(context: dg.AssetExecutionContext) -> str:
    """The asset's own `code_version` when it declares one, else the package version and git sha."""
    try:
        declared = context.assets_def.code_versions_by_key.get(context.asset_key)
    except Exception:  # an op context without an assets definition
        declared = None
    return declared or package_code_version()


def dagster_tags(context: dg.AssetExecutionContext) -> dict[str, str]:
    """Tags that tie an MLflow run to the Dagster materialization that made it (search: `tags.dagster.run_id`)."""
    tags = {
        "dagster.run_id": context.run_id,
        "dagster.job": context.job_name,
        "dagster.asset_key": context.asset_key.to_user_string(),
        "dagster.code_version": code_version(context),
    }
    if context.has_partition_key:
        tags["dagster.partition_key"] = context.partition_key
    return tags


def run_url(tracking_uri: str, experiment_id: str, run_id: str, ui_url: str = "") -> str:
    """The MLflow UI page of a run.

    An http(s) tracking URI is the tracking server, which serves the UI itself. A local store (sqlite, file)
    has no server: the link points at `ui_url`, by default `http://127.0.0.1:5000`, where `make mlflow` serves
    the UI over that same store.
    """
    base = ui_url or (tracking_uri if tracking_uri.startswith(("http://", "https://")) else LOCAL_UI_URL)
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


# --- logging and registering models -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredVersion:
    """A model version this run registered."""

    name: str
    version: str
    model_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "model_id": self.model_id, "uri": self.uri}


def _pip_requirements() -> list[str]:
    """Declared instead of inferred: MLflow's inference loads the model in a subprocess (seconds per model)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("wavefin", "mlflow", "torch", "diffusers", "safetensors", "numpy", "pandas", "pywavelets"):
        try:
            pins.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins


def log_and_register(
    run: MLflowRun,
    registered_name: str,
    code_file: str,
    artifacts: dict[str, str | Path],
    *,
    model_config: dict[str, Any] | None = None,
    series: list[str] | None = None,
    metrics: dict[str, float] | None = None,
) -> RegisteredVersion:
    """Log a models-from-code pyfunc (no pickle) as an output of `run` and register it as a new version.

    `code_file` names a file of `wavefin_assets/mlflow_models/`; `artifacts` maps names to the local files or
    directories (safetensors, JSON) it loads. `metrics` (training metrics) become version tags `train.<name>`
    and metrics of the logged model. Uses only the client bound to `run` (never mlflow's global tracking URI).
    """
    import mlflow.pyfunc
    from mlflow.entities import LoggedModelOutput
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    client = run.client
    tags = {SERIES_TAG: ",".join(series or []), "dagster.run_id": run.tags.get("dagster.run_id", "")}
    logged = client.create_logged_model(run.experiment_id, name=registered_name, source_run_id=run.run_id,
                                        tags=tags, model_type="wavefin")
    try:
        with tempfile.TemporaryDirectory(prefix="wavefin-mlflow-model-") as tmp:
            local = Path(tmp) / "model"
            mlflow.pyfunc.save_model(
                path=str(local),
                python_model=str(MODELS_DIR / code_file),
                artifacts={key: str(path) for key, path in artifacts.items()},
                model_config=model_config,
                pip_requirements=_pip_requirements(),
                mlflow_model=Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id,
                                   run_id=run.run_id, model_id=logged.model_id),
            )
            for cache in local.rglob("__pycache__"):
                for compiled in cache.iterdir():
                    compiled.unlink()
                cache.rmdir()
            client.log_model_artifacts(logged.model_id, str(local))
        client.finalize_logged_model(logged.model_id, "READY")
    except BaseException:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.log_outputs(run.run_id, [LoggedModelOutput(logged.model_id, step=0)])
    finite = {k: float(v) for k, v in (metrics or {}).items() if _finite(v)}
    for key, value in finite.items():
        client.log_metric(run.run_id, key, value, model_id=logged.model_id)
    try:
        client.create_registered_model(registered_name, description=_description(registered_name))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # source = the logged model's artifact location, which a `models:/<model id>` source resolves to anyway:
    # MLflow's sqlalchemy registry resolves that URI through a default MlflowClient(), i.e. mlflow's *global*
    # tracking URI rather than this client's (a TODO in mlflow), and fails with "Logged model ... not found"
    # whenever the two differ. run_id is given, so the registry does not look the model up either.
    version = client.create_model_version(
        registered_name, source=logged.artifact_location, run_id=run.run_id, model_id=logged.model_id,
        tags={**tags, **{f"train.{k}": repr(v) for k, v in finite.items()}},
        run_link=run.url, await_creation_for=0,
    )
    return RegisteredVersion(registered_name, str(version.version), logged.model_id)


def _description(name: str) -> str:
    if name == DIFFUSION_MODEL_NAME:
        return ("wavefin's diffusion generator of scalograms (diffusers UNet2DModel + DDPM scheduler, safetensors). "
                "pyfunc predict(DataFrame with columns series, n_samples[, seed, sampler, num_inference_steps]) "
                "-> one row per generated window: series, sample, returns (log returns in the series' units).")
    return ("A wavefin forecaster (safetensors weights or JSON parameters), logged from code. pyfunc predict: "
            "scalogram models take images (N, 2, scales, window); lstm / haar_lstm / logistic take standardized "
            "return windows (N, window); both return P(up). arima takes a DataFrame with columns series, window "
            "(raw log returns) and returns the next-horizon return forecast.")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


# --- champion ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Promotion:
    """What `promote_if_better` decided, for the report's metadata and logs."""

    name: str
    version: str
    metric: str
    value: float
    promoted: bool
    champion_version: str | None  # the champion after the decision
    previous_version: str | None
    previous_value: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def promote_if_better(
    client: Any,
    name: str,
    version: str,
    metric: str,
    value: float,
    higher_is_better: bool,
    *,
    model_id: str | None = None,
    run_id: str | None = None,
) -> Promotion:
    """Record `metric` = `value` on the version, then move `champion` to it only if it beats the champion.

    The test metric is written as the version tag `test.<metric>` (what the comparison reads, also for later
    versions) and, with `model_id` and `run_id`, as a metric of the logged model (shown on its MLflow page).
    """
    from mlflow.exceptions import MlflowException

    version = str(version)
    client.set_model_version_tag(name, version, f"test.{metric}", repr(float(value)))
    client.set_model_version_tag(name, version, "test.metric", f"{metric} ({'higher' if higher_is_better else 'lower'}"
                                 " is better)")
    if model_id and run_id and _finite(value):
        client.log_metric(run_id, f"test.{metric}", float(value), model_id=model_id)
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None

    def decided(promoted: bool, reason: str, previous_value: float | None = None) -> Promotion:
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, version)
        now = version if promoted else (champion.version if champion is not None else None)
        return Promotion(name, version, metric, float(value), promoted, None if now is None else str(now),
                         None if champion is None else str(champion.version), previous_value, reason)

    if not _finite(value):
        return decided(False, f"{metric} is {value}: a non-finite score never becomes champion")
    if champion is None:
        return decided(True, "first scored version: no champion yet")
    if str(champion.version) == version:
        return decided(False, "already the champion", float(value))
    previous = champion.tags.get(f"test.{metric}")
    if previous is None:
        return decided(False, f"the champion (version {champion.version}) has no test.{metric} tag (set by hand?); "
                       "not overriding it")
    previous_value = float(previous)
    mine = client.get_model_version(name, version).tags.get(SERIES_TAG)
    theirs = champion.tags.get(SERIES_TAG)
    if mine is not None and theirs is not None and mine != theirs:
        return decided(False, f"scored on series [{mine}], the champion on [{theirs}]: not comparable",
                       previous_value)
    better = value > previous_value if higher_is_better else value < previous_value
    word = "beats" if better else "does not beat"
    return decided(better, f"{metric} {value:.6g} {word} the champion's {previous_value:.6g} "
                   f"({'higher' if higher_is_better else 'lower'} is better)", previous_value)


def mean_metric(metrics: dict[str, float], series: list[str], model: str, key: str) -> float:
    """The mean over `series` of `metrics["<series>.<model>.<key>"]` (NaN when any is missing)."""
    values = [metrics.get(f"{name}.{model}.{key}") for name in series]
    if not values or any(v is None for v in values):
        return float("nan")
    return float(sum(values) / len(values))


# --- what the assets call ---------------------------------------------------------------------------------------

# How the forecaster pyfunc loads each saved form: a weights directory by the `format` in its config.json, a
# JSON file by its model name. Gradient-boosting models are not registered: their JSON restores by refitting on
# the training windows (`GradientBoostingForecaster.from_dict`), so it is no self-contained model.
WEIGHT_FORMATS = {"wavefin-classifier": "classifier", "wavefin-sequence-classifier": "sequence",
                  "wavefin-conv1d-classifier": "conv1d"}
JSON_MODELS = {"logistic": "logistic", "logistic_wavelet": "logistic_wavelet", "ridge": "ridge"}


def register_diffusion(run: MLflowRun, model_dir: str | Path, series: list[str],
                       metrics: dict[str, float]) -> dict[str, str]:
    """Log the `save_diffusion` directory as `wavefin-diffusion` (a new version); returns it for the manifest."""
    version = log_and_register(run, DIFFUSION_MODEL_NAME, "diffusion.py", {"model": model_dir},
                               series=series, metrics=metrics)
    return version.to_dict()


def forecaster_artifacts(model_dir: str | Path) -> dict[str, tuple[str, dict[str, Path]]]:
    """`{model: (loader, artifacts)}` of every self-contained model the forecasters asset saved in `model_dir`."""
    import json

    model_dir = Path(model_dir)
    found: dict[str, tuple[str, dict[str, Path]]] = {}
    for config in sorted(model_dir.glob("*/config.json")):
        loader = WEIGHT_FORMATS.get(json.loads(config.read_text()).get("format"))
        if loader is not None:
            found[config.parent.name] = (loader, {"weights": config.parent})
    for name, loader in JSON_MODELS.items():
        if (model_dir / f"{name}.json").is_file():
            found[name] = (loader, {"params": model_dir / f"{name}.json"})
    arima = {path.stem: path for path in sorted(model_dir.glob("arima_*.json"))}
    if arima:
        found["arima"] = ("arima", arima)
    return found


def register_forecasters(run: MLflowRun, model_dir: str | Path, classifier: str, series: list[str],
                         horizons: dict[str, int], metrics: dict[str, dict[str, float]]) -> dict[str, dict]:
    """Register every self-contained model saved in `model_dir` as `wavefin-forecaster-<model>`.

    The models are found from the files (`forecaster_artifacts`), so a model added to the suite is registered
    without a change here. `classifier` (`scalogram_cnn` / `scalogram_vit`) is logged as the scalogram model's
    tag; `metrics[model]` are its training metrics. Returns `{model: version dict}` for the manifest (the
    report promotes from it).
    """
    registered = {}
    for model, (loader, artifacts) in forecaster_artifacts(model_dir).items():
        version = log_and_register(run, forecaster_model_name(model), "forecaster.py", artifacts,
                                   model_config={"model": model, "loader": loader, "horizons": horizons,
                                                 "classifier": classifier},
                                   series=series, metrics=(metrics or {}).get(model))
        registered[model] = version.to_dict()
    return registered


def promote_diffusion(mlflow: Any, run: MLflowRun, model_path: str, metrics: dict[str, float],
                      series: list[str], log: Any = None) -> Promotion | None:
    """generation_report: score the diffusion version that made these windows and promote it if it is better.

    The version is read from the manifest next to the model weights (`registered_model`); a model trained
    before registration existed has none, and nothing is promoted.
    """
    from wavefin_core.models.versions import read_manifest

    registered = (read_manifest(model_path) or {}).get("registered_model")
    if not registered:
        if log is not None:
            log(f"no registered MLflow model version recorded in {model_path}; champion unchanged")
        return None
    value = mean_metric(metrics, series, "wavefin", "discriminative_mean")
    with mlflow.registry_lock():
        return promote_if_better(run.client, registered["name"], registered["version"], "discriminative_mean",
                                 value, higher_is_better=False, model_id=registered["model_id"],
                                 run_id=run.run_id)


def promote_forecasters(mlflow: Any, run: MLflowRun, manifest: dict, metrics: dict[str, float]) -> list[Promotion]:
    """forecast_report: score each registered forecaster version of `manifest` and promote the better ones.

    Direction models on the mean test balanced accuracy (higher is better); return models (no direction
    metrics in the report) on the mean test RMSE in train-std units (lower is better).
    """
    registered = manifest.get("registered_models") or {}
    series = list(manifest["series"])
    promotions = []
    with mlflow.registry_lock():
        for model, version in registered.items():
            key, higher = "balanced_accuracy", True
            if not any(f"{name}.{model}.balanced_accuracy" in metrics for name in series):
                key, higher = "rmse", False
            promotions.append(promote_if_better(
                run.client, version["name"], version["version"], key, mean_metric(metrics, series, model, key),
                higher_is_better=higher, model_id=version["model_id"], run_id=run.run_id))
    return promotions


def promotion_metadata(promotions: Promotion | list[Promotion] | None) -> dict[str, Any]:
    """Dagster metadata: per registered model, the version scored, its metric and whether it is champion now."""
    import dagster as dg

    if promotions is None:
        return {}
    if isinstance(promotions, Promotion):
        promotions = [promotions]
    lines = ["| registered model | version | metric | value | champion | why |", "|---|---|---|---|---|---|"]
    for p in promotions:
        lines.append(f"| {p.name} | {p.version} | {p.metric} | {p.value:.4g} | {p.champion_version or '—'}"
                     f"{' (new)' if p.promoted else ''} | {p.reason} |")
    return {"mlflow_registry": dg.MetadataValue.md("\n".join(lines))}
