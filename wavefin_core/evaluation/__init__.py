"""Evaluation of wavefin models: metrics, significance tests, plots and markdown reports.

Submodules: :mod:`.metrics` (forecast metrics, the fast logistic discriminative score), :mod:`.tsgbench`
(TSGBench's MDD, ACD, SD, KD), :mod:`.facts` (stylized facts as numbers, with tolerances),
:mod:`.discriminative` (TimeGAN's discriminative and TSTR predictive scores over seeds), :mod:`.stats_tests`
(binomial and Diebold-Mariano tests), :mod:`.plots` (matplotlib Figures, no pyplot), :mod:`.reports`
(markdown + PNG reports).
"""

from wavefin_core.evaluation.discriminative import posthoc_discriminative_score, tstr_predictive_score
from wavefin_core.evaluation.facts import FACT_TOLERANCES, FACTS, compare_facts, stylized_facts
from wavefin_core.evaluation.metrics import (
    classification_metrics,
    discriminative_score,
    regression_metrics,
)
from wavefin_core.evaluation.reports import ReportResult, write_forecast_report, write_generation_report
from wavefin_core.evaluation.stats_tests import binomial_test, diebold_mariano
from wavefin_core.evaluation.tsgbench import tsgbench_distances

__all__ = [
    "FACTS",
    "FACT_TOLERANCES",
    "ReportResult",
    "binomial_test",
    "classification_metrics",
    "compare_facts",
    "diebold_mariano",
    "discriminative_score",
    "posthoc_discriminative_score",
    "regression_metrics",
    "stylized_facts",
    "tsgbench_distances",
    "tstr_predictive_score",
    "write_forecast_report",
    "write_generation_report",
]
