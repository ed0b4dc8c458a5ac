"""Atomic writes, the directory swap's crash window, and the clean-up of what killed writers leave behind."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from wavefin_core import io
from wavefin_core.io import (
    ORPHAN_MIN_AGE_S,
    atomic_directory,
    atomic_path,
    find_leftovers,
    process_alive,
    remove_orphans,
    restore_backup,
)


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _leftover_name(name: str, kind: str, pid: int, host: str | None = None) -> str:
    return f".{name}.{kind}-{pid}-{host or io.host_tag()}-0123abcd"


def test_atomic_path_replaces_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "a.json"
    with atomic_path(target) as tmp:
        tmp.write_text("1")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_temporary_names_carry_the_writers_pid_and_host(tmp_path):
    with atomic_path(tmp_path / "x.parquet") as tmp:
        tmp.write_text("x")
        (leftover,) = find_leftovers(tmp_path)
        assert leftover.pid == os.getpid() and leftover.same_host
        assert not leftover.orphaned  # its writer (this process) is alive


def test_directory_is_never_missing_while_it_is_replaced(tmp_path):
    """A reader polling the directory during 200 replacements always finds a complete one."""
    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "weights").write_text("0")
    seen_missing: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                (target / "weights").read_text()
            except FileNotFoundError as exc:
                seen_missing.append(str(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(200):
            with atomic_directory(target) as tmp:
                (tmp / "weights").write_text(str(i))
    finally:
        stop.set()
        thread.join()
    assert (target / "weights").read_text() == "199"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    if io._renameat2() is None:  # only the never-missing claim needs the atomic exchange
        pytest.skip("no renameat2 here: the swap uses the backup rename, covered by the crash-window test")
    assert not seen_missing


def test_a_crash_between_the_two_renames_is_undone_on_next_access(tmp_path):
    """The fallback swap's window: old directory moved to its backup name, new one not yet renamed in."""
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    # What a writer killed between its two renames leaves: the old copy under its backup name, the new
    # (complete) copy under its temporary name, and no `model` at all.
    dead = _dead_pid()
    os.replace(target, tmp_path / _leftover_name("model", "old", dead))
    staged = tmp_path / _leftover_name("model", "tmp", dead)
    staged.mkdir()
    (staged / "weights").write_text("new, never committed")
    assert not target.exists()

    assert restore_backup(target) is not None
    assert (target / "weights").read_text() == "old"

    with atomic_directory(target) as tmp:  # the next write goes through as usual
        (tmp / "weights").write_text("next")
    assert (target / "weights").read_text() == "next"
    remove_orphans(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_live_writers_backup_is_left_alone(tmp_path):
    """Between its two renames a live writer's directory is briefly missing: that is not a crash."""
    backup = tmp_path / _leftover_name("model", "old", os.getpid())
    backup.mkdir()
    assert restore_backup(tmp_path / "model") is None
    assert backup.exists() and not (tmp_path / "model").exists()


def test_remove_orphans_keeps_live_writes_and_removes_dead_ones(tmp_path):
    (tmp_path / "io" / "raw_prices").mkdir(parents=True)
    keep = tmp_path / "io" / "raw_prices" / "mjd.parquet"
    keep.write_text("good")
    dead = _dead_pid()
    dead_file = tmp_path / "io" / "raw_prices" / _leftover_name("sp500.parquet", "tmp", dead)
    dead_file.write_bytes(b"\0" * 1000)  # a torn Parquet file
    dead_dir = tmp_path / _leftover_name("forecasters", "tmp", dead)
    (dead_dir / "lstm").mkdir(parents=True)
    live_file = tmp_path / "io" / _leftover_name("x.json", "tmp", os.getpid())
    live_file.write_text("{")
    other_host = tmp_path / _leftover_name("y.json", "tmp", dead, host="ffffffff")
    other_host.write_text("{")
    legacy_recent = tmp_path / ".z.json.tmp-0a1b2c3d"  # old naming: no pid, so only age tells
    legacy_recent.write_text("{")
    legacy_old = tmp_path / ".w.json.tmp-0a1b2c3e"
    legacy_old.write_text("{")
    day_ago = time.time() - ORPHAN_MIN_AGE_S - 60
    os.utime(legacy_old, (day_ago, day_ago))

    removed = set(remove_orphans(tmp_path))

    assert removed == {dead_file, dead_dir, legacy_old}
    assert keep.read_text() == "good"
    assert live_file.exists() and other_host.exists() and legacy_recent.exists()


def test_process_alive_tells_dead_zombie_and_reused_pids():
    assert process_alive(os.getpid())
    assert not process_alive(_dead_pid())
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 10
    while time.time() < deadline and process_alive(zombie.pid):
        time.sleep(0.05)
    assert not process_alive(zombie.pid)  # exited, not yet reaped
    zombie.wait()
    if os.path.exists("/proc/self/stat"):
        # This process started before now; a run recorded an hour before it started cannot be its.
        assert not process_alive(os.getpid(), started_by=time.time() - 3600 * 24 * 365)
