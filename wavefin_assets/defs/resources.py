"""Resources, built when the code location loads (not when a module is imported).

Settings that users change through the environment are passed as `dg.EnvVar` when they are set, so Dagster
resolves them in the process that runs the step (a run launched on another machine or pod reads its own
environment) and the UI shows which variable a value comes from; unset, the defaults apply.
"""

from __future__ import annotations

import os

import dagster as dg


def env_or(name: str, default: str) -> str | dg.EnvVar:
    """`dg.EnvVar(name)` when the variable is set, else `default` (an EnvVar cannot carry a default)."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def build_resources() -> dict[str, object]:
    """The resources of every asset: IO manager, MLflow, torch device, storage paths."""
    from wavefin_assets.io_manager import default_io_manager
    from wavefin_assets.resources import DeviceResource, StorageResource, default_mlflow, storage_root

    return {
        "io_manager": default_io_manager(),
        "mlflow": default_mlflow(),
        "device": DeviceResource(preference=env_or("WAVEFIN_DEVICE", "auto")),
        "storage": StorageResource(root=env_or("WAVEFIN_STORAGE", str(storage_root()))),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
