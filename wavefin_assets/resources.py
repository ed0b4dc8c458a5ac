"""Resources: experiment tracking (MLflow), the torch device and where files go.

The MLflow resource is a thin `ConfigurableResource` over `mlflow.MlflowClient` (not the legacy dagster-mlflow
resource and not mlflow's global fluent state), so concurrent runs never share an "active run".
"""

from __future__ import annotations

import math
import numbers
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from wavefin_core.io import process_alive, remove_orphans

# MLflow tags naming the process that owns a run (how a later start recognises the runs of a killed process).
PID_TAG = "wavefin.pid"
HOST_TAG = "wavefin.host"


def storage_root() -> Path:
    """Everything the pipeline writes lives here: `$WAVEFIN_STORAGE`, default `./storage`."""
    return Path(os.environ.get("WAVEFIN_STORAGE", "storage")).resolve()


class StorageResource(dg.ConfigurableResource):
    """Where models and reports are written (Dagster IO values go through the IO manager)."""

    root: str = "storage"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Clean up what killed writes left under models/ and reports/ before this run writes there."""
        for sub in ("models", "reports"):
            for path in remove_orphans(Path(self.root).resolve() / sub):
                if context.log is not None:
                    context.log.info(f"Cleaned up after an interrupted write: {path}")

    def path(self, *parts: str) -> Path:
        target = Path(self.root).resolve().joinpath(*parts)
        target.mkdir(parents=True, exist_ok=True)
        return target


class DeviceResource(dg.ConfigurableResource):
    """The torch device for training and sampling: `auto` takes CUDA when present, else CPU."""

    preference: str = "auto"

    def torch_device(self):
        from wavefin_core.device import pick_device  # torch: imported when a step needs it, not on load

        return pick_device(self.preference)

    def describe(self) -> str:
        device = self.torch_device()
        if device.type == "cuda":
            import torch

            return f"cuda ({torch.cuda.get_device_name(device)})"
        return "cpu"


class MLflowRun:
    """One MLflow run, bound to a client: log params, metrics and artifacts to it."""

    def __init__(self, client: Any, run_id: str):
        self.client = client
        self.run_id = run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in _flatten(params).items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(str(k), float(v), now, step or 0)
            for k, v in _flatten(metrics).items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))
        ]
        for start in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[start : start + 500])

    def log_metric_history(self, key: str, values: list[float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(v), now, i) for i, v in enumerate(values)]
        for start in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[start : start + 500])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class MLflowResource(dg.ConfigurableResource):
    """MLflow tracking: default store `sqlite:///storage/mlflow/mlflow.db`, artifacts in storage/mlflow/artifacts.

    Override with `MLFLOW_TRACKING_URI` / `WAVEFIN_MLFLOW_ARTIFACTS` or through resource config.
    """

    tracking_uri: str = "sqlite:///storage/mlflow/mlflow.db"
    artifact_root: str = "storage/mlflow/artifacts"
    experiment: str = "wavefin"

    _client: Any = PrivateAttr(default=None)

    def _resolved_uri(self) -> str:
        uri = self.tracking_uri
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            db_path = Path(uri.removeprefix("sqlite:///")).resolve()
            db_path.parent.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{db_path}"
        return uri

    def client(self):
        if self._client is None:
            import mlflow

            with self._setup_lock():
                self._client = mlflow.MlflowClient(tracking_uri=self._resolved_uri())
                self._client.search_experiments(max_results=1)  # creates/migrates the store, under the lock
        return self._client

    def experiment_id(self) -> str:
        client = self.client()
        with self._setup_lock():
            found = client.get_experiment_by_name(self.experiment)
            if found is not None:
                return found.experiment_id
            artifacts = Path(self.artifact_root).resolve()
            artifacts.mkdir(parents=True, exist_ok=True)
            return client.create_experiment(self.experiment, artifact_location=artifacts.as_uri())

    @contextmanager
    def _setup_lock(self) -> Iterator[None]:
        """Serialise store creation and experiment creation across processes.

        `dagster dev` runs independent steps in parallel processes; two of them creating a fresh sqlite store
        (or the same experiment) at once fail. A file lock next to the artifacts makes the first one win.
        """
        import fcntl

        lock_path = Path(self.artifact_root).resolve().parent / ".wavefin-mlflow.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def start_run(self, run_name: str, tags: dict[str, str] | None = None) -> Iterator[MLflowRun]:
        """Open a run; it is marked FINISHED on success and FAILED if the block raises.

        The run is tagged with this process's pid and host, so a later start can tell that a run still RUNNING
        belongs to a process that was killed (`kill -9`, OOM, power loss) and mark it KILLED.
        """
        client = self.client()
        self.mark_orphaned_runs_killed()
        owner = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
        run = client.create_run(self.experiment_id(), run_name=run_name, tags={**(tags or {}), **owner})
        tracked = MLflowRun(client, run.info.run_id)
        try:
            yield tracked
        except BaseException:
            client.set_terminated(run.info.run_id, status="FAILED")
            raise
        client.set_terminated(run.info.run_id, status="FINISHED")

    def mark_orphaned_runs_killed(self) -> list[str]:
        """Mark KILLED every RUNNING run of this experiment whose process (on this host) is gone; return their ids.

        Runs of live processes, of other hosts, and runs without the pid/host tags (older wavefin versions,
        other tools) are never touched.
        """
        client = self.client()
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is None:
            return []
        running = client.search_runs(
            [experiment.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
        )
        killed = []
        for run in running:
            pid, host = run.data.tags.get(PID_TAG, ""), run.data.tags.get(HOST_TAG)
            if not pid.isdigit() or host != socket.gethostname():
                continue
            if process_alive(int(pid), started_by=run.info.start_time / 1000):
                continue
            client.set_tag(run.info.run_id, "wavefin.killed", f"process {pid} on {host} was gone at the next start")
            client.set_terminated(run.info.run_id, status="KILLED")
            killed.append(run.info.run_id)
        return killed


def default_mlflow() -> MLflowResource:
    root = storage_root()
    return MLflowResource(
        tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"),
        artifact_root=os.environ.get("WAVEFIN_MLFLOW_ARTIFACTS", str(root / "mlflow" / "artifacts")),
    )
