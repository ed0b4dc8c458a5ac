"""Generation and forecast reports: files written, tables present, honest verdicts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.evaluation.reports import (
    SeriesForecasts,
    SeriesGeneration,
    build_generation_metrics,
    write_forecast_report,
    write_generation_report,
)


def _assert_figures(result, out_dir: Path) -> None:
    md = result.markdown_path.read_text()
    assert result.figures
    for fig in result.figures:
        assert fig.exists() and fig.stat().st_size > 1000 and fig.read_bytes()[:4] == b"\x89PNG"
        assert f"](figures/{fig.name})" in md
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):  # every embedded link resolves
        assert (out_dir / link).exists()
    assert not list(out_dir.rglob(".*"))  # no temp files left behind


def _gjr_returns(n: int, seed: int, scale: float = 0.01) -> np.ndarray:
    """Returns with volatility clustering, leverage and heavy tails (GJR-GARCH, Student-t)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_t(6, n + 500) / np.sqrt(1.5)
    r = np.zeros(n + 500)
    s2 = 1.0
    for t in range(1, n + 500):
        s2 = 0.02 + 0.9 * s2 + (0.02 + 0.12 * (r[t - 1] < 0)) * r[t - 1] ** 2
        r[t] = np.sqrt(s2) * z[t]
    return r[500:] * scale


def assert_generation_metrics_schema(doc: dict, series: list[str], *, min_windows: int = 10) -> None:
    """metrics.json follows the issue's schema key by key, with plain JSON types and no NaN anywhere."""
    from wavefin_core.evaluation.facts import FACTS
    from wavefin_core.evaluation.generators import GENERATORS

    json.loads(json.dumps(doc, allow_nan=False))  # raises on NaN / inf
    assert sorted(doc["series"]) == sorted(series)
    for name in series:
        section = doc["series"][name]
        assert isinstance(section["n_real_test"], int) and section["n_real_test"] >= min_windows
        assert list(section["generators"]) == list(GENERATORS)
        for gen, e in section["generators"].items():
            d, p = e["discriminative_score"], e["predictive_score"]
            if e.get("error"):  # an unavailable generator keeps every key, null, and says why
                assert d["mean"] is None and isinstance(e["error"], str)
                continue
            assert isinstance(d["mean"], float) and isinstance(d["std"], float) and isinstance(d["seeds"], int)
            assert 0.0 <= d["mean"] <= 0.5 and d["seeds"] >= 1, (name, gen)
            shape = e["discriminative_score_shape"]  # the same classifier, each window / its own std
            assert 0.0 <= shape["mean"] <= 0.5 and shape["seeds"] == d["seeds"], (name, gen)
            if gen != "wavefin":  # how wavefin stands against it, per score, by the paired seed differences
                vs = e["vs_wavefin"]["discriminative_score"]
                assert vs["paired"] is True and vs["noise"] >= 0, (name, gen)
                assert 0.0 <= vs["p_value"] <= vs["p_holm"] <= 1.0, (name, gen)  # Holm only raises p
                assert vs["outcome"] in ("wavefin closer", "within noise", "wavefin further")
                assert vs["difference"] == pytest.approx(d["mean"] - section["generators"]["wavefin"][
                    "discriminative_score"]["mean"], abs=1e-12)
            for key in ("mean", "std", "real_mean", "real_std"):
                assert isinstance(p[key], float) and p[key] >= 0, (name, gen, key)
            assert isinstance(p["seeds"], int)
            for key in ("mdd", "acd", "sd", "kd"):
                assert isinstance(e[key], float) and e[key] >= 0, (name, gen, key)
            assert list(e["facts"]) == list(FACTS)
            for fact, f in e["facts"].items():
                assert set(f) == {"real", "synthetic", "reproduced"}, fact
                assert isinstance(f["reproduced"], bool)
                for key in ("real", "synthetic"):
                    assert f[key] is None or isinstance(f[key], float), (fact, key)
                    if f[key] is None:  # a null says why
                        assert any(fact in path for path in doc["null_values"]), fact
    assert set(doc["samplers"]) >= {"ddpm", "ddim", "dpmsolver"}
    for sampler, e in doc["samplers"].items():
        assert isinstance(e["steps"], int), sampler
        for key in ("seconds_per_1000", "discriminative_score"):
            assert e[key] is None or isinstance(e[key], float), (sampler, key)
            if e[key] is None:
                assert f"samplers.{sampler}.{key}" in doc["null_values"]


