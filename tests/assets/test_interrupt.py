"""Ctrl-C during `make run`'s parallel ingest (one run per series, each on the multiprocess executor).

A terminal's Ctrl-C sends SIGINT to the whole foreground process group: `run_all`, its worker processes, the
forkserver and the step processes. The test starts `run_all` in a process group of its own and signals that
group, as the terminal would, once the ingest runs are going. Then: the process exits promptly with 130 and
says what happened, no ingest run is left unfinished, no process of the group is left behind, nothing
half-written is in storage, and a re-run completes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml
from dagster._core.storage.dagster_run import RunsFilter

from tests.assets.conftest import TINY_DATA_CONFIG
from tests.assets.test_recovery_kill import _environment, _wait_for
from wavefin_assets.recovery import UNFINISHED
from wavefin_core.io import find_leftovers

SERIES = ["mjd", "sp500"]


def _start_in_own_group(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    repo = Path(__file__).resolve().parents[2]
    return subprocess.Popen([sys.executable, "-m", "wavefin_assets.run_all", *args], cwd=repo,
                            env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait_for_a_started_run(home: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.from_config(home) as instance:
        while time.monotonic() < deadline:
            if instance.get_runs(RunsFilter(job_name="ingest", statuses=[dg.DagsterRunStatus.STARTED])):
                return
            if proc.poll() is not None:
                pytest.fail(f"run_all exited ({proc.returncode}) before an ingest run started:\n"
                            f"{log.read_text()[-3000:]}")
            time.sleep(0.2)
    pytest.fail(f"no ingest run started within {timeout}s:\n{log.read_text()[-3000:]}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return True
        time.sleep(0.1)
    return False


def _check_stored_files_whole(storage: Path) -> None:
    """Every stored value opens: a Parquet file with its footer, a JSON document that parses."""
    for path in (storage / "io").rglob("*"):
        if path.suffix == ".parquet":
            pq.read_metadata(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())


def test_ctrl_c_during_parallel_ingest_stops_cleanly_and_a_rerun_completes(tmp_path, monkeypatch):
    env = _environment(tmp_path)
    storage = Path(env["WAVEFIN_STORAGE"])
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_DATA_CONFIG))
    args = ["--series", ",".join(SERIES), "--data-only", "--config", str(config)]

    log = tmp_path / "interrupted.log"
    proc = _start_in_own_group([*args, "--parallel", "2"], env, log)  # forced: 2 cores default to sequential
    try:
        _wait_for(proc, log, "at a time (multiprocess executor)")
        _wait_for_a_started_run(env["DAGSTER_HOME"], proc, log)
        interrupted_at = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        code = proc.wait(timeout=60)
        stopped_after = time.monotonic() - interrupted_at
        group_gone = _wait_group_gone(proc.pid, timeout=15)
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    output = log.read_text()
    assert code == 130, output[-3000:]
    assert stopped_after < 20, f"took {stopped_after:.1f}s to stop"
    assert "Interrupted: stopped" in output and "Rerun `make run`" in output, output[-3000:]
    assert group_gone, "a worker, step or forkserver process outlived run_all"

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs(RunsFilter(job_name="ingest"))
        assert runs, output[-3000:]
        assert not [(r.run_id, r.status) for r in runs if r.status in UNFINISHED]
        assert not instance.event_log_storage.get_concurrency_run_ids()  # no pool slot left claimed
    assert not find_leftovers(storage)  # no temporary file of an interrupted write
    _check_stored_files_whole(storage)

    # The re-run (sequential, in this process: the imports are paid already) completes every series.
    from wavefin_assets import run_all

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        assert run_all.main([*args, "--parallel", "1"]) == 0
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for key in SERIES:
            assert instance.get_latest_materialization_event(dg.AssetKey("scalograms")) is not None
            latest = instance.get_runs(RunsFilter(job_name="ingest", tags={"dagster/partition": key}), limit=1)
            assert latest[0].status == dg.DagsterRunStatus.SUCCESS, key
    for key in SERIES:
        assert pq.read_table(storage / "io" / "scalograms" / f"{key}.parquet").num_rows > 0
    assert not find_leftovers(storage)
