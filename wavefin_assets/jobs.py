"""Jobs and schedules: per-series ingestion, and the weekly re-training of models and reports."""

from __future__ import annotations

import dagster as dg

from wavefin_assets.assets.common import MODEL_GROUP, REPORT_GROUP
from wavefin_assets.assets.data import DATA_GROUP
from wavefin_assets.partitions import series_partitions

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.groups(DATA_GROUP),
    partitions_def=series_partitions,
    description="raw_prices → scalograms for one series partition.",
)

retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.groups(MODEL_GROUP, REPORT_GROUP),
    description="Re-train every model on the materialized scalograms and rebuild the reports.",
)

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=retrain_job,
    cron_schedule="0 3 * * 1",  # Mondays 03:00 UTC, after the weekend's data has landed
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly re-training (stopped by default; turn it on in the UI).",
)
