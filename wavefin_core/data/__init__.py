"""Price data sources, all producing the same OHLCV frame (see :mod:`wavefin_core.data.validate`).

- :func:`load_ohlcv`: a user's CSV (Yahoo-style, ``;``/tab delimited, or HistData's headerless format).
- :func:`simulate_mjd`: a seeded Merton jump-diffusion series (the default, with known ground truth).
- :func:`load_sp500`: the daily S&P 500 bars bundled with the ``arch`` package (real data, offline).

Helpers: :mod:`.timestamps` (date/time parsing, day-first vs month-first decided by the data),
:mod:`.memory` (refuse an allocation too big for the machine before making it).
"""

from wavefin_core.data.bundled import load_sp500
from wavefin_core.data.csv_loader import load_ohlcv
from wavefin_core.data.simulate import simulate_mjd
from wavefin_core.data.validate import OHLCV_COLUMNS, PRICE_COLUMNS, validate_ohlcv

__all__ = ["OHLCV_COLUMNS", "PRICE_COLUMNS", "load_ohlcv", "load_sp500", "simulate_mjd", "validate_ohlcv"]
