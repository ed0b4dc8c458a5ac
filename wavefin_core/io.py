"""Atomic file writes: nothing is ever left half-written, and nothing a crash leaves behind stays forever.

Every file or directory wavefin produces is first written under a temporary name next to its destination and
renamed into place only once complete; `os.replace` is atomic on one filesystem, so readers see either the old
value or the new one, never a torn file.

Replacing a whole *directory* needs more than one rename on most systems (a non-empty directory cannot be
renamed over another). On Linux the two directories are swapped in one `renameat2(RENAME_EXCHANGE)` call, so the
destination always exists. Elsewhere (or on a filesystem without it) the old directory is first renamed to a
recognisable backup name (`.<name>.old-*`): if the process dies before the new one is renamed in, the next
`atomic_directory` or `remove_orphans` call over that place renames the backup back.

Outputs too large to pass around as a value (a long series' scalograms) are written in place: the writer streams
them into a temporary file (`staged_file`) and hands over a `StagedFile`, which is renamed into its final place
(`publish_staged`), so a reader again sees the whole file or none.

Temporary names carry the writer's pid and host (`.<name>.tmp-<pid>-<host>-<random>`), so a later start can tell
the leftovers of a killed writer (process gone) from a write still in progress, and remove only the former.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import hashlib
import os
import re
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TEMP_MARK = ".tmp-"
BACKUP_MARK = ".old-"
# Leftovers without a readable owner (older naming, another host) are removed only once this old: no single
# wavefin write takes a day, so by then its writer is certainly gone.
ORPHAN_MIN_AGE_S = 24 * 3600.0
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?:(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-)?[0-9a-f]{8}$")


@functools.cache
def host_tag() -> str:
    """A short, file-name-safe tag of this machine (temporary names and run tags compare it)."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _temp_sibling(path: Path, mark: str = TEMP_MARK) -> Path:
    return path.with_name(f".{path.name}{mark}{os.getpid()}-{host_tag()}-{uuid.uuid4().hex[:8]}")


def process_alive(pid: int, started_by: float | None = None) -> bool:
    """Whether process `pid` runs on this machine (not a zombie: killed, waiting to be reaped).

    With `started_by` (a Unix time), a process that started later than that is another process that reused the
    pid, so it counts as gone (checked where `/proc` tells a process's start time, i.e. on Linux).
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc (macOS): existence is all we can know
    state, started = stat
    if state in ("Z", "X"):
        return False
    return started_by is None or started is None or started <= started_by + 1.0


def _proc_stat(pid: int) -> tuple[str, float | None] | None:
    """(state, start time as Unix time) of `pid` from /proc, or None without /proc."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        ticks = int(fields[19])  # field 22 of stat(5): start time in clock ticks after boot
        return fields[0], _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError, OSError):
        return fields[0], None


@functools.cache
def _boot_time() -> float:
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass
class StagedFile:
    """A complete output file, written in place under a temporary name because the value would not fit in memory.

    An asset returns it instead of the value; the IO manager moves it into the asset's place
    (:func:`publish_staged`) and updates `path` to where it now is (so an in-process result still finds it).
    Until then it keeps its temporary name, so if the process dies first, :func:`remove_orphans` deletes it
    like any other interrupted write.
    """

    path: Path  # a local file; after publishing, possibly a remote UPath
    suffix: str = ".parquet"  # the format, as the IO manager names stored files


