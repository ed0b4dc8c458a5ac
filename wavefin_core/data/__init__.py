"""Price data sources, all producing the same OHLCV frame (see :mod:`wavefin_core.data.validate`).

- :func:`load_ohlcv`: a user's CSV (Yahoo-style, ``;``/tab delimited, or HistData's headerless format).
- :func:`simulate_mjd`: a seeded Merton jump-diffusion series (the default, with known ground truth).
- :func:`load_sp500`: the daily S&P 500 bars bundled with the ``arch`` package (real data, offline).

Helpers: :mod:`.timestamps` (date/time parsing, day-first vs month-first decided by the data),
:mod:`.memory` (refuse an allocation too big for the machine before making it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wavefin_core.data.csv_loader import load_ohlcv
from wavefin_core.data.validate import OHLCV_COLUMNS, PRICE_COLUMNS, validate_ohlcv

if TYPE_CHECKING:
    from wavefin_core.data.bundled import load_sp500
    from wavefin_core.data.simulate import simulate_mjd

__all__ = ["OHLCV_COLUMNS", "PRICE_COLUMNS", "load_ohlcv", "load_sp500", "simulate_mjd", "validate_ohlcv"]

# The simulator and the bundled data pull in scipy and arch; loading a CSV needs neither. Importing them on first
# use keeps a CSV ingest's baseline memory at ~100 MiB instead of ~170 MiB (what decides the peak / file ratio of
# a 150 MB file, bench/bench_ingest.py).
_LAZY = {"load_sp500": "wavefin_core.data.bundled", "simulate_mjd": "wavefin_core.data.simulate"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
