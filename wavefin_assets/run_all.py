"""`make run`: materialize every series partition, then the models and reports, and say where the reports are.

Runs go through the persistent Dagster instance (`$DAGSTER_HOME`, default storage/dagster_home), so everything
materialized here shows up in `make ui` afterwards. A series that fails (say, a broken CSV in data/prices/) is
reported and skipped; the models train on the series that succeeded, and the exit code is non-zero.

A start first cleans up after any earlier crash (see `wavefin_assets.recovery`): runs whose process is gone are
failed and their `gpu` pool slot freed, MLflow runs they left RUNNING are marked KILLED, and temporary files of
killed writes are removed. While the model job waits for a `gpu` slot held by another run, it says which run
holds it and how to free it. Ctrl-C (or SIGTERM) stops it: the current run is marked failed (or canceled, if
it was waiting), never left STARTED with a slot taken.

The series partitions (built-ins and every CSV in the prices directory) are registered in the instance first, then
ingested in parallel: one `ingest` run per series, `--parallel` of them at a time (default: the number of CPU
cores on machines with 4 or more; on fewer, process start-up costs more than it saves, so 1), each driven by a worker process through Dagster's multiprocess executor (`execute_job`); workers and step
processes fork from servers that imported the definitions once (`forkserver` with `preload_modules`).
`--parallel 1` (or a single series) runs them one after another in this process instead, with the Ctrl-C
handling described above.

Options (for trying things on a small scale): `--series mjd,sp500` limits the partitions, `--models-only` skips
the data assets, `--data-only` skips the models and reports, `--assets diffusion_model` materializes only those model assets, and `--config FILE` adds
Dagster run config (YAML, `ops:` of either job) on top of the profile.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from wavefin_assets.recovery import (
    GPU_POOL,
    blocked_message,
    pool_is_full,
    prepare_instance,
    process_tags,
    recover_crashed_runs,
    slot_holders,
    write_instance_config,
)
from wavefin_core.errors import ConfigError

BLOCKED_MESSAGE_EVERY_S = 30.0
# After Ctrl-C, a running step gets this long to stop at its next Python instruction (it raises
# DagsterExecutionInterruptedError there) before the run is marked canceled and the process exits anyway.
STOP_GRACE_S = 10.0
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    from wavefin_assets.resources import default_mlflow, local_root, storage_root

    # Dagster's instance is a local sqlite store: on local disk even when WAVEFIN_STORAGE is a URL.
    os.environ.setdefault("DAGSTER_HOME", str(local_root() / "dagster_home"))
    write_instance_config(os.environ["DAGSTER_HOME"])
    from wavefin_assets.definitions import build_defs
    from wavefin_assets.partitions import scan_csv_series, series_partition_keys
    from wavefin_assets.profiles import PROFILE

    # Ctrl-C stops, even when started from a shell that ignores SIGINT in background jobs; SIGTERM (`kill`,
    # `timeout`, a CI runner) stops the run the same way instead of killing it mid-write.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        user_config = _load_config(args.config)
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return 2
    keys = series_partition_keys()
    if args.series:
        unknown = sorted(set(args.series) - set(keys))
        if unknown:
            print(f"--series names {unknown}, which are not series partitions; choose from {keys}.", file=sys.stderr)
            return 2
        keys = [key for key in keys if key in args.series]

    defs = build_defs()  # resources from the environment as it is now
    started = time.perf_counter()
    print(f"wavefin: profile {PROFILE.name!r}, storage {storage_root()}", flush=True)
    with dg.DagsterInstance.get() as instance:
        try:
            prepare_instance(instance, storage_root(), log=_say)
            for run_id in default_mlflow().mark_orphaned_runs_killed():
                _say(f"Marked MLflow run {run_id} KILLED: the process that ran it is gone.")
            from wavefin_assets.partitions import register_series

            added = register_series(instance)
            if added:
                _say(f"registered series partitions {added}")
            refused = {key: why for key, why in scan_csv_series().refused.items() if key in keys}
            return _run(defs, instance, keys, user_config, started, args.models_only, args.assets,
                        parallel=args.parallel, refused=refused, data_only=args.data_only)
        except KeyboardInterrupt:
            print("\nInterrupted: stopped; the interrupted run is marked failed (or canceled), its pool slots are free. "
                  "Rerun `make run` to go on.", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED


def _run(
    defs: dg.Definitions, instance: dg.DagsterInstance, keys: list[str], user_config: dict, started: float,
    models_only: bool = False, assets: list[str] | None = None, parallel: int = 1,
    refused: Mapping[str, str] | None = None, data_only: bool = False,
) -> int:
    from wavefin_assets.resources import storage_root

    # Dagster's console logger defaults to DEBUG (every event); INFO keeps the asset's own progress lines.
    quiet = {"loggers": {"console": {"config": {"log_level": os.environ.get("WAVEFIN_LOG_LEVEL", "INFO")}}}}
    failed: list[str] = []
    ingest = defs.resolve_job_def("ingest")
    config = _merge(quiet, _ops_for(ingest, user_config))
    refused = dict(refused or {})
    if not models_only:
        for key, why in refused.items():  # never registered: a run could only fail with "unknown partition"
            failed.append(key)
            print(f"[data] {key}: FAILED — DataError: {why}", flush=True)
        runnable = [key for key in keys if key not in refused]
        t0 = time.perf_counter()
        if parallel > 1 and len(runnable) > 1:
            print(f"[data] {len(runnable)} series, {parallel} at a time (multiprocess executor) …", flush=True)
            failed += ingest_in_parallel(instance, runnable, config, parallel)
        else:
            failed += _ingest_one_by_one(ingest, instance, runnable, config)
        print(f"[data] {len(runnable) - len(set(failed) - set(refused))} of {len(keys)} series done in "
              f"{time.perf_counter() - t0:.1f}s", flush=True)
    if len(failed) == len(keys):
        print("No series could be processed; nothing to train on.", file=sys.stderr)
        return 1
    if data_only:
        print(f"\nFinished the data assets in {time.perf_counter() - started:.1f}s (--data-only: no models).")
        if failed:
            print(f"Series that failed: {failed}", file=sys.stderr)
        return 1 if failed else 0

    t0 = time.perf_counter()
    retrain = defs.resolve_job_def("retrain")
    selected = assets or [node.name for node in retrain.nodes]
    unknown = sorted(set(selected) - {node.name for node in retrain.nodes})
    if unknown:
        print(f"--assets names {unknown}, which the model job does not have; choose from "
              f"{sorted(node.name for node in retrain.nodes)}.", file=sys.stderr)
        return 2
    print(f"[models] {', '.join(selected)} …", flush=True)
    # Train on the series that made it this time, never on a failed series' files from an earlier run.
    succeeded = [key for key in keys if key not in failed]
    from wavefin_assets.partitions import FORECAST_CHECK_SERIES  # noqa: I001 - planted: forecasting only
    models_config = _merge(
        _merge(quiet, _ops_for(retrain, user_config, selected)),
        {"ops": {name: {"config": {"series": series}}
                 for name, series in (("diffusion_model", [k for k in succeeded if k not in FORECAST_CHECK_SERIES]),
                                      ("forecasters", succeeded))
                 if name in selected}},
    )
    wait_for_pool(instance, "the model job")
    result = execute_guarded(retrain, instance, models_config,
                             asset_selection=[dg.AssetKey(name) for name in selected] if assets else None)
    if not result.success:
        print(f"[models] FAILED — {_first_error(result)}", file=sys.stderr)
        return 1
    print(f"[models] done in {time.perf_counter() - t0:.1f}s", flush=True)

    reports = storage_root() / "reports"
    print(f"\nFinished in {time.perf_counter() - started:.1f}s. Reports:")
    for path in sorted(reports.glob("*/*.md")):
        print(f"  {path}")
    print("Browse runs with `make ui` (Dagster) and `make mlflow` (MLflow).")
    if failed:
        print(f"Series that failed and were skipped: {failed}", file=sys.stderr)
        return 1
    return 0


def _ingest_one_by_one(
    ingest: dg.JobDefinition, instance: dg.DagsterInstance, keys: list[str], config: dict,
) -> list[str]:
    """Each series in this process, one after another (`--parallel 1`); returns the keys that failed."""
    failed = []
    for key in keys:
        t0 = time.perf_counter()
        print(f"[data] {key}: raw_prices → clean_prices → segments → scalograms …", flush=True)
        result = execute_guarded(ingest, instance, config, partition_key=key)
        if result.success:
            print(f"[data] {key}: done in {time.perf_counter() - t0:.1f}s", flush=True)
        else:
            failed.append(key)
            print(f"[data] {key}: FAILED — {_first_error(result)}", flush=True)
    return failed


def ingest_job() -> dg.JobDefinition:
    """The `ingest` job, for `dg.reconstructable`: each step process rebuilds it from here."""
    from wavefin_assets.definitions import defs

    return defs.resolve_job_def("ingest")


#: Worker and step processes fork from servers with these imported once (the definitions, pandas, pyarrow, dagster).
FORKSERVER_PRELOAD = ["wavefin_assets.definitions"]


def _ingest_worker(ref: Any, key: str, run_config: dict, tags: dict[str, str],
                   assets: list[str] | None) -> tuple[str, bool, str, float]:
    """In a worker process: one `ingest` run of `key` on the multiprocess executor; (key, ok, error, seconds)."""
    t0 = time.perf_counter()
    with dg.DagsterInstance.from_ref(ref) as instance:
        result = dg.execute_job(
            dg.reconstructable(ingest_job), instance, run_config=run_config,
            tags={**tags, "dagster/partition": key},
            asset_selection=[dg.AssetKey(a) for a in assets] if assets else None,
        )
    return key, result.success, "" if result.success else _first_error(result), time.perf_counter() - t0


def ingest_in_parallel(
    instance: dg.DagsterInstance, keys: list[str], config: dict, parallel: int, assets: list[str] | None = None,
) -> list[str]:
    """One `ingest` run per series, `parallel` at a time, each on the multiprocess executor; returns the failed keys.

    Each run is driven by a worker process (Dagster's `execute_job` is not thread-safe: two runs driven from
    threads of one process deadlock in its logging set-up); the workers and the step processes fork from
    servers that imported the definitions once. The runs carry this process's pid, so if it is killed, the
    next start fails them (`wavefin_assets.recovery`). Ctrl-C reaches the workers and steps too (same process
    group): this process then cancels the runs still going, frees their pool slots and re-raises.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

    from wavefin_assets.recovery import PID_TAG

    multiprocess = {"multiprocess": {"start_method": {"forkserver": {"preload_modules": FORKSERVER_PRELOAD}}}}
    run_config = _merge(config, {"execution": {"config": multiprocess}})
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(FORKSERVER_PRELOAD)
    failed = []
    pool = ProcessPoolExecutor(max_workers=min(parallel, len(keys)), mp_context=context)
    try:
        futures = [pool.submit(_ingest_worker, instance.get_ref(), key, run_config, process_tags(), assets)
                   for key in keys]
        for future in as_completed(futures):
            key, ok, error, seconds = future.result()
            if ok:
                print(f"[data] {key}: done in {seconds:.1f}s", flush=True)
            else:
                failed.append(key)
                print(f"[data] {key}: FAILED — {error}", flush=True)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        mine = instance.get_runs(RunsFilter(tags={PID_TAG: str(os.getpid())},
                                            statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING,
                                                      DagsterRunStatus.NOT_STARTED]))
        storage = instance.event_log_storage
        for dagster_run in mine:
            instance.report_run_canceled(dagster_run, message="Interrupted (Ctrl-C / SIGTERM): canceled.")
            if storage.supports_global_concurrency_limits:
                storage.free_concurrency_slots_for_run(dagster_run.run_id)
        raise
    pool.shutdown(wait=True)
    return sorted(failed)


