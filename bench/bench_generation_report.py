"""What `generation_report` costs, and the levers that cut it without changing what it measures (issue 8).

Run on demand (never in CI):

    .venv/bin/python bench/bench_generation_report.py                  # every part, 2 interleaved rounds
    .venv/bin/python bench/bench_generation_report.py --part networks  # networks | figures | overlap | report
    .venv/bin/python bench/bench_generation_report.py --micro          # per-step cost of a grouped model by size

Inputs, as `make run` builds them (quick profile): the ``mjd`` and ``sp500`` series cleaned by
``clean_prices`` and cut by ``make_segments`` (window 64, stride 8, test windows at stride 1), train / val returns
rebuilt from their windows, the real test windows at stride 1, and 500 "wavefin" windows per series (GARCH-t
draws with a lag-1 twist: the cost of scoring does not depend on the generator's quality).

Parts (A/B variants interleaved round by round in ONE process, so machine load hits them alike; ratios are
medians over rounds, against the first variant):

- ``networks``: the discriminative (5 seeds) and TSTR (2 seeds) networks of the 7 generators of one series
  (sp500), as ``evaluate_series`` trains them: one net at a time (before) / grouped in one thread / grouped in
  one thread per core (the default). Wall seconds and process CPU seconds (all threads): on a busy machine
  threads cannot run in parallel, so CPU seconds tell what an idle 2-core machine would take (~CPU / 2 when
  the ratio of CPU seconds stays ~1).
- ``figures``: the 7 figures of one series (mjd) saved with and without ``bbox_inches="tight"``.
- ``overlap``: one series' augmentation experiment (torch) and its figures (matplotlib) one after the other, or
  the experiment in a second thread while the figures are drawn.
- ``report``: ``write_generation_report`` on both series as the quick profile runs it, once, with cProfile
  (``--profile`` writes the stats), to list the top costs.

Prints a markdown table and writes ``storage/bench/generation_report.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wavefin_core.data import load_sp500, simulate_mjd  # noqa: E402
from wavefin_core.io import atomic_path  # noqa: E402
from wavefin_core.preprocess import clean_prices  # noqa: E402
from wavefin_core.segments import make_segments  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "storage" / "bench" / "generation_report.json"
MJD_PARAMS = {"mu": 0.05, "sigma": 0.2, "lam": 0.1, "jump_mean": -0.02, "jump_std": 0.1, "start": "2022-01-03",
              "seed": 0}
QUICK = {"window": 64, "stride": 8, "n_synthetic": 500, "mjd_days": 8, "discriminative_seeds": 5,
         "predictive_seeds": 2, "augmentation": {"seeds": 3, "epochs": 8, "train_stride": 8}}


def _contiguous(windows: np.ndarray, stride: int) -> np.ndarray:
    return np.concatenate([windows[0], windows[1:, windows.shape[1] - stride:].reshape(-1)])


def build_inputs() -> list[Any]:
    """The quick profile's SeriesGeneration inputs for mjd and sp500 (see the module docstring)."""
    from wavefin_core.evaluation.generators import fit_generator
    from wavefin_core.evaluation.reports import SeriesGeneration
    from wavefin_core.wavelets import covering_scales, cwt

    window, stride = QUICK["window"], QUICK["stride"]
    out = []
    for name in ("mjd", "sp500"):
        raw = simulate_mjd(days=QUICK["mjd_days"], freq="minute", **MJD_PARAMS) if name == "mjd" else load_sp500()
        frame = clean_prices(raw, source=name, train_fraction=0.7)
        segs = make_segments(frame["log_return"], window=window, stride=stride, horizon=1, test_stride=1)
        train = _contiguous(segs.windows[segs.mask("train")], stride)
        val = _contiguous(segs.windows[segs.mask("val")], stride)
        test = _contiguous(segs.windows[segs.mask("test")], 1)
        real_test = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(test, window))
        garch = fit_generator("garch_t", train, series=name).sample(QUICK["n_synthetic"], window, seed=123)
        wavefin = garch.copy()
        wavefin[:, 1:] -= 0.1 * garch[:, :-1]
        scales = covering_scales(window, num=16)

        def scalograms(w: np.ndarray, train: np.ndarray = train, scales: np.ndarray = scales) -> np.ndarray:
            return np.abs(cwt(((w - train.mean()) / train.std()).astype(np.float32), scales))

        picks = real_test[np.linspace(0, len(real_test) - 1, 4).round().astype(int)]
        out.append(SeriesGeneration(name=name, real_test=real_test, train_returns=train, wavefin=wavefin,
                                    start_price=float(raw["close"].iloc[len(train)]),
                                    real_scalograms=scalograms(picks), synth_scalograms=scalograms(wavefin[:4]),
                                    val_returns=val, horizon=1))
    return out


