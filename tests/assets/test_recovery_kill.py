"""A real crash: `kill -9` of `make run` mid-training, then Ctrl-C of the next one, then a run that completes.

One scenario, because each `run_all` subprocess pays the imports (dagster, torch, mlflow) once:
1. run A is killed with SIGKILL while `diffusion_model` trains: its Dagster run stays STARTED, holding the `gpu`
   slot, and its MLflow run stays RUNNING (what used to freeze every later run);
2. run B starts: it fails A's run, frees the slot, marks A's MLflow run KILLED, removes A's orphaned temporary
   file, gets the slot and trains; then it gets SIGINT and exits promptly, its own run failed, not STARTED;
3. run C (in this process) starts on the same instance and completes (`diffusion_model`, the GPU step).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import torch
import yaml

from wavefin_core.io import host_tag

TINY = {
    "ops": {
        "raw_prices": {"config": {"days": 1, "freq": "minute", "seed": 3}},
        "segments": {"config": {"window": 32, "stride": 8}},
        "scalograms": {"config": {"num_scales": 16}},
        # Trains "forever" unless interrupted; run C overrides max_steps.
        "diffusion_model": {"config": {"block_out_channels": [8, 16], "batch_size": 16, "epochs": 100000,
                                       "max_steps": 100000}},
        "synthetic_series": {"config": {"n_samples": 24, "num_inference_steps": 2, "benchmark_samplers": False}},
        "generation_report": {"config": {"discriminative_seeds": 2, "predictive_seeds": 1, "classifier_steps": 20,
                                         "augmentation_seeds": 0}},
        "forecasters": {"config": {"epochs": 1, "batch_size": 32}},
    }
}
TRAINING_STARTED = "step 1/"


def _environment(root: Path) -> dict[str, str]:
    storage = root / "storage"
    (root / "prices").mkdir(exist_ok=True)
    return {
        "WAVEFIN_STORAGE": str(storage),
        "DAGSTER_HOME": str(storage / "dagster_home"),
        "WAVEFIN_PRICES_DIR": str(root / "prices"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{storage / 'mlflow' / 'mlflow.db'}",
        "WAVEFIN_MLFLOW_ARTIFACTS": str(storage / "mlflow" / "artifacts"),
        "WAVEFIN_DEVICE": "cpu",
        "WAVEFIN_PROFILE": "quick",
        # one intra-op torch thread in the run_all processes: on a busy 2-core machine torch's threads spin
        # and a tiny diffusion step took 5 s instead of 0.3 s (interleaved A/B; see tests/assets/conftest.py)
        "OMP_NUM_THREADS": "1",
    }


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    repo = Path(__file__).resolve().parents[2]
    return subprocess.Popen(
        [sys.executable, "-m", "wavefin_assets.run_all", *args], cwd=repo, env={**os.environ, **env},
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )


def _wait_for(proc: subprocess.Popen, log: Path, text: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        if proc.poll() is not None:
            pytest.fail(f"run_all exited ({proc.returncode}) before {text!r}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no {text!r} within {timeout}s:\n{log.read_text()[-3000:]}")


def _runs(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    return [r for r in instance.get_runs() if r.job_name == job]


def test_killed_run_is_recovered_on_next_start_and_ctrl_c_stops_cleanly(tmp_path, monkeypatch):
    env = _environment(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))

    # 1. SIGKILL mid-training.
    log_a = tmp_path / "a.log"
    run_a = _start(["--series", "mjd", "--config", str(config)], env, log_a)
    _wait_for(run_a, log_a, TRAINING_STARTED)
    run_a.send_signal(signal.SIGKILL)
    run_a.wait()
    # A killed IO write leaves a torn temporary file named after its (now dead) writer.
    orphan = Path(env["WAVEFIN_STORAGE"]) / "io" / "raw_prices" / f".mjd.parquet.tmp-{run_a.pid}-{host_tag()}-0badf00d"
    orphan.write_bytes(b"PAR1 torn")

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (stale,) = _runs(instance, "retrain")
        assert stale.status == dg.DagsterRunStatus.STARTED  # what a crash leaves
        holders = instance.event_log_storage.get_concurrency_info("gpu").claimed_slots
        assert [slot.run_id for slot in holders] == [stale.run_id]
        assert instance.event_log_storage.get_concurrency_info("other-pool").limit is None  # only gpu is limited

    # 2. The next start recovers, gets the slot, trains; Ctrl-C stops it promptly.
    log_b = tmp_path / "b.log"
    run_b = _start(["--series", "mjd", "--models-only", "--config", str(config)], env, log_b)
    _wait_for(run_b, log_b, TRAINING_STARTED)
    interrupted_at = time.monotonic()
    run_b.send_signal(signal.SIGINT)
    assert run_b.wait(timeout=60) == 130, log_b.read_text()[-3000:]
    assert time.monotonic() - interrupted_at < 30
    output_b = log_b.read_text()
    assert f"Recovered run {stale.run_id}" in output_b and "is gone" in output_b
    assert "KILLED" in output_b
    assert f"Cleaned up after an interrupted write: {orphan}" in output_b and not orphan.exists()

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = {r.run_id: r for r in _runs(instance, "retrain")}
        assert runs[stale.run_id].status == dg.DagsterRunStatus.FAILURE
        (interrupted,) = [r for r in runs.values() if r.run_id != stale.run_id]
        assert interrupted.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
        assert not instance.event_log_storage.get_concurrency_info("gpu").claimed_slots

    # The MLflow run of the killed process is KILLED; the interrupted one FAILED (it saw the interrupt).
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    statuses = {r.info.run_id: (r.info.status, r.data.tags.get("wavefin.pid"))
                for r in client.search_runs(client.get_experiment_by_name("wavefin").experiment_id)}
    assert sorted(status for status, _ in statuses.values()) == ["FAILED", "KILLED"]
    assert [pid for status, pid in statuses.values() if status == "KILLED"] == [str(run_a.pid)]

    # 3. A third start on the same instance completes (in this process: the imports are paid already).
    from wavefin_assets import run_all

    TINY["ops"]["diffusion_model"]["config"]["max_steps"] = 4
    config.write_text(yaml.safe_dump(TINY))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what OMP_NUM_THREADS=1 does for runs A and B, in this process
    try:
        # The GPU step that was blocked before issue 6's fix; the rest of the model job is tested elsewhere.
        args = ["--series", "mjd", "--models-only", "--assets", "diffusion_model", "--config", str(config)]
        assert run_all.main(args) == 0
    finally:
        torch.set_num_threads(threads)
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        statuses = [r.status for r in _runs(instance, "retrain")]
        assert dg.DagsterRunStatus.SUCCESS in statuses
        assert not [s for s in statuses if s in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING)]
        assert not instance.event_log_storage.get_concurrency_info("gpu").claimed_slots
