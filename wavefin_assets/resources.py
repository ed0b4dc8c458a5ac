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
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import PrivateAttr

from wavefin_core.io import process_alive, remove_orphans

# MLflow tags naming the process that owns a run (how a later start recognises the runs of a killed process).
if TYPE_CHECKING:
    from upath import UPath

PID_TAG = "wavefin.pid"
HOST_TAG = "wavefin.host"


def storage_root() -> UPath:
    """Everything the pipeline writes lives here: `$WAVEFIN_STORAGE`, default `./storage`.

    A local path (resolved; a `PosixUPath` is a `pathlib.Path`, so local callers see no difference) or any fsspec
    URL (`s3://bucket/prefix`, `gs://...`, `memory://...`).
    """
    return as_upath(os.environ.get("WAVEFIN_STORAGE", "storage"))


def as_upath(location: str | os.PathLike) -> UPath:
    """A UPath for a local path (resolved) or an fsspec URL."""
    from upath import UPath

    path = UPath(location)
    return path.resolve() if _is_local(path) else path


def _is_local(path: UPath) -> bool:
    return getattr(path, "protocol", "") in ("", "file", "local")


def local_root() -> Path:
    """Where what must stay on local disk lives (DAGSTER_HOME, MLflow's default sqlite store, staging copies):
    the storage root when it is local, else `$WAVEFIN_LOCAL_STORAGE` (default `./storage`)."""
    root = storage_root()
    if _is_local(root):
        return Path(root)
    return Path(os.environ.get("WAVEFIN_LOCAL_STORAGE", "storage")).resolve()


