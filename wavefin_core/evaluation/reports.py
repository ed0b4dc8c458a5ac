"""Markdown reports (with PNG figures) for generation and forecasting runs.

Why markdown: it renders in MLflow's artifact viewer, on GitHub and in Dagster metadata, diffs well, and
needs no template engine. Each report writes ``<out_dir>/<name>.md`` plus ``<out_dir>/figures/*.png``
(relative links), every file atomically, and returns the headline numbers as a flat ``{str: float}`` dict
ready for ``mlflow.log_metrics`` and Dagster metadata.

The reports are deliberately blunt: the naive baselines are always in the forecast tables, a model that
does not beat them gets a sentence saying so, and generated series are compared, series by series, with their
held-out real windows next to every classical generator a quant would otherwise use and the real-data floor,
with the seed noise of every score. The generation report also writes ``metrics.json`` (the issue's schema).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wavefin_core.baselines import naive_forecasts
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.evaluation import metrics as M
from wavefin_core.evaluation import plots as P
from wavefin_core.evaluation.stats_tests import holm, t_test_p
from wavefin_core.io import atomic_path

__all__ = ["ReportResult", "SeriesGeneration", "evaluate_series", "build_generation_metrics",
           "write_generation_report", "SeriesForecasts", "judge_direction_models", "judge_return_models",
           "evaluate_forecast_series", "build_forecast_metrics", "write_forecast_report"]

NAIVE_DIRECTION = ("previous_direction", "historical_mean", "majority_class")
NAIVE_RETURN = ("zero_return", "historical_mean")


@dataclass
class ReportResult:
    """Where a report was written and its headline numbers (flat dict of floats)."""

    markdown_path: Path
    metrics: dict[str, float] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    document: dict[str, Any] | None = None  # the generation report's metrics.json content
    metrics_json: Path | None = None


# ------------------------------------------------------------------------------------------------ helpers
def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    v = float(v)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.3e}"
    return f"{v:.4f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".md", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; reports are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _context_md(context: dict[str, Any]) -> str:
    if not context:
        return "_no run context given_"
    return "\n".join(f"- **{k}**: `{v}`" for k, v in context.items())


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name))


class _Figures:
    """Saves figures under out_dir/figures and remembers markdown links."""

    def __init__(self, out_dir: Path, dpi: int = 100) -> None:
        self.out_dir = out_dir
        self.dpi = dpi
        self.paths: list[Path] = []
        self.md: list[str] = []

    def add(self, fig: Any, name: str, caption: str) -> None:
        path = P.save_figure(fig, self.out_dir / "figures" / f"{_slug(name)}.png", dpi=self.dpi)
        self.paths.append(path)
        self.md.append(f"![{caption}](figures/{path.name})")


# ------------------------------------------------------------------------------------- generation report
METRICS_JSON = "metrics.json"
METRICS_SCHEMA = "wavefin.generation.metrics/1"
# The samplers table: config name -> (label, number of denoising steps), the three on the same model.
SAMPLERS: dict[str, tuple[str, int]] = {"ddpm": ("DDPM", 1000), "ddim": ("DDIM", 50),
                                        "dpmsolver": ("DPM-Solver++", 20)}
# Two generators' discriminative scores differ when the t-test of their difference (paired per classifier seed
# where the seeds are, Welch otherwise: _compare) rejects "no difference" at VERDICT_ALPHA after Holm's correction
# over the classical generators compared with wavefin in one table (the floor, one reference, is tested on its
# own). Each comparison also reports NOISE_STANDARD_ERRORS standard errors of the difference, for scale.
VERDICT_ALPHA = 0.05
NOISE_STANDARD_ERRORS = 2.0
FLOOR = "real_train"
GENERATION_FIGURE_DPI = 72  # ~7 figures per series, also inlined into Dagster metadata: keep them small
ProgressLog = Callable[[str], None]

_OVERLAP_NOTE = (
    "Real test windows are cut at stride 1 from the contiguous held-out test returns, so consecutive windows "
    "overlap. That is fine for distribution metrics (marginals, ACFs, facts and the TSGBench distances estimate "
    "the same quantities, only with less independent data than the window count suggests), and it is why the "
    "discriminative score of real train windows (the floor) is not 0: compare generators with the floor."
)


@dataclass
class SeriesGeneration:
    """One series' inputs to the generation report, all in that series' own log-return units.

    ``real_test``: its held-out test windows at stride 1 (N, T); ``train_returns``: its contiguous TRAIN log
    returns, what every classical generator is fitted on; ``wavefin``: the diffusion model's windows for this
    series (M, T), decoded with its own inverse map; every classical generator draws M windows too.
    ``start_price`` (the last train close) scales the price-path figure; ``context`` adds lines to the section;
    scalograms (magnitudes or real+imag, a few each) are plotted when given.
    """

    name: str
    real_test: np.ndarray
    train_returns: np.ndarray
    wavefin: np.ndarray
    start_price: float | None = None
    context: dict[str, Any] = field(default_factory=dict)
    real_scalograms: np.ndarray | None = None
    synth_scalograms: np.ndarray | None = None
    # "Does synthetic data help a forecaster?" (wavefin_core.evaluation.augmentation) early-stops on the
    # contiguous VAL returns and labels the next `horizon` returns; without val_returns it is skipped.
    val_returns: np.ndarray | None = None
    horizon: int = 1


def derived_seed(*parts: Any) -> int:
    """A stable 32-bit seed from any parts (e.g. the run seed, a series and a generator name): distinct draws
    per series and generator that do not change when another series is added."""
    return zlib.crc32(":".join(str(p) for p in parts).encode())


def _failed_entry(n: int, description: str, error: str) -> dict[str, Any]:
    from wavefin_core.evaluation.facts import FACTS

    return {
        "discriminative_score": {"mean": None, "std": None, "seeds": 0},
        "discriminative_score_shape": {"mean": None, "std": None, "seeds": 0},
        "discriminative_score_logistic": None,
        "predictive_score": {"mean": None, "std": None, "seeds": 0, "real_mean": None, "real_std": None},
        "mdd": None, "acd": None, "sd": None, "kd": None,
        "facts": {f: {"real": None, "synthetic": None, "reproduced": False} for f in FACTS},
        "facts_reproduced": 0, "facts_present_in_real": 0, "std_ratio": None, "n_windows": n,
        "description": description, "params": {}, "error": error,
    }


def _network_scores(real: np.ndarray, windows: dict[str, np.ndarray], train_windows: np.ndarray, *,
                    discriminative_seeds: int, predictive_seeds: int,
                    classifier_steps: int | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The post-hoc discriminative scores (levels kept, then shape only) and the TSTR scores of every generator's
    ``windows``: all their networks (every seed of every generator) are trained together in groups, on every
    core (see wavefin_core.evaluation.discriminative); the numbers are those of one generator at a time.

    Why the shape-only score: the test split can be calmer or wilder than the train split every generator is
    fitted on (sp500's train holds 2008: 1.8x the test std). The usual score then mostly measures that level
    shift, for the real train windows too, and cannot rank generators; dividing each window by its own std judges
    what a generator controls inside a window (tails, clustering, dependence)."""
    from wavefin_core.evaluation.discriminative import posthoc_discriminative_scores, tstr_predictive_scores

    steps = {} if classifier_steps is None else {"steps": int(classifier_steps)}
    disc = posthoc_discriminative_scores(real, windows, seeds=discriminative_seeds, **steps)
    shape = posthoc_discriminative_scores(real, windows, seeds=discriminative_seeds, scale="per_window", **steps)
    pred = tstr_predictive_scores(windows, train_windows, real, seeds=predictive_seeds, **steps)
    return disc, shape, pred


# kept per discriminative score; n_train_sharing_values > 0: the purge of training rows that share values with
# the held-out ones had to be skipped (windows replaying the same values all over: the bootstrap), an upper bound
_DISC_KEYS = ("mean", "std", "seeds", "values", "n_test", "n_train_sharing_values")


def _score_generator(real: np.ndarray, synth: np.ndarray, disc: dict[str, Any], shape: dict[str, Any],
                     pred: dict[str, Any], *, seed: int) -> dict[str, Any]:
    """One generator's row from its network scores (``disc``, ``shape``, ``pred``) and the statistics computed
    here."""
    from wavefin_core.evaluation.facts import compare_facts, present_in_real
    from wavefin_core.evaluation.tsgbench import tsgbench_distances

    facts = compare_facts(real, synth)
    real_values = {f: v["real"] for f, v in facts.items()}
    return {
        "discriminative_score": {k: disc[k] for k in _DISC_KEYS},
        "discriminative_score_shape": {k: shape[k] for k in _DISC_KEYS},
        "discriminative_score_logistic": M.discriminative_score(real, synth, seed=seed)["discriminative_score"],
        "predictive_score": {k: pred[k] for k in ("mean", "std", "seeds", "real_mean", "real_std", "n", "target")},
        **tsgbench_distances(real, synth),
        "facts": facts,
        "facts_reproduced": int(sum(v["reproduced"] for v in facts.values())),
        "facts_present_in_real": int(sum(present_in_real(f, v, real_values) for f, v in real_values.items())),
        "std_ratio": float(synth.std() / real.std()) if real.std() > 0 else float("nan"),
        "n_windows": int(synth.shape[0]),
    }


