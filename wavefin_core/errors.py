"""Exceptions for mistakes a user can make (bad files, bad config).

Every message names *where* the problem is (file, row, column or config field) and *how to fix it*, so a
failed Dagster run is actionable from its log line alone.
"""

from __future__ import annotations


class WavefinError(Exception):
    """Base class of every error wavefin raises on purpose."""


class DataError(WavefinError, ValueError):
    """Input data cannot be used: unreadable file, missing column, bad values."""


class ConfigError(WavefinError, ValueError):
    """A configuration value is out of range or inconsistent with the data."""


class NonFiniteError(WavefinError, ValueError):
    """A model produced NaN or inf (weights, predictions, probabilities): nothing of it may be saved or used."""


class TrainingDivergedError(NonFiniteError):
    """Training produced a non-finite loss or weights; the message names the step, the loss and the knob to turn."""