def wait_for_pool(instance: dg.DagsterInstance, what: str, pool: str = GPU_POOL, poll_s: float = 2.0) -> None:
    """Sleep (interruptibly, at no CPU cost) until `pool` has a free slot, saying who holds it meanwhile.

    Dagster's in-process executor would otherwise wait inside its own loop, which polls without sleeping and
    does not react to Ctrl-C. A holder whose process dies while we wait is recovered here too.
    """
    last_said = 0.0
    while pool_is_full(instance, pool):
        recover_crashed_runs(instance, log=_say)
        if not pool_is_full(instance, pool):
            break
        if time.monotonic() - last_said >= BLOCKED_MESSAGE_EVERY_S:
            _say(blocked_message(what, pool, slot_holders(instance, pool)))
            last_said = time.monotonic()
        time.sleep(poll_s)


def execute_guarded(
    job: dg.JobDefinition, instance: dg.DagsterInstance, run_config: dict, partition_key: str | None = None,
    asset_selection: list[dg.AssetKey] | None = None,
) -> dg.ExecuteInProcessResult:
    """`execute_in_process`, tagged with this process, watched for pool waits and stoppable with Ctrl-C.

    Raises KeyboardInterrupt after a run that was interrupted (Dagster itself records it and returns).
    """
    run_id = str(uuid.uuid4())
    with RunGuard(instance, run_id) as guard:
        result = job.execute_in_process(
            run_config=run_config, instance=instance, partition_key=partition_key, raise_on_error=False,
            run_id=run_id, tags=process_tags(), asset_selection=asset_selection,
        )
    if guard.interrupted:
        raise KeyboardInterrupt
    return result


