"""Sensors: the prices-directory sensor (running), the crash clean-up sensor (running), and the automation
sensor that evaluates `FOLLOW_MODELS` (stopped by default: turn `wavefin_automation` on in the UI's
Automation tab to have reports follow their models)."""

from __future__ import annotations

import dagster as dg

from wavefin_assets.defs.assets import FOLLOWERS
from wavefin_assets.jobs import free_crashed_runs
from wavefin_assets.sensors import series_csv_sensor

AUTOMATION_SENSOR_NAME = "wavefin_automation"

# An explicit automation sensor instead of Dagster's implicit `default_automation_condition_sensor`, so that it
# has a stable name and is off until a user switches it on.
wavefin_automation = dg.AutomationConditionSensorDefinition(
    AUTOMATION_SENSOR_NAME,
    target=dg.AssetSelection.assets(*FOLLOWERS),
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Evaluates the automation conditions of synthetic_series, generation_report and forecast_report: "
    "each re-runs after the model it reads is re-materialized. Stopped by default.",
)

defs = dg.Definitions(sensors=[series_csv_sensor, free_crashed_runs, wavefin_automation])
