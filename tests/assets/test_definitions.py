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
    schedule = defs.resolve_schedule_def("weekly_retrain")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_job_def("ingest").partitions_def is not None
    # Fails crashed runs and frees their pool slots while the UI runs (tested in test_recovery.py).
    assert defs.resolve_sensor_def("free_crashed_runs").default_status == dg.DefaultSensorStatus.RUNNING


def test_series_partitions_include_builtins_and_user_csvs():
    from wavefin_assets.partitions import series_partitions

    keys = series_partitions.get_partition_keys()
    assert keys[:2] == ["mjd", "sp500"]
    assert {"csv-good", "csv-noclose"} <= set(keys)


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
