"""The code location loads the way `dagster dev` loads it, with every asset, check, job and schedule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

EXPECTED_ASSETS = {
    "raw_prices", "clean_prices", "segments", "scalograms", "diffusion_model", "synthetic_series",
    "generation_report", "forecasters", "forecast_report",
}


def test_definitions_validate_and_resolve_everything():
    from wavefin_assets.definitions import defs

    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert keys == EXPECTED_ASSETS
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"monotonic_unique_index", "no_nan", "positive_prices", "enough_rows"} <= checks
    retrain = defs.resolve_job_def("retrain")
    assert {n.name for n in retrain.nodes} >= {"diffusion_model", "forecasters", "forecast_report"}
    for name in ("weekly_retrain", "daily_data_refresh"):  # both off until a user switches them on
        assert defs.resolve_schedule_def(name).default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_job_def("ingest").partitions_def is not None
    # Fails crashed runs and frees their pool slots while the UI runs (tested in test_recovery.py).
    assert defs.resolve_sensor_def("free_crashed_runs").default_status == dg.DefaultSensorStatus.RUNNING
    # New CSVs become partitions by themselves (tested in test_sensors.py).
    assert defs.resolve_sensor_def("series_csv_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    # Reports follow their model only when the user turns automation on (tested in test_schedules.py).
    assert defs.resolve_sensor_def("wavefin_automation").default_status == dg.DefaultSensorStatus.STOPPED
    assert set(defs.resources) == {"io_manager", "mlflow", "device", "storage"}


def test_series_partitions_are_dynamic_and_builtins_registered_once():
    from tests.assets.conftest import series_instance
    from wavefin_assets.partitions import (
        BUILTIN_SERIES,
        SERIES_PARTITIONS_NAME,
        register_series,
        series_partition_keys,
        series_partitions,
    )

    assert isinstance(series_partitions, dg.DynamicPartitionsDefinition)
    assert series_partitions.name == SERIES_PARTITIONS_NAME == "series"
    assert BUILTIN_SERIES == ("mjd", "sp500", "planted")
    keys = series_partition_keys()
    assert keys[:3] == ["mjd", "sp500", "planted"]
    assert {"csv-good", "csv-noclose"} <= set(keys)

    instance = dg.DagsterInstance.ephemeral()
    assert set(register_series(instance)) == set(keys)
    assert register_series(instance) == []  # a second start adds nothing and renumbers nothing
    assert instance.get_dynamic_partitions(SERIES_PARTITIONS_NAME) == keys
    assert series_instance("csv-x").get_dynamic_partitions(SERIES_PARTITIONS_NAME)[-1] == "csv-x"


def test_the_dg_project_layout():
    """`[tool.dg]` names the defs folder, and the code location is what `load_from_defs_folder` builds from it."""
    import tomllib

    from wavefin_assets.definitions import defs

    config = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert config["tool"]["dg"]["directory_type"] == "project"
    assert config["tool"]["dg"]["project"]["defs_module"] == "wavefin_assets.defs"
    assert config["tool"]["dg"]["project"]["code_location_target_module"] == "wavefin_assets.definitions"
    assert config["tool"]["dagster"]["module_name"] == "wavefin_assets.definitions"
    defs_dir = Path(__file__).resolve().parents[2] / "wavefin_assets" / "defs"
    assert {"assets.py", "jobs.py", "sensors.py", "resources.py"} <= {p.name for p in defs_dir.glob("*.py")}
    assert defs.component_tree is not None  # built by load_from_defs_folder, not assembled by hand


def test_gpu_assets_are_tagged_for_the_gpu_pool():
    from wavefin_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for name in ("diffusion_model", "synthetic_series", "forecasters"):
        node = graph.get(dg.AssetKey(name))
        assert node.pools == {"gpu"}
        assert "pytorch" in node.kinds
        assets_def = defs.resolve_assets_def(name)
        op_tags = assets_def.op.tags
        assert "nvidia.com/gpu" in str(op_tags.get("dagster-k8s/config"))


def test_dagster_cli_loads_the_workspace(tmp_path):
    """The real loader (`dagster definitions validate`) reads workspace.yaml / pyproject like `dagster dev`."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(repo / "workspace.yaml")],
        cwd=repo, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_run_all_ingests_series_in_parallel_on_the_multiprocess_executor(tmp_path):
    """`make run`'s data stage: one run per series, side by side, steps in their own processes."""
    from wavefin_assets.partitions import register_series
    from wavefin_assets.run_all import ingest_in_parallel

    config = {"ops": {"raw_prices": {"config": {"days": 1, "freq": "minute", "seed": 3}}}}
    instance = dg.DagsterInstance.local_temp(str(tmp_path))  # persistent (execute_job needs one); see test_schedules
    try:
        register_series(instance)
        failed = ingest_in_parallel(instance, ["mjd", "csv-noclose"], config, parallel=2, assets=["raw_prices"])
        runs = instance.get_runs()
        assert failed == ["csv-noclose"]  # its error is printed; the others go on
        assert sorted(run.tags["dagster/partition"] for run in runs) == ["csv-noclose", "mjd"]
        for run in runs:
            messages = [entry.message for entry in instance.all_logs(run.run_id)]
            assert any("multiprocess executor" in m for m in messages)
            assert any("in subprocess" in m for m in messages)
    finally:
        instance.dispose()