def _stride1(x: np.ndarray, length: int) -> np.ndarray:
    return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(x, length))


@pytest.fixture(scope="module")
def generation_report(tmp_path_factory: pytest.TempPathFactory):
    out_dir = tmp_path_factory.mktemp("generation")
    rng = np.random.default_rng(0)
    series = []
    # "daily" has heavy tails, clustering and leverage; "minute" lives in much smaller units (1e-4): each series
    # is evaluated in its own units. wavefin is stood in for by Gaussian noise of the right scale (no tails).
    for name, scale, seed in (("daily", 0.01, 1), ("minute", 1e-4, 2)):
        r = _gjr_returns(1400, seed, scale)
        series.append(SeriesGeneration(
            name=name, real_test=_stride1(r[1000:], 32)[::3][:120], train_returns=r[:900],
            wavefin=rng.standard_normal((80, 32)) * r.std(), start_price=100.0, context={"frequency": name},
            # two images per grid: multi-panel like the pipeline's four, at half the drawing time
            real_scalograms=rng.standard_normal((2, 2, 8, 32)), synth_scalograms=rng.standard_normal((2, 8, 32)),
        ))
    samplers = {"dpmsolver": {"steps": 20, "seconds_per_1000": 12.5, "discriminative_score": 0.2,
                              "discriminative_std": 0.01, "n_samples": 80, "series": "daily"}}
    lines: list[str] = []
    # 2 seeds / 1 seed and 10 classifier steps: this checks the report's structure and units, not the scores
    # (TSTR MAEs are in each series' units at any step count: its nets scale by their training set's std)
    res = write_generation_report(series, out_dir, title="Gen test", context={"model": "gauss"}, samplers=samplers,
                                  discriminative_seeds=2, predictive_seeds=1, classifier_steps=10,
                                  log=lines.append)
    return res, out_dir, lines


def test_generation_report_has_one_section_per_series_and_every_generator(generation_report) -> None:
    res, out_dir, lines = generation_report
    md = res.markdown_path.read_text()
    assert md.startswith("# Gen test") and "**model**: `gauss`" in md
    assert "## daily" in md and "## minute" in md and "## Samplers" in md and "stride 1" in md
    assert md.count("**Verdict.** ") == 2 and "floor (real train windows)" in md.lower()
    for gen in ("**wavefin**", "garch_t", "gjr_garch_t", "block_bootstrap", "mjd_fit", "iid_gaussian",
                "real_train (floor)"):
        assert len(re.findall(rf"^\| {re.escape(gen)} \|", md, re.M)) == 2, gen  # one score row per series
    for needle in ("discriminative (CNN, 2 seeds)", "its mean − wavefin's (Holm p; 2 s.e.)", "TSTR MAE", "| MDD | ACD | SD | KD |", "hill_tail_index",
                   "DPM-Solver++(20)", "DDPM(1000)", "not measured in this run", "metrics.json"):
        assert needle in md, needle
    assert any("daily: scored garch_t" in line for line in lines)  # progress lines
    names = {f.name for f in res.figures}
    assert {"daily_acf.png", "daily_leverage.png", "daily_qq.png", "daily_histograms.png", "daily_paths.png", "daily_discriminative.png",
            "daily_scalograms_real.png", "minute_scalograms_synthetic.png"} <= names
    _assert_figures(res, out_dir)


