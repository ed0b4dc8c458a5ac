"""Jobs and schedules: `ingest` (per series), `retrain`, `daily_data_refresh` and `weekly_retrain` (both stopped
by default)."""

from __future__ import annotations

import dagster as dg

from wavefin_assets.jobs import daily_data_refresh, ingest_job, retrain_job, weekly_retrain

defs = dg.Definitions(jobs=[ingest_job, retrain_job], schedules=[daily_data_refresh, weekly_retrain])