def _windows_of(data: Any) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    from wavefin_core.evaluation.generators import CLASSICAL_GENERATORS, fit_generator
    from wavefin_core.evaluation.reports import derived_seed

    n, length = data.wavefin.shape
    windows = {"wavefin": data.wavefin}
    for name in CLASSICAL_GENERATORS:
        gen = fit_generator(name, data.train_returns, series=data.name)
        windows[name] = gen.sample(n, length, seed=derived_seed(0, data.name, name))
    train_windows = np.lib.stride_tricks.sliding_window_view(data.train_returns, length)
    return data.real_test, windows, train_windows


def _timed(fn: Any) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _interleave(variants: dict[str, Any], rounds: int) -> dict[str, Any]:
    walls: dict[str, list[float]] = {k: [] for k in variants}
    cpus: dict[str, list[float]] = {k: [] for k in variants}
    results: dict[str, Any] = {}
    for r in range(rounds):
        for name, fn in variants.items():
            wall, cpu, results[name] = _timed(fn)
            walls[name].append(wall)
            cpus[name].append(cpu)
            print(f"  round {r + 1} {name}: {wall:.1f} s wall, {cpu:.1f} CPU-s", flush=True)
    first = next(iter(variants))
    return {name: {"wall_s": walls[name], "cpu_s": cpus[name],
                   "wall_ratio": float(np.median(walls[name]) / np.median(walls[first])),
                   "cpu_ratio": float(np.median(cpus[name]) / np.median(cpus[first]))}
            for name in variants}, results


def bench_networks(inputs: list[Any], rounds: int) -> dict[str, Any]:
    from wavefin_core.evaluation import discriminative as D

    real, windows, train_windows = _windows_of(inputs[1])  # sp500

    def run(**kw: Any) -> Any:
        def go() -> Any:
            D._REAL_REFERENCE.clear()  # every variant trains the real references too, as a report does
            disc = D.posthoc_discriminative_scores(real, windows, seeds=QUICK["discriminative_seeds"], **kw)
            pred = D.tstr_predictive_scores(windows, train_windows, real, seeds=QUICK["predictive_seeds"], **kw)
            return disc, pred
        return go

    timing, results = _interleave({"one net at a time (before)": run(grouped=False),
                                   "grouped, 1 thread": run(workers=1),
                                   "grouped, 1 thread per core (default)": run(workers=None)}, rounds)
    before = results["one net at a time (before)"]
    after = results["grouped, 1 thread per core (default)"]
    timing["largest |difference|"] = {
        "discriminative": max(abs(a - b) for g in windows for a, b in zip(before[0][g]["values"],
                                                                          after[0][g]["values"], strict=True)),
        "tstr_relative": max(abs(a / b - 1) for g in windows for a, b in zip(before[1][g]["values"],
                                                                            after[1][g]["values"], strict=True))}
    return timing


def bench_figures(inputs: list[Any], rounds: int) -> dict[str, Any]:
    from wavefin_core.evaluation import plots as P
    from wavefin_core.evaluation import reports as R

    data = inputs[0]  # mjd: the larger test set
    real, windows, _ = _windows_of(data)
    section = {"generators": {g: {"discriminative_score": {"mean": 0.1, "std": 0.02}} for g in windows}}
    out = Path(tempfile.mkdtemp())

    def draw(tight: bool) -> Any:
        def go() -> None:
            original = P.save_figure

            def save(fig: Any, path: Any, dpi: int = 100) -> Path:
                if tight:  # the old behaviour: always crop (a second draw)
                    path = Path(path)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight")
                    return path
                return original(fig, path, dpi)
            R.P.save_figure = save
            try:
                R._series_figures(R._Figures(out / str(tight), dpi=R.GENERATION_FIGURE_DPI), data, section, windows)
            finally:
                R.P.save_figure = original
        return go

    timing, _ = _interleave({"bbox_inches=tight (before)": draw(True), "constrained layout only": draw(False)},
                            rounds)
    return timing


