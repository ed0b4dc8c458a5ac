"""The prices-directory sensor, evaluated tick by tick with Dagster's `build_sensor_context` on a real instance.

Between ticks the test applies the tick's partition requests to the instance itself, as the daemon does.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from wavefin_assets.partitions import SERIES_PARTITIONS_NAME
from wavefin_assets.sensors import SETTLE_SECONDS, series_csv_sensor

CSV = "Date,Close,Volume\n2021-01-01,100,10\n2021-01-02,101,10\n2021-01-03,102,10\n"


def _write(path: Path, text: str = CSV, age_s: float = 2 * SETTLE_SECONDS) -> Path:
    """A CSV whose last write was `age_s` ago (older than the settle time: the sensor takes it)."""
    path.write_text(text)
    past = time.time() - age_s
    os.utime(path, (past, past))
    return path


class Ticks:
    """Runs the sensor against one instance, keeping its cursor and applying its partition requests."""

    def __init__(self) -> None:
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor: str | None = None

    def tick(self) -> dg.SensorResult | dg.SkipReason:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        result = series_csv_sensor(context)
        if isinstance(result, dg.SensorResult):
            for request in result.dynamic_partitions_requests or []:
                assert isinstance(request, dg.AddDynamicPartitionsRequest)  # never a delete
                self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            self.cursor = result.cursor
        return result

    def partitions(self) -> list[str]:
        return self.instance.get_dynamic_partitions(SERIES_PARTITIONS_NAME)


@pytest.fixture
def prices(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "prices"
    directory.mkdir()
    monkeypatch.setenv("WAVEFIN_PRICES_DIR", str(directory))
    return directory


def _requested(result) -> dict[str, str]:
    assert isinstance(result, dg.SensorResult), result
    return {request.partition_key: request.run_key for request in result.run_requests}


def test_first_tick_registers_builtins_and_csvs_and_requests_their_ingest(prices):
    _write(prices / "eurusd.csv")
    _write(prices / "My Ticker.csv")
    ticks = Ticks()

    result = ticks.tick()

    assert ticks.partitions() == ["mjd", "sp500", "planted", "csv-My_Ticker", "csv-eurusd"]
    assert set(_requested(result)) == {"csv-My_Ticker", "csv-eurusd"}  # built-ins are registered, not run
    assert all(request.job_name in (None, "ingest") for request in result.run_requests)
    assert series_csv_sensor.job_name == "ingest"
    # Nothing changed: the next tick skips, and asks for nothing twice.
    assert isinstance(ticks.tick(), dg.SkipReason)


def test_new_and_changed_files_are_ingested_and_keys_never_renumbered(prices):
    _write(prices / "a.csv")
    ticks = Ticks()
    first = _requested(ticks.tick())
    _write(prices / "b.csv")
    assert set(_requested(ticks.tick())) == {"csv-b"}
    # A new version of a.csv (new content, new modification time) is ingested again, under the same key.
    _write(prices / "a.csv", CSV + "2021-01-04,103,10\n", age_s=SETTLE_SECONDS + 5)
    again = _requested(ticks.tick())
    assert set(again) == {"csv-a"} and again["csv-a"] != first["csv-a"]
    assert ticks.partitions() == ["mjd", "sp500", "planted", "csv-a", "csv-b"]


def test_a_file_still_being_written_waits_for_a_later_tick(prices):
    _write(prices / "fresh.csv", age_s=0)
    ticks = Ticks()
    result = ticks.tick()
    assert "csv-fresh" not in ticks.partitions()
    assert not isinstance(result, dg.SensorResult) or "csv-fresh" not in _requested(result)
    _write(prices / "fresh.csv")  # settled
    assert set(_requested(ticks.tick())) == {"csv-fresh"}


def test_colliding_names_and_links_out_are_refused_naming_the_files(prices, tmp_path):
    _write(prices / "a b.csv")
    _write(prices / "a_b.csv")
    outside = _write(tmp_path / "elsewhere.csv")
    (prices / "linked.csv").symlink_to(outside)
    ticks = Ticks()

    result = ticks.tick()

    assert ticks.partitions() == ["mjd", "sp500", "planted"]  # nothing registered, nothing run
    assert not isinstance(result, dg.SensorResult) or not result.run_requests
    from wavefin_assets.sensors import plan_tick

    refused = plan_tick(set(ticks.partitions()), {}).refused
    assert "'a b.csv'" in refused["csv-a_b"] and "'a_b.csv'" in refused["csv-a_b"] and "Rename" in refused["csv-a_b"]
    assert "outside the prices directory" in refused["csv-linked"] and "Copy the file" in refused["csv-linked"]
    # The refusal is said once (remembered in the cursor), not every tick.
    assert "refused:csv-a_b" in json.loads(ticks.cursor)


def test_a_collision_after_registration_keeps_the_key_and_fails_naming_both(prices):
    from wavefin_assets.partitions import scan_csv_series
    from wavefin_core.errors import DataError

    _write(prices / "a_b.csv")
    ticks = Ticks()
    ticks.tick()
    _write(prices / "a b.csv")
    ticks.tick()
    assert "csv-a_b" in ticks.partitions()
    with pytest.raises(DataError, match="'a b.csv' and 'a_b.csv'"):
        scan_csv_series().path_for("csv-a_b")


def test_a_removed_file_keeps_its_partition_and_fails_clearly(prices):
    from tests.assets.conftest import TINY_DATA_CONFIG
    from wavefin_assets.definitions import defs

    _write(prices / "gone.csv")
    ticks = Ticks()
    ticks.tick()
    (prices / "gone.csv").unlink()

    assert isinstance(ticks.tick(), dg.SkipReason)
    assert "csv-gone" in ticks.partitions()
    result = dg.materialize(
        list(defs.assets), selection=["raw_prices"], partition_key="csv-gone", instance=ticks.instance,
        resources=defs.resources, run_config={"ops": {"raw_prices": TINY_DATA_CONFIG["ops"]["raw_prices"]}},
        raise_on_error=False,
    )
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    message = failure.step_failure_data.error.to_string()
    assert "DataError" in message and "no CSV" in message and "'gone.csv'" in message
    assert "partition and its history are kept" in message
