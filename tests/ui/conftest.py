"""Browser tests: they drive Debian's `chromium` through Playwright and skip, saying why, when either is absent."""

from __future__ import annotations


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives a real Chromium against a real Dagster webserver (needs /usr/bin/chromium)"
    )