class StorageResource(dg.ConfigurableResource):
    """Where models and reports are written (Dagster IO values go through the IO manager).

    `root` is a local path or an fsspec URL; every location goes through `path()` (a UPath). Writers that need
    a local directory (diffusers `save_pretrained`, matplotlib, the report writers) write into `workdir()` and
    hand it to `publish()`, which uploads it when the root is remote and does nothing when it is local (there
    `workdir()` already is the destination). Readers of a stored file or directory call `fetch()`, which returns
    it as is when local and a local copy (under the staging area) when remote.

    With a remote root, the local side (staging copies, training checkpoints) lives under `staging_root()`:
    `$WAVEFIN_LOCAL_STORAGE/staging` (default `./storage/staging`), and nothing else is written locally.
    """

    root: str = "storage"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Clean up what killed writes left on local disk before this run writes there."""
        if self.is_local:
            places = [Path(self.path()) / sub for sub in ("models", "reports")]
        else:  # remote writes are whole objects (see `publish`); only the local staging copies can be torn
            places = [self.staging_root()]
        for place in places:
            for path in remove_orphans(place):
                if context.log is not None:
                    context.log.info(f"Cleaned up after an interrupted write: {path}")

    @property
    def is_local(self) -> bool:
        return _is_local(as_upath(self.root))

    def path(self, *parts: str) -> UPath:
        """`root/parts` as a UPath; on local disk the directory is created (object stores have no directories)."""
        target = as_upath(self.root).joinpath(*parts)
        if _is_local(target):
            target.mkdir(parents=True, exist_ok=True)
        return target

    def location(self, *parts: str) -> str:
        """`root/parts` as a string for manifests and metadata (a local path, or a URL); creates nothing."""
        return str(as_upath(self.root).joinpath(*parts))

    def staging_root(self) -> Path:
        """The local directory that mirrors a remote root (`<local storage>/staging/<protocol>/<bucket/prefix>`)."""
        return _staging(str(as_upath(self.root)))

    def workdir(self, *parts: str) -> Path:
        """A local directory to write `root/parts` into: the destination itself on local disk, else its mirror
        under `staging_root()` that `publish(*parts)` uploads."""
        if self.is_local:
            return Path(self.path(*parts))
        staging = self.staging_root().joinpath(*parts)
        staging.mkdir(parents=True, exist_ok=True)
        return staging

    def publish(self, *parts: str) -> UPath:
        """Upload `workdir(*parts)` to `path(*parts)` when the root is remote; a no-op on local disk.

        Each file becomes one object, streamed and created whole when its upload completes (object stores never
        show a partial object). A `manifest.json` goes last, so a stored model version that has its manifest
        has all its files. Returns the destination.
        """
        target = self.path(*parts)
        if self.is_local:
            return target
        local = self.workdir(*parts)
        files = sorted((p for p in local.rglob("*") if p.is_file() and not _is_temporary(p, local)),
                       key=lambda p: (p.name == MANIFEST_NAME, p.as_posix()))
        for file in files:
            _copy_file(file, target / file.relative_to(local).as_posix())
        return target

    def fetch(self, location: str) -> Path:
        """A local copy of a stored file or directory (`location` as `location()`/`path()` gave it).

        Local storage: the path itself. Remote: downloaded under `staging_root()`, atomically (a reader never
        sees a half-downloaded copy); a directory whose local copy has the same `manifest.json` is not
        downloaded again (model versions never change once published).
        """
        from wavefin_core.io import atomic_directory, atomic_path

        source = as_upath(location)
        if _is_local(source):
            return Path(source)
        local = _staging(str(source))
        if not source.exists():
            raise FileNotFoundError(f"{source} does not exist in storage {self.root}; materialize the asset that "
                                    "writes it again.")
        if not source.is_dir():
            with atomic_path(local) as tmp:
                _copy_file(source, tmp)
            return local
        manifest = source / MANIFEST_NAME
        if (local / MANIFEST_NAME).is_file() and manifest.exists() and \
                (local / MANIFEST_NAME).read_bytes() == manifest.read_bytes():
            return local  # this version is already here
        with atomic_directory(local) as tmp:
            for file in source.rglob("*"):
                if file.is_file():
                    _copy_file(file, tmp / file.relative_to(source).as_posix())
        return local

    def prune_versions(self, parts: tuple[str, ...], keep: int, current: str) -> list[str]:
        """Delete all but the `keep` newest model versions under `root/parts` (a remote root; the local case is
        `wavefin_core.models.versions.prune_versions`). `current` (a version name) is always kept.

        Versions are ordered by when their manifest was stored. A version without a manifest is an upload in
        progress, or one a killed process left; it is deleted only once a day old. Returns the deleted locations.
        """
        import time

        from wavefin_core.io import ORPHAN_MIN_AGE_S

        root = self.path(*parts)
        if not root.exists():
            return []
        stamped, unfinished = [], []
        for version in root.iterdir():
            if not version.is_dir() or version.name == current or version.name.startswith("."):
                continue
            manifest = version / MANIFEST_NAME
            if manifest.exists():
                stamped.append((_modified(manifest), version))
            elif all(time.time() - _modified(f) >= ORPHAN_MIN_AGE_S for f in version.rglob("*") if f.is_file()):
                unfinished.append(version)
        stamped.sort(key=lambda item: item[0], reverse=True)
        doomed = [version for _, version in stamped[keep - 1 :]] + unfinished
        for version in doomed:
            version.fs.rm(version.path, recursive=True)
        return [str(version) for version in doomed]


MANIFEST_NAME = "manifest.json"  # wavefin_core.models.versions.MANIFEST_FILE (not imported: it loads torch)


def _is_temporary(path: Path, below: Path) -> bool:
    """A temporary file or directory of a write in progress (`.name.tmp-*`, `wavefin_core.io`), never uploaded."""
    from wavefin_core.io import BACKUP_MARK, TEMP_MARK

    return any(part.startswith(".") and (TEMP_MARK in part or BACKUP_MARK in part)
               for part in path.relative_to(below).parts)


def _copy_file(source: Any, target: Any) -> None:
    """Stream one file between any two (U)Paths; on an object store the object appears when the copy closes."""
    import shutil

    if getattr(target, "protocol", "") in ("", "file", "local"):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as reader, target.open("wb") as writer:
        shutil.copyfileobj(reader, writer, length=16 * 1024 * 1024)


def _modified(path: UPath) -> float:
    """When an object was last written (Unix time), from what its filesystem reports (S3 `LastModified`, GCS
    `updated`, memory `created`, local `mtime`); 0 when it reports nothing."""
    from datetime import datetime

    info = path.fs.info(path.path)
    for key in ("mtime", "LastModified", "last_modified", "updated", "created", "time"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)) and value:
            return float(value)
        if isinstance(value, str) and value:
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


def _remote_key(url: str) -> str:
    """A file-name-safe local mirror path for a remote URL (`s3://b/p` -> `s3/b/p`)."""
    protocol, _, rest = url.partition("://")
    return f"{protocol}/{rest.strip('/')}"


def _staging(url: str) -> Path:
    """The local mirror of a remote URL: `$WAVEFIN_LOCAL_STORAGE/staging/<protocol>/<bucket/prefix>`."""
    local = Path(os.environ.get("WAVEFIN_LOCAL_STORAGE", "storage")).resolve()
    return local / "staging" / _remote_key(url)


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
    """One MLflow run, bound to a client: log params, metrics, artifacts and models to it.

    `url` is the run's page in the MLflow UI (see `wavefin_assets.tracking.run_url`), for Dagster metadata.
    """

    def __init__(self, client: Any, run_id: str, experiment_id: str = "", url: str = "",
                 tags: dict[str, str] | None = None):
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.url = url
        self.tags = dict(tags or {})

    def url_metadata(self) -> dg.MetadataValue:
        """The run's UI page as a clickable Dagster metadata value."""
        return dg.MetadataValue.url(self.url)

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

    Override with `MLFLOW_TRACKING_URI` / `WAVEFIN_MLFLOW_ARTIFACTS` / `WAVEFIN_MLFLOW_UI` or through resource
    config. `ui_url` is where run links in Dagster point: empty means the tracking server itself when the
    tracking URI is http(s), else http://127.0.0.1:5000 (`make mlflow` serves the UI there over the local store).
    """

    tracking_uri: str = "sqlite:///storage/mlflow/mlflow.db"
    artifact_root: str = "storage/mlflow/artifacts"
    experiment: str = "wavefin"
    ui_url: str = ""

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
        """The experiment's id, created on first use; always tagged so the MLflow 3 UI opens its runs view."""
        from wavefin_assets.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

        client = self.client()
        with self._setup_lock():
            found = client.get_experiment_by_name(self.experiment)
            if found is not None:
                if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # a store made by an older wavefin
                    client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
                return found.experiment_id
            return client.create_experiment(self.experiment, artifact_location=self._artifact_location(),
                                            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})

    def _artifact_location(self) -> str:
        """A URI (`s3://...`, `gs://...`, `mlflow-artifacts:/...`) is used as is; a local path becomes file://."""
        if "://" in self.artifact_root or self.artifact_root.startswith("mlflow-artifacts:"):
            return self.artifact_root
        artifacts = Path(self.artifact_root).resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        return artifacts.as_uri()

    @contextmanager
    def _setup_lock(self) -> Iterator[None]:
        """Serialise store creation and experiment creation across processes.

        `dagster dev` runs independent steps in parallel processes; two of them creating a fresh sqlite store
        (or the same experiment) at once fail. A file lock next to the artifacts makes the first one win.
        """
        import fcntl

        lock_path = self._lock_path()
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _lock_path(self) -> Path:
        """Next to a local artifact root; under $WAVEFIN_STORAGE when the artifacts are remote."""
        if "://" in self.artifact_root or self.artifact_root.startswith("mlflow-artifacts:"):
            return local_root() / "mlflow" / ".wavefin-mlflow.lock"
        return Path(self.artifact_root).resolve().parent / ".wavefin-mlflow.lock"

    @contextmanager
    def registry_lock(self) -> Iterator[None]:
        """Held while a report compares a version with the champion and moves the alias (no lost update between
        two reports of this machine; against a remote server, concurrent promotions from other hosts race)."""
        with self._setup_lock():
            yield

    @contextmanager
    def start_run(
        self,
        run_name: str,
        tags: dict[str, str] | None = None,
        context: dg.AssetExecutionContext | None = None,
    ) -> Iterator[MLflowRun]:
        """Open a run; it is marked FINISHED on success and FAILED if the block raises.

        With the asset's `context`, the run is tagged with the Dagster run id, job, asset key, partition (when
        partitioned) and code version (`wavefin_assets.tracking.dagster_tags`): one run per materialization,
        found from Dagster by `tags.dagster.run_id = '<run id>'`. The run is also tagged with this process's pid
        and host, so a later start can tell that a run still RUNNING belongs to a process that was killed
        (`kill -9`, OOM, power loss) and mark it KILLED.
        """
        from wavefin_assets.tracking import dagster_tags, run_url

        client = self.client()
        self.mark_orphaned_runs_killed()
        owner = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
        all_tags = {**(dagster_tags(context) if context is not None else {}), **(tags or {}), **owner}
        experiment_id = self.experiment_id()
        run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
        url = run_url(self._resolved_uri(), experiment_id, run.info.run_id, self.ui_url)
        tracked = MLflowRun(client, run.info.run_id, experiment_id, url, all_tags)
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
    root = local_root()  # with remote storage and no MLFLOW_TRACKING_URI, the store stays on local disk
    return MLflowResource(
        tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"),
        artifact_root=os.environ.get("WAVEFIN_MLFLOW_ARTIFACTS", str(root / "mlflow" / "artifacts")),
        ui_url=os.environ.get("WAVEFIN_MLFLOW_UI", ""),
    )
