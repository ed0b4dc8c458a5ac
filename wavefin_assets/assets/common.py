"""Shared pieces of the model assets: GPU tags, loading the selected series, the pooled dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
import pyarrow as pa

from wavefin_core.errors import ConfigError

if TYPE_CHECKING:  # torch (through models and wavelets) is imported by the steps that use it, not on load
    from wavefin_core.models.training import ProgressFn
    from wavefin_core.scalograms import ScalogramSet

MODEL_GROUP = "models"
REPORT_GROUP = "reports"

# Kubernetes settings of a GPU step: one NVIDIA GPU, scheduled on a GPU node (the `nvidia.com/gpu.present`
# label that NVIDIA's GPU feature discovery / GPU operator sets) and tolerating the `nvidia.com/gpu` taint GPU
# node pools carry. Who reads it (dagster-k8s; other executors and launchers ignore it):
# - `k8s_job_executor` (one pod per step) reads it from the step's OP tags, which is where GPU_ASSET_KWARGS
#   puts it: only the training/sampling steps get a GPU pod (deploy/README.md selects that executor);
# - `K8sRunLauncher` with the default executor reads the RUN's tags instead: a job that should run whole on a
#   GPU node carries `tags={"dagster-k8s/config": GPU_K8S_CONFIG}`.
# Cluster-specific labels or taints go in the Helm values (runK8sConfig), which dagster-k8s deep-merges with this.
GPU_K8S_CONFIG = {
    "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
    "pod_spec_config": {
        "node_selector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}

# Training and sampling run on a GPU node when there is one: one at a time per Dagster instance (pool "gpu"),
# and on Kubernetes each such step's pod asks for a GPU on a GPU node (see GPU_K8S_CONFIG).
GPU_ASSET_KWARGS = dict(
    pool="gpu",
    kinds={"pytorch"},
    op_tags={"dagster-k8s/config": GPU_K8S_CONFIG},
)


def log_progress(context: dg.AssetExecutionContext, label: str, every: int = 1) -> ProgressFn:
    """A core `progress(step, total, info)` callback that writes every `every`-th step to the Dagster log."""

    def progress(step: int, total: int, info: dict) -> None:
        if step == 1 or step % every == 0 or step == total:
            details = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())
            context.log.info(f"{label} {step}/{total} {details}")

    return progress


def select_series(tables: dict[str, pa.Table], wanted: list[str]) -> dict[str, ScalogramSet]:
    """The materialized scalogram sets of the series in `wanted` (all materialized ones when empty)."""
    if wanted:
        missing = [s for s in wanted if s not in tables]
        if missing:
            raise ConfigError(
                f"config `series` names {missing}, which have no materialized scalograms "
                f"(available: {sorted(tables)}); materialize those partitions first or fix the list."
            )
        names = list(wanted)
    else:
        names = sorted(tables)
    from wavefin_core.scalograms import ScalogramSet

    return {name: ScalogramSet.from_table(tables[name]) for name in names}


@dataclass
class Pooled:
    """Windows of several series stacked in one arrays set, with the series name of each row."""

    images: np.ndarray
    standardized: np.ndarray
    direction: np.ndarray
    target_return: np.ndarray
    split: np.ndarray
    series: np.ndarray
    end_time: np.ndarray


def pool(sets: dict[str, ScalogramSet]) -> Pooled:
    """Stack the series; each series' windows standardised with its own train-only statistics."""
    parts = list(sets.items())
    shapes = {name: s.images.shape[1:] for name, s in parts}
    if len(set(shapes.values())) > 1:
        raise ConfigError(
            f"series have scalograms of different shapes {shapes}; re-materialize them with the same `window` "
            "and `num_scales`, or pick series of one shape with the `series` config."
        )
    return Pooled(
        images=np.concatenate([s.images for _, s in parts]),
        standardized=np.concatenate([(s.windows - s.norm_mean) / s.norm_std for _, s in parts]),
        direction=np.concatenate([s.direction for _, s in parts]),
        target_return=np.concatenate([s.target_return for _, s in parts]),
        split=np.concatenate([s.split for _, s in parts]),
        series=np.concatenate([np.full(len(s), name, dtype=object) for name, s in parts]).astype(str),
        end_time=np.concatenate([s.end_time for _, s in parts]),
    )


