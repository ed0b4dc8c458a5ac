"""Evaluation of wavefin models: metrics, significance tests, plots and markdown reports.

Submodules: :mod:`.metrics` (numbers), :mod:`.stats_tests` (binomial and Diebold-Mariano tests),
:mod:`.plots` (matplotlib Figures, no pyplot), :mod:`.reports` (markdown + PNG reports).
"""

from wavefin_core.evaluation.metrics import (
    classification_metrics,
    discriminative_score,
    distribution_distances,
    predictive_score,
    regression_metrics,
    return_stats,
    stylized_facts,
    window_stats,
)
from wavefin_core.evaluation.reports import ReportResult, write_forecast_report, write_generation_report
from wavefin_core.evaluation.stats_tests import binomial_test, diebold_mariano

__all__ = [
    "ReportResult",
    "binomial_test",
    "classification_metrics",
    "diebold_mariano",
    "discriminative_score",
    "distribution_distances",
    "predictive_score",
    "regression_metrics",
    "return_stats",
    "stylized_facts",
    "window_stats",
    "write_forecast_report",
    "write_generation_report",
]