def test_generation_metrics_json_follows_the_schema(generation_report) -> None:
    res, out_dir, _ = generation_report
    doc = json.loads((out_dir / "metrics.json").read_text())
    assert doc == res.document
    assert_generation_metrics_schema(doc, ["daily", "minute"])
    assert doc["series"]["daily"]["n_real_test"] == 120
    assert doc["samplers"]["dpmsolver"]["seconds_per_1000"] == 12.5
    assert doc["samplers"]["ddpm"]["seconds_per_1000"] is None  # not given: null, and said why
    assert "samplers.ddpm.seconds_per_1000" in doc["null_values"]
    daily = doc["series"]["daily"]["generators"]
    # Gaussian noise has no heavy tails: the real data shows them, wavefin (here Gaussian) does not reproduce them
    assert daily["wavefin"]["facts"]["excess_kurtosis"]["reproduced"] is False
    assert daily["wavefin"]["facts"]["excess_kurtosis"]["real"] > 1
    assert daily["wavefin"]["kd"] > 1.0
    # the floor's windows come in time order, so the score's purge holds (no upper-bound mark); the bootstrap's may not
    for name in ("daily", "minute"):
        for gen, e in doc["series"][name]["generators"].items():
            assert isinstance(e["discriminative_score"]["n_train_sharing_values"], int), gen
        assert doc["series"][name]["generators"]["real_train"]["discriminative_score"]["n_train_sharing_values"] == 0
    # each series in its own units: the TSTR MAEs of "minute" are ~100x smaller than those of "daily"
    minute = doc["series"]["minute"]["generators"]
    assert minute["real_train"]["predictive_score"]["real_mean"] < daily["real_train"]["predictive_score"][
        "real_mean"] / 30
    flat = res.metrics
    assert flat["daily.wavefin.discriminative_mean"] == daily["wavefin"]["discriminative_score"]["mean"]
    assert flat["sampler.dpmsolver.seconds_per_1000"] == 12.5
    assert all(isinstance(v, float) for v in flat.values())


def _score(values: list[float], n_test: int = 200) -> dict:
    v = np.asarray(values)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)), "seeds": v.size, "values": list(values),
            "n_test": n_test}


def test_generation_verdict_pairs_the_classifier_seeds() -> None:
    """Known answers. Seed s holds out the same real windows for every generator, so its scores move together:
    here GARCH is wavefin + 0.05 on every seed while the seeds spread by +-0.12. Paired, that is a clear
    difference (the per-seed differences barely vary); unpaired, the spread of the seeds would hide it."""
    from wavefin_core.evaluation.reports import _comparisons, _verdict

    wavefin = [0.10, 0.30, 0.05, 0.40, 0.20]
    gens = {"wavefin": {"discriminative_score": _score(wavefin)},
            "garch_t": {"discriminative_score": _score([v + 0.05 + 0.001 * i for i, v in enumerate(wavefin)])},
            "iid_gaussian": {"discriminative_score": _score([v + 0.01 * (-1) ** i for i, v in enumerate(wavefin)])},
            # scored on another held-out size: not paired, the unpaired standard error applies
            "block_bootstrap": {"discriminative_score": _score([v + 0.05 for v in wavefin], n_test=100)},
            "real_train": {"discriminative_score": _score([v - 0.02 for v in wavefin])}}
    _comparisons(gens)
    garch = gens["garch_t"]["vs_wavefin"]["discriminative_score"]
    assert garch["paired"] and garch["outcome"] == "wavefin closer"
    assert garch["difference"] == pytest.approx(0.052) and garch["noise"] < 0.01
    assert gens["iid_gaussian"]["vs_wavefin"]["discriminative_score"]["outcome"] == "within noise"
    bootstrap = gens["block_bootstrap"]["vs_wavefin"]["discriminative_score"]
    assert not bootstrap["paired"] and bootstrap["outcome"] == "within noise" and bootstrap["noise"] > 0.1
    assert "vs_wavefin" not in gens["wavefin"]
    text = _verdict("daily", gens)
    assert "closer to real than garch_t" in text and "within noise of iid_gaussian, block_bootstrap" in text
    assert "+0.020 from the floor" in text  # the floor too is compared seed by seed (wavefin 0.02 above it)
    assert "Holm-corrected over the 3 classical generators" in text
    assert garch["p_value"] < 1e-4 and garch["p_holm"] == pytest.approx(3 * garch["p_value"])  # smallest of 3