@contextmanager
def staged_file(directory: str | Path, name: str) -> Iterator[Path]:
    """Yield a temporary path for the file `name` in `directory`; removed on error, kept (still under its
    temporary name) on success, for :func:`publish_staged`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(directory / name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def publish_staged(staged: StagedFile, target: str | Path) -> None:
    """Move a staged file to the local `target` atomically: one rename, or across filesystems a copy to a
    temporary sibling of `target` that is then renamed (:func:`atomic_path`). `staged.path` becomes `target`."""
    source, target = Path(staged.path), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        source.unlink()
    staged.path = target


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces the directory `path`, on error it is removed.

    At no moment is `path` missing once it existed (see the module docstring for how, per platform).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    restore_backup(path)
    tmp = _temp_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
        if not path.exists():
            os.replace(tmp, path)
        elif _exchange(tmp, path):
            shutil.rmtree(tmp, ignore_errors=True)  # `tmp` now holds the old directory
        else:
            backup = _temp_sibling(path, BACKUP_MARK)
            os.replace(path, backup)
            os.replace(tmp, path)  # a crash right before this line is undone by `restore_backup`
            shutil.rmtree(backup, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux's renameat2(RENAME_EXCHANGE); False where that is unavailable."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # this filesystem cannot exchange: fall back to the backup rename
    raise OSError(err, f"could not swap {a} and {b}: {os.strerror(err)}")


_RENAMEAT2: list = []


def _renameat2():
    if not _RENAMEAT2:
        function = None
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
                function = libc.renameat2
                function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
                function.restype = ctypes.c_int
            except (OSError, AttributeError):  # musl or an old glibc without the wrapper
                function = None
        _RENAMEAT2.append(function)
    return _RENAMEAT2[0]


def restore_backup(path: str | Path) -> Path | None:
    """Undo an interrupted directory swap: if `path` is missing but a backup of it exists, rename it back.

    Only backups whose writer is gone are touched (a live writer may be between its two renames). Backups left
    next to an existing `path` (the swap finished, only the clean-up was cut short) are deleted. Returns the
    restored backup, if any.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return None
    backups = [
        leftover.path
        for leftover in _leftovers_in(path.parent, f".{glob_escape(path.name)}{BACKUP_MARK}*")
        if leftover.orphaned
    ]
    backups.sort(key=_mtime, reverse=True)
    restored = None
    if backups and not path.exists():
        try:
            os.replace(backups[0], path)
            restored = backups.pop(0)
        except FileNotFoundError:
            pass  # another process restored it first
    for backup in backups:
        shutil.rmtree(backup, ignore_errors=True)
    return restored


@dataclass(frozen=True)
class Leftover:
    """A temporary file or directory a write left behind, and why it is (or is not) an orphan."""

    path: Path
    pid: int | None
    same_host: bool
    age_s: float

    @property
    def orphaned(self) -> bool:
        if self.pid is not None and self.same_host:
            return not process_alive(self.pid)
        return self.age_s >= ORPHAN_MIN_AGE_S


def find_leftovers(root: str | Path) -> list[Leftover]:
    """Every `.<name>.tmp-*` / `.<name>.old-*` below `root` (not descending into them)."""
    root = Path(root)
    found: list[Leftover] = []
    if not root.is_dir():
        return found
    for directory, subdirs, files in os.walk(root):
        found.extend(_leftover(Path(directory) / name) for name in [*subdirs, *files] if _TEMP_NAME.match(name))
        subdirs[:] = [d for d in subdirs if not _TEMP_NAME.match(d)]
    return found


def _leftovers_in(directory: Path, pattern: str) -> list[Leftover]:
    return [_leftover(p) for p in directory.glob(pattern) if _TEMP_NAME.match(p.name)]


def _leftover(path: Path) -> Leftover:
    match = _TEMP_NAME.match(path.name)
    assert match is not None
    pid = int(match["pid"]) if match["pid"] else None
    return Leftover(path, pid, match["host"] == host_tag(), time.time() - _mtime(path))


def remove_orphans(root: str | Path) -> list[Path]:
    """Clean up after killed writers below `root`; return what was removed or restored.

    Interrupted directory swaps are undone first (their backup renamed back into place); then every temporary
    file or directory whose writer process is gone (or, when that cannot be known, older than a day) is removed.
    Writes still in progress are never touched.
    """
    changed: list[Path] = []
    for leftover in find_leftovers(root):
        match = _TEMP_NAME.match(leftover.path.name)
        destination = leftover.path.with_name(match["name"]) if match else None
        if match and match["kind"] == "old" and destination is not None and not destination.exists():
            if restore_backup(destination) is not None:
                changed.append(destination)
            continue
        if not leftover.orphaned:
            continue
        if leftover.path.is_dir() and not leftover.path.is_symlink():
            shutil.rmtree(leftover.path, ignore_errors=True)
        else:
            leftover.path.unlink(missing_ok=True)
        changed.append(leftover.path)
    return changed


def glob_escape(name: str) -> str:
    """`name` with glob metacharacters escaped (partition keys may contain `[`)."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return time.time()