class RunGuard:
    """Watches one in-process run from a helper thread.

    - Signals: Dagster swallows SIGINT/SIGTERM while it is between steps or waiting for a pool slot (it only
      acts on them inside a step). A wakeup fd sees every signal anyway; the guard then marks the run
      canceling, and if the run is waiting for a slot, or its step has not stopped after `STOP_GRACE_S`, or a
      second Ctrl-C comes, it marks the run canceled, frees its slots and exits the process (status 130).
    - Pool waits: while a step of this run waits for a `gpu` slot, it says at INFO (on the console and in the
      run's Dagster log) which run holds the slot and how to free it, and recovers holders whose process died.
    """

    def __init__(self, instance: dg.DagsterInstance, run_id: str, pool: str = GPU_POOL):
        self.instance = instance
        self.run_id = run_id
        self.pool = pool
        self.interrupted = False
        self._signals = 0
        self._stop_deadline: float | None = None
        self._done = threading.Event()
        self._pipe: tuple[int, int] | None = None
        self._previous_fd = -1
        self._thread = threading.Thread(target=self._watch, name=f"run-guard-{run_id[:8]}", daemon=True)

    def __enter__(self) -> RunGuard:
        if threading.current_thread() is threading.main_thread():
            read_fd, write_fd = os.pipe()
            os.set_blocking(write_fd, False)
            self._previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
            self._pipe = (read_fd, write_fd)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        if self._pipe is not None:
            signal.set_wakeup_fd(self._previous_fd)
            for fd in self._pipe:
                os.close(fd)

    def _watch(self) -> None:
        # Its own instance: DagsterInstance objects are not meant to be shared across threads.
        with dg.DagsterInstance.from_ref(self.instance.get_ref()) as instance:
            last_said, next_check = 0.0, 0.0
            while not self._done.is_set():
                if self._received_stop_signal():
                    self._on_signal(instance)
                now = time.monotonic()
                if self._stop_deadline is not None and now >= self._stop_deadline:
                    self._abort(instance, f"its step did not stop within {STOP_GRACE_S:.0f}s")
                if now < next_check:
                    continue
                next_check = now + 2.0
                try:
                    waiting = self._waiting_steps(instance)
                    if waiting and self._signals:
                        self._abort(instance, "it was waiting for a pool slot")
                    if waiting:
                        recover_crashed_runs(instance, log=_say)
                        if now - last_said >= BLOCKED_MESSAGE_EVERY_S:
                            last_said = now
                            self._say_blocked(instance, waiting)
                except Exception as exc:  # a busy database must not end the watch (and with it Ctrl-C)
                    _say(f"could not check the pool ({type(exc).__name__}: {exc}); retrying")

    def _received_stop_signal(self) -> bool:
        if self._pipe is None:
            self._done.wait(1.0)
            return False
        ready, _, _ = select.select([self._pipe[0]], [], [], 1.0)
        if not ready:
            return False
        received = os.read(self._pipe[0], 64)
        return any(sig in received for sig in (signal.SIGINT, signal.SIGTERM))

    def _on_signal(self, instance: dg.DagsterInstance) -> None:
        # A step in progress stops by itself (Dagster raises in it and records the run as failed); the guard only
        # steps in when nothing would act on the signal.
        self._signals += 1
        self.interrupted = True
        if self._signals > 1:
            self._abort(instance, "a second interrupt came")
        self._stop_deadline = time.monotonic() + STOP_GRACE_S
        _say(f"Stopping run {self.run_id} (Ctrl-C again to stop at once) …")

    def _abort(self, instance: dg.DagsterInstance, why: str) -> None:
        run = instance.get_run_by_id(self.run_id)
        if run is not None and not run.is_finished:
            instance.report_run_canceled(run, message=f"Interrupted (Ctrl-C / SIGTERM), and {why}: canceled.")
        storage = instance.event_log_storage
        if storage.supports_global_concurrency_limits:
            storage.free_concurrency_slots_for_run(self.run_id)
        print(f"\nInterrupted: run {self.run_id} canceled ({why}); its pool slots are free.", file=sys.stderr,
              flush=True)
        os._exit(EXIT_INTERRUPTED)

    def _waiting_steps(self, instance: dg.DagsterInstance) -> list[str]:
        storage = instance.event_log_storage
        if not storage.supports_global_concurrency_limits:
            return []
        info = storage.get_concurrency_info(self.pool)
        claimed = {slot.step_key for slot in info.claimed_slots if slot.run_id == self.run_id}
        return [p.step_key for p in info.pending_steps if p.run_id == self.run_id and p.step_key not in claimed]

    def _say_blocked(self, instance: dg.DagsterInstance, waiting: list[str]) -> None:
        message = blocked_message(", ".join(waiting), self.pool, slot_holders(instance, self.pool, self.run_id))
        _say(message)
        run = instance.get_run_by_id(self.run_id)
        if run is not None:
            instance.report_engine_event(message, run)  # INFO in the run's log in the UI