def test_generation_verdict_corrects_for_the_many_generators() -> None:
    """Known answers. Five classical generators, each 0.03 +- noise above wavefin on 5 paired seeds: each paired
    t-test alone has p = 0.016 (t = 4.0, 4 df), which a single comparison would call "wavefin closer"; with five
    comparisons Holm's correction keeps them within noise. A sixth with t ~ 20 stays "closer"; the floor, a
    single reference, is tested on its own."""
    from wavefin_core.evaluation.reports import VERDICT_ALPHA, _comparisons

    wavefin = [0.10, 0.30, 0.05, 0.40, 0.20]
    jitter = [0.02, -0.02, 0.0, 0.015, -0.015]  # per-seed differences 0.03 + jitter: t = 4.0, p = 0.016
    gens = {"wavefin": {"discriminative_score": _score(wavefin)}}
    names = ["garch_t", "gjr_garch_t", "block_bootstrap", "mjd_fit", "iid_gaussian"]
    for i, name in enumerate(names):
        shift = [jitter[(j + i) % 5] for j in range(5)]  # the same spread, another order per generator
        gens[name] = {"discriminative_score": _score([v + 0.03 + d for v, d in zip(wavefin, shift, strict=True)])}
    gens["strong"] = {"discriminative_score": _score([v + 0.10 + 0.01 * (-1) ** j for j, v in enumerate(wavefin)])}
    gens["real_train"] = {"discriminative_score": _score([v + 0.03 + d for v, d in zip(wavefin, jitter, strict=True)])}
    _comparisons(gens)
    for name in names:
        vs = gens[name]["vs_wavefin"]["discriminative_score"]
        assert vs["p_value"] < VERDICT_ALPHA < vs["p_holm"], (name, vs)  # alone: "closer"; corrected: not
        assert vs["outcome"] == "within noise" and vs["difference"] > vs["noise"]  # beyond 2 s.e., yet noise
    assert gens["strong"]["vs_wavefin"]["discriminative_score"]["outcome"] == "wavefin closer"
    floor = gens["real_train"]["vs_wavefin"]["discriminative_score"]
    assert floor["p_holm"] == floor["p_value"] < VERDICT_ALPHA and floor["outcome"] == "wavefin closer"


def test_generation_metrics_nulls_say_why() -> None:
    from wavefin_core.evaluation.reports import _failed_entry

    entry = _failed_entry(50, "garch_t", "GeneratorFitError: did not converge")
    ok = {**_failed_entry(50, "x", ""), "error": None, "mdd": float("nan")}
    doc = build_generation_metrics({"s": {"n_real_test": 20, "generators": {"garch_t": entry, "iid": ok}}},
                                   None, {"seed": 0})
    json.dumps(doc, allow_nan=False)
    assert doc["series"]["s"]["generators"]["garch_t"]["mdd"] is None
    assert "did not converge" in doc["null_values"]["series.s.generators.garch_t.mdd"]
    assert "not finite" in doc["null_values"]["series.s.generators.iid.mdd"]
    assert all(doc["samplers"][s]["seconds_per_1000"] is None for s in ("ddpm", "ddim", "dpmsolver"))