def evaluate_series(
    data: SeriesGeneration,
    *,
    seed: int = 0,
    discriminative_seeds: int = 5,
    predictive_seeds: int = 3,
    classifier_steps: int | None = None,
    log: ProgressLog | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Fit every classical generator on the series' train returns, draw as many windows as wavefin has, and score
    all of them (and wavefin) against the real test windows. ``classifier_steps`` overrides the training steps
    of the discriminative and TSTR networks (None: their defaults; fewer only for quick tests).

    Returns the series' ``metrics.json`` section ``{"n_real_test", "generators": {GEN: {...}}, ...}`` and the
    window set of every generator that produced one. A generator whose fit fails keeps its row with null scores
    and an ``error``; the real and wavefin inputs themselves must be usable (DataError naming the series).
    """
    from wavefin_core.evaluation.generators import CLASSICAL_GENERATORS, GeneratorFitError, fit_generator

    log = log or (lambda message: None)
    real = M._windows(data.real_test, f"real test windows of series {data.name!r}", min_rows=10)
    synth = M._windows(data.wavefin, f"wavefin windows of series {data.name!r}", min_rows=10)
    n, length = synth.shape
    if real.shape[1] != length:
        raise DataError(f"series {data.name!r}: real test windows have length {real.shape[1]} but the wavefin "
                        f"windows {length}; generate with the model trained on this window length.")
    train = np.asarray(data.train_returns, dtype=np.float64).ravel()
    if train.size < length + 10:
        raise DataError(f"series {data.name!r} has {train.size} train returns, fewer than a window ({length}) "
                        "+ 10; supply more data or a larger train_fraction.")
    train_windows = np.lib.stride_tricks.sliding_window_view(train, length)
    windows: dict[str, np.ndarray] = {"wavefin": synth}
    about: dict[str, dict[str, Any]] = {"wavefin": {
        "description": "wavefin scalogram diffusion model, decoded with this series' inverse map", "params": {}}}
    for name in CLASSICAL_GENERATORS:
        started = time.perf_counter()
        try:
            gen = fit_generator(name, train, series=data.name)
            w = gen.sample(n, length, seed=derived_seed(seed, data.name, name))
            if not np.isfinite(w).all():
                raise GeneratorFitError(f"{name} sampled non-finite returns for series {data.name!r}.")
            windows[name] = w
            about[name] = {"description": gen.description, "params": dict(gen.params)}
            log(f"{data.name}: fitted {name} on {train.size} train returns and drew {n} windows "
                f"({time.perf_counter() - started:.1f}s)")
        except (GeneratorFitError, DataError, ValueError, np.linalg.LinAlgError) as exc:
            about[name] = {"description": name, "params": {}, "error": f"{type(exc).__name__}: {exc}"}
            log(f"{data.name}: {name} unavailable: {exc}")
    started = time.perf_counter()
    disc, shape, pred = _network_scores(real, windows, train_windows, discriminative_seeds=discriminative_seeds,
                                 predictive_seeds=predictive_seeds, classifier_steps=classifier_steps)
    log(f"{data.name}: trained the discriminative and TSTR networks of {len(windows)} generators "
        f"({time.perf_counter() - started:.1f}s)")
    generators: dict[str, Any] = {}
    for name, info in about.items():
        if name not in windows:
            generators[name] = _failed_entry(n, info["description"], info["error"])
            continue
        started = time.perf_counter()
        entry = _score_generator(real, windows[name], disc[name], shape[name], pred[name],
                                 seed=derived_seed(seed, data.name, name))
        generators[name] = {**entry, **info}
        d = entry["discriminative_score"]
        log(f"{data.name}: scored {name}: discriminative {d['mean']:.3f} +- {d['std']:.3f} "
            f"({time.perf_counter() - started:.1f}s)")
    section = {
        "n_real_test": int(real.shape[0]),
        "window_length": int(length),
        "n_synthetic": int(n),
        "n_train_returns": int(train.size),
        "generators": generators,
    }
    _comparisons(generators)
    section["verdict"] = _verdict(data.name, generators)
    return section, windows


@dataclass(frozen=True)
class _Score:
    """One generator's discriminative score as the verdict reads it: mean, std (ddof 1) and the per-seed values."""

    mean: float
    std: float
    seeds: int
    values: tuple[float, ...]
    n_test: int | None


def _disc(entry: dict[str, Any], key: str = "discriminative_score") -> _Score | None:
    d = entry.get(key) or {}
    if d.get("mean") is None or not math.isfinite(d["mean"]):
        return None
    values = tuple(float(v) for v in (d.get("values") or ()))
    return _Score(float(d["mean"]), float(d.get("std") or 0.0), max(int(d.get("seeds") or 1), 1), values,
                  d.get("n_test"))


def _compare(a: _Score, b: _Score) -> tuple[float, float, bool, float]:
    """(b.mean - a.mean, NOISE_STANDARD_ERRORS standard errors of it, paired, the t-test's two-sided p).

    Paired when both were scored on the same classifier seeds with the same held-out size (every score of one
    report is: seed s holds out the same block of real test windows and starts the classifier from the same
    weights for every generator), so the test is a paired t-test on the per-seed differences: which real windows
    were held out moves every generator's score of a seed together (sp500: +-0.1), and pairing cancels it.
    Otherwise Welch's test, with the unpaired sqrt(std_a^2 / seeds_a + std_b^2 / seeds_b) (p NaN, no test, when
    either side has a single seed)."""
    if len(a.values) == len(b.values) >= 2 and a.n_test == b.n_test:
        diff = np.subtract(b.values, a.values)
        se = float(diff.std(ddof=1)) / math.sqrt(diff.size)
        mean = float(diff.mean())
        return mean, NOISE_STANDARD_ERRORS * se, True, t_test_p(mean, se, diff.size - 1)
    va, vb = a.std ** 2 / a.seeds, b.std ** 2 / b.seeds
    se = math.sqrt(va + vb)
    if a.seeds < 2 or b.seeds < 2:
        df = math.nan
    elif va + vb > 0:
        df = (va + vb) ** 2 / (va ** 2 / (a.seeds - 1) + vb ** 2 / (b.seeds - 1))
    else:
        df = float(a.seeds + b.seeds - 2)
    return b.mean - a.mean, NOISE_STANDARD_ERRORS * se, False, t_test_p(b.mean - a.mean, se, df)


def _outcome(diff: float, p_adjusted: float) -> str:
    """Where wavefin stands against a generator whose score is ``diff`` above wavefin's, at the adjusted p."""
    if not (math.isfinite(p_adjusted) and p_adjusted < VERDICT_ALPHA):
        return "within noise"
    return "wavefin closer" if diff > 0 else "wavefin further"


def _comparisons(generators: dict[str, Any]) -> None:
    """Adds ``vs_wavefin`` to every other scored generator's entry (in place): per discriminative score, its mean
    minus wavefin's (positive: wavefin is harder to tell from real), NOISE_STANDARD_ERRORS standard errors of it,
    whether the seeds were paired, the test's p-value, its Holm-adjusted p over the classical generators of the
    table (the floor: its own p) and the outcome at VERDICT_ALPHA."""
    for key in ("discriminative_score", "discriminative_score_shape"):
        w = _disc(generators["wavefin"], key)
        if w is None:
            continue
        tested = {}
        for name, entry in generators.items():
            g = None if name == "wavefin" else _disc(entry, key)
            if g is not None:
                tested[name] = _compare(w, g)
        family = [name for name in tested if name != FLOOR]
        adjusted = dict(zip(family, holm([tested[name][3] for name in family]), strict=True))
        adjusted.update({FLOOR: tested[FLOOR][3]} if FLOOR in tested else {})
        for name, (diff, noise, paired, p) in tested.items():
            generators[name].setdefault("vs_wavefin", {})[key] = {
                "difference": diff, "noise": noise, "paired": paired, "p_value": _finite_or_none(p),
                "p_holm": _finite_or_none(adjusted[name]), "outcome": _outcome(diff, adjusted[name])}


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _verdict(series: str, generators: dict[str, Any]) -> str:
    """Is wavefin closer to the real test data than each classical generator, by the discriminative score and its
    seed noise (paired per classifier seed), and where is the floor? Then the same for the shape-only score (each
    window divided by its own std), where one was computed. Reads the ``vs_wavefin`` entries of
    :func:`_comparisons`."""
    w = _disc(generators["wavefin"])
    if w is None:
        return f"{series}: no verdict (wavefin's discriminative score is unavailable)."
    text = f"{series}: " + _ranking(generators, "discriminative_score", "wavefin's discriminative score")
    if _disc(generators["wavefin"], "discriminative_score_shape") is not None:
        text += " Shape only (each window divided by its own std): " + _ranking(
            generators, "discriminative_score_shape", "wavefin's score")
    return text


def _ranking(generators: dict[str, Any], key: str, label: str) -> str:
    w = _disc(generators["wavefin"], key)
    groups: dict[str, list[str]] = {"wavefin closer": [], "within noise": [], "wavefin further": []}
    missing, pairings = [], set()
    for name, entry in generators.items():
        if name in ("wavefin", FLOOR):
            continue
        vs = (entry.get("vs_wavefin") or {}).get(key)
        if vs is None:
            missing.append(name)
            continue
        groups[vs["outcome"]].append(name)
        pairings.add(vs["paired"])
    closer, within, further = groups["wavefin closer"], groups["within noise"], groups["wavefin further"]
    parts = [f"{label} is {w.mean:.3f} ± {w.std:.3f}",
             "closer to real than " + (", ".join(closer) if closer else "none of the classical generators")]
    if within:
        parts.append("within noise of " + ", ".join(within))
    if further:
        parts.append("further from real than " + ", ".join(further))
    if missing:
        parts.append("not compared with " + ", ".join(missing) + " (unavailable)")
    floor = _disc(generators.get(FLOOR, {}), key)
    vs_floor = (generators.get(FLOOR, {}).get("vs_wavefin") or {}).get(key)
    if floor is None or vs_floor is None:
        tail = "floor unavailable"
    else:
        where = ("within noise of the floor" if vs_floor["outcome"] == "within noise" else
                 f"{-vs_floor['difference']:+.3f} from the floor")
        tail = f"floor (real train windows) {floor.mean:.3f} ± {floor.std:.3f}; wavefin is {where}"
    family = len(closer) + len(within) + len(further)
    tests = ("per-seed paired t-tests" if pairings == {True} else "Welch t-tests (the seeds differ)"
             if pairings == {False} else "per-seed paired t-tests, Welch where the seeds differ")
    how = f" ({tests}, Holm-corrected over the {family} classical generators)"
    return "; ".join(parts) + how + ". " + tail[0].upper() + tail[1:] + "."


def _sampler_section(samplers: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """The ``samplers`` part of metrics.json, with every required key present (null with a note if missing)."""
    out: dict[str, Any] = {}
    for name, (label, steps) in SAMPLERS.items():
        given = dict((samplers or {}).get(name) or {})
        entry = {"label": f"{label}({given.get('steps', steps)})", "steps": int(given.get("steps", steps)),
                 "seconds_per_1000": given.get("seconds_per_1000"),
                 "discriminative_score": given.get("discriminative_score")}
        entry.update({k: v for k, v in given.items() if k not in entry})
        if entry["seconds_per_1000"] is None and "note" not in entry:
            entry["note"] = "not measured in this run (synthetic_series benchmark_samplers=false)"
        out[name] = entry
    return out


def _json_safe(value: Any, path: str, nulls: dict[str, str], reason: str) -> Any:
    """Plain JSON types; a non-finite float becomes null and its path is recorded with ``reason``."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v, f"{path}.{k}" if path else str(k), nulls, reason) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, f"{path}[{i}]", nulls, reason) for i, v in enumerate(value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if math.isfinite(float(value)):
            return float(value)
        nulls[path] = reason
        return None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def build_generation_metrics(sections: dict[str, dict[str, Any]], samplers: dict[str, dict[str, Any]] | None,
                             context: dict[str, Any]) -> dict[str, Any]:
    """The ``metrics.json`` document: the issue's schema plus context, protocol notes and ``null_values`` (the
    path and reason of every null, since JSON has no NaN)."""
    nulls: dict[str, str] = {}
    series_out: dict[str, Any] = {}
    for name, section in sections.items():
        out = {k: _json_safe(v, f"series.{name}.{k}", nulls, "not finite as computed")
               for k, v in section.items() if k != "generators"}
        gens = {}
        for gen, entry in section["generators"].items():
            path = f"series.{name}.generators.{gen}"
            if entry.get("error"):
                reason = f"generator unavailable: {entry['error']}"
                for key in ("mdd", "acd", "sd", "kd", "discriminative_score_logistic", "std_ratio",
                            "discriminative_score_shape"):
                    nulls[f"{path}.{key}"] = reason
                nulls[f"{path}.discriminative_score"] = nulls[f"{path}.predictive_score"] = reason
                nulls[f"{path}.facts"] = reason
            else:
                reason = ("not finite as computed (a statistic of a constant, too short or tail-less sample, "
                          "e.g. a Hill index without positive tail values)")
            gens[gen] = _json_safe(entry, path, nulls, reason)
        out["generators"] = gens
        series_out[name] = out
    sampler_part = {}
    for name, entry in _sampler_section(samplers).items():
        reason = entry.get("note", "not measured")
        sampler_part[name] = _json_safe(entry, f"samplers.{name}", nulls, reason)
        for key in ("seconds_per_1000", "discriminative_score"):
            if sampler_part[name][key] is None:
                nulls[f"samplers.{name}.{key}"] = reason
    return {
        "schema": METRICS_SCHEMA,
        "context": _json_safe(context, "context", nulls, "not finite"),
        "protocol": {
            "real": "held-out TEST windows at stride 1, per series, in the series' own log-return units",
            "generators": "all fitted on the series' TRAIN returns only; each draws as many windows as wavefin",
            "discriminative_score": "TimeGAN post-hoc classifier |held-out accuracy - 0.5|, mean and std "
                                    "(ddof 1) over seeds; 0 = indistinguishable",
            "discriminative_score_shape": "the same classifier and seeds with each window divided by its own std: "
                                          "judges the shape inside a window (tails, clustering, dependence), not "
                                          "a volatility-level shift between the train and test periods",
            "discriminative_score_logistic": "fast second column: logistic regression on window features, 1 seed",
            "predictive_score": "TSTR: MAE on the real test windows of a next-step predictor trained on n "
                                "synthetic windows (mean), and on n real train windows (real_mean), same n",
            "tsgbench": "mdd, acd, sd, kd with TSGBench's definitions (wavefin_core.evaluation.tsgbench)",
            "facts": "reproduced = present in the real data and within the stated tolerance "
                     "(wavefin_core.evaluation.facts.FACT_TOLERANCES)",
            "verdict": f"a difference counts when its t-test has p < {VERDICT_ALPHA:g} after Holm's correction "
                       "over the classical generators of the table (the floor: its own p): a paired t-test on the "
                       "per-seed differences (seed s holds out the same real windows for every generator), Welch's "
                       "only where the seeds differ",
            "vs_wavefin": "per generator and discriminative score: its mean minus wavefin's (positive: wavefin "
                          f"is harder to tell from real), noise ({NOISE_STANDARD_ERRORS:g} standard errors of the "
                          "difference, for scale), paired, p_value, p_holm and the outcome",
            "overlapping_windows": _OVERLAP_NOTE,
            "augmentation": "does synthetic data help a forecaster: the same 1-D CNN trained on real train examples "
                            "only (A) and on them plus generated windows (B), same seeds and optimizer steps, "
                            "early-stopped on real val, scored on the real stride-1 test windows; exact McNemar on "
                            "the pooled predictions of all seeds (wavefin_core.evaluation.augmentation)",
        },
        "series": series_out,
        "samplers": sampler_part,
        "null_values": nulls,
    }


def _write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=2, allow_nan=False)  # allow_nan=False: a NaN here is a bug, not output
    with atomic_path(path) as tmp:
        tmp.write_text(text)
        os.chmod(tmp, 0o644)


def _pm(entry: dict[str, Any] | None, digits: int = 3) -> str:
    if not entry or entry.get("mean") is None:
        return "—"
    std = entry.get("std")
    return f"{entry['mean']:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{entry['mean']:.{digits}f}"


def _upper_bound_mark(score: dict[str, Any] | None) -> str:
    """" †" when the score could not purge the training rows sharing values with its held-out rows."""
    return " †" if score and (score.get("n_train_sharing_values") or 0) > 0 else ""


def _vs_wavefin(entry: dict[str, Any]) -> str:
    """The table cell of a generator's usual discriminative score minus wavefin's (positive: wavefin is closer to
    real), with the test's Holm-adjusted p (the floor: its own p) and 2 standard errors of the difference for
    scale (paired seeds unless marked)."""
    vs = (entry.get("vs_wavefin") or {}).get("discriminative_score")
    if vs is None:
        return "—"
    p = "n/a" if vs.get("p_holm") is None else f"{vs['p_holm']:.2g}"
    return f"{vs['difference']:+.3f} (p {p}; ±{vs['noise']:.3f}{'' if vs['paired'] else ', unpaired'})"


def _series_md(name: str, section: dict[str, Any], data: SeriesGeneration, figures: list[str],
               discriminative_seeds: int) -> list[str]:
    from wavefin_core.evaluation.facts import FACT_PRESENCE, FACTS, present_in_real

    gens = section["generators"]
    header = ["generator", f"discriminative (CNN, {discriminative_seeds} seeds)",
              "its mean − wavefin's (Holm p; 2 s.e.)", "shape only (each window / its std)",
              "logistic (fast, 1 seed)",
              "TSTR MAE: trained on it", "TSTR MAE: trained on real (same n)", "MDD", "ACD", "SD", "KD",
              "std / real std", "facts reproduced"]
    rows = []
    for gen, e in gens.items():
        if e.get("error"):
            rows.append([gen, f"unavailable: {e['error']}", *["—"] * (len(header) - 2)])
            continue
        p = e["predictive_score"]
        rows.append([
            f"**{gen}**" if gen == "wavefin" else (f"{gen} (floor)" if gen == FLOOR else gen),
            _pm(e["discriminative_score"]) + _upper_bound_mark(e["discriminative_score"]), _vs_wavefin(e),
            _pm(e.get("discriminative_score_shape")) + _upper_bound_mark(e.get("discriminative_score_shape")),
            _fmt(e["discriminative_score_logistic"]), _pm(p, 5),
            _pm({"mean": p["real_mean"], "std": p["real_std"]}, 5),
            _fmt(e["mdd"]), _fmt(e["acd"]), _fmt(e["sd"]), _fmt(e["kd"]), _fmt(e["std_ratio"]),
            f"{e['facts_reproduced']} of {e['facts_present_in_real']}",
        ])
    any_entry = next((e for e in gens.values() if not e.get("error")), None)
    fact_rows = []
    if any_entry is not None:
        real_values = {f: any_entry["facts"][f]["real"] for f in FACTS}
        for fact in FACTS:
            rv = real_values[fact]
            row = [fact, FACT_PRESENCE[fact], _fmt(rv), "yes" if present_in_real(fact, rv, real_values) else "no"]
            for e in gens.values():
                if e.get("error"):
                    row.append("—")
                else:
                    f = e["facts"][fact]
                    row.append(f"{_fmt(f['synthetic'])} {'✓' if f['reproduced'] else '✗'}")
            fact_rows.append(row)
    pred_target = next((e["predictive_score"].get("target") for e in gens.values() if not e.get("error")), "return")
    about = [f"- **{gen}**: {e.get('description', gen)}" + (
        " (" + ", ".join(f"{k} {_fmt(v)}" for k, v in e["params"].items()) + ")" if e.get("params") else "")
        for gen, e in gens.items()]
    md = [
        f"## {name}", "",
        f"**Verdict.** {section['verdict']}", "",
        f"Real: {section['n_real_test']} held-out test windows at stride 1; every generator: "
        f"{section['n_synthetic']} windows of {section['window_length']} steps; classical generators fitted on "
        f"{section['n_train_returns']} train returns.",
        *[f"- {k}: `{v}`" for k, v in data.context.items()], "",
        "### Scores",
        "Lower is better everywhere except TSTR, where the synthetic-trained MAE should be close to the "
        f"real-trained one (target: next-step {pred_target}). Discriminative: mean ± std over seeds; † = an "
        "upper bound: its windows replay the same values all over (a bootstrap), so the training rows sharing "
        "values with the held-out ones could not be dropped. \"Its mean − wavefin's\": positive = wavefin is harder "
        "to tell from real; p = the paired t-test on the per-seed differences, Holm-adjusted over the classical "
        "generators (the floor: its own p); 2 s.e. = two standard errors of the difference, for scale.", "",
        _table(header, rows), "",
        "### Stylized facts",
        "Real value, whether the real test data shows the fact, then each generator's value: ✓ = reproduced "
        "(present in real and within tolerance), ✗ = not.", "",
        _table(["fact", "present in real when", "real", "present?", *gens], fact_rows), "",
        "### Generators", *about, "",
        *_augmentation_section_md(section),
        "### Figures", *[f"{m}\n" for m in figures],
    ]
    return md


def _augmentation_section_md(section: dict[str, Any]) -> list[str]:
    """"Does synthetic data help a forecaster?" (nothing when the experiment did not run)."""
    if not section.get("augmentation"):
        return []
    from wavefin_core.evaluation.augmentation import augmentation_md

    return augmentation_md(section["augmentation"], section["generators"].get("wavefin", {}).get("predictive_score"))


def _samplers_md(samplers: dict[str, Any]) -> list[str]:
    rows = []
    for e in samplers.values():
        n = e.get("n_samples")
        rows.append([e["label"], str(e["steps"]), "—" if n is None else str(n), _fmt(e["seconds_per_1000"]),
                     _pm({"mean": e["discriminative_score"], "std": e.get("discriminative_std")})
                     if e["discriminative_score"] is not None else "—",
                     e.get("note", "")])
    series = next((e.get("series") for e in samplers.values() if e.get("series")), None)
    return [
        "## Samplers",
        "The same model sampled with each scheduler: wall-clock seconds per 1,000 windows (sampling only, on the "
        "device of the run) and the discriminative score of the windows it produced"
        + (f" against series {series}'s test windows" if series else "")
        + ". Fewer windows (DDPM) means a noisier score: see the windows column.", "",
        _table(["sampler", "steps", "windows", "seconds per 1,000", "discriminative", "note"], rows), "",
    ]


def _series_figures(figs: _Figures, data: SeriesGeneration, section: dict[str, Any],
                    windows: dict[str, np.ndarray]) -> list[str]:
    start = len(figs.md)
    name = data.name
    sets = {"real (test)": data.real_test, **windows}
    lags = min(20, data.real_test.shape[1] - 2)
    scores = {g: (e["discriminative_score"]["mean"] if e["discriminative_score"]["mean"] is not None else np.nan,
                  e["discriminative_score"]["std"] or 0.0) for g, e in section["generators"].items()}
    figs.add(P.plot_score_bars(scores, floor=FLOOR, title=f"{name}: discriminative score (mean ± std over seeds)"),
             f"{name}_discriminative", f"{name} discriminative scores")
    figs.add(P.plot_acf_overlay(sets, nlags=lags, title=name), f"{name}_acf", f"{name} ACF overlays")
    figs.add(P.plot_leverage_overlay(sets, title=f"{name}: leverage effect, corr(r_t, r_t+k^2)"), f"{name}_leverage",
             f"{name} leverage curves")
    figs.add(P.plot_qq(sets, title=f"{name}: QQ against the real test returns"), f"{name}_qq", f"{name} QQ plot")
    figs.add(P.plot_histogram_overlay(sets, title=f"{name}: return distribution"), f"{name}_histograms",
             f"{name} histograms")
    figs.add(P.plot_price_paths(data.real_test, windows["wavefin"], start_price=data.start_price or 1.0,
                                title=f"{name}: sample price paths"), f"{name}_paths", f"{name} sample paths")
    for label, images in (("real", data.real_scalograms), ("synthetic", data.synth_scalograms)):
        if images is not None and len(images):
            idx = np.unique(np.linspace(0, len(images) - 1, num=min(4, len(images))).round().astype(int))
            figs.add(P.plot_scalogram_grid(np.asarray(images)[idx], [f"{name} {label} #{i}" for i in idx], n=4),
                     f"{name}_scalograms_{label}", f"{name} {label} scalograms")
    return figs.md[start:]


def _flat_headline(document: dict[str, Any]) -> dict[str, float]:
    """``{series}.{generator}.{metric}`` and ``sampler.{name}.{metric}`` floats for MLflow and Dagster."""
    flat: dict[str, float] = {}
    for name, section in document["series"].items():
        flat[f"{name}.n_real_test"] = float(section["n_real_test"])
        if section.get("augmentation"):
            aug = section["augmentation"]
            flat.update({f"{name}.augmentation.accuracy_real_only": aug["real_only"]["accuracy"]["mean"],
                         f"{name}.augmentation.accuracy_real_plus_synthetic":
                             aug["real_plus_synthetic"]["accuracy"]["mean"],
                         f"{name}.augmentation.accuracy_difference": aug["difference"]["accuracy"]["mean"],
                         f"{name}.augmentation.p_value": aug["test"]["p_value"]})
        for gen, e in section["generators"].items():
            values = {
                "discriminative_mean": e["discriminative_score"]["mean"],
                "discriminative_std": e["discriminative_score"]["std"],
                "discriminative_shape_mean": (e.get("discriminative_score_shape") or {}).get("mean"),
                "discriminative_logistic": e["discriminative_score_logistic"],
                "predictive_mae": e["predictive_score"]["mean"],
                "predictive_mae_real": e["predictive_score"]["real_mean"],
                "mdd": e["mdd"], "acd": e["acd"], "sd": e["sd"], "kd": e["kd"], "std_ratio": e["std_ratio"],
                "facts_reproduced": e["facts_reproduced"],
            }
            flat.update({f"{name}.{gen}.{k}": float(v) for k, v in values.items() if v is not None})
    for name, e in document["samplers"].items():
        for key in ("seconds_per_1000", "discriminative_score"):
            if e.get(key) is not None:
                flat[f"sampler.{name}.{key}"] = float(e[key])
    return flat


def write_generation_report(
    series: list[SeriesGeneration],
    out_dir: str | os.PathLike[str],
    *,
    title: str,
    context: dict[str, Any],
    samplers: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
    discriminative_seeds: int = 5,
    predictive_seeds: int = 3,
    classifier_steps: int | None = None,
    log: ProgressLog | None = None,
    filename: str = "generation_report.md",
    augmentation: Any = None,
) -> ReportResult:
    """Per-series generation report: wavefin against every classical generator on each series' held-out data.

    For each :class:`SeriesGeneration`, :func:`evaluate_series` fits the classical generators on the train
    returns, draws as many windows as wavefin produced and scores every generator against the real test windows
    (post-hoc discriminative score over ``discriminative_seeds`` seeds, the fast logistic score, TSTR over
    ``predictive_seeds`` seeds with the same n, TSGBench MDD/ACD/SD/KD, stylized facts with the real values).
    ``classifier_steps`` is passed on to :func:`evaluate_series`.
    ``samplers`` (``{"ddpm"|"ddim"|"dpmsolver": {"steps", "seconds_per_1000", "discriminative_score", ...}}``)
    fills the samplers table. Writes ``out_dir/filename`` (markdown), ``out_dir/figures/*.png`` and
    ``out_dir/metrics.json`` (schema in :func:`build_generation_metrics`), each atomically. ``log`` receives
    progress lines. The returned metrics are the flat headline numbers (:func:`_flat_headline`).
    ``augmentation`` (a :class:`~wavefin_core.evaluation.augmentation.SyntheticAugmentationConfig`; None: off)
    adds per series with ``val_returns`` the section "Does synthetic data help a forecaster?" and its
    ``metrics.json`` key ``series[NAME]["augmentation"]``.
    """
    if not series:
        raise ConfigError("write_generation_report needs at least one series; train the model on a series first.")
    names = [s.name for s in series]
    if len(set(names)) != len(names):
        raise ConfigError(f"series names must be unique; got {names}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections: dict[str, dict[str, Any]] = {}
    figs = _Figures(out_dir, dpi=GENERATION_FIGURE_DPI)
    series_md: list[str] = []
    for data in series:
        section, windows = evaluate_series(data, seed=seed, discriminative_seeds=discriminative_seeds,
                                           predictive_seeds=predictive_seeds, classifier_steps=classifier_steps,
                                           log=log)
        experiment = None
        if augmentation is not None and data.val_returns is not None:
            from concurrent.futures import ThreadPoolExecutor

            from wavefin_core.evaluation.augmentation import augmentation_for_report

            # The augmentation experiment (torch, which leaves the GIL in its kernels) trains on the second core
            # while this thread draws the figures (matplotlib, which holds it); joined before the next series,
            # whose networks use both cores and torch's process-wide RNG.
            experiment = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wavefin-augmentation")
            augmented = experiment.submit(augmentation_for_report, data, section, augmentation, log)
        sections[data.name] = section
        try:
            figure_links = _series_figures(figs, data, section, windows)
        finally:
            if experiment is not None:
                experiment.shutdown(wait=True)
        if experiment is not None:
            section["augmentation"] = augmented.result()
        series_md += _series_md(data.name, section, data, figure_links, discriminative_seeds)
    document = build_generation_metrics(sections, samplers, context)
    md = [
        f"# {title}", "",
        "## Run context", _context_md(context), "",
        "## Verdicts",
        "Is wavefin closer to the held-out real data than each classical generator, by the post-hoc "
        f"discriminative score (a t-test per classical generator, paired on the classifier seeds, Holm-corrected "
        f"over them at {VERDICT_ALPHA:g}), "
        "and how far is it from the floor (real train windows, which no generator can be expected to beat by "
        "more than noise)?", "",
        *[f"- {sections[n]['verdict']}" for n in names], "",
        _OVERLAP_NOTE, "",
        *series_md,
        *_samplers_md(document["samplers"]),
        f"Machine-readable numbers: [`{METRICS_JSON}`]({METRICS_JSON}).",
    ]
    _write_json_atomic(out_dir / METRICS_JSON, document)
    md_path = out_dir / filename
    _write_text_atomic(md_path, "\n".join(md) + "\n")
    return ReportResult(markdown_path=md_path, metrics=_flat_headline(document), figures=figs.paths,
                        document=document, metrics_json=out_dir / METRICS_JSON)


# --------------------------------------------------------------------------------------- forecast report
FORECAST_ALPHA = 0.05
FORECAST_METRICS_SCHEMA = "wavefin.forecast.metrics/1"
_VERDICT_RULE = (
    "A direction model is significant only if ALL hold: (1) it beats the best naive baseline (chosen by TRAIN "
    "accuracy, so the choice never looks at the test windows) by the exact McNemar test on the windows where "
    "the two disagree; (2) its accuracy beats the majority rate (the test share of the more frequent class) "
    "by an exact binomial test; (3) its balanced accuracy is above 0.5. The larger of the two p-values is "
    f"Holm-corrected over the models of the series' table and must be below {FORECAST_ALPHA:g}. A return model "
    "is significant only if its RMSE is below both naive return forecasts (random walk and historical train "
    "mean) and the larger Diebold-Mariano (HLN) p-value of the two comparisons, Holm-corrected over the return "
    f"models of the table, is below {FORECAST_ALPHA:g}. The binomial p-value against 50% is an extra column only."
)


@dataclass
class SeriesForecasts:
    """Test-split forecasts of one series plus the train data its naive baselines are built and chosen from.

    ``results``: ``[{"model": str, "kind": "direction" | "return", "pred": array, "proba": array | None}]``
    on the test windows (for direction models ``pred`` may be omitted when ``proba`` = P(up) is given).
    ``test_windows`` / ``train_windows``: the returns before each target (at least the last ``horizon``), from
    which ``previous_direction`` is computed. ``train_return``: the train targets, for ``historical_mean``
    (left out of the table when None). Targets must be the RAW returns (never winsorized).
    """

    name: str
    horizon: int
    y_true_direction: Any
    y_true_return: Any
    results: list[dict[str, Any]]
    test_windows: Any
    train_windows: Any
    train_direction: Any
    train_return: Any = None


def _validate_results(results: list[dict[str, Any]], n: int, series: str = "") -> list[dict[str, Any]]:
    where = f"series {series!r}: " if series else ""
    seen: set[str] = set()
    clean = []
    for i, r in enumerate(results):
        if not isinstance(r, dict) or "model" not in r or r.get("kind") not in ("direction", "return"):
            raise ConfigError(f"{where}results[{i}] must be a dict with 'model' and 'kind' in "
                              f"{{'direction', 'return'}}; got {r!r:.200}.")
        name = str(r["model"])
        if name in seen:
            raise ConfigError(f"{where}results: model name {name!r} appears twice; model names must be unique "
                              "(e.g. 'lstm_direction' and 'lstm_return').")
        if name in NAIVE_DIRECTION + NAIVE_RETURN:
            raise ConfigError(f"{where}results[{i}] is named {name!r}, a naive baseline the report computes "
                              "itself; rename the model.")
        seen.add(name)
        proba = None if r.get("proba") is None else np.asarray(r["proba"], dtype=np.float64).ravel()
        pred = r.get("pred")
        if pred is None and proba is not None and r["kind"] == "direction":
            pred = (proba > 0.5).astype(np.int64)
        if pred is None:
            raise ConfigError(f"{where}results[{i}] ({name}) has no 'pred'.")
        pred = np.asarray(pred).ravel()
        if pred.size != n or (proba is not None and proba.size != n):
            raise DataError(f"{where}results[{i}] ({name}) has {pred.size} predictions for {n} test windows; "
                            "predict on exactly the test windows of the report.")
        if r["kind"] == "direction":
            if not np.all(np.isin(pred, (0, 1))):
                raise DataError(f"{where}results[{i}] ({name}): direction predictions must be 0/1.")
            pred = pred.astype(np.int64)
        else:
            pred = pred.astype(np.float64)
        clean.append({"model": name, "kind": r["kind"], "pred": pred, "proba": proba})
    return clean


def judge_direction_models(y_true: Any, models: dict[str, dict[str, Any]], naive: dict[str, np.ndarray],
                           best_naive: str, alpha: float = FORECAST_ALPHA) -> dict[str, dict[str, Any]]:
    """Classification metrics and the verdict of every direction model of ONE table (one series).

    ``models``: ``{name: {"pred": 0/1 array, "proba": P(up) or None}}``; ``naive``: ``{name: 0/1 array}``,
    the naive baselines on the same test windows; ``best_naive``: the one chosen on train. Returns, per model
    (naive ones included, never significant), the metrics of :func:`classification_metrics` plus
    ``p_vs_best_naive`` (exact McNemar), ``p_vs_majority`` (exact binomial vs the majority rate),
    ``p_vs_50`` (binomial vs 0.5, information only), ``p_holm`` and ``significant`` (see ``_VERDICT_RULE``).
    """
    from wavefin_core.evaluation.stats_tests import binomial_test, holm, mcnemar_exact

    yt = np.asarray(y_true).ravel().astype(np.int64)
    if best_naive not in naive:
        raise ConfigError(f"best_naive={best_naive!r} is not one of the naive baselines {sorted(naive)}.")
    up = float(yt.mean())
    majority_rate = max(up, 1.0 - up)
    best_pred = naive[best_naive]
    best_acc = float(np.mean(best_pred == yt))
    out: dict[str, dict[str, Any]] = {}
    candidates = [(name, spec["pred"], spec.get("proba"), False) for name, spec in models.items()]
    for name, pred, proba, is_naive in [(n, p, None, True) for n, p in naive.items()] + candidates:
        c = M.classification_metrics(yt, pred, proba)
        p_naive, wins, losses = mcnemar_exact(yt, pred, best_pred)
        k = int(c["n_correct"])
        # A majority rate of 1 (one class only) cannot be beaten: p = 1 rather than a test at p0 = 1.
        p_major = binomial_test(k, yt.size, majority_rate) if majority_rate < 1.0 else 1.0
        out[name] = {**c, "p_vs_best_naive": p_naive, "wins_vs_best_naive": float(wins),
                     "losses_vs_best_naive": float(losses), "p_vs_majority": p_major, "p_vs_50": c["binomial_p"],
                     "majority_rate": majority_rate, "naive": is_naive, "p_holm": float("nan"), "significant": False}
    fitted = list(models)
    if fitted:
        joint = [max(out[m]["p_vs_best_naive"], out[m]["p_vs_majority"]) for m in fitted]
        for m, p_adj in zip(fitted, holm(joint), strict=True):
            e = out[m]
            e["p_holm"] = float(p_adj)
            e["significant"] = bool(p_adj < alpha and e["accuracy"] > best_acc and e["accuracy"] > majority_rate
                                    and e["balanced_accuracy"] > 0.5)
    return out


def judge_return_models(y_true: Any, models: dict[str, np.ndarray], naive: dict[str, np.ndarray], horizon: int,
                        alpha: float = FORECAST_ALPHA) -> dict[str, dict[str, Any]]:
    """Regression metrics and verdicts of the return models of ONE table: each model is compared with EVERY
    naive return forecast by a Diebold-Mariano (HLN) test; ``p_vs_best_naive`` is the largest of those
    p-values, Holm-corrected into ``p_holm`` over the models; significant = RMSE below every naive forecast's
    and ``p_holm < alpha``. Naive forecasts get their DM test against the random walk for information."""
    from wavefin_core.evaluation.stats_tests import diebold_mariano, holm

    yt = np.asarray(y_true, dtype=np.float64).ravel()
    out: dict[str, dict[str, Any]] = {}
    for name, pred in {**naive, **models}.items():
        g = M.regression_metrics(yt, pred, naive_pred=naive["zero_return"], horizon=horizon)
        entry: dict[str, Any] = {**g, "naive": name in naive, "p_holm": float("nan"), "significant": False}
        if name not in naive:
            p_each = {}
            for other, other_pred in naive.items():
                stat, p = diebold_mariano(yt - pred, yt - other_pred, horizon=horizon, loss="squared")
                entry[f"dm_stat_vs_{other}"], entry[f"dm_p_vs_{other}"] = stat, p
                p_each[other] = p if np.isfinite(p) else 1.0
            entry["p_vs_best_naive"] = max(p_each.values())
        else:
            entry["p_vs_best_naive"] = float("nan")
        out[name] = entry
    fitted = list(models)
    if fitted:
        naive_rmse = min(out[m]["rmse"] for m in naive)
        for m, p_adj in zip(fitted, holm([out[m]["p_vs_best_naive"] for m in fitted]), strict=True):
            out[m]["p_holm"] = float(p_adj)
            out[m]["significant"] = bool(p_adj < alpha and out[m]["rmse"] < naive_rmse)
    return out


def _train_accuracy_of_naive(sf: SeriesForecasts, horizon: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Naive direction forecasts on the TEST windows and the TRAIN accuracy of each (to choose the best).

    ``historical_mean`` (the sign of the mean train target) is there only when ``train_return`` is given."""
    train_dir = np.asarray(sf.train_direction).ravel()
    targets = {} if sf.train_return is None else {"train_targets": sf.train_return}
    train = naive_forecasts(train_dir, sf.train_windows, horizon, **targets)["direction"]
    test = naive_forecasts(train_dir, sf.test_windows, horizon, **targets)["direction"]
    if train["majority_class"].size != train_dir.size:
        raise DataError(f"series {sf.name!r}: train_windows has {train['majority_class'].size} rows for "
                        f"{train_dir.size} train directions; pass one window per train target.")
    names = [m for m in NAIVE_DIRECTION if m in test]
    return {m: float(np.mean(train[m] == train_dir)) for m in names}, {m: test[m] for m in names}


def evaluate_forecast_series(sf: SeriesForecasts, alpha: float = FORECAST_ALPHA) -> dict[str, Any]:
    """Every model and naive baseline of one series on its test windows, with the verdicts."""
    yd = np.asarray(sf.y_true_direction).ravel()
    yr = np.asarray(sf.y_true_return, dtype=np.float64).ravel()
    if yd.size != yr.size or yd.size == 0:
        raise DataError(f"series {sf.name!r}: y_true_direction ({yd.size}) and y_true_return ({yr.size}) must "
                        "be the same, non-zero length (the test windows).")
    if not isinstance(sf.horizon, (int, np.integer)) or sf.horizon < 1:
        raise ConfigError(f"series {sf.name!r}: horizon must be a positive integer; got {sf.horizon!r}.")
    n = yd.size
    res = _validate_results(sf.results, n, sf.name)
    train_acc, naive_dir = _train_accuracy_of_naive(sf, int(sf.horizon))
    if naive_dir["majority_class"].size != n:
        raise DataError(f"series {sf.name!r}: test_windows has {naive_dir['majority_class'].size} rows for "
                        f"{n} test targets.")
    # Ties go to majority_class: the simpler rule wins when the data cannot tell them apart.
    best_naive = max(reversed(list(train_acc)), key=lambda m: train_acc[m])
    direction = judge_direction_models(
        yd, {r["model"]: r for r in res if r["kind"] == "direction"}, naive_dir, best_naive, alpha)
    naive_ret = {"zero_return": np.zeros(n)}
    if sf.train_return is not None:
        naive_ret["historical_mean"] = np.full(n, float(np.mean(np.asarray(sf.train_return, dtype=np.float64))))
    returns = judge_return_models(yr, {r["model"]: r["pred"] for r in res if r["kind"] == "return"}, naive_ret,
                                  int(sf.horizon), alpha)
    up = float(yd.mean())
    return {"n_test": n, "horizon": int(sf.horizon), "up_share": up, "majority_rate": max(up, 1.0 - up),
            "best_naive": best_naive, "naive_train_accuracy": train_acc, "direction": direction,
            "return": returns, "preds": {r["model"]: r["pred"] for r in res if r["kind"] == "return"},
            "y_true_direction": yd, "y_true_return": yr,
            "dir_preds": {**naive_dir, **{r["model"]: r["pred"] for r in res if r["kind"] == "direction"}}}


_JSON_DIRECTION_KEYS = ("accuracy", "balanced_accuracy", "mcc", "macro_f1", "macro_precision", "macro_recall",
                        "roc_auc", "p_vs_best_naive", "p_vs_majority", "p_vs_50", "p_holm", "significant",
                        "wins_vs_best_naive", "losses_vs_best_naive")
_JSON_RETURN_KEYS = ("mse", "rmse", "mae", "mase", "directional_accuracy", "dm_stat", "dm_p", "p_vs_best_naive",
                     "p_holm", "significant")


def build_forecast_metrics(sections: dict[str, dict[str, Any]], model_info: dict[str, dict[str, Any]],
                           context: dict[str, Any], walk_forward: dict[str, Any] | None = None,
                           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The forecast ``metrics.json`` document (issue 9's schema plus extra keys and ``null_values``).

    ``walk_forward``: ``{series: walk_forward_evaluate(...) output}``, stored as ``series.NAME.walk_forward``;
    ``extra``: other evaluations' JSON sections (e.g. the volume and volatility tasks), stored under ``extra``."""
    nulls: dict[str, str] = {}
    series_out: dict[str, Any] = {}

    def info(model: str, is_naive: bool, path: str) -> dict[str, Any]:
        if is_naive:
            return {"params": 0, "train_seconds": 0.0}
        got = model_info.get(model) or {}
        out = {"params": got.get("params"), "train_seconds": got.get("train_seconds")}
        for key, value in out.items():
            if value is None:
                nulls[f"{path}.{key}"] = "not recorded by the forecasters asset for this model"
        return out

    for name, sec in sections.items():
        base = f"series.{name}"
        models = {}
        for model, e in sec["direction"].items():
            path = f"{base}.models.{model}"
            entry = {k: e.get(k) for k in _JSON_DIRECTION_KEYS}
            if entry["roc_auc"] is None:
                nulls[f"{path}.roc_auc"] = "no probabilities (a 0/1 forecast) or one class only in the test set"
            if e["naive"]:
                entry["p_holm"] = None
                nulls[f"{path}.p_holm"] = "naive baseline: not one of the models tested"
            models[model] = _json_safe({**entry, "naive": bool(e["naive"]), **info(model, e["naive"], path)},
                                       path, nulls, "not finite as computed")
        return_models = {}
        for model, e in sec["return"].items():
            path = f"{base}.return_models.{model}"
            entry = {k: e.get(k) for k in _JSON_RETURN_KEYS}
            if e["naive"]:
                entry["p_vs_best_naive"] = entry["p_holm"] = None
                nulls[f"{path}.p_vs_best_naive"] = nulls[f"{path}.p_holm"] = "naive baseline: not tested"
                if model == "zero_return":
                    entry["dm_stat"] = entry["dm_p"] = None
                    nulls[f"{path}.dm_stat"] = nulls[f"{path}.dm_p"] = "the random walk compared with itself"
            entry.update({k: v for k, v in e.items() if k.startswith("dm_") and k not in entry})
            return_models[model] = _json_safe({**entry, "naive": bool(e["naive"]),
                                               **info(model, e["naive"], path)}, path, nulls,
                                              "not finite as computed (e.g. no non-zero forecast for "
                                              "directional accuracy)")
        series_out[name] = {
            "n_test": int(sec["n_test"]), "horizon": int(sec["horizon"]),
            "majority_rate": float(sec["majority_rate"]), "up_share": float(sec["up_share"]),
            "best_naive": sec["best_naive"],
            "naive_train_accuracy": _json_safe(sec["naive_train_accuracy"], f"{base}.naive_train_accuracy",
                                               nulls, "not finite"),
            "models": models, "return_models": return_models,
        }
        if walk_forward and name in walk_forward:
            series_out[name]["walk_forward"] = _json_safe(walk_forward[name], f"{base}.walk_forward", nulls,
                                                          "not finite")
    return {"schema": FORECAST_METRICS_SCHEMA, "context": _json_safe(context, "context", nulls, "not finite"),
            "protocol": {"alpha": FORECAST_ALPHA, "verdict": _VERDICT_RULE,
                         "targets": "raw (never winsorized) next-horizon log returns of the test split",
                         "best_naive": "the naive direction baseline with the highest TRAIN accuracy "
                                       "(ties: majority_class)",
                         "test_windows": "every test row for horizon 1 (segments.test_stride), every h-th for "
                                         "horizon h; train and val windows at segments.stride",
                         "mase": "MAE / MAE of the random walk (zero return) on the same test targets",
                         "walk_forward": "expanding-window folds over the series' stride-1 windows: each fold's "
                                         "models refitted on every window before it minus the embargo; mean and "
                                         "std (ddof 1) of the fold accuracies"},
            "series": series_out, **({"extra": _json_safe(extra, "extra", nulls, "not finite")} if extra else {}),
            "null_values": nulls}


def _forecast_series_md(name: str, sec: dict[str, Any], model_info: dict[str, dict[str, Any]],
                        metrics: dict[str, float]) -> tuple[list[str], list[str]]:
    """Markdown tables of one series and its verdict sentences; fills flat ``{series}.{model}.{metric}``."""

    def cost(model: str, is_naive: bool) -> list[str]:
        if is_naive:
            return ["0", "—"]
        got = model_info.get(model) or {}
        params = got.get("params")
        return ["—" if params is None else f"{int(params):,}", _fmt(got.get("train_seconds"))]

    best, majority = sec["best_naive"], sec["majority_rate"]
    best_acc = sec["direction"][best]["accuracy"]
    sentences, drows = [], []
    for model, e in sec["direction"].items():
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "mcc", "p_vs_best_naive", "p_vs_majority",
                    "p_vs_50", "p_holm", "roc_auc"):
            if key in e and e[key] is not None and np.isfinite(e[key]):
                metrics[f"{name}.{model}.{key}"] = float(e[key])
        if e["naive"]:
            verdict = "(best naive baseline)" if model == best else "(naive baseline)"
        else:
            metrics[f"{name}.{model}.significant"] = float(e["significant"])
            verdict = "**significant**" if e["significant"] else "no"
            if e["significant"]:
                sentences.append(f"{name}: {model} beats the best naive baseline {best} significantly (accuracy "
                                 f"{e['accuracy']:.4f} vs {best_acc:.4f}, majority rate {majority:.4f}, balanced "
                                 f"accuracy {e['balanced_accuracy']:.4f}, Holm p = {_fmt(e['p_holm'])}).")
            else:
                why = []
                if e["accuracy"] <= best_acc:
                    why.append(f"accuracy {e['accuracy']:.4f} is not above {best}'s {best_acc:.4f}")
                if e["accuracy"] <= majority:
                    why.append(f"not above the majority rate {majority:.4f}")
                if e["balanced_accuracy"] <= 0.5:
                    why.append(f"balanced accuracy {e['balanced_accuracy']:.4f} is not above 0.5")
                if not why:
                    why.append(f"Holm-corrected p = {_fmt(e['p_holm'])} is not below {FORECAST_ALPHA:g} "
                               f"({int(e['wins_vs_best_naive'])} windows right where {best} is wrong, "
                               f"{int(e['losses_vs_best_naive'])} the reverse)")
                sentences.append(f"{name}: {model} does not beat the naive baselines: {'; '.join(why)}.")
        drows.append([model, _fmt(e["accuracy"]), _fmt(e["balanced_accuracy"]), _fmt(e["macro_f1"]),
                      _fmt(e["mcc"]), _fmt(e.get("roc_auc")),
                      "—" if e["naive"] else _fmt(e["p_vs_best_naive"]),
                      "—" if e["naive"] else _fmt(e["p_vs_majority"]), _fmt(e["p_vs_50"]),
                      "—" if e["naive"] else _fmt(e["p_holm"]), *cost(model, e["naive"]), verdict])
    rrows = []
    for model, g in sec["return"].items():
        for key in ("mse", "rmse", "mae", "mase", "dm_stat", "dm_p", "p_holm"):
            if np.isfinite(g.get(key, float("nan"))):
                metrics[f"{name}.{model}.{key}"] = float(g[key])
        if g["naive"]:
            verdict = "(naive baseline)"
        else:
            metrics[f"{name}.{model}.significant"] = float(g["significant"])
            verdict = "**significant**" if g["significant"] else "no"
            word = "significantly beats" if g["significant"] else "does not significantly beat"
            sentences.append(f"{name}: {model} {word} the naive return forecasts (RMSE {g['rmse']:.4g} vs "
                             f"{min(sec['return'][m]['rmse'] for m in sec['return'] if sec['return'][m]['naive']):.4g}"
                             f"; Holm p = {_fmt(g['p_holm'])}).")
        rrows.append([model, _fmt(g["mse"]), _fmt(g["rmse"]), _fmt(g["mae"]), _fmt(g["mase"]),
                      _fmt(g["directional_accuracy"]),
                      "—" if model == "zero_return" else _fmt(g["dm_stat"]),
                      "—" if model == "zero_return" else _fmt(g["dm_p"]),
                      "—" if g["naive"] else _fmt(g["p_vs_best_naive"]),
                      "—" if g["naive"] else _fmt(g["p_holm"]), *cost(model, g["naive"]), verdict])
    train_acc = ", ".join(f"{m} {a:.4f}" for m, a in sec["naive_train_accuracy"].items())
    md = [
        f"## Series `{name}`",
        f"{sec['n_test']} test windows, horizon {sec['horizon']}; up share {sec['up_share']:.4f}, majority rate "
        f"{majority:.4f}. Best naive baseline (by TRAIN accuracy: {train_acc}): **{best}** "
        f"(test accuracy {best_acc:.4f}).", "",
        "### Direction",
        _table(["model", "accuracy", "balanced acc", "macro-F1", "MCC", "ROC AUC", "p vs best naive (McNemar)",
                "p vs majority (binomial)", "binomial p vs 50%", "Holm p", "params", "train s", "significant?"],
               drows), "",
        "### Return",
        "Return units: as given (the pipeline uses each series' train-window std). DM = Diebold-Mariano test "
        "(HLN-corrected, squared loss) vs the random walk (zero return); p vs best naive = the larger DM p "
        "against the random walk and the historical train mean.", "",
        _table(["model", "MSE", "RMSE", "MAE", "MASE vs RW", "directional acc", "DM stat vs RW", "DM p vs RW",
                "p vs best naive",
                "Holm p", "params", "train s", "significant?"], rrows), "",
    ]
    return md, sentences


def _accuracy_summary_md(sections: dict[str, dict[str, Any]]) -> list[str]:
    """Direction accuracy of every model per series, side by side."""
    names = list(sections)
    models: list[str] = []
    for sec in sections.values():
        models += [m for m in sec["direction"] if m not in models]
    rows = [[m, *[_fmt(sections[s]["direction"][m]["accuracy"]) if m in sections[s]["direction"] else "—"
                  for s in names]] for m in models]
    return ["## Direction accuracy per series", _table(["model", *names], rows), ""]


def _augmentation_md(sections: dict[str, dict[str, Any]]) -> list[str]:
    """Accuracy with and without augmentation, for every model trained both ways (``<model>_augmented``)."""
    lines = []
    for name, sec in sections.items():
        for model, e in sec["direction"].items():
            base = model.removesuffix("_augmented")
            if model.endswith("_augmented") and base in sec["direction"]:
                b = sec["direction"][base]
                lines.append(f"- {name}: {base} accuracy {b['accuracy']:.4f} (balanced {b['balanced_accuracy']:.4f}) "
                             f"without augmentation, {e['accuracy']:.4f} (balanced {e['balanced_accuracy']:.4f}) "
                             f"with it; McNemar p of each against the best naive baseline: "
                             f"{_fmt(b['p_vs_best_naive'])} and {_fmt(e['p_vs_best_naive'])}.")
    if not lines:
        return []
    return ["## Augmentation: with and without", "The augmented model is the same network trained on the train "
            "windows plus one time-shifted and magnitude-jittered copy of each (validation and test windows stay "
            "real).", *lines, ""]


def _walk_forward_md(walk_forward: dict[str, Any] | None, metrics: dict[str, float]) -> list[str]:
    """Per series: mean ± std of each model's walk-forward fold accuracies, and the folds themselves."""
    if not walk_forward:
        return []
    md = ["## Walk-forward evaluation",
          "Expanding window: each test fold is scored by models refitted on every window before it (minus the "
          "embargo); the spread over folds is the period-to-period noise a single split hides.", ""]
    for name, wf in walk_forward.items():
        folds = wf["folds"]
        header = ["model", "mean ± std", *[f"fold {f['fold']} (n={f['n_test']})" for f in folds]]
        rows = []
        for model, summary in wf["summary"].items():
            metrics[f"{name}.{model}.walk_forward_mean"] = float(summary["mean"])
            metrics[f"{name}.{model}.walk_forward_std"] = float(summary["std"])
            rows.append([model, f"{summary['mean']:.4f} ± {summary['std']:.4f}", *[_fmt(v) for v in summary["folds"]]])
        md += [f"### `{name}`: {wf['k']} folds, embargo {wf['embargo']} rows, last {wf['test_fraction']:g} of the "
               "windows tested", _table(header, rows), ""]
    return md


def write_forecast_report(
    series: list[SeriesForecasts],
    out_dir: str | os.PathLike[str],
    *,
    title: str,
    context: dict[str, Any],
    model_info: dict[str, dict[str, Any]] | None = None,
    figures_data: dict[str, Any] | None = None,
    filename: str = "forecast_report.md",
    alpha: float = FORECAST_ALPHA,
    walk_forward: dict[str, Any] | None = None,
    extra_sections: dict[str, dict[str, Any]] | None = None,
) -> ReportResult:
    """Evaluate every series' forecasts on its own test windows (its own horizon) and write the report.

    One table per series: the naive baselines (``previous_direction``, ``majority_class``; ``zero_return``
    and ``historical_mean`` for returns) are always computed and shown; the verdict follows
    ``_VERDICT_RULE`` (Holm over the models of the table). Writes ``out_dir/filename`` (markdown, with
    figures) and ``out_dir/metrics.json`` (:func:`build_forecast_metrics`), each atomically.

    ``model_info``: ``{model: {"params": int, "train_seconds": float}}`` for the fitted models.
    ``figures_data`` (optional): ``{"training_losses": {model: [loss, ...]}, "n_last": int}``.
    ``walk_forward`` (optional): ``{series: walk_forward_evaluate(...)}``, shown as mean ± std over folds.
    ``extra_sections`` (optional): ``{title: {"markdown": str, "json": dict}}`` from other evaluations (the
    volume translation and realized-volatility tasks), appended to the report and to ``metrics.json`` (under
    ``extra.<title>``, or as the top-level key ``part["key"]`` when the part names one).
    Flat metrics (for MLflow / Dagster): ``{series}.{model}.{metric}`` and ``{series}.n_test``.
    """
    if not series:
        raise ConfigError("write_forecast_report needs at least one series (a SeriesForecasts per series).")
    names = [sf.name for sf in series]
    if len(set(names)) != len(names):
        raise ConfigError(f"write_forecast_report: series names {names} are not unique.")
    model_info = model_info or {}
    sections = {sf.name: evaluate_forecast_series(sf, alpha) for sf in series}
    extra_sections = extra_sections or {}
    document = build_forecast_metrics(sections, model_info, context, walk_forward,
                                      {title: part.get("json") for title, part in extra_sections.items()
                                       if not part.get("key")})
    for title, part in extra_sections.items():  # a section with a "key" is that top-level key of metrics.json
        key = part.get("key")
        if key and key in document:
            raise ConfigError(f"extra section {title!r}: key {key!r} is already a key of the forecast metrics.json "
                              f"({sorted(document)}); give the section another key.")
        if key:
            document[key] = _json_safe(part.get("json"), key, document["null_values"], "not finite")

    metrics: dict[str, float] = {}
    md = [f"# {title}", "", "## Run context", _context_md(context), "",
          "## How to read the verdicts", _VERDICT_RULE, ""]
    sentences: list[str] = []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = _Figures(out_dir)
    fd = figures_data or {}
    for name, sec in sections.items():
        metrics[f"{name}.n_test"] = float(sec["n_test"])
        metrics[f"{name}.majority_rate"] = float(sec["majority_rate"])
        part, said = _forecast_series_md(name, sec, model_info, metrics)
        md += part
        sentences += said
        for model, e in sec["direction"].items():
            if not e["naive"]:
                figs.add(P.plot_confusion(sec["y_true_direction"], sec["dir_preds"][model],
                                          f"{name} {model}: accuracy {e['accuracy']:.3f}"),
                         f"confusion_{name}_{model}", f"confusion matrix {name} {model}")
        figs.add(P.plot_forecast_vs_actual(sec["y_true_return"], {"zero_return": np.zeros(sec["n_test"]),
                                                                  **sec["preds"]},
                                           n_last=int(fd.get("n_last", 200))),
                 f"forecast_vs_actual_{name}", f"{name}: forecasts vs actual returns")
    for model, losses in (fd.get("training_losses") or {}).items():
        if len(losses):
            figs.add(P.plot_training_curve(losses, title=f"{model} training loss"), f"training_{model}",
                     f"training curve {model}")
    md += [*_accuracy_summary_md(sections), *_augmentation_md(sections), *_walk_forward_md(walk_forward, metrics)]
    for title, part in extra_sections.items():
        md += [f"## {title}", str(part.get("markdown", "")), ""]
    md += ["## Verdict", *([f"- {s}" for s in sentences] or ["- Only naive baselines were evaluated."]), "",
           "## Figures", *[f"{m}\n" for m in figs.md]]
    _write_json_atomic(out_dir / METRICS_JSON, document)
    md_path = out_dir / filename
    _write_text_atomic(md_path, "\n".join(md) + "\n")
    return ReportResult(markdown_path=md_path, metrics=metrics, figures=figs.paths, document=document,
                        metrics_json=out_dir / METRICS_JSON)