def model_version(storage, asset: str, context: dg.AssetExecutionContext):
    """This materialization's model directory `models/<asset>/<run id>` (a new version per run; not created).

    A local directory (`StorageResource.workdir`): diffusers and torch write local files. On local storage it is
    the stored location itself; with a remote storage root it is the local staging copy that
    `publish_model_version` uploads. Manifests name `stored_location(storage, model_dir)`, never the staging copy.
    """
    from wavefin_core.models.versions import version_dir

    return version_dir(storage.workdir("models", asset), context.run_id)


def stored_location(storage, local: Path | str) -> str:
    """Where a file or directory under `storage.workdir(...)` is stored: itself on local storage, else its URL
    (`s3://bucket/prefix/models/forecasters/<run id>/predictions.parquet`). What manifests and outputs name."""
    if storage.is_local:
        return str(local)
    return storage.location(*Path(local).relative_to(storage.staging_root()).parts)


def publish_model_version(context: dg.AssetExecutionContext, storage, current: Path, keep: int) -> str:
    """Store the model version just written in `current` (`model_version`) and prune old versions; returns its
    stored location.

    On local storage the version already is in place: only pruning. With a remote root the staging directory is
    uploaded (its manifest last) and old versions are pruned both remotely and in the staging area.
    """
    parts = Path(current).relative_to(storage.workdir()).parts if not storage.is_local else ()
    if parts:
        storage.publish(*parts)
        for old in storage.prune_versions(parts[:-1], keep, current=parts[-1]):
            context.log.info(f"deleted old model version {old} (keep_versions={keep})")
    prune_model_versions(context, current, keep)
    return stored_location(storage, current)


def local_model_dir(storage, location: str) -> Path:
    """A local directory holding the stored model version at `location` (a manifest's `path`): the directory
    itself on local storage, else a local copy (downloaded once per version)."""
    return storage.fetch(location)


def local_manifest_dir(storage, location: str) -> Path:
    """A local directory holding just the `manifest.json` of the stored model version at `location` (reading
    the manifest of a remote version without downloading its weights)."""
    if storage.is_local:
        return Path(location)
    from upath import UPath

    return storage.fetch(str(UPath(location) / "manifest.json")).parent


def checkpointing(storage, asset: str, every: int, context: dg.AssetExecutionContext):
    """Training checkpoints of `asset` under `checkpoints/<asset>/`, every `every` steps, logged to Dagster.

    Always on local disk (with a remote storage root, in the staging area): resuming needs this machine's files.
    """
    from wavefin_core.models.checkpoint import Checkpointing

    return Checkpointing(storage.workdir("checkpoints", asset), every, log=context.log.info)


def prune_model_versions(context: dg.AssetExecutionContext, current, keep: int) -> None:
    """Keep the `keep` newest local versions next to `current` (the one just written), logging what is deleted."""
    from wavefin_core.models.versions import prune_versions

    for old in prune_versions(Path(current).parent, keep, current):
        context.log.info(f"deleted old model version {old} (keep_versions={keep})")


def manifest_of_this_run(context: dg.AssetExecutionContext, manifest: dict) -> dict:
    """The upstream model manifest written by *this* run when it materialized the model, else `manifest`.

    The IO manager keeps one (the latest) manifest per asset, so when another run trains the same model between
    this run's training and sampling steps, the loaded manifest would name that run's weights. Each model
    version directory holds its own manifest, so this run's is found by its run id (on any storage: `path` is a
    local path or a URL).
    """
    import json

    from wavefin_assets.resources import as_upath
    from wavefin_core.errors import DataError

    own = as_upath(manifest["path"]).parent / context.run_id / "manifest.json"
    if not own.is_file():
        return manifest
    try:
        return json.loads(own.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{own} is not valid JSON ({exc}); delete that model version and retrain it.") from exc