def test_generation_report_rejects_mismatched_inputs(tmp_path: Path) -> None:
    r = _gjr_returns(600, 0)
    bad = SeriesGeneration(name="s", real_test=_stride1(r[400:], 32), train_returns=r[:300],
                           wavefin=np.zeros((20, 16)))
    with pytest.raises(DataError, match="series 's'.*length 32.*16"):
        write_generation_report([bad], tmp_path, title="x", context={})
    with pytest.raises(ConfigError, match="at least one series"):
        write_generation_report([], tmp_path, title="x", context={})
    assert not (tmp_path / "metrics.json").exists()


@pytest.fixture(scope="module")
def fc_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 300
    windows = rng.standard_normal((n, 20)) * 0.01
    y_ret = rng.standard_normal(n) * 0.01
    return {"windows": windows, "y_ret": y_ret, "y_dir": (y_ret > 0).astype(int),
            "train_windows": rng.standard_normal((500, 20)) * 0.01,
            "train_dir": (rng.random(500) < 0.55).astype(int), "train_ret": rng.standard_normal(500) * 0.01,
            "rng_noise": rng.standard_normal(n) * 0.01}


def _series(fc: dict[str, np.ndarray], results: list[dict], name: str = "s", horizon: int = 1) -> SeriesForecasts:
    return SeriesForecasts(name=name, horizon=horizon, y_true_direction=fc["y_dir"], y_true_return=fc["y_ret"],
                           results=results, test_windows=fc["windows"], train_windows=fc["train_windows"],
                           train_direction=fc["train_dir"], train_return=fc["train_ret"])


def test_forecast_report_verdicts(tmp_path: Path, fc_data: dict[str, np.ndarray]) -> None:
    y_dir, y_ret = fc_data["y_dir"], fc_data["y_ret"]
    results = [
        {"model": "contrarian", "kind": "direction", "pred": 1 - y_dir, "proba": None},  # always wrong
        {"model": "peeker", "kind": "direction", "pred": None, "proba": np.where(y_dir == 1, 0.8, 0.3)},
        {"model": "always_up", "kind": "direction", "pred": np.ones_like(y_dir), "proba": None},
        {"model": "noisy_arima", "kind": "return", "pred": y_ret + 3 * fc_data["rng_noise"]},
        {"model": "oracle", "kind": "return", "pred": y_ret + 0.1 * fc_data["rng_noise"]},
    ]
    info = {"peeker": {"params": 1234, "train_seconds": 0.5}, "oracle": {"params": 3, "train_seconds": 0.01}}
    res = write_forecast_report([_series(fc_data, results)], tmp_path, title="Forecast test",
                                context={"profile": "test"}, model_info=info,
                                figures_data={"training_losses": {"peeker": [1.0, 0.7, 0.5]}})
    md = res.markdown_path.read_text()
    assert "| model | accuracy | balanced acc | macro-F1 | MCC | ROC AUC | p vs best naive (McNemar) |" in md
    for naive in ("| previous_direction |", "| majority_class |", "| zero_return |", "| historical_mean |"):
        assert naive in md  # baselines always in the tables
    assert "s: peeker beats the best naive baseline" in md and "s: contrarian does not beat" in md
    assert "balanced accuracy 0.5000 is not above 0.5" in md  # always_up
    m = res.metrics
    assert m["s.peeker.significant"] == 1.0 and m["s.contrarian.significant"] == 0.0
    assert m["s.always_up.significant"] == 0.0
    assert m["s.oracle.significant"] == 1.0 and m["s.noisy_arima.significant"] == 0.0
    assert m["s.peeker.accuracy"] == 1.0 and m["s.peeker.roc_auc"] == 1.0 and m["s.peeker.p_vs_50"] < 1e-50
    assert m["s.zero_return.rmse"] == pytest.approx(np.sqrt(np.mean(y_ret**2)))
    assert m["s.majority_class.accuracy"] == pytest.approx(y_dir.mean())  # train majority is "up"
    assert all(isinstance(v, float) for v in m.values())
    names = {f.name for f in res.figures}
    assert {"confusion_s_contrarian.png", "confusion_s_peeker.png", "forecast_vs_actual_s.png",
            "training_peeker.png"} <= names
    _assert_figures(res, tmp_path)