def _say(message: str) -> None:
    print(f"wavefin: {message}", flush=True)


#: Parallel ingest pays for itself only with cores to spare: each step subprocess starts in 3-5 s, so on 2 cores
#: the three quick series took 43 s in parallel against ~8 s one after another in this process (measured).
MIN_CORES_FOR_PARALLEL = 4


def default_parallel() -> int:
    """Series ingested at a time by default: every core on machines with `MIN_CORES_FOR_PARALLEL` or more."""
    cores = os.cpu_count() or 1
    return cores if cores >= MIN_CORES_FOR_PARALLEL else 1


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m wavefin_assets.run_all", description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=lambda s: [x for x in s.split(",") if x],
                        help="comma-separated series partitions to process (default: all)")
    parser.add_argument("--models-only", action="store_true",
                        help="skip the data assets; train on the series already materialized")
    parser.add_argument("--data-only", action="store_true",
                        help="materialize the data assets of the series only (no models or reports)")
    parser.add_argument("--assets", type=lambda s: [x for x in s.split(",") if x],
                        help="comma-separated model assets to materialize (default: all of the model job)")
    parser.add_argument("--config", type=Path, help="YAML file of Dagster run config (`ops:` of either job)")
    parser.add_argument("--parallel", type=int, default=default_parallel(),
                        help="series ingested at a time, each on the multiprocess executor (default: CPU cores "
                             f"from {MIN_CORES_FOR_PARALLEL} cores up, else 1: one after another in this process)")
    return parser.parse_args(argv)


def _load_config(path: Path | None) -> dict:
    if path is None:
        return {}
    import yaml

    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config {path}: cannot read it as YAML ({exc}); pass a YAML file with `ops:`.") from exc
    if not isinstance(config, dict) or set(config) - {"ops"}:
        raise ConfigError(f"--config {path}: expected a mapping with only an `ops:` key, got {config!r}.")
    return config


def _ops_for(job: dg.JobDefinition, config: Mapping[str, Any], selected: list[str] | None = None) -> dict:
    """The part of `config` for the ops of `job` that run (Dagster refuses config for ops that do not)."""
    nodes = set(selected) if selected is not None else {node.name for node in job.nodes}
    return {"ops": {name: value for name, value in config.get("ops", {}).items() if name in nodes}}


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _first_error(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None and "DagsterExecutionStepExecutionError" in error.cls_name:
                error = error.cause
            return f"{event.step_key}: {error.message.strip()}"
    return "see the Dagster run logs"


if __name__ == "__main__":
    sys.exit(main())
