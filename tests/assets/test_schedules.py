"""Schedules (with `build_schedule_context`) and the reports' automation condition (with
`evaluate_automation_conditions`), on real instances.

Materializations are reported to the instance as runless events: what the conditions read is the event log,
and training real models here would only make the test slow.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import pytest

from wavefin_assets.partitions import SERIES_PARTITIONS_NAME


@contextmanager
def _instance_on_disk() -> Iterator[dg.DagsterInstance]:
    """A schedule context needs an instance with a ref (on disk). Not `instance_for_test`: entering an instance
    as a context manager leaves its defs-state storage set as current after it is disposed (Dagster 1.13), and
    the next Definitions resolved in this process then fails on the dead instance."""
    with tempfile.TemporaryDirectory() as tmp:
        instance = dg.DagsterInstance.local_temp(tmp)
        try:
            yield instance
        finally:
            instance.dispose()


@pytest.fixture
def prices(tmp_path, monkeypatch):
    directory = tmp_path / "prices"
    directory.mkdir()
    monkeypatch.setenv("WAVEFIN_PRICES_DIR", str(directory))
    return directory


def test_daily_refresh_ingests_every_series_with_a_source(prices):
    from wavefin_assets.jobs import daily_data_refresh

    when = dt.datetime(2026, 3, 4, 2, 0, tzinfo=dt.timezone.utc)
    with _instance_on_disk() as instance:
        skipped = daily_data_refresh(dg.build_schedule_context(instance=instance, scheduled_execution_time=when))
        assert isinstance(skipped, dg.SkipReason)  # nothing registered yet

        (prices / "kept.csv").write_text("Date,Close\n2021-01-01,1\n")
        instance.add_dynamic_partitions(SERIES_PARTITIONS_NAME, ["mjd", "sp500", "planted", "csv-kept", "csv-gone"])
        requests = daily_data_refresh(dg.build_schedule_context(instance=instance, scheduled_execution_time=when))

    # csv-gone's file was removed: its partition stays, but a daily run would only fail, so it is left out.
    assert [r.partition_key for r in requests] == ["mjd", "sp500", "planted", "csv-kept"]
    assert {r.run_key for r in requests} == {f"{k}@2026-03-04" for k in ("mjd", "sp500", "planted", "csv-kept")}
    assert daily_data_refresh.job_name == "ingest"
    assert daily_data_refresh.cron_schedule == "0 2 * * *"
    assert daily_data_refresh.default_status == dg.DefaultScheduleStatus.STOPPED


def test_weekly_retrain_requests_the_retrain_job():
    from wavefin_assets.jobs import weekly_retrain

    with _instance_on_disk() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.timezone.utc),
        )  # a Monday
        (request,) = weekly_retrain.evaluate_tick(context).run_requests
    assert weekly_retrain.job_name == "retrain" and request.partition_key is None
    assert weekly_retrain.cron_schedule == "0 3 * * 1"
    assert weekly_retrain.default_status == dg.DefaultScheduleStatus.STOPPED


def _requested(result: dg.EvaluateAutomationConditionsResult) -> set[str]:
    from tests.assets.test_definitions import EXPECTED_ASSETS

    return {name for name in EXPECTED_ASSETS if result.get_num_requested(dg.AssetKey(name))}


# dagster's own AutomationConditionTester passes a beta parameter to AssetSelection.all (not our code)
@pytest.mark.filterwarnings("ignore:Parameter `include_sources` of function `AssetSelection.all`")
def test_reports_follow_their_model():
    from wavefin_assets.definitions import defs
    from wavefin_assets.defs.assets import FOLLOW_MODELS, FOLLOWERS

    graph = defs.resolve_asset_graph()
    for name in FOLLOWERS:
        assert graph.get(dg.AssetKey(name)).automation_condition == FOLLOW_MODELS
    assert graph.get(dg.AssetKey("diffusion_model")).automation_condition is None  # models train on demand

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SERIES_PARTITIONS_NAME, ["mjd"])

    def materialized(*names: str) -> None:
        for name in names:
            partition = "mjd" if name == "scalograms" else None
            instance.report_runless_asset_event(dg.AssetMaterialization(name, partition=partition))

    def tick(cursor=None) -> dg.EvaluateAutomationConditionsResult:
        return dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)

    # Nothing trained yet: the followers are missing, but so are their models, so nothing runs.
    result = tick()
    assert _requested(result) == set()
    # A full `retrain` run: models and reports together. Nothing is run a second time.
    materialized("scalograms", "diffusion_model", "synthetic_series", "generation_report", "forecasters",
                 "forecast_report")
    result = tick(result.cursor)
    assert _requested(result) == set()
    # diffusion_model retrained on its own: its samples and their report follow, in one run (a dependency
    # requested on the same tick counts as updated), and once they are done nothing more runs.
    materialized("diffusion_model")
    result = tick(result.cursor)
    assert _requested(result) == {"synthetic_series", "generation_report"}
    materialized("synthetic_series", "generation_report")
    result = tick(result.cursor)
    assert _requested(result) == set()
    # forecasters retrained: only its report follows.
    materialized("forecasters")
    result = tick(result.cursor)
    assert _requested(result) == {"forecast_report"}
    # New data alone re-runs no report (the models that would change are retrained by retrain / the schedule).
    materialized("forecast_report", "scalograms")
    result = tick(result.cursor)
    assert _requested(result) == set()