def test_forecast_metrics_json_schema(tmp_path: Path, fc_data: dict[str, np.ndarray]) -> None:
    def results(fc: dict[str, np.ndarray]) -> list[dict]:
        return [{"model": "scalogram_cnn", "kind": "direction", "pred": None,
                 "proba": np.where(fc["y_dir"] == 1, 0.9, 0.2)},
                {"model": "arima", "kind": "return", "pred": fc["y_ret"] * 0.5}]

    other = {**fc_data, "y_dir": 1 - fc_data["y_dir"], "y_ret": -fc_data["y_ret"]}  # a second series, horizon 3
    res = write_forecast_report(
        [_series(fc_data, results(fc_data), "a"), _series(other, results(other), "b", horizon=3)], tmp_path,
        title="t", context={},
        model_info={"scalogram_cnn": {"params": 99, "train_seconds": 1.5}})
    doc = json.loads((tmp_path / "metrics.json").read_text())  # strict JSON: no NaN tokens
    assert doc == json.loads(json.dumps(res.document, allow_nan=False))
    assert set(doc["series"]) == {"a", "b"} and doc["series"]["b"]["horizon"] == 3
    for name, sec in doc["series"].items():
        assert isinstance(sec["n_test"], int) and sec["n_test"] == 300
        assert 0.5 <= sec["majority_rate"] <= 1 and sec["best_naive"] in ("previous_direction", "majority_class")
        assert {"scalogram_cnn", "previous_direction", "majority_class"} <= set(sec["models"])
        for model, entry in sec["models"].items():
            for key in ("accuracy", "balanced_accuracy", "mcc", "macro_f1", "p_vs_best_naive", "significant",
                        "params", "train_seconds"):
                assert key in entry, (name, model, key)
            assert isinstance(entry["significant"], bool)
        assert sec["models"]["majority_class"]["params"] == 0 and not sec["models"]["majority_class"]["significant"]
        assert sec["models"]["scalogram_cnn"]["params"] == 99 and sec["models"]["scalogram_cnn"]["significant"]
        assert "arima" in sec["return_models"]
    # Nulls say why: arima has no recorded params; 0/1 forecasts have no ROC AUC.
    assert doc["series"]["a"]["return_models"]["arima"]["params"] is None
    assert "not recorded" in doc["null_values"]["series.a.return_models.arima.params"]
    assert "no probabilities" in doc["null_values"]["series.a.models.majority_class.roc_auc"]
    assert not list(tmp_path.glob(".*"))


def test_best_naive_is_chosen_on_train_not_test(tmp_path: Path, fc_data: dict[str, np.ndarray]) -> None:
    # Train: momentum works (next direction = sign of the last return); test: it does not.
    rng = np.random.default_rng(1)
    train_windows = rng.standard_normal((500, 20))
    train_dir = (train_windows[:, -1] > 0).astype(int)
    sf = SeriesForecasts(name="s", horizon=1, y_true_direction=fc_data["y_dir"], y_true_return=fc_data["y_ret"],
                         results=[], test_windows=fc_data["windows"], train_windows=train_windows,
                         train_direction=train_dir)
    res = write_forecast_report([sf], tmp_path, title="t", context={})
    sec = res.document["series"]["s"]
    assert sec["naive_train_accuracy"]["previous_direction"] == 1.0
    assert sec["best_naive"] == "previous_direction"
    assert "historical_mean" not in sec["return_models"]  # no train returns given