def bench_overlap(inputs: list[Any], rounds: int) -> dict[str, Any]:
    """One series' augmentation experiment and figures, one after the other (before) or the experiment in a
    second thread while the figures are drawn (what write_generation_report does now)."""
    from concurrent.futures import ThreadPoolExecutor

    from wavefin_core.evaluation import reports as R
    from wavefin_core.evaluation.augmentation import SyntheticAugmentationConfig, augmentation_for_report

    data = inputs[1]  # sp500
    real, windows, _ = _windows_of(data)
    section = {"generators": {g: {"discriminative_score": {"mean": 0.1, "std": 0.02},
                                  "predictive_score": {"mean": 1.0, "real_mean": 1.0}} for g in windows}}
    aug = SyntheticAugmentationConfig(seed=0, synthetic_ratio=1.0, **QUICK["augmentation"])
    out = Path(tempfile.mkdtemp())

    def sequential() -> Any:
        entry = augmentation_for_report(data, section, aug)
        R._series_figures(R._Figures(out / "a", dpi=R.GENERATION_FIGURE_DPI), data, section, windows)
        return entry

    def overlapped() -> Any:
        with ThreadPoolExecutor(max_workers=1) as pool:
            entry = pool.submit(augmentation_for_report, data, section, aug)
            R._series_figures(R._Figures(out / "b", dpi=R.GENERATION_FIGURE_DPI), data, section, windows)
            return entry.result()

    timing, results = _interleave({"augmentation, then figures (before)": sequential,
                                   "augmentation in a thread during the figures": overlapped}, rounds)
    a, b = results.values()
    timing["same augmentation numbers"] = a["real_only"] == b["real_only"] and \
        a["real_plus_synthetic"] == b["real_plus_synthetic"]
    return timing


def bench_report(inputs: list[Any], profile_path: str | None) -> dict[str, Any]:
    from wavefin_core.evaluation.augmentation import SyntheticAugmentationConfig
    from wavefin_core.evaluation.reports import write_generation_report

    aug = SyntheticAugmentationConfig(seed=0, synthetic_ratio=1.0, **QUICK["augmentation"])
    profiler = cProfile.Profile()
    wall, cpu = time.perf_counter(), time.process_time()
    profiler.enable()
    write_generation_report(inputs, tempfile.mkdtemp(), title="bench", context={}, seed=0,
                            discriminative_seeds=QUICK["discriminative_seeds"],
                            predictive_seeds=QUICK["predictive_seeds"], augmentation=aug,
                            log=lambda m: print(f"  {m}", flush=True))
    profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if profile_path:
        profiler.dump_stats(profile_path)
    stats = pstats.Stats(profiler)
    top = {}
    for label, needle in (("discriminative + TSTR networks", "_network_scores"), ("figures", "_series_figures"),
                          ("augmentation experiment", "augmentation_for_report"),
                          ("logistic discriminative column", "discriminative_score"),
                          ("classical generator fits", "fit_generator"), ("stylized facts", "compare_facts"),
                          ("TSGBench distances", "tsgbench_distances")):
        cum = [v[3] for k, v in stats.stats.items() if k[2] == needle]
        top[label] = float(sum(cum))
    return {"wall_s": wall, "cpu_s": cpu, "cumulative_s": top}


def micro(rounds: int) -> dict[str, Any]:
    """Per net and optimizer step: one classifier at a time vs grouped models of 5, 10 and 35 nets (1 thread)."""
    import torch

    from wavefin_core.evaluation import discriminative as D

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    variants = {}
    for g in (1, 5, 10, 35):
        fits = [D._Fit(rng.standard_normal((400, 64)).astype(np.float32), (rng.random(400) > 0.5).astype(np.float32),
                       s, np.random.default_rng(s), rng.standard_normal((8, 64)).astype(np.float32)) for s in range(g)]
        steps = max(2, 40 // g)
        if g == 1:
            variants[g] = (lambda f=fits, n=steps: D._train_all("classifier", f, n, 128, 16, 1e-2, False, 1), steps * g)
        else:
            variants[g] = (lambda f=fits, n=steps: D._train_group(
                "classifier", f, D._initial_params("classifier", f, 16), n, 128, 16, 1e-2), steps * g)
    times: dict[int, list[float]] = {g: [] for g in variants}
    for _ in range(rounds):
        for g, (fn, net_steps) in variants.items():
            t = time.perf_counter()
            fn()
            times[g].append((time.perf_counter() - t) / net_steps)
    base = float(np.median(times[1]))
    return {f"{g} nets": {"ms_per_net_step": 1e3 * float(np.median(v)), "ratio": float(np.median(v)) / base}
            for g, v in times.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("networks", "figures", "overlap", "report", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--micro", action="store_true", help="per-step cost of grouped models of 1-35 nets")
    parser.add_argument("--profile", default=None, help="write the report's cProfile stats here")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    load = os.getloadavg()
    document: dict[str, Any] = {"load_before": load, "cores": os.cpu_count()}
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    if args.micro:
        document["micro"] = micro(args.rounds)
    else:
        inputs = build_inputs()
        if args.part in ("networks", "all"):
            document["networks"] = bench_networks(inputs, args.rounds)
        if args.part in ("figures", "all"):
            document["figures"] = bench_figures(inputs, args.rounds)
        if args.part in ("overlap", "all"):
            document["overlap"] = bench_overlap(inputs, args.rounds)
        if args.part in ("report", "all"):
            document["report"] = bench_report(inputs, args.profile)
    document["load_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(document, indent=2))
    print(json.dumps(document, indent=2))
    return document


if __name__ == "__main__":
    main()
