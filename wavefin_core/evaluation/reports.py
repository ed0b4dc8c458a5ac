"""Markdown reports (with PNG figures) for generation and forecasting runs.

Why markdown: it renders in MLflow's artifact viewer, on GitHub and in Dagster metadata, diffs well, and
needs no template engine. Each report writes ``<out_dir>/<name>.md`` plus ``<out_dir>/figures/*.png``
(relative links), every file atomically, and returns the headline numbers as a flat ``{str: float}`` dict
ready for ``mlflow.log_metrics`` and Dagster metadata.

The reports are deliberately blunt: the naive baselines are always in the forecast tables, a model that
does not beat them gets a sentence saying so, and generated series are compared with held-out real windows
and with a classical GARCH-t generator.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wavefin_core.baselines import naive_forecasts
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.evaluation import metrics as M
from wavefin_core.evaluation import plots as P

__all__ = ["ReportResult", "write_generation_report", "write_forecast_report", "simulate_garch_t"]

NAIVE_DIRECTION = ("previous_direction", "majority_class")
NAIVE_RETURN = ("zero_return",)


@dataclass
class ReportResult:
    """Where a report was written and its headline numbers (flat dict of floats)."""

    markdown_path: Path
    metrics: dict[str, float] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)


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


def _per_group_md(
    groups: Any, y_true: np.ndarray, direction_results: list[dict[str, Any]], n: int, metrics: dict[str, float]
) -> list[str]:
    """Direction accuracy of every model within each group (series); adds ``{model}_accuracy_{group}`` metrics."""
    if groups is None:
        return []
    labels = np.asarray(groups).astype(str).ravel()
    if labels.size != n:
        raise DataError(f"`groups` has {labels.size} labels for {n} test windows.")
    names = sorted(set(labels))
    rows = []
    for r in direction_results:
        row = [r["model"]]
        for g in names:
            mask = labels == g
            accuracy = float(np.mean(np.asarray(r["pred"]).ravel()[mask] == y_true[mask]))
            metrics[f"{r['model']}_accuracy_{g}"] = accuracy
            row.append(_fmt(accuracy))
        rows.append(row)
    counts = ", ".join(f"{g}: {int((labels == g).sum())}" for g in names)
    return ["## Direction accuracy per series", f"Test windows per series: {counts}.", "",
            _table(["model", *names], rows), ""]


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

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.paths: list[Path] = []
        self.md: list[str] = []

    def add(self, fig: Any, name: str, caption: str) -> None:
        path = P.save_figure(fig, self.out_dir / "figures" / f"{_slug(name)}.png")
        self.paths.append(path)
        self.md.append(f"![{caption}](figures/{path.name})")


# ----------------------------------------------------------------------------------------- GARCH baseline
def simulate_garch_t(train_returns: Any, n_windows: int, window_length: int, seed: int = 0) -> np.ndarray:
    """Fit GARCH(1,1) with Student-t innovations and a constant mean on the train returns (``arch``), then
    simulate one path of ``n_windows * window_length`` steps after a 500-step burn-in and cut it into
    windows. Returns are scaled by 100 for the fit (arch's optimiser prefers O(1) data) and back.
    Raises DataError if the series is too short, RuntimeError if the fit fails.
    """
    from arch.univariate import GARCH, ConstantMean, StudentsT

    y = np.asarray(train_returns, dtype=np.float64).ravel()
    y = y[np.isfinite(y)]
    if y.size < 100:
        raise DataError(f"GARCH-t baseline needs >= 100 train returns; got {y.size}.")
    model = ConstantMean(y * 100.0, volatility=GARCH(1, 0, 1), distribution=StudentsT(seed=int(seed)))
    res = model.fit(disp="off")
    if res.convergence_flag != 0:
        raise RuntimeError(f"GARCH-t fit did not converge (flag {res.convergence_flag})")
    sim = model.simulate(res.params, nobs=int(n_windows) * int(window_length), burn=500)
    return np.asarray(sim["data"], dtype=np.float64).reshape(int(n_windows), int(window_length)) / 100.0


def _train_windows_for_tstr(
    real_train_windows: Any, train_returns: Any, real_test: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray, str]:
    """Pick the real windows to train the TSTR reference on, and the real windows to test both on."""
    w = real_test.shape[1]
    if real_train_windows is not None:
        return np.asarray(real_train_windows, dtype=np.float64), real_test, "real train windows"
    if train_returns is not None:
        y = np.asarray(train_returns, dtype=np.float64).ravel()
        y = y[np.isfinite(y)]
        if y.size >= w + 10:
            win = np.lib.stride_tricks.sliding_window_view(y, w)
            step = max(1, win.shape[0] // 5000)
            return np.ascontiguousarray(win[::step]), real_test, "windows cut from the train returns"
    half = real_test.shape[0] // 2
    if half < 2:
        return None, real_test, "unavailable (too few real windows)"
    return real_test[:half], real_test[half:], "first half of the real test windows (tested on the second)"


# ------------------------------------------------------------------------------------- generation report
_STAT_ROWS: list[tuple[str, str]] = [
    ("mean", "mean"), ("std", "std"), ("skew", "skew"), ("excess_kurtosis", "excess kurtosis"),
    *[(f"acf_{k}", f"ACF(r) lag {k}") for k in range(1, 6)],
    *[(f"acf_abs_{k}", f"ACF(abs r) lag {k}") for k in range(1, 6)],
    ("leverage_mean", "leverage corr(r_t, abs r_t+k), k=1-5"),
]


def _flat_stats(windows: np.ndarray) -> dict[str, float]:
    s = M.window_stats(windows, nlags=10)
    out = {k: float(s[k]) for k in ("mean", "std", "skew", "excess_kurtosis")}
    for k in range(1, 6):
        out[f"acf_{k}"] = float(s["acf"][k])
        out[f"acf_abs_{k}"] = float(s["acf_abs"][k])
    lev = s["leverage"][np.isfinite(s["leverage"])]
    out["leverage_mean"] = float(lev.mean()) if lev.size else float("nan")
    return out


def write_generation_report(
    real_test_windows: Any,
    synth_windows: Any,
    out_dir: str | os.PathLike[str],
    *,
    title: str,
    context: dict[str, Any],
    real_scalograms: Any = None,
    synth_scalograms: Any = None,
    seed: int = 0,
    train_returns: Any = None,
    real_train_windows: Any = None,
    filename: str = "generation_report.md",
) -> ReportResult:
    """Compare synthetic windows (M, W) with HELD-OUT real windows (N, W); write ``out_dir/filename``.

    ``train_returns`` (the real TRAIN split's returns, 1-D) enables the GARCH-t baseline column and the
    TSTR reference; ``real_train_windows`` overrides the windows the TSTR reference trains on (otherwise cut
    from ``train_returns``, else the first half of the test windows). Scalograms, if given, are plotted
    ((N, S, T) magnitudes, complex, or (N, 2, S, T) real+imag).

    Metric keys (all floats): ``n_real``, ``n_synth``, ``window_length``; ``{real,synth,garch}_{mean, std,
    skew, excess_kurtosis, acf_1..5, acf_abs_1..5, leverage_mean}``; ``mdd``, ``acd``, ``acf_abs_diff``,
    ``sd``, ``kd``, ``discriminative_score``, ``discriminative_accuracy``, ``predictive_mae_synth``,
    ``predictive_mae_real``, ``predictive_mae_ratio``; ``{real,synth,garch}_fact_<fact>`` (1.0 holds / 0.0)
    and ``synth_facts_matching_real`` (count); with GARCH also ``garch_mdd``, ``garch_acd``, ...,
    ``garch_discriminative_score``, ``garch_predictive_mae``.
    """
    real = M._windows(real_test_windows, "real_test_windows", min_rows=5)
    synth = M._windows(synth_windows, "synth_windows", min_rows=5)
    if real.shape[1] != synth.shape[1]:
        raise DataError(f"real test windows have length {real.shape[1]} but synthetic ones {synth.shape[1]}; "
                        "generate windows with the same `window_length`.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, float] = {"n_real": float(real.shape[0]), "n_synth": float(synth.shape[0]),
                                 "window_length": float(real.shape[1])}

    sets: dict[str, np.ndarray] = {"real": real, "synth": synth}
    garch_note = "not computed (no `train_returns` given)"
    if train_returns is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sets["garch"] = simulate_garch_t(train_returns, synth.shape[0], synth.shape[1], seed=seed)
            garch_note = "GARCH(1,1), Student-t innovations, fitted on the train returns"
        except (DataError, RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
            garch_note = f"skipped: {exc}"
            warnings.warn(f"generation report: GARCH-t baseline {garch_note}", RuntimeWarning, stacklevel=2)

    stats = {name: _flat_stats(w) for name, w in sets.items()}
    for name, st in stats.items():
        metrics.update({f"{name}_{k}": v for k, v in st.items()})

    tr, te, tstr_note = _train_windows_for_tstr(real_train_windows, train_returns, real)
    scores: dict[str, dict[str, float]] = {}
    for name in [n for n in sets if n != "real"]:
        sc = M.distribution_distances(real, sets[name])
        sc.update(M.discriminative_score(real, sets[name], seed=seed))
        if tr is not None:
            sc.update(M.predictive_score(tr, sets[name], te))
        scores[name] = sc
    metrics.update(scores["synth"])
    if "garch" in scores:
        g = scores["garch"]
        metrics.update({f"garch_{k}": v for k, v in g.items() if not k.startswith("predictive")})
        if "predictive_mae_synth" in g:
            metrics["garch_predictive_mae"] = g["predictive_mae_synth"]

    facts = {name: M.stylized_facts(w) for name, w in sets.items()}
    for name, fs in facts.items():
        metrics.update({f"{name}_fact_{k}": float(v) for k, v in fs.items()})
    metrics["synth_facts_matching_real"] = float(sum(facts["synth"][k] == facts["real"][k]
                                                     for k in facts["real"]))

    # ---- figures
    figs = _Figures(out_dir)
    extra = {"GARCH-t": sets["garch"]} if "garch" in sets else None
    figs.add(P.plot_return_histograms(real, synth, extra=extra), "return_histograms",
             "return histograms")
    figs.add(P.plot_acf_comparison(real, synth, nlags=min(20, real.shape[1] - 1), extra=extra),
             "acf_comparison", "ACF of r and |r|")
    figs.add(P.plot_sample_paths(real, synth, n=8), "sample_paths", "sample paths")
    for label, images in (("real", real_scalograms), ("synthetic", synth_scalograms)):
        if images is not None:
            idx = np.unique(np.linspace(0, len(images) - 1, num=min(4, len(images))).round().astype(int))
            figs.add(P.plot_scalogram_grid(np.asarray(images)[idx], [f"{label} #{i}" for i in idx], n=4),
                     f"scalograms_{label[:5]}", f"{label} scalograms")

    # ---- markdown
    has_g = "garch" in sets
    header = ["statistic", "real (held-out test)", "synthetic", "difference"]
    if has_g:
        header += ["GARCH-t", "GARCH-t difference"]
    rows = []
    for key, label in _STAT_ROWS:
        rv, sv = stats["real"][key], stats["synth"][key]
        row = [label, _fmt(rv), _fmt(sv), _fmt(sv - rv)]
        if has_g:
            gv = stats["garch"][key]
            row += [_fmt(gv), _fmt(gv - rv)]
        rows.append(row)

    score_rows_def = [
        ("mdd", "MDD (marginal distribution difference)", "0 = same histogram of returns; lower is better"),
        ("acd", "ACD (ACF difference, lags 1-10)", "0 = same linear autocorrelation; lower is better"),
        ("acf_abs_diff", "ACF(abs r) difference, lags 1-10", "0 = same volatility clustering; lower is better"),
        ("sd", "SD (skewness difference)", "0 = same asymmetry; lower is better"),
        ("kd", "KD (excess-kurtosis difference)", "0 = same tail heaviness; lower is better"),
        ("discriminative_score", "discriminative score", "abs(accuracy - 0.5) of a real-vs-synthetic "
         "classifier: 0 = indistinguishable, 0.5 = trivially told apart"),
        ("predictive_mae_synth", "predictive score (TSTR MAE)", "MAE on real test windows of a next-step "
         "model trained on this data; compare with the real-trained reference below"),
        ("predictive_mae_real", "predictive reference (trained on real)", f"same model trained on {tstr_note}"),
    ]
    sheader = ["metric", "synthetic"] + (["GARCH-t"] if has_g else []) + ["how to read it"]
    srows = []
    for key, label, how in score_rows_def:
        row = [label, _fmt(scores["synth"].get(key))]
        if has_g:
            row.append(_fmt(scores["garch"].get(key)))
        srows.append(row + [how])

    fheader = ["stylized fact", "rule", "real", "synthetic"] + (["GARCH-t"] if has_g else [])
    frows = []
    for fact, rule in M.FACT_RULES.items():
        row = [fact.replace("_", " "), rule, _fmt(facts["real"][fact]), _fmt(facts["synth"][fact])]
        if has_g:
            row.append(_fmt(facts["garch"][fact]))
        frows.append(row)

    md = [
        f"# {title}", "",
        "## Run context", _context_md(context), "",
        f"Real: {real.shape[0]} held-out test windows; synthetic: {synth.shape[0]} windows; window length "
        f"{real.shape[1]}. GARCH-t baseline: {garch_note}.", "",
        "## Statistics of returns",
        "Pooled over all values of the windows; ACFs use the pooled mean and variance and every lagged pair "
        "inside a window.", "",
        _table(header, rows), "",
        "## Distances and scores", _table(sheader, srows), "",
        "## Stylized facts", _table(fheader, frows), "",
        f"Synthetic matches real on {int(metrics['synth_facts_matching_real'])} of {len(M.FACT_RULES)} facts.",
        "",
        "## Figures", *[f"{m}\n" for m in figs.md],
    ]
    md_path = out_dir / filename
    _write_text_atomic(md_path, "\n".join(md) + "\n")
    return ReportResult(markdown_path=md_path, metrics=metrics, figures=figs.paths)


# --------------------------------------------------------------------------------------- forecast report
def _validate_results(results: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    seen: set[str] = set()
    clean = []
    for i, r in enumerate(results):
        if not isinstance(r, dict) or "model" not in r or r.get("kind") not in ("direction", "return"):
            raise ConfigError(f"results[{i}] must be a dict with 'model' and 'kind' in "
                              f"{{'direction', 'return'}}; got {r!r:.200}.")
        name = str(r["model"])
        if name in seen:
            raise ConfigError(f"results: model name {name!r} appears twice; model names must be unique "
                              "(e.g. 'lstm_direction' and 'lstm_return').")
        seen.add(name)
        proba = None if r.get("proba") is None else np.asarray(r["proba"], dtype=np.float64).ravel()
        pred = r.get("pred")
        if pred is None and proba is not None and r["kind"] == "direction":
            pred = (proba > 0.5).astype(np.int64)
        if pred is None:
            raise ConfigError(f"results[{i}] ({name}) has no 'pred'.")
        pred = np.asarray(pred).ravel()
        if pred.size != n or (proba is not None and proba.size != n):
            raise DataError(f"results[{i}] ({name}) has {pred.size} predictions for {n} test windows; "
                            "predict on exactly the test windows of the report.")
        if r["kind"] == "direction":
            if not np.all(np.isin(pred, (0, 1))):
                raise DataError(f"results[{i}] ({name}): direction predictions must be 0/1.")
            pred = pred.astype(np.int64)
        else:
            pred = pred.astype(np.float64)
        clean.append({"model": name, "kind": r["kind"], "pred": pred, "proba": proba})
    return clean


def write_forecast_report(
    results: list[dict[str, Any]],
    out_dir: str | os.PathLike[str],
    *,
    title: str,
    context: dict[str, Any],
    y_true_direction: Any,
    y_true_return: Any,
    figures_data: dict[str, Any] | None = None,
    windows: Any = None,
    train_direction: Any = None,
    horizon: int = 1,
    filename: str = "forecast_report.md",
    groups: Any = None,
) -> ReportResult:
    """Evaluate forecasts on the test windows and write ``out_dir/filename``.

    ``groups`` (optional, one label per test window, e.g. the series name) adds a per-group direction-accuracy
    table, so a model that only works on one series in a pooled evaluation is visible.

    ``results``: ``[{"model": str, "kind": "direction" | "return", "pred": array, "proba": array | None}]``
    (for direction models ``pred`` may be omitted when ``proba`` = P(up) is given: pred = proba > 0.5).
    The naive baselines are always in the tables: ``zero_return`` is added if missing; the direction
    baselines ``previous_direction`` and ``majority_class`` are taken from ``results`` or computed with
    :func:`naive_forecasts` from the TEST ``windows``, ``train_direction`` and ``horizon``
    (ConfigError if neither). ``figures_data`` (optional): ``{"training_losses": {model: [loss, ...]},
    "n_last": int}``.

    Metric keys (floats): ``{model}_{metric}`` with classification metrics (``accuracy``, ``macro_f1``,
    ``balanced_accuracy``, ``n``, ``n_correct``, ``binomial_p``, ``roc_auc``) for direction models and
    regression metrics (``rmse``, ``mae``, ``n``, ``n_directional``, ``directional_accuracy``,
    ``naive_rmse``, ``naive_mae``, ``dm_stat``, ``dm_p``) for return models; ``{model}_beats_naive``
    (1.0/0.0) for non-baseline models; ``best_naive_accuracy``, ``naive_rmse``, ``n_test``.
    """
    yd = np.asarray(y_true_direction).ravel()
    yr = np.asarray(y_true_return, dtype=np.float64).ravel()
    if yd.size != yr.size or yd.size == 0:
        raise DataError(f"y_true_direction ({yd.size}) and y_true_return ({yr.size}) must be the same, "
                        "non-zero length (the test windows).")
    n = yr.size
    res = _validate_results(results, n)
    names = {r["model"] for r in res}

    missing = [m for m in NAIVE_DIRECTION if m not in names]
    if missing:
        if windows is None or train_direction is None:
            raise ConfigError(f"write_forecast_report: naive baselines {missing} are missing; pass them in "
                              "`results` or pass the test `windows` and `train_direction` (and `horizon`) "
                              "so they can be computed.")
        nv = naive_forecasts(train_direction, windows, horizon)
        if nv["direction"]["majority_class"].size != n:
            raise DataError(f"`windows` has {nv['direction']['majority_class'].size} rows for {n} test targets.")
        res = [{"model": m, "kind": "direction", "pred": nv["direction"][m], "proba": None}
               for m in missing] + res
    if "zero_return" not in names:
        res = [{"model": "zero_return", "kind": "return", "pred": np.zeros(n), "proba": None}] + res

    metrics: dict[str, float] = {"n_test": float(n)}
    dir_res = [r for r in res if r["kind"] == "direction"]
    ret_res = [r for r in res if r["kind"] == "return"]
    zero = next(r["pred"] for r in ret_res if r["model"] == "zero_return")

    cls = {r["model"]: M.classification_metrics(yd, r["pred"], r["proba"]) for r in dir_res}
    reg = {r["model"]: M.regression_metrics(yr, r["pred"], naive_pred=zero, horizon=horizon) for r in ret_res}
    for name, d in {**cls, **reg}.items():
        metrics.update({f"{name}_{k}": float(v) for k, v in d.items()})

    best_naive = max(NAIVE_DIRECTION, key=lambda m: cls[m]["accuracy"])
    best_acc = cls[best_naive]["accuracy"]
    naive_rmse = reg["zero_return"]["rmse"]
    metrics["best_naive_accuracy"] = best_acc
    metrics["naive_rmse"] = naive_rmse

    sentences: list[str] = []
    drows = []
    for r in dir_res:
        name, c = r["model"], cls[r["model"]]
        if name in NAIVE_DIRECTION:
            verdict = "(naive baseline)"
        else:
            beats = c["accuracy"] > best_acc
            metrics[f"{name}_beats_naive"] = float(beats)
            significant = c["binomial_p"] < 0.05
            verdict = ("yes" if significant else "yes (not significant)") if beats else "**no**"
            if beats:
                sentences.append(f"{name} beats the best naive baseline (accuracy {c['accuracy']:.4f} vs "
                                 f"{best_acc:.4f} for {best_naive}; binomial p vs 50% = "
                                 f"{_fmt(c['binomial_p'])}{'' if significant else ', not significant at 5%'}).")
            else:
                sentences.append(f"{name} does not beat the naive baseline (accuracy {c['accuracy']:.4f} "
                                 f"vs {best_acc:.4f} for {best_naive}).")
        drows.append([name, _fmt(c["accuracy"]), _fmt(c["macro_f1"]), _fmt(c["balanced_accuracy"]),
                      _fmt(c.get("roc_auc")), _fmt(c["binomial_p"]), verdict])
    rrows = []
    for r in ret_res:
        name, g = r["model"], reg[r["model"]]
        if name in NAIVE_RETURN:
            verdict = "(naive baseline)"
        else:
            beats = g["rmse"] < naive_rmse
            metrics[f"{name}_beats_naive"] = float(beats)
            significant = g["dm_stat"] < 0 and g["dm_p"] < 0.05
            verdict = ("yes" if significant else "yes (not significant)") if beats else "**no**"
            if beats:
                sentences.append(f"{name} has a lower RMSE than the naive zero-return forecast ({g['rmse']:.4g} vs "
                                 f"{naive_rmse:.4g}; DM p = {_fmt(g['dm_p'])}"
                                 f"{'' if significant else ', not significant at 5%'}).")
            else:
                sentences.append(f"{name} does not beat the naive baseline (RMSE {g['rmse']:.4g} vs "
                                 f"{naive_rmse:.4g} for zero_return).")
        rrows.append([name, _fmt(g["rmse"]), _fmt(g["mae"]), _fmt(g["directional_accuracy"]),
                      "—" if name in NAIVE_RETURN else _fmt(g["dm_stat"]),
                      "—" if name in NAIVE_RETURN else _fmt(g["dm_p"]), verdict])

    # ---- figures
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = _Figures(out_dir)
    for r in [r for r in dir_res if r["model"] not in NAIVE_DIRECTION] or dir_res[:1]:
        figs.add(P.plot_confusion(yd, r["pred"], f"{r['model']}: accuracy {cls[r['model']]['accuracy']:.3f}"),
                 f"confusion_{r['model']}", f"confusion matrix {r['model']}")
    fd = figures_data or {}
    figs.add(P.plot_forecast_vs_actual(yr, {r["model"]: r["pred"] for r in ret_res},
                                       n_last=int(fd.get("n_last", 200))),
             "forecast_vs_actual", "forecasts vs actual returns")
    for name, losses in (fd.get("training_losses") or {}).items():
        if len(losses):
            figs.add(P.plot_training_curve(losses, title=f"{name} training loss"), f"training_{name}",
                     f"training curve {name}")

    md = [
        f"# {title}", "",
        "## Run context", _context_md(context), "",
        f"{n} test windows, horizon {horizon}; share of up moves in the test set: {float(yd.mean()):.4f}.", "",
        "## Direction",
        f"Best naive baseline: **{best_naive}** (accuracy {best_acc:.4f}). Binomial p: two-sided test of the "
        "accuracy vs 50%. \"Beats\" = strictly higher accuracy than the best naive baseline.", "",
        _table(["model", "accuracy", "macro-F1", "balanced acc", "ROC AUC", "binomial p", "beats best naive?"],
               drows), "",
        "## Return",
        "Naive baseline: zero return (random walk). DM = Diebold-Mariano test (HLN-corrected) of squared "
        "errors vs the zero-return forecast; DM stat < 0 means lower error than naive.", "",
        _table(["model", "RMSE", "MAE", "directional acc", "DM stat", "DM p", "beats naive?"], rrows), "",
        *_per_group_md(groups, yd, dir_res, n, metrics),
        "## Verdict", *([f"- {s}" for s in sentences] or ["- Only naive baselines were evaluated."]), "",
        "## Figures", *[f"{m}\n" for m in figs.md],
    ]
    md_path = out_dir / filename
    _write_text_atomic(md_path, "\n".join(md) + "\n")
    return ReportResult(markdown_path=md_path, metrics=metrics, figures=figs.paths)