def test_forecast_report_rejects_bad_inputs(tmp_path: Path, fc_data: dict[str, np.ndarray]) -> None:
    y_dir, y_ret = fc_data["y_dir"], fc_data["y_ret"]
    model = [{"model": "m", "kind": "direction", "pred": y_dir}]
    with pytest.raises(ConfigError, match="unique"):
        write_forecast_report([_series(fc_data, model * 2)], tmp_path, title="t", context={})
    with pytest.raises(ConfigError, match="naive baseline the report computes"):
        write_forecast_report([_series(fc_data, [{"model": "majority_class", "kind": "direction", "pred": y_dir}])],
                              tmp_path, title="t", context={})
    with pytest.raises(DataError, match="series 's'.*predictions for 300"):
        write_forecast_report([_series(fc_data, [{"model": "m", "kind": "return", "pred": y_ret[:10]}])],
                              tmp_path, title="t", context={})
    with pytest.raises(DataError, match="test_windows has 3 rows"):
        write_forecast_report([_series({**fc_data, "windows": fc_data["windows"][:3]}, model)], tmp_path,
                              title="t", context={})
    with pytest.raises(ConfigError, match="not unique"):
        write_forecast_report([_series(fc_data, model), _series(fc_data, model)], tmp_path, title="t", context={})
    assert not (tmp_path / "metrics.json").exists()  # nothing half-written


def test_forecast_report_walk_forward_augmentation_and_extra_sections(tmp_path: Path,
                                                                       fc_data: dict[str, np.ndarray]) -> None:
    y_dir = fc_data["y_dir"]
    results = [{"model": "scalogram_cnn", "kind": "direction", "pred": np.ones_like(y_dir)},
               {"model": "scalogram_cnn_augmented", "kind": "direction", "pred": y_dir}]
    walk_forward = {"s": {"k": 2, "embargo": 21, "test_fraction": 0.3, "folds": [
        {"fold": 1, "n_train": 100, "n_test": 50, "test_start": 150, "accuracy": {"logistic": 0.5, "majority_class": 0.6}},
        {"fold": 2, "n_train": 150, "n_test": 50, "test_start": 200, "accuracy": {"logistic": 0.7, "majority_class": 0.4}}],
        "summary": {"logistic": {"mean": 0.6, "std": 0.1414, "folds": [0.5, 0.7]},
                    "majority_class": {"mean": 0.5, "std": 0.1414, "folds": [0.6, 0.4]}}}}
    extra = {"Volume translation": {"markdown": "| model | MAE |\n|---|---|\n| dense_unet | 0.1 |",
                                    "json": {"dense_unet": {"mae": 0.1}}}}
    res = write_forecast_report([_series(fc_data, results)], tmp_path, title="t", context={},
                                walk_forward=walk_forward, extra_sections=extra)
    md = res.markdown_path.read_text()
    assert "## Augmentation: with and without" in md and "s: scalogram_cnn accuracy" in md
    assert "## Walk-forward evaluation" in md and "0.6000 ± 0.1414" in md
    assert "## Volume translation" in md and "| dense_unet | 0.1 |" in md
    assert res.metrics["s.logistic.walk_forward_mean"] == 0.6
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["series"]["s"]["walk_forward"]["summary"]["logistic"]["folds"] == [0.5, 0.7]
    assert doc["extra"]["Volume translation"] == {"dense_unet": {"mae": 0.1}}
    assert doc["series"]["s"]["models"]["historical_mean"]["params"] == 0  # the fourth naive baseline
    assert {"mse", "mase"} <= set(doc["series"]["s"]["return_models"]["zero_return"])


def test_save_figure_crops_only_figures_without_a_layout_engine(tmp_path: Path) -> None:
    """Constrained-layout figures (every report figure) already fit their content; cropping them drew them twice."""
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    from wavefin_core.evaluation.plots import save_figure

    def saved_shape(layout: str | None) -> tuple[int, ...]:
        fig = Figure(figsize=(4, 3), layout=layout)
        fig.subplots().plot([0, 1], [0, 1])
        return imread(save_figure(fig, tmp_path / f"{layout}.png", dpi=50)).shape[:2]

    assert saved_shape("constrained") == (150, 200)  # the figure as laid out, not cropped
    assert saved_shape(None) != (150, 200)  # no layout engine: cropped to its content, as before
