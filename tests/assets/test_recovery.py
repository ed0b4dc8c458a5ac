"""Start-up recovery on a real (sqlite) Dagster instance and MLflow store: stale runs, pool slots, temp files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import dagster as dg
import pytest

from wavefin_assets.recovery import (
    GPU_POOL,
    HOST_TAG,
    INSTANCE_YAML,
    PID_TAG,
    announce_blocked_steps,
    configure_pools,
    recover_crashed_runs,
    write_instance_config,
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def shared_instance(tmp_path_factory) -> dg.DagsterInstance:
    home = tmp_path_factory.mktemp("dagster_home")
    write_instance_config(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        configure_pools(instance)
        yield instance


@pytest.fixture
def instance(shared_instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """One sqlite instance for the module (creating one is slow); each test leaves the gpu pool empty."""
    yield shared_instance
    storage = shared_instance.event_log_storage
    for run_id in storage.get_concurrency_run_ids():
        storage.free_concurrency_slots_for_run(run_id)


def _started_run(instance: dg.DagsterInstance, pid: int, host: str | None = None) -> str:
    run_id = str(uuid.uuid4())
    tags = {PID_TAG: str(pid), HOST_TAG: host or socket.gethostname()}
    instance.add_run(dg.DagsterRun(job_name="retrain", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags))
    return run_id


def _claim(instance: dg.DagsterInstance, run_id: str, step: str = "diffusion_model") -> bool:
    return instance.event_log_storage.claim_concurrency_slot(GPU_POOL, run_id, step, 0).is_claimed


def test_instance_config_limits_only_the_gpu_pool(tmp_path, instance):
    assert "default_limit" not in INSTANCE_YAML  # a default limit would throttle every future pool too
    limits = {pool.name: pool.limit for pool in instance.event_log_storage.get_pool_limits()}
    assert limits == {GPU_POOL: 1}
    assert instance.event_log_storage.get_concurrency_info("some_future_pool").limit is None
    # The file the Makefile used to write (default_limit: 1) is replaced; a user's own file is kept.
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "dagster.yaml").write_text("concurrency:\n  pools:\n    default_limit: 1\ntelemetry:\n  enabled: false\n")
    assert write_instance_config(legacy).read_text() == INSTANCE_YAML
    own = tmp_path / "own"
    own.mkdir()
    (own / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    assert write_instance_config(own).read_text() == "telemetry:\n  enabled: true\n"


def test_dead_holder_is_failed_and_its_slot_freed_live_and_remote_runs_are_not(instance):
    dead = _started_run(instance, _dead_pid())
    alive = _started_run(instance, os.getpid())
    remote = _started_run(instance, _dead_pid(), host="another-host")
    assert _claim(instance, dead)
    assert not _claim(instance, alive)  # blocked behind the dead run: the freeze of issue 6

    # While it waits, the blocked run is told at INFO who holds the slot (in its run log).
    assert alive in announce_blocked_steps(instance)
    (told,) = [e.message for e in instance.all_logs(alive) if "is waiting for a slot of pool `gpu`" in e.message]
    assert f"held by run {dead}" in told and "gone" in told

    messages: list[str] = []
    recovered = recover_crashed_runs(instance, log=messages.append)

    assert [item.run.run_id for item in recovered] == [dead]
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive).status == dg.DagsterRunStatus.STARTED
    assert instance.get_run_by_id(remote).status == dg.DagsterRunStatus.STARTED
    assert any(dead in m and "freed its pool slots" in m for m in messages)
    failure = instance.all_logs(dead, of_type=dg.DagsterEventType.RUN_FAILURE)[-1]
    assert "is gone" in failure.message
    assert _claim(instance, alive)  # the slot is free again
    instance.event_log_storage.free_concurrency_slots_for_run(alive)


def test_slots_of_a_finished_run_are_freed(instance):
    run_id = _started_run(instance, os.getpid())
    assert _claim(instance, run_id, "forecasters")
    instance.report_run_failed(instance.get_run_by_id(run_id), "terminated from the UI")
    recover_crashed_runs(instance, log=lambda _: None)
    assert not instance.event_log_storage.get_concurrency_info(GPU_POOL).claimed_slots


def test_sensor_recovers_while_the_ui_runs(instance):
    from wavefin_assets.definitions import defs

    sensor = defs.resolve_sensor_def("free_crashed_runs")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    dead = _started_run(instance, _dead_pid())
    result = sensor(dg.build_sensor_context(instance=instance))
    assert result.skip_message.startswith("failed ")
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE


def test_mlflow_runs_of_dead_processes_are_marked_killed(tmp_path):
    from wavefin_assets import resources

    MLFLOW_PID, MLFLOW_HOST = resources.PID_TAG, resources.HOST_TAG
    tracking = resources.MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "a"))
    client = tracking.client()
    experiment = tracking.experiment_id()
    here = socket.gethostname()
    dead = client.create_run(experiment, tags={MLFLOW_PID: str(_dead_pid()), MLFLOW_HOST: here}).info.run_id
    alive = client.create_run(experiment, tags={MLFLOW_PID: str(os.getpid()), MLFLOW_HOST: here}).info.run_id
    elsewhere = client.create_run(experiment, tags={MLFLOW_PID: str(_dead_pid()), MLFLOW_HOST: "other"}).info.run_id
    untagged = client.create_run(experiment).info.run_id

    with tracking.start_run("next") as run:  # any start sweeps first
        assert client.get_run(run.run_id).data.tags[MLFLOW_PID] == str(os.getpid())

    status = {run_id: client.get_run(run_id).info.status for run_id in (dead, alive, elsewhere, untagged)}
    assert status == {dead: "KILLED", alive: "RUNNING", elsewhere: "RUNNING", untagged: "RUNNING"}
    assert "gone" in client.get_run(dead).data.tags["wavefin.killed"]
