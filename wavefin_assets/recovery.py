"""After a crash: fail the Dagster runs whose process is gone, free their pool slots, and say who holds a slot.

A run executed in a process that is then killed (`kill -9`, the OOM killer, a closed laptop) stays STARTED in
Dagster's run storage forever, and the `gpu` pool slot its step claimed stays taken: every later GPU step then
waits for a slot that nobody will ever free. Dagster's run monitoring cannot see this for local runs (the default
run launcher has no worker health check, and `make run` executes in-process with no launcher at all), so wavefin
checks on every start (`make run`, `make ui`, and the `free_crashed_runs` sensor while the UI runs):

- a run is *stale* when it is unfinished and the process that executed it is gone from this host: the pid comes
  from the `wavefin/pid` and `wavefin/host` tags `make run` sets, or from the "Started process for run (pid: N)"
  event Dagster's local run launcher writes. Runs of other hosts, or without a known pid, are never touched;
- a stale run is reported as failed (with the reason in its log), and its pool slots are freed;
- slots still held by finished runs are freed too (e.g. a run terminated from the UI while it was stuck).

`make recover` (`python -m wavefin_assets.recovery`) runs the same checks by hand; `make ui` runs it before
`dagster dev`.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.storage.dagster_run import FINISHED_STATUSES, RunsFilter

from wavefin_core.io import process_alive, remove_orphans

if TYPE_CHECKING:
    from upath import UPath

GPU_POOL = "gpu"
GPU_POOL_LIMIT = 1  # DESIGN: one GPU step at a time per instance
PID_TAG = "wavefin/pid"
HOST_TAG = "wavefin/host"
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
HOW_TO_FREE = (
    "A holder whose process is gone is failed and freed automatically (within seconds by a waiting `make run`, "
    "within 30 s by the UI's free_crashed_runs sensor, at once by `make recover`). "
    "If it is alive, wait for it, or stop it: Ctrl-C in its terminal, or Terminate in the Dagster UI (Runs → "
    "the run), then free its slots there if needed (Deployment → Concurrency → gpu)."
)

# The instance settings wavefin writes into $DAGSTER_HOME/dagster.yaml (`make run` / `make ui`). Pool limits live
# in the instance's database, not here: `configure_pools` limits the `gpu` pool only (a `default_limit` would
# throttle every future pool too). Run monitoring fails runs stuck STARTING and frees slots of ended runs.
INSTANCE_YAML = """\
# Written by wavefin (wavefin_assets/recovery.py). Delete this first line to keep your own edits.
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  free_slots_after_run_end_seconds: 30
telemetry:
  enabled: false
"""
_MANAGED_MARK = INSTANCE_YAML.splitlines()[0]
_LEGACY_YAML = "concurrency:\n  pools:\n    default_limit: 1\ntelemetry:\n  enabled: false\n"


def process_tags() -> dict[str, str]:
    """Run tags naming this process, so a later start can tell whether the run's process is gone."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def write_instance_config(dagster_home: str | Path) -> Path:
    """Write wavefin's dagster.yaml unless the user has their own (one without wavefin's first line)."""
    path = Path(dagster_home) / "dagster.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    current = path.read_text() if path.exists() else None
    if current is None or current == _LEGACY_YAML or current.startswith(_MANAGED_MARK):
        if current != INSTANCE_YAML:
            path.write_text(INSTANCE_YAML)
    return path


