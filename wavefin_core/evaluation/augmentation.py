"""Does synthetic data help a forecaster? Real-only training against real + generated windows (issue 9).

The question users ask of a generator is whether its windows are worth training on. This module answers it with
one controlled experiment per series, where the ONLY difference between the two arms is the extra training data:

- Every example is cut from a window of the generator's length ``W``: the input is its first ``W - h`` returns,
  the label the direction of the sum of its last ``h`` returns (1 = up, strictly positive, as in
  ``wavefin_core.segments``). A generated window carries no label beyond itself, so real examples are cut the
  same way: windows of the contiguous real returns of each split (train at ``train_stride``, val and test at
  stride 1), input and label inside the window.
- Arm A ("real only") trains on the real train examples. Arm B ("real + synthetic") trains on the same real
  examples plus ``N`` generated windows: ``N = synthetic_ratio x`` the number of real train examples (ratio 1 by
  default), or all generated windows if there are fewer; the first ``N`` are used (generated windows are
  independent draws, so the first ``N`` are a random subset). Arm A cycles through its real examples up to
  arm B's size (``match_steps``): both arms take the same optimizer steps, so B cannot win by training longer.
- Both arms: the same 1-D CNN (``wavefin_core.models.conv1d``, the shared ``fit_classifier`` loop with class
  weights, ReduceLROnPlateau, early stopping and prior matching), the same config and the same seeds (so both
  start from the same weights), inputs standardised with the REAL train returns' mean and std, early stopping
  on the REAL validation examples only, and scored on the same REAL test examples (stride 1).

Why a 1-D CNN on raw returns: the generated windows are returns, so no re-transform is needed, and it is the
fastest neural forecaster of the suite (a scalogram CNN pays a CWT and a 2-D network per window).

The test of B against A is the exact McNemar test on the predictions of all seeds pooled (each seed's test
window is one pair). Pooling treats seeds and overlapping stride-1 windows as independent pairs, so that p-value
is optimistic; the verdict therefore also asks the mean accuracy difference over seeds to exceed
``NOISE_STANDARD_ERRORS`` standard errors of the per-seed differences (the rule of the generation verdict).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from wavefin_core.errors import ConfigError, DataError

__all__ = ["SyntheticAugmentationConfig", "direction_examples", "synthetic_augmentation", "augmentation_md",
           "VERDICTS"]

#: The verdict codes of ``metrics.json`` (``verdict``); ``verdict_text`` is the sentence of the report.
VERDICTS = ("help", "no_significant_difference", "hurt")
#: A seed-mean difference counts only beyond this many standard errors of the per-seed differences.
NOISE_STANDARD_ERRORS = 2.0
REAL_ONLY, REAL_PLUS_SYNTHETIC = "real_only", "real_plus_synthetic"


@dataclass
class SyntheticAugmentationConfig:
    """How both arms train (the defaults are the quick profile's) and how the synthetic share is chosen.

    ``train_stride``: stride of the real train examples over the contiguous train returns (1 = every window, what
    the generator was trained on; the quick profile uses the segments' stride to fit its time budget).
    ``synthetic_ratio``: generated examples added per real train example (capped by the windows available).
    ``match_steps``: arm A cycles through its real examples until it has as many as arm B, so both arms take the
    same number of optimizer steps per epoch (same epochs, patience and LR schedule). Without it, arm B trains
    longer, and that alone can "help" an under-trained model: with labels that were pure noise, B beat A at
    McNemar p = 0.011 in one of three seeds of the noise-label test case.
    """

    seeds: int = 3
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 1e-3
    patience: int = 2
    channels: tuple[int, ...] = (16, 32)
    kernel_size: int = 5
    train_stride: int = 1
    synthetic_ratio: float = 1.0
    alpha: float = 0.05
    seed: int = 0
    match_steps: bool = True

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)

    def validate(self, where: str = "generation_report") -> None:
        """Raise ConfigError naming the first field (as ``where.augmentation_<field>``) that cannot work."""
        for name in ("seeds", "epochs", "batch_size", "patience", "train_stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                off = " (augmentation_seeds=0 in the generation_report config turns it off)" if name == "seeds" else ""
                raise ConfigError(f"{where}.augmentation_{name}={value!r} must be an integer >= 1{off}.")
        if not (self.learning_rate > 0):
            raise ConfigError(f"{where}.augmentation_learning_rate={self.learning_rate!r} must be > 0 (1e-3 works).")
        if not (self.synthetic_ratio > 0) or not math.isfinite(self.synthetic_ratio):
            raise ConfigError(f"{where}.augmentation_synthetic_ratio={self.synthetic_ratio!r} must be a positive "
                              "number (1.0 adds as many generated examples as there are real ones).")
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"{where}.augmentation_alpha={self.alpha!r} must be in (0, 1), e.g. 0.05.")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def direction_examples(returns: Any, window: int, horizon: int, stride: int = 1,
                       what: str = "returns") -> tuple[np.ndarray, np.ndarray]:
    """(inputs (n, window - horizon), labels (n,)) from contiguous log ``returns``: every ``stride``-th window of
    ``window`` returns, its first ``window - horizon`` as input, 1 if the sum of its last ``horizon`` is > 0."""
    r = np.asarray(returns, dtype=np.float64).ravel()
    if not np.isfinite(r).all():
        raise DataError(f"{what} contain NaN/inf; clean the series (clean_prices) before this experiment.")
    if r.size < window:
        raise DataError(f"{what} have {r.size} returns, fewer than one window of {window}; supply a longer series "
                        "or a smaller segments.window.")
    windows = np.lib.stride_tricks.sliding_window_view(r, window)[::stride]
    return _split_windows(windows, horizon)


def _split_windows(windows: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    cut = windows.shape[1] - horizon
    return np.ascontiguousarray(windows[:, :cut]), (windows[:, cut:].sum(axis=1) > 0).astype(np.int64)




def _balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean([(predicted[y == c] == c).mean() for c in np.unique(y)]))


def _summary(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
            "values": [float(v) for v in arr]}


def synthetic_augmentation(
    train_returns: Any,
    val_returns: Any,
    test_returns: Any,
    synthetic_windows: Any,
    *,
    horizon: int = 1,
    cfg: SyntheticAugmentationConfig | None = None,
    series: str = "series",
    device: Any = "cpu",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train the same 1-D CNN on real examples only (arm A) and on real + generated ones (arm B), per seed; score
    both on the real test examples. All inputs are in the series' own log-return units; ``synthetic_windows``
    (M, W) set the window length W. Returns the ``metrics.json`` entry (see the module docstring)."""
    from wavefin_core.evaluation.stats_tests import mcnemar_exact
    from wavefin_core.models.conv1d import Conv1dConfig, predict_conv1d_proba, train_conv1d

    cfg = cfg or SyntheticAugmentationConfig()
    cfg.validate()
    say = log or (lambda message: None)
    synth = np.asarray(synthetic_windows, dtype=np.float64)
    if synth.ndim != 2 or synth.shape[0] == 0:
        raise DataError(f"series {series!r}: synthetic windows have shape {synth.shape}; expected (M, W) with M >= 1 "
                        "(re-materialize synthetic_series).")
    if not np.isfinite(synth).all():
        raise DataError(f"series {series!r}: synthetic windows contain NaN/inf; re-materialize synthetic_series.")
    window = synth.shape[1]
    if isinstance(horizon, bool) or not 1 <= int(horizon) < window - 1:
        raise ConfigError(f"series {series!r}: horizon={horizon} leaves no input in windows of {window} returns; "
                          "use segments.horizon <= window - 2.")
    horizon = int(horizon)
    train = np.asarray(train_returns, dtype=np.float64).ravel()
    x_real, y_real = direction_examples(train, window, horizon, cfg.train_stride, f"series {series!r} train returns")
    x_val, y_val = direction_examples(val_returns, window, horizon, 1, f"series {series!r} validation returns")
    x_test, y_test = direction_examples(test_returns, window, horizon, 1, f"series {series!r} test returns")
    for name, y in (("train", y_real), ("validation", y_val)):
        if np.unique(y).size < 2:
            raise DataError(f"series {series!r}: every real {name} example has one direction; the experiment needs "
                            "both up and down moves (use a longer series or another horizon).")
    wanted = max(1, int(round(cfg.synthetic_ratio * len(x_real))))
    n_synth = min(len(synth), wanted)
    rule = (f"{n_synth} generated windows ({cfg.synthetic_ratio:g} x the {len(x_real)} real train examples)"
            if wanted <= len(synth) else
            f"all {n_synth} generated windows (fewer than {cfg.synthetic_ratio:g} x the {len(x_real)} real train "
            "examples)")
    x_synth, y_synth = _split_windows(synth[:n_synth], horizon)
    mean, std = float(train.mean()), float(train.std())
    if not std > 0:
        raise DataError(f"series {series!r}: the train returns are constant; nothing can be learned from them.")

    def scaled(x: np.ndarray) -> np.ndarray:
        return ((x - mean) / std).astype(np.float32)

    n_b = len(x_real) + n_synth
    # match_steps: arm A cycles through its real examples up to arm B's size, so both take the same optimizer
    # steps per epoch (B would otherwise also "help" just by training longer; see SyntheticAugmentationConfig).
    cycle = np.arange(n_b) % len(x_real) if cfg.match_steps else np.arange(len(x_real))
    arms = {REAL_ONLY: (scaled(x_real[cycle]), y_real[cycle]),
            REAL_PLUS_SYNTHETIC: (scaled(np.concatenate([x_real, x_synth])), np.concatenate([y_real, y_synth]))}
    xv, xt = scaled(x_val), scaled(x_test)
    scores: dict[str, dict[str, list[float]]] = {arm: {"accuracy": [], "balanced_accuracy": []} for arm in arms}
    predictions: dict[str, list[np.ndarray]] = {arm: [] for arm in arms}
    seeds = [cfg.seed + k for k in range(cfg.seeds)]
    started = time.perf_counter()
    from wavefin_core.models.training import cpu_threads
    with cpu_threads("cpu", 1):  # small 1-D CNNs: one thread is as fast, and never contends
        for seed in seeds:
            kcfg = Conv1dConfig(arch="cnn1d", channels=cfg.channels, kernel_size=cfg.kernel_size, epochs=cfg.epochs,
                                batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, patience=cfg.patience,
                                seed=seed)
            for arm, (x, y) in arms.items():
                fitted = train_conv1d(x, y, xv, y_val, kcfg, device, n_classes=2)
                predicted = (predict_conv1d_proba(fitted.model, xt, device)[:, -1] > 0.5).astype(np.int64)
                predictions[arm].append(predicted)
                scores[arm]["accuracy"].append(float((predicted == y_test).mean()))
                scores[arm]["balanced_accuracy"].append(_balanced_accuracy(y_test, predicted))
                say(f"{series}: synthetic augmentation, seed {seed}, {arm}: test accuracy "
                    f"{scores[arm]['accuracy'][-1]:.4f} (best epoch {fitted.best_epoch})")
    seconds = time.perf_counter() - started
    p, a_only, b_only = mcnemar_exact(np.tile(y_test, len(seeds)), np.concatenate(predictions[REAL_ONLY]),
                                      np.concatenate(predictions[REAL_PLUS_SYNTHETIC]))
    differences = {metric: list(np.subtract(scores[REAL_PLUS_SYNTHETIC][metric], scores[REAL_ONLY][metric]))
                   for metric in ("accuracy", "balanced_accuracy")}
    entry = {
        "model": "cnn1d",
        "seeds": seeds,
        "config": cfg.to_dict(),
        "window": int(window),
        "horizon": horizon,
        "input_length": int(window - horizon),
        "n_real_train": int(len(y_real)),
        "n_synthetic_added": int(n_synth),
        "n_synthetic_available": int(len(synth)),
        "synthetic_rule": rule,
        "n_val": int(len(y_val)),
        "n_test": int(len(y_test)),
        "majority_rate": float(max(y_test.mean(), 1.0 - y_test.mean())),
        "synthetic_up_rate": float(y_synth.mean()),
        "real_train_up_rate": float(y_real.mean()),
        REAL_ONLY: {metric: _summary(values) for metric, values in scores[REAL_ONLY].items()},
        REAL_PLUS_SYNTHETIC: {metric: _summary(values) for metric, values in scores[REAL_PLUS_SYNTHETIC].items()},
        "difference": {metric: _summary(values) for metric, values in differences.items()},
        "test": {"name": "exact McNemar, predictions of all seeds pooled", "p_value": float(p),
                 "real_only_right_only": int(a_only), "real_plus_synthetic_right_only": int(b_only)},
        "train_seconds": float(seconds),
    }
    entry["verdict"], entry["verdict_text"] = _verdict(series, entry, cfg.alpha)
    say(entry["verdict_text"])
    return entry


def _verdict(series: str, entry: dict[str, Any], alpha: float) -> tuple[str, str]:
    diff = entry["difference"]["accuracy"]
    n = len(diff["values"])
    noise = NOISE_STANDARD_ERRORS * diff["std"] / math.sqrt(n)
    p = entry["test"]["p_value"]
    beyond_noise = abs(diff["mean"]) > noise
    code = VERDICTS[1]
    if p < alpha and beyond_noise:
        code = VERDICTS[0] if diff["mean"] > 0 else VERDICTS[2]
    a, b = entry[REAL_ONLY]["accuracy"], entry[REAL_PLUS_SYNTHETIC]["accuracy"]
    words = {"help": "help", "hurt": "hurt", "no_significant_difference": "do not help (no significant difference)"}
    text = (f"{series}: synthetic windows {words[code]}: test accuracy {a['mean']:.4f} ± {a['std']:.4f} trained on "
            f"real only, {b['mean']:.4f} ± {b['std']:.4f} on real + {entry['n_synthetic_added']} generated windows "
            f"(B - A {diff['mean']:+.4f} ± {diff['std']:.4f} over {n} seeds; McNemar p = {p:.3g}"
            + ("" if code != VERDICTS[1] or not p < alpha else f", but within {NOISE_STANDARD_ERRORS:g} standard "
               "errors of the seed noise") + f"; majority rate {entry['majority_rate']:.4f}).")
    return code, text


def augmentation_md(entry: dict[str, Any] | None, tstr: dict[str, Any] | None = None) -> list[str]:
    """The report section "Does synthetic data help a forecaster?" for one series' ``entry`` (none: no lines).
    ``tstr``: the wavefin generator's TSTR entry (``predictive_score``) to cross-reference."""
    if not entry:
        return []

    def pm(e: dict[str, Any]) -> str:
        return f"{e['mean']:.4f} ± {e['std']:.4f}"

    rows = [f"| {label} | {n} | {pm(entry[arm]['accuracy'])} | "
            f"{pm(entry[arm]['balanced_accuracy'])} |"
            for label, arm, n in (("A: real only", REAL_ONLY, entry["n_real_train"]),
                                  ("B: real + synthetic", REAL_PLUS_SYNTHETIC,
                                   entry["n_real_train"] + entry["n_synthetic_added"]))]
    diff = entry["difference"]
    lines = [
        "### Does synthetic data help a forecaster?",
        f"**{entry['verdict_text']}**", "",
        f"The same 1-D CNN ({entry['model']}, {len(entry['seeds'])} seeds, the same seeds for both arms) predicts the "
        f"direction of the next {entry['horizon']} return(s) from {entry['input_length']} returns, early-stopped on "
        f"{entry['n_val']} real validation examples and scored on {entry['n_test']} real test examples (stride 1). "
        f"Real train examples: windows of the train returns at stride {entry['config']['train_stride']}; generated "
        f"examples: {entry['synthetic_rule']} (input = first {entry['input_length']} returns, label = sign of the "
        f"last {entry['horizon']}). "
        + ("Arm A cycles through its real examples up to B's size, so both arms take the same optimizer steps. "
           if entry["config"].get("match_steps") else "")
        + f"Majority rate of the test labels: {entry['majority_rate']:.4f}.", "",
        "| arm | train examples | accuracy | balanced accuracy |", "|---|---|---|---|", *rows,
        f"| B - A | | {pm(diff['accuracy'])} | {pm(diff['balanced_accuracy'])} |", "",
        f"Exact McNemar on the pooled predictions of all seeds: p = {entry['test']['p_value']:.3g} "
        f"({entry['test']['real_only_right_only']} test predictions right only with A, "
        f"{entry['test']['real_plus_synthetic_right_only']} right only with B). Pooling seeds and overlapping "
        "windows makes this p optimistic, so a difference also has to exceed "
        f"{NOISE_STANDARD_ERRORS:g} standard errors of the per-seed differences to count.",
    ]
    if tstr and tstr.get("mean") is not None and tstr.get("real_mean") is not None:
        lines.append(f"Compare TSTR above (a predictor trained on generated windows ONLY): MAE "
                     f"{tstr['mean']:.5f} against {tstr['real_mean']:.5f} trained on the same number of real ones.")
    return [*lines, ""]


def augmentation_for_report(data: Any, section: dict[str, Any], cfg: SyntheticAugmentationConfig,
                            log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The experiment for one series of the generation report: ``data`` is its ``SeriesGeneration`` (stride-1
    ``real_test`` windows, ``train_returns``, ``val_returns``, ``wavefin`` windows, ``horizon``) and ``section``
    its report section, whose wavefin TSTR entry is cross-referenced in the result (``tstr``)."""
    real_test = np.asarray(data.real_test, dtype=np.float64)
    test_returns = np.concatenate([real_test[0], real_test[1:, -1]])  # stride-1 windows -> contiguous returns
    entry = synthetic_augmentation(data.train_returns, data.val_returns, test_returns, data.wavefin,
                                   horizon=data.horizon, cfg=cfg, series=data.name, log=log)
    tstr = (section.get("generators", {}).get("wavefin") or {}).get("predictive_score") or {}
    entry["tstr"] = {"see": f"series.{data.name}.generators.wavefin.predictive_score",
                     "mae_trained_on_wavefin": tstr.get("mean"), "mae_trained_on_real": tstr.get("real_mean")}
    return entry
