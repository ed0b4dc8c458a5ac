"""The Dagster code location: every asset, check, job, schedule and resource of wavefin."""

from __future__ import annotations

import dagster as dg

from wavefin_assets.assets import data, forecasting, generation
from wavefin_assets.io_manager import default_io_manager
from wavefin_assets.jobs import free_crashed_runs, ingest_job, retrain_job, weekly_retrain
from wavefin_assets.resources import DeviceResource, StorageResource, default_mlflow, storage_root

ALL_ASSETS = [
    data.raw_prices,
    data.clean_prices,
    data.segments,
    data.scalograms,
    generation.diffusion_model,
    generation.synthetic_series,
    generation.generation_report,
    forecasting.forecasters,
    forecasting.forecast_report,
]


def build_resources() -> dict[str, object]:
    """Resources from the environment: `WAVEFIN_STORAGE`, `MLFLOW_TRACKING_URI`, `WAVEFIN_DEVICE`."""
    import os

    return {
        "io_manager": default_io_manager(),
        "mlflow": default_mlflow(),
        "device": DeviceResource(preference=os.environ.get("WAVEFIN_DEVICE", "auto")),
        "storage": StorageResource(root=str(storage_root())),
    }


def build_defs() -> dg.Definitions:
    """The code location, with resources read from the environment now (run_all and tests build their own)."""
    return dg.Definitions(
        assets=ALL_ASSETS,
        jobs=[ingest_job, retrain_job],
        schedules=[weekly_retrain],
        sensors=[free_crashed_runs],
        resources=build_resources(),
    )


defs = build_defs()