def configure_pools(instance: dg.DagsterInstance) -> None:
    """Limit the `gpu` pool to one step, unless someone set an explicit limit for it (e.g. a 2-GPU machine)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    limits = {pool.name: pool for pool in storage.get_pool_limits()}
    current = limits.get(GPU_POOL)
    if current is None or current.from_default:
        storage.set_concurrency_slots(GPU_POOL, GPU_POOL_LIMIT)


@dataclass(frozen=True)
class RunOwner:
    """The process that executes (or executed) a run."""

    pid: int
    host: str
    started_by: float | None = None  # the process existed at this Unix time (a later one reused the pid)

    def alive(self) -> bool:
        return self.local and process_alive(self.pid, started_by=self.started_by)

    @property
    def local(self) -> bool:
        return self.host == socket.gethostname()


def run_owner(instance: dg.DagsterInstance, run: dg.DagsterRun) -> RunOwner | None:
    """Which process runs `run`: from wavefin's tags, else from the local run launcher's pid event."""
    pid = run.tags.get(PID_TAG, "")
    if pid.isdigit():
        record = instance.get_run_record_by_id(run.run_id)
        created = record.create_timestamp.timestamp() if record and record.create_timestamp else None
        return RunOwner(int(pid), run.tags.get(HOST_TAG, ""), created)
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return None  # a remote launcher (Kubernetes, Docker): its own monitoring knows its workers
    events = instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
    for record in reversed(events):
        event = record.dagster_event
        data = event.engine_event_data if event is not None else None
        pid_value = data.metadata.get("pid") if data is not None else None
        if pid_value is not None and str(pid_value.value).isdigit():
            return RunOwner(int(pid_value.value), socket.gethostname(), record.timestamp)
    return None


@dataclass(frozen=True)
class StaleRun:
    run: dg.DagsterRun
    owner: RunOwner

    def describe(self) -> str:
        return (f"run {self.run.run_id} (job {self.run.job_name}, {self.run.status.value}): its process "
                f"{self.owner.pid} on {self.owner.host} is gone")


def find_stale_runs(instance: dg.DagsterInstance) -> list[StaleRun]:
    """Unfinished runs whose process on this host is gone (never a run of a live process or another host)."""
    stale = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=UNFINISHED)):
        owner = run_owner(instance, record.dagster_run)
        if owner is None or not owner.local:
            continue
        if not owner.alive():
            stale.append(StaleRun(record.dagster_run, owner))
    return stale


def recover_crashed_runs(instance: dg.DagsterInstance, log: Callable[[str], None] = print) -> list[StaleRun]:
    """Fail the stale runs, free their pool slots and those of finished runs; log each action; return them."""
    stale = find_stale_runs(instance)
    storage = instance.event_log_storage
    for item in stale:
        message = (f"wavefin: marked failed on the next start, because {item.describe()} "
                   "(killed, or the machine stopped). Its pool slots were freed.")
        instance.report_run_failed(item.run, message)
        if storage.supports_global_concurrency_limits:
            storage.free_concurrency_slots_for_run(item.run.run_id)
        log(f"Recovered {item.describe()}: marked it failed and freed its pool slots.")
    if storage.supports_global_concurrency_limits:
        for run_id in storage.get_concurrency_run_ids():
            run = instance.get_run_by_id(run_id)
            if run is None or run.status in FINISHED_STATUSES:
                storage.free_concurrency_slots_for_run(run_id)
                log(f"Freed the pool slots still held by finished run {run_id}.")
    return stale


@dataclass(frozen=True)
class SlotHolder:
    run_id: str
    step_key: str
    run: dg.DagsterRun | None
    owner: RunOwner | None

    def describe(self) -> str:
        if self.run is None:
            return f"run {self.run_id} (step {self.step_key}; no such run in this instance)"
        where = ""
        if self.owner is not None:
            alive = "alive" if self.owner.alive() else ("gone" if self.owner.local else "on another host")
            where = f", process {self.owner.pid} on {self.owner.host}: {alive}"
        return f"run {self.run_id} (job {self.run.job_name}, step {self.step_key}, {self.run.status.value}{where})"


def slot_holders(instance: dg.DagsterInstance, pool: str = GPU_POOL, exclude_run: str | None = None) -> list[SlotHolder]:
    """The runs that hold a slot of `pool` right now (other than `exclude_run`)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    info = storage.get_concurrency_info(pool)
    holders = []
    for slot in info.claimed_slots:
        if slot.run_id == exclude_run:
            continue
        run = instance.get_run_by_id(slot.run_id)
        holders.append(SlotHolder(slot.run_id, slot.step_key, run, run_owner(instance, run) if run else None))
    return holders


def pool_is_full(instance: dg.DagsterInstance, pool: str = GPU_POOL, exclude_run: str | None = None) -> bool:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return False
    info = storage.get_concurrency_info(pool)
    if info.limit is None:
        return False
    others = [slot for slot in info.claimed_slots if slot.run_id != exclude_run]
    return len(others) >= info.limit


def blocked_message(step: str, pool: str, holders: list[SlotHolder]) -> str:
    held = "; ".join(h.describe() for h in holders) or "no run (the slot is being handed over)"
    return f"{step} is waiting for a slot of pool `{pool}`, held by {held}. {HOW_TO_FREE}"


def announce_blocked_steps(instance: dg.DagsterInstance, pool: str = GPU_POOL) -> list[str]:
    """Write, at INFO into the log of every run with a step waiting for `pool`, who holds the slot and what to do.

    Dagster itself only logs "Step blocked by limit for pool" at DEBUG, without naming the holder. Returns the
    ids of the runs told.
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    info = storage.get_concurrency_info(pool)
    claimed = {(slot.run_id, slot.step_key) for slot in info.claimed_slots}
    waiting: dict[str, list[str]] = {}
    for pending in info.pending_steps:
        if (pending.run_id, pending.step_key) not in claimed:
            waiting.setdefault(pending.run_id, []).append(pending.step_key)
    told = []
    for run_id, steps in waiting.items():
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            continue
        message = blocked_message(", ".join(steps), pool, slot_holders(instance, pool, exclude_run=run_id))
        instance.report_engine_event(message, run)
        told.append(run_id)
    return told


def prepare_instance(instance: dg.DagsterInstance, storage_root: Path | UPath,
                     log: Callable[[str], None] = print) -> None:
    """Everything a start does before running anything: pool limit, crashed runs, leftovers of killed writes.

    Leftovers exist on local disk only: under the storage root's io/, models/ and reports/ when it is local; with
    a remote root (whose objects are written whole), in the local staging area.
    """
    from wavefin_assets.resources import as_upath, local_root

    configure_pools(instance)
    recover_crashed_runs(instance, log)
    root = as_upath(storage_root)
    if getattr(root, "protocol", "") in ("", "file", "local"):
        places = [Path(root) / sub for sub in ("io", "models", "reports")]
    else:
        places = [local_root() / "staging"]
    for place in places:
        for path in remove_orphans(place):
            log(f"Cleaned up after an interrupted write: {path}")


def main() -> int:
    """`python -m wavefin_assets.recovery`: the start-up checks alone (the Makefile runs it before the UI)."""
    from wavefin_assets.resources import default_mlflow, local_root, storage_root

    os.environ.setdefault("DAGSTER_HOME", str(local_root() / "dagster_home"))  # a local sqlite store
    write_instance_config(os.environ["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        prepare_instance(instance, storage_root())
        from wavefin_assets.partitions import register_series

        added = register_series(instance)  # the UI lists them at once (the CSV sensor would on its first tick)
        if added:
            print(f"Registered series partitions {added}.")
    for run_id in default_mlflow().mark_orphaned_runs_killed():
        print(f"Marked MLflow run {run_id} KILLED: its process is gone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
