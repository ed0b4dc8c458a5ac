"""Jobs, schedules and sensors: per-series ingestion, the weekly re-training, and the crash clean-up sensor."""

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


@dg.sensor(
    name="free_crashed_runs",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 30 s while the UI runs: fails runs whose process is gone (killed, crashed) and frees their "
    "pool slots, and tells steps waiting for a `gpu` slot (at INFO, in their run log) which run holds it.",
)
def free_crashed_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    from wavefin_assets.recovery import announce_blocked_steps, recover_crashed_runs

    recovered = recover_crashed_runs(context.instance, log=context.log.info)
    told = announce_blocked_steps(context.instance)
    return dg.SkipReason(
        f"failed {len(recovered)} run(s) whose process was gone; {len(told)} run(s) waiting for a gpu slot"
    )
