"""Refuse an array too big for this machine *before* allocating it, with the estimate and the knob to turn.

A config like ``num_scales=1e6`` or ``stride=1`` on 15 million rows asks for tens of gigabytes; numpy then
either fails with a bare ``MemoryError`` deep in the stack or, worse, the OS starts swapping and the machine
stops answering. Each stage that allocates in proportion to its config estimates the bytes first and calls
:func:`check_allocation`, which raises a :class:`~wavefin_core.errors.ConfigError` naming the estimate, the
limit and what to change.

The limit is ``WAVEFIN_MAX_MEMORY_GB`` when set, else half of the memory available now (``MemAvailable`` in
``/proc/meminfo``; 8 GiB where that file does not exist).

Outputs streamed to disk a chunk at a time (a 15-million-row series' scalograms are ~30 GB) are checked the
same way against the free disk space (:func:`check_disk`), so a run refuses up front instead of failing with
``ENOSPC`` after an hour of work.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from wavefin_core.errors import ConfigError

MEMORY_ENV = "WAVEFIN_MAX_MEMORY_GB"
_FALLBACK_BYTES = 8 * 2**30


def memory_limit_bytes() -> int:
    """Bytes one allocation may take: ``$WAVEFIN_MAX_MEMORY_GB`` or half of the available memory."""
    configured = os.environ.get(MEMORY_ENV)
    if configured:
        try:
            value = float(configured)
        except ValueError as exc:
            raise ConfigError(f"{MEMORY_ENV}={configured!r} must be a number of GiB, e.g. 4.") from exc
        if not value > 0:
            raise ConfigError(f"{MEMORY_ENV}={configured!r} must be > 0 (GiB).")
        return int(value * 2**30)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return _FALLBACK_BYTES


def check_allocation(what: str, estimate_bytes: float, formula: str, knobs: str) -> None:
    """Raise ConfigError if ``estimate_bytes`` exceeds :func:`memory_limit_bytes`."""
    limit = memory_limit_bytes()
    if estimate_bytes > limit:
        raise ConfigError(
            f"{what} would need about {estimate_bytes / 2**30:.1f} GiB ({formula}), more than the "
            f"{limit / 2**30:.1f} GiB allowed (half the available memory, or ${MEMORY_ENV}). {knobs}"
        )


#: Free space a disk keeps after a streamed output: the rest of the pipeline (and the OS) still has to write.
DISK_RESERVE_BYTES = 2**30


def check_disk(what: str, estimate_bytes: float, directory: str | os.PathLike, formula: str, knobs: str) -> None:
    """Raise ConfigError if ``estimate_bytes`` (plus a 1 GiB reserve) exceeds the free space under ``directory``.

    ``directory`` (or its nearest existing parent) is where the output will be written.
    """
    place = Path(directory)
    while not place.exists() and place != place.parent:
        place = place.parent
    free = shutil.disk_usage(place).free
    if estimate_bytes + DISK_RESERVE_BYTES > free:
        raise ConfigError(
            f"{what} would need about {estimate_bytes / 2**30:.1f} GiB on disk ({formula}), but {place} has only "
            f"{free / 2**30:.1f} GiB free (and keeps {DISK_RESERVE_BYTES / 2**30:.0f} GiB in reserve). {knobs}"
        )
