"""The daily S&P 500 series that ships inside the ``arch`` package: real data that works offline.

``arch.data.sp500.load()`` returns columns ``Open, High, Low, Close, Adj Close, Volume`` (1999 onwards,
business days, naive dates). We keep ``Close`` as close rather than ``Adj Close``: an index has no splits, so
the two columns differ only where the adjustment drifts, and ``Close`` is the one consistent with ``Open``,
``High`` and ``Low`` (an adjusted close can fall outside the bar's raw high/low). Dates are stamped at
midnight UTC of the trading day; the bars are daily, so the intraday hour carries no information here.
"""

from __future__ import annotations

import pandas as pd

from wavefin_core.data.validate import validate_ohlcv

SOURCE = "arch.data.sp500"


def load_sp500() -> pd.DataFrame:
    """Load the bundled daily S&P 500 bars as an OHLCV frame (no network access)."""
    from arch.data import sp500  # local import: arch is heavy and only this loader needs it

    raw = sp500.load()
    frame = pd.DataFrame(
        {
            "open": raw["Open"],
            "high": raw["High"],
            "low": raw["Low"],
            "close": raw["Close"],
            "volume": raw["Volume"],
        }
    )
    frame.index = pd.DatetimeIndex(raw.index)
    frame.attrs = {"source": SOURCE}
    return validate_ohlcv(frame, SOURCE)
