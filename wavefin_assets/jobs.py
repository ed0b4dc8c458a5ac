"""Jobs, schedules and sensors: per-series ingestion, the daily data refresh, the weekly re-training, and the
crash clean-up sensor (the prices-directory sensor is in `wavefin_assets.sensors`)."""

from __future__ import annotations

import dagster as dg

from wavefin_assets.assets.common import MODEL_GROUP, REPORT_GROUP
from wavefin_assets.assets.data import DATA_GROUP
from wavefin_assets.partitions import (
    BUILTIN_SERIES,
    SERIES_PARTITIONS_NAME,
    scan_csv_series,
    series_partitions,
)

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


@dg.schedule(
    name="daily_data_refresh",
    job=ingest_job,
    cron_schedule="0 2 * * *",  # 02:00 UTC every day, an hour before the weekly retrain on Mondays
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily re-ingest of every registered series whose source exists (built-ins and the CSVs present "
    "in the prices directory); stopped by default, turn it on in the UI.",
)
def daily_data_refresh(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    """One `ingest` run per series partition. Partitions of removed or refused files are left out (they would
    only fail, every day): materializing one by hand says what is wrong."""
    registered = context.instance.get_dynamic_partitions(SERIES_PARTITIONS_NAME)
    available = {*BUILTIN_SERIES, *scan_csv_series().files}
    keys = [key for key in registered if key in available]
    skipped = sorted(set(registered) - available)
    if skipped:
        context.log.info(f"not refreshing {skipped}: their CSV is gone or refused")
    if not keys:
        return dg.SkipReason("no series partitions registered yet (the series_csv_sensor registers them)")
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [dg.RunRequest(run_key=f"{key}@{day}", partition_key=key) for key in keys]


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
