"""Ablation of the diffusion generator's levers (issue 8): the discriminative score per lever and series.

Run on demand (never in CI):

    .venv/bin/python bench/bench_generation_ablation.py            # the quick profile's budget (see --help)
    .venv/bin/python bench/bench_generation_ablation.py --quick    # smoke run: 5.6 min at load 7-10 on 2 cores
    .venv/bin/python bench/bench_generation_ablation.py --ladder regimes   # the volatility-regime rows
    .venv/bin/python bench/bench_generation_ablation.py --ladder levels    # issue 8's lag-1 ACF levers

On a busy shared machine, rows can run as separate processes started together (``--levers ROW
--no-references --out part_i.json``, one of them with the references) and be merged with ``--merge part_*.json
--out results/ablation_regimes.json``: the models, samples and scores are seeded, so they are the numbers of a
single run; only the seconds differ.

Data, as the data assets build it: the ``mjd`` series (``simulate_mjd`` with ``raw_prices``' defaults and the
quick profile's days and bar frequency) and ``sp500`` (``load_sp500``), cleaned by ``preprocess.clean_prices``
and cut by ``make_segments`` (window 64, horizon 1, 70/15/15 chronological splits with the default embargo).
Every lever trains and scores on the same splits: train windows at the lever's stride (8 = the quick
profile's, or 1), real TEST windows at stride 1, as ``generation_report`` scores them; classical generators
are fitted on the contiguous train returns.

The ladder (each row keeps the levers above it):

1. ``baseline``: one unconditional model on the pooled train images of both series, sampled without
   projection, stride-8 training windows, no EMA, epsilon objective, the complex (real+imag CWT)
   representation. Each series' samples are decoded with that series' own representation (the fairest
   reading of a pooled model).
2. ``+ conditioning``: class (series) embedding; samples are drawn for a named series.
3. ``+ projection``: the range projection (``Representation.project``) at every sampler step and on the final
   samples. Same trained model as row 2 (projection is sampling only), so its train seconds repeat row 2's.
4. ``+ stride-1``: training windows at stride 1 (8x as many, the train split only), same optimizer steps.
5. ``+ EMA, v-pred``: an EMA of the weights (sampled), the v-prediction objective, linear LR warm-up then
   cosine decay.
6. ``repr: logmag_phase`` and ``repr: haar``: row 5 with the other representations (row 5 is ``complex``);
   the best of the three is the "best representation" of the issue.

The regime ladder (``--ladder regimes``, results in ``bench/results/ablation_regimes.json``): today's default
(the Haar image, class-conditioned, stride 1, EMA, v-prediction, projected) and the same model with volatility
regime conditioning (``wavefin_core.models.regimes``): K = 4 or 8 realized-volatility quantile buckets per
series (train windows only), the class label (series, bucket), buckets drawn from the train frequencies at
sampling; ``norm=window`` / ``norm=bucket`` also divide each window by its own / its bucket's median
volatility before encoding and rescale the decoded samples by an empirical draw from the bucket / its median.

The fine-level ladder (``--ladder levels``, results in ``bench/results/ablation_levels.json``; issue 8's
negative lag-1 ACF): today's default (K=4, norm=window) and, on the same trained model, DPM-Solver++ ending at
``sigma_min`` instead of 0 (``scheduler_options``), 20 sampler steps, and the per-level variance calibration of
each series' generated Haar images to the train windows' (``HaarRepresentation.calibrate_levels``); then the
x0 (``sample``) objective and a x2 loss weight on the five coarsest image rows (``row_loss_weights``), each
with and without the calibration. One command: ``.venv/bin/python bench/bench_generation_ablation.py --ladder
levels`` (on a busy machine: three processes split by trained model, ``--levers ... --out part_i.json``, then
``--merge``).

The objective ladder (``--ladder objective``, results in ``bench/results/ablation_objective.json``; issue 8's
objective and training length): the calibrated default (K=4, norm=window, per-level calibration) with the
v-prediction or the x0 (``sample``) objective, at 300 or 600 optimizer steps (warm-up: the profile's share of
them), with training seeds 0 and 1 (rows are named ``v-pred, cal, 300 steps, seed 1``; the seed also seeds the
samples; ``--seed`` keeps seeding the classifiers' references, so every run's reference rows agree); and on each
same trained model and samples, ``bucket cal``: each volatility bucket's generated images calibrated to that
bucket's train level energies (``calibrate_levels(target_energy=)``) instead of the whole train set's. The table
is followed by paired per-seed differences (v-pred - x0, 600 - 300 steps, bucket cal - cal), matched on the
classifier seed. One command: ``.venv/bin/python bench/bench_generation_ablation.py --ladder objective`` (on a
busy machine: one process per trained model, ``--levers ... --out part_i.json``, then ``--ladder objective
--merge part_*.json``; ``--rename OLD=NEW`` takes rows of an earlier run of the same lever and seeds, e.g. the
levels ladder's ``+ level calibration`` = ``v-pred, cal, 300 steps, seed 0``).

The leverage ladder (``--ladder leverage``, results in ``bench/results/ablation_leverage.json``; issue 8's
leverage effect): the calibrated default at 600 steps, training seeds 0 and 1, its samples' volatilities drawn
independently of the generated shapes (``independent scale``) or from the bucket's train windows of a similar
normalised drift (``drift scale``, ``wavefin_core.models.regimes``: sampling only, the same model and shapes).
One draw of the scales moves sp500's pooled leverage by ~0.005, so window-normalised rows also report the
leverage of the same shapes over ``SCALE_REDRAWS`` fresh scale draws (its mean in brackets), and the paired
differences add its drift - independent difference per training seed. One command: ``.venv/bin/python
bench/bench_generation_ablation.py --ladder leverage`` (on a busy machine: one process per training seed with
``--threads 1 --levers ... --out part_i.json``, then ``--ladder leverage --merge part_*.json``).

Reference rows: ``garch_t`` (GARCH(1,1)-t) and ``real_train`` (the floor: real train windows) from
``evaluation.generators``, drawing the same number of windows, scored the same way.

Columns: post-hoc discriminative score (TimeGAN protocol, 1-D CNN, mean +- std over ``--seeds`` seeds, as
``generation_report``), lag-1 ACF of the synthetic windows (and the real one in the header), std ratio
(synthetic / real test), pooled excess kurtosis, stylized facts reproduced of those present in the real test
windows (``evaluation.facts.compare_facts``, as the report counts them), median projection residual of the decoded samples (``||x - P(x)|| / ||x||``: the
share of each raw sample no real series can produce), and train + sample seconds.

Writes ``bench/results/ablation.json`` (or ``--out``) atomically and prints the markdown table. A lever
whose API is missing in ``wavefin_core.models`` is reported as unavailable and skipped, not faked.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wavefin_core.data import load_sp500, simulate_mjd  # noqa: E402
from wavefin_core.errors import ConfigError  # noqa: E402
from wavefin_core.io import atomic_path  # noqa: E402
from wavefin_core.preprocess import clean_prices  # noqa: E402
from wavefin_core.segments import make_segments  # noqa: E402
from wavefin_core.wavelets import covering_scales, make_representation  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ablation.json"
SERIES = ("mjd", "sp500")
REFERENCES = ("garch_t", "real_train")
WINDOW = 64
#: raw_prices' MJD defaults (RawPricesConfig), so the series is the one the pipeline simulates.
MJD_PARAMS = {"mu": 0.05, "sigma": 0.2, "lam": 0.1, "jump_mean": -0.02, "jump_std": 0.1, "start": "2022-01-03",
              "seed": 0}


def _quick_profile(name: str = "quick") -> dict[str, Any]:
    """The knobs of profile ``name`` (wavefin_assets.profiles, a plain module: no Dagster import)."""
    try:
        from wavefin_assets.profiles import PROFILES

        p = PROFILES[name]
        # full trains by epochs (max_steps None): its warm-up share is of ~24,000 steps (60 epochs at stride 1)
        total = p.diffusion_max_steps or 24_000
        return {"name": name, "mjd_days": p.mjd_days, "mjd_freq": p.mjd_freq, "window": p.window,
                "stride": p.stride, "num_scales": p.num_scales, "unet_channels": tuple(p.unet_channels),
                "attention": p.unet_attention, "batch_size": p.diffusion_batch_size,
                "learning_rate": p.diffusion_learning_rate, "steps": p.diffusion_max_steps or 3000,
                "samples": p.n_synthetic, "inference_steps": p.inference_steps, "sampler": p.sampler,
                "ema_decay": getattr(p, "diffusion_ema_decay", None) or 0.995,
                "warmup_fraction": getattr(p, "diffusion_warmup_steps", 25) / total}
    except (ImportError, KeyError, AttributeError):  # the quick profile's values of this writing
        return {"name": "quick", "mjd_days": 8, "mjd_freq": "minute", "window": WINDOW, "stride": 8,
                "num_scales": 16, "unet_channels": (16, 32, 64), "attention": False, "batch_size": 32,
                "learning_rate": 1e-3, "steps": 500, "samples": 1000, "inference_steps": 10,
                "sampler": "dpmsolver", "ema_decay": 0.995, "warmup_fraction": 0.05}


# ----------------------------------------------------------------------------------------------------- levers
@dataclass(frozen=True)
class Lever:
    """One row of the ladder: what the model is trained on and how it is sampled."""

    name: str
    conditioning: str = "none"
    project: bool = False
    stride: int = 8
    ema: bool = False
    prediction_type: str = "epsilon"
    representation: str = "complex"
    vol_buckets: int = 0  # volatility-regime buckets per series (0 = off); see wavefin_core.models.regimes
    vol_normalize: str = "none"  # none | window | bucket
    # issue 8's fine-level levers (the --ladder levels rows): a per-row (Haar level) loss weight, the sampler's
    # options (DPMSolverMultistepScheduler arguments, as sorted (name, value) pairs), its steps (None: the
    # profile's), its timestep spacing, and the per-level variance calibration of the generated images
    row_loss_weights: tuple[float, ...] | None = None
    scheduler_options: tuple[tuple[str, Any], ...] = ()
    inference_steps: int | None = None
    timestep_spacing: str | None = None
    calibrate_levels: bool = False
    # the objective ladder (--ladder objective): calibrate each volatility bucket's generated images to that
    # bucket's train level energies instead of the whole train set's; the row's own optimizer steps and training
    # seed (None: --steps and --train-seed)
    calibrate_per_bucket: bool = False
    steps: int | None = None
    train_seed: int | None = None
    # the scale ladder (--ladder scale): the UNet's widths, self-attention, batch and learning rate (None: the
    # quick profile's)
    unet_channels: tuple[int, ...] | None = None
    attention: bool = False
    batch_size: int | None = None
    learning_rate: float | None = None
    # the leverage ladder (--ladder leverage): how each sample's volatility is drawn (normalize="window"):
    # independently of its generated shape, or from its bucket's train windows of a similar normalised drift
    # (wavefin_core.models.regimes.SCALE_DRAWS; sampling only, so not in the training key)
    scale_draw: str = "independent"
    # the shapes ladder (--ladder shapes): calibration of the decoded shapes before scaling (sampling only;
    # wavefin_core.models.regimes.SHAPE_CALIBRATIONS)
    shape_calibration: str = "none"

    def training_key(self) -> tuple:
        """Levers with equal keys share one trained model (projection and the sampler only change sampling)."""
        return (self.conditioning, self.stride, self.ema, self.prediction_type, self.representation,
                self.vol_buckets, self.vol_normalize, self.row_loss_weights, self.steps, self.train_seed,
                self.unet_channels, self.attention, self.batch_size, self.learning_rate)


def ladder(stride: int) -> list[Lever]:
    base = Lever("baseline", stride=stride)
    cond = dataclasses.replace(base, name="+ conditioning", conditioning="class")
    proj = dataclasses.replace(cond, name="+ projection", project=True)
    dense = dataclasses.replace(proj, name="+ stride-1", stride=1)
    ema = dataclasses.replace(dense, name="+ EMA, v-pred", ema=True, prediction_type="v_prediction")
    return [base, cond, proj, dense, ema,
            dataclasses.replace(ema, name="repr: logmag_phase", representation="logmag_phase"),
            dataclasses.replace(ema, name="repr: haar", representation="haar")]


def regime_ladder() -> list[Lever]:
    """The volatility-regime ladder: today's default (Haar image, class-conditioned, stride 1, EMA, v-pred,
    projected) and the same model with K volatility buckets per series, normalised or not."""
    default = Lever("haar (default)", conditioning="class", project=True, stride=1, ema=True,
                    prediction_type="v_prediction", representation="haar")
    rows = [default]
    for k in (4, 8):
        for normalize in ("none", "window", "bucket"):
            rows.append(dataclasses.replace(default, name=f"+ vol K={k}" + ("" if normalize == "none" else
                                                                               f", norm={normalize}"),
                                            vol_buckets=k, vol_normalize=normalize))
    return rows


def levels_ladder() -> list[Lever]:
    """Issue 8's fine-level ladder: the K=4, norm=window default and the levers against its negative lag-1 ACF
    (the sampler's last step and steps, the x0 objective, a heavier loss on the coarse levels the model
    under-fills, the per-level variance calibration of the generated Haar images to the train windows')."""
    default = Lever("K=4 window (default)", conditioning="class", project=True, stride=1, ema=True,
                    prediction_type="v_prediction", representation="haar", vol_buckets=4, vol_normalize="window")
    coarse = (2.0,) * 5 + (1.0,) * 2  # window 64: 7 rows (approximation, levels 6..1); x2 on rows 0-4
    return [
        default,
        dataclasses.replace(default, name="+ final sigma_min", scheduler_options=(("final_sigmas_type",
                                                                                   "sigma_min"),)),
        dataclasses.replace(default, name="+ 20 sampler steps", inference_steps=20),
        dataclasses.replace(default, name="+ level calibration", calibrate_levels=True),
        dataclasses.replace(default, name="+ x0 objective", prediction_type="sample"),
        dataclasses.replace(default, name="+ x0 objective, level calibration", prediction_type="sample",
                            calibrate_levels=True),
        dataclasses.replace(default, name="+ coarse-level loss x2", row_loss_weights=coarse),
        dataclasses.replace(default, name="+ coarse-level loss x2, level calibration", row_loss_weights=coarse,
                            calibrate_levels=True),
    ]


OBJECTIVES = {"v-pred": "v_prediction", "x0": "sample"}


def objective_ladder() -> list[Lever]:
    """Issue 8's objective and training length: the calibrated default (K=4, norm=window, per-level calibration)
    with the v-prediction or x0 objective, 300 or 600 optimizer steps, training seeds 0 and 1; and, on each
    same trained model and samples, the per-bucket calibration (``bucket cal``)."""
    default = Lever("", conditioning="class", project=True, stride=1, ema=True, prediction_type="v_prediction",
                    representation="haar", vol_buckets=4, vol_normalize="window", calibrate_levels=True)
    rows = []
    for steps in (300, 600):
        for seed in (0, 1):
            for label, objective in OBJECTIVES.items():
                row = dataclasses.replace(default, name=f"{label}, cal, {steps} steps, seed {seed}",
                                          prediction_type=objective, steps=steps, train_seed=seed)
                rows += [row, dataclasses.replace(row, name=f"{label}, bucket cal, {steps} steps, seed {seed}",
                                                  calibrate_per_bucket=True)]
    return rows


#: The scale ladder's models: (label, UNet widths, self-attention, batch, learning rate, optimizer steps).
#: ``quick UNet, batch 32`` is `make run`'s model; a GPU step of these small UNets costs about the same at batch
#: 32 and 256 (launch-bound: 0.033 s per step at 256 on an H100), so the GPU rows scale the batch, not only the
#: steps. ``full UNet`` is the full profile's network (4 levels, attention at the two deepest), on the quick
#: window-64 series so that every row is scored against the same real windows.
SCALE_MODELS = (("quick UNet, batch 32", None, False, None, None, 600),
                ("quick UNet, batch 256", None, False, 256, 1e-3, 3000),
                ("full UNet, batch 256", (64, 128, 256, 256), True, 256, 5e-4, 3000),
                # for --profile full (window 256: 8x the pixels of a window-64 image, no longer launch-bound)
                ("full UNet, batch 64", (64, 128, 256, 256), True, 64, 5e-4, 2000))


def scale_ladder() -> list[Lever]:
    """Issue 8's "in the full profile (GPU), aim for the floor": the calibrated default (as in ``make run``) with
    the quick profile's UNet and 600 steps, then 40x the images seen (batch 256, 3,000 steps) with the quick and
    with the full profile's UNet; training seeds 0 and 1. Meant for a GPU (``--device cuda``, ~4 min per
    batch-256 model on an H100); on a CPU the batch-256 rows take hours."""
    default = Lever("", conditioning="class", project=True, stride=1, ema=True, prediction_type="v_prediction",
                    representation="haar", vol_buckets=4, vol_normalize="window", calibrate_levels=True)
    return [dataclasses.replace(default, name=f"{label}, {steps} steps, seed {seed}", steps=steps, train_seed=seed,
                                unet_channels=channels, attention=attention, batch_size=batch, learning_rate=lr)
            for label, channels, attention, batch, lr, steps in SCALE_MODELS for seed in (0, 1)]


SCALE_DRAW_LABELS = {"independent": "independent scale", "drift": "drift scale"}


def leverage_ladder() -> list[Lever]:
    """Issue 8's leverage effect: the calibrated default (as the objective ladder: K=4, norm=window, per-level
    calibration, v-pred, 600 steps, training seeds 0 and 1) sampled with each volatility drawn independently of
    the generated shape or conditionally on its normalised drift; both draws on the same model and shapes."""
    default = Lever("", conditioning="class", project=True, stride=1, ema=True, prediction_type="v_prediction",
                    representation="haar", vol_buckets=4, vol_normalize="window", calibrate_levels=True, steps=600)
    return [dataclasses.replace(default, name=f"{label}, 600 steps, seed {seed}", train_seed=seed, scale_draw=draw)
            for seed in (0, 1) for draw, label in SCALE_DRAW_LABELS.items()]


def shapes_ladder() -> list[Lever]:
    """Issue 8's within-window shapes: today's default (drift-matched scales) with the decoded shapes as they
    come, each set to RMS 1 (as every train shape is), mapped onto the train shapes' marginal then RMS 1, or that
    after the train shapes' within-window leverage (marginal_leverage); all on the same model and samples, training
    seeds 0 and 1 (2 and 3 too: the leverage calibration's rows were measured on four; pick rows with --levers)."""
    default = Lever("", conditioning="class", project=True, stride=1, ema=True, prediction_type="v_prediction",
                    representation="haar", vol_buckets=4, vol_normalize="window", calibrate_levels=True, steps=600,
                    scale_draw="drift")
    return [dataclasses.replace(default, name=f"shapes {mode}, 600 steps, seed {seed}", train_seed=seed,
                                shape_calibration=mode)
            for seed in (0, 1, 2, 3) for mode in ("none", "rms", "marginal", "marginal_leverage")]


LADDERS = {"levers": "the lever ladder (README's first ablation)", "regimes": "the volatility-regime ladder",
           "levels": "issue 8's fine-level ladder (lag-1 ACF)", "objective": "issue 8's objective x training length",
           "scale": "issue 8's model size x training length (GPU)",
           "leverage": "issue 8's leverage effect: independent vs drift-matched volatility draws",
           "shapes": "issue 8's within-window shapes: none / rms / marginal shape calibration"}
LADDER_ROWS = {"levers": lambda stride: ladder(stride), "regimes": lambda stride: regime_ladder(),
               "levels": lambda stride: levels_ladder(), "objective": lambda stride: objective_ladder(),
               "scale": lambda stride: scale_ladder(), "leverage": lambda stride: leverage_ladder(),
               "shapes": lambda stride: shapes_ladder()}
DEFAULT_OUT = {"levers": "ablation.json", "regimes": "ablation_regimes.json", "levels": "ablation_levels.json",
               "objective": "ablation_objective.json", "scale": "ablation_scale.json",
               "leverage": "ablation_leverage.json", "shapes": "ablation_shapes.json"}


def missing_api(lever: Lever) -> str | None:
    """Why ``wavefin_core.models`` cannot run this lever yet (None: it can)."""
    from wavefin_core.models import DiffusionConfig, sample_diffusion, train_diffusion

    fields = {f.name for f in dataclasses.fields(DiffusionConfig)}
    train_args = inspect.signature(train_diffusion).parameters
    sample_args = inspect.signature(sample_diffusion).parameters
    if lever.conditioning == "class" and not ({"conditioning"} <= fields and "labels" in train_args
                                              and "class_labels" in sample_args):
        return "class conditioning (DiffusionConfig.conditioning, train_diffusion(labels=), " \
               "sample_diffusion(class_labels=)) is not in wavefin_core.models yet"
    if lever.project and "project" not in sample_args:
        return "sample_diffusion(project=) is not in wavefin_core.models yet"
    if lever.ema and not {"ema_decay", "warmup_steps", "lr_schedule"} <= fields:
        return "DiffusionConfig.ema_decay / warmup_steps / lr_schedule are not in wavefin_core.models yet"
    if lever.prediction_type != "epsilon" and "prediction_type" not in fields:
        return "DiffusionConfig.prediction_type is not in wavefin_core.models yet"
    return None


# ------------------------------------------------------------------------------------------------------- data
@dataclass
class SeriesData:
    """One series' windows: train at stride 1 (a lever's stride takes every k-th), test at stride 1."""

    name: str
    train_windows: np.ndarray  # (N, T) stride 1
    test_windows: np.ndarray  # (M, T) stride 1
    train_returns: np.ndarray  # contiguous train returns (what classical generators are fitted on)
    representations: dict[tuple, Any] = field(default_factory=dict)

    def train_at(self, stride: int) -> np.ndarray:
        return self.train_windows[::stride]


def load_series(name: str, profile: dict[str, Any]) -> SeriesData:
    if name == "mjd":
        raw = simulate_mjd(days=profile["mjd_days"], freq=profile["mjd_freq"], **MJD_PARAMS)
    elif name == "sp500":
        raw = load_sp500()
    else:
        raise ConfigError(f"--series {name!r} is not one of {SERIES}.")
    frame = clean_prices(raw, source=name, train_fraction=0.7)
    segs = make_segments(frame["log_return"], window=profile["window"], stride=1, horizon=1, test_stride=1)
    train = np.ascontiguousarray(segs.windows[segs.mask("train")])
    test = np.ascontiguousarray(segs.windows[segs.mask("test")])
    returns = np.concatenate([train[0], train[1:, -1]])  # stride-1 windows: each adds one new return
    return SeriesData(name, train, test, returns)


def regimes_for(data: SeriesData, lever: Lever):
    """The lever's volatility regimes fitted on this series' train windows at the lever's stride."""
    from wavefin_core.models.regimes import VolRegimes

    return VolRegimes.fit(data.train_at(lever.stride), lever.vol_buckets, lever.vol_normalize)


def representation_for(data: SeriesData, lever: Lever, profile: dict[str, Any]):
    """(representation, regimes): the lever's representation fitted on this series' train windows at the
    lever's stride, after the regimes' normalisation (cached)."""
    key = (lever.representation, lever.stride, lever.vol_buckets, lever.vol_normalize)
    if key not in data.representations:
        window = data.train_windows.shape[1]
        regimes = regimes_for(data, lever)
        prepared, _ = regimes.prepare(data.train_at(lever.stride))
        rep = make_representation(lever.representation, window,
                                  scales=covering_scales(window, num=profile["num_scales"]))
        data.representations[key] = (rep.fit(prepared), regimes)
    return data.representations[key]


# ------------------------------------------------------------------------------------------- train and sample
def train_model(lever: Lever, series: list[SeriesData], args: argparse.Namespace, profile: dict[str, Any],
                device: Any) -> tuple[Any, float, int]:
    """Train one model for ``lever`` on the train images of all series; (result, seconds, n_images)."""
    from wavefin_core.models import DiffusionConfig, train_diffusion
    from wavefin_core.models.regimes import class_labels, num_classes

    images, labels = [], []
    for index, data in enumerate(series):
        rep, regimes = representation_for(data, lever, profile)
        prepared, buckets = regimes.prepare(data.train_at(lever.stride))
        images.append(rep.encode(prepared))
        labels.append(class_labels(index, buckets, lever.vol_buckets))
    x = np.concatenate(images)
    steps = lever_steps(lever, args)
    settings: dict[str, Any] = {
        "block_out_channels": lever.unet_channels or profile["unet_channels"],
        "attention": lever.attention if lever.unet_channels else profile.get("attention", False),
        "batch_size": lever.batch_size or profile["batch_size"],
        "learning_rate": lever.learning_rate or profile["learning_rate"], "max_steps": steps, "epochs": 10**6,
        "seed": train_seed(lever, args),
    }
    if lever.conditioning != "none":
        settings["conditioning"] = lever.conditioning
    if lever.prediction_type != "epsilon":
        settings["prediction_type"] = lever.prediction_type
    if lever.ema:
        warmup = max(1, round(steps * profile["warmup_fraction"]))  # the profile's share of the steps
        settings.update(ema_decay=args.ema_decay, warmup_steps=warmup, lr_schedule="cosine")
    if lever.row_loss_weights is not None:
        settings["row_loss_weights"] = lever.row_loss_weights
    cfg = DiffusionConfig(**settings)
    extra = {"labels": np.concatenate(labels), "num_classes": num_classes(len(series), lever.vol_buckets)} \
        if lever.conditioning == "class" else {}
    started = time.perf_counter()
    result = train_diffusion(x, cfg, device, **extra)
    return result, time.perf_counter() - started, len(x)


def lever_steps(lever: Lever, args: argparse.Namespace) -> int:
    """The lever's optimizer steps: its own (the objective ladder's rows), else --steps; --quick always 20."""
    return args.steps if args.quick or lever.steps is None else lever.steps


def train_seed(lever: Lever, args: argparse.Namespace) -> int:
    """The seed of the lever's model and of its samples: the row's own, else --train-seed, else --seed."""
    if lever.train_seed is not None:
        return lever.train_seed
    return args.seed if args.train_seed is None else args.train_seed


def bucket_level_energy(data: SeriesData, lever: Lever, profile: dict[str, Any]) -> dict[int, np.ndarray]:
    """Each volatility bucket's train images' mean square per Haar level (the per-bucket calibration targets)."""
    rep, regimes = representation_for(data, lever, profile)
    prepared, buckets = regimes.prepare(data.train_at(lever.stride))
    images = rep.encode(prepared)
    return {int(b): rep.level_energy(images[buckets == b]) for b in np.unique(buckets)}


def calibrate_per_bucket(rep: Any, images: np.ndarray, buckets: np.ndarray,
                         targets: dict[int, np.ndarray]) -> np.ndarray:
    """Each bucket's generated images calibrated to that bucket's train level energies."""
    out = np.array(images, copy=True)
    for b in np.unique(buckets):
        rows = buckets == b
        out[rows], _ = rep.calibrate_levels(images[rows], target_energy=targets[int(b)])
    return out


def sample_series(result: Any, lever: Lever, index: int, data: SeriesData, args: argparse.Namespace,
                  profile: dict[str, Any], device: Any) -> tuple[np.ndarray, np.ndarray, float, dict[str, Any]]:
    """``args.samples`` windows for one series, decoded with its representation; (returns, residual, seconds,
    extra row fields: the leverage over re-drawn scales for window-normalised levers)."""
    from wavefin_core.models import sample_diffusion
    from wavefin_core.models.regimes import class_labels

    rep, regimes = representation_for(data, lever, profile)
    seed = train_seed(lever, args) + 1000 * (index + 1)
    buckets, scales = regimes.draw(args.samples, seed)
    extra: dict[str, Any] = {}
    if lever.conditioning == "class":
        extra["class_labels"] = class_labels(index, buckets, lever.vol_buckets)
    if lever.project:
        extra["project"] = rep.project
    if lever.scheduler_options:
        extra["scheduler_options"] = dict(lever.scheduler_options)
    if lever.timestep_spacing:
        extra["timestep_spacing"] = lever.timestep_spacing
    model = getattr(result, "sampling_model", result.model)
    started = time.perf_counter()
    images = sample_diffusion(model, rep.image_shape, args.samples, sampler=profile["sampler"],
                              num_inference_steps=lever.inference_steps or args.inference_steps, seed=seed,
                              device=device, train_scheduler=result.scheduler, batch_size=64, **extra)
    if lever.calibrate_per_bucket:
        images = calibrate_per_bucket(rep, images, buckets, bucket_level_energy(data, lever, profile))
    elif lever.calibrate_levels:
        images, _ = rep.calibrate_levels(images)
    seconds = time.perf_counter() - started
    returns, residual = rep.decode(images)
    if lever.scale_draw != "independent" or lever.shape_calibration != "none":  # as synthetic_series does
        from wavefin_core.models.regimes import plan_samples

        plan = plan_samples(regimes, index, args.samples, seed, lever.scale_draw, lever.shape_calibration)
        # what plan.rescale(returns) does, keeping the calibrated shapes: their leverage over re-drawn scales
        calibrated, fit = regimes.calibrate_shapes_with_fit(returns, lever.shape_calibration, plan.buckets)
        extra_fields = leverage_over_scale_draws(regimes, lever, buckets, calibrated, seed)
        if fit is not None:
            extra_fields["leverage_fit"] = fit.to_dict()
        return calibrated * plan.scales_for(calibrated)[:, None], residual, seconds, extra_fields
    extra_fields = leverage_over_scale_draws(regimes, lever, buckets, returns, seed)
    return returns * scales[:, None], residual, seconds, extra_fields


#: Scale re-draws per window-normalised row: the pooled leverage of one draw of the scales moves by ~0.004-0.005
#: (sd, sp500, 500 windows) with the shapes fixed, as much as the levers it compares, so rows also report its mean.
SCALE_REDRAWS = 20


def leverage_over_scale_draws(regimes: Any, lever: Lever, buckets: np.ndarray, shapes: np.ndarray,
                              seed: int) -> dict[str, Any]:
    """The leverage fact of the same decoded shapes under SCALE_REDRAWS fresh draws of their scales (as the lever
    draws them: independently from the bucket's pool, or by drift), its mean and std: what the scale draw gives
    in expectation, without the luck of the one draw the row's other columns score. {} without normalisation."""
    if regimes.normalize != "window":
        return {}
    from wavefin_core.evaluation.facts import stylized_facts

    values = []
    for draw in range(SCALE_REDRAWS):
        redraw_seed = 10_000 * (draw + 1) + seed
        if lever.scale_draw == "drift":
            scales = regimes.matched_scales(buckets, shapes, redraw_seed)
        else:
            rng = np.random.default_rng(redraw_seed)
            scales = np.empty(len(shapes))
            for b in np.unique(buckets):
                scales[buckets == b] = rng.choice(regimes.pools[b], size=int((buckets == b).sum()))
        values.append(float(stylized_facts(shapes * scales[:, None])["leverage"]))
    return {"leverage_redraws": {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)),
                                 "n": SCALE_REDRAWS, "values": values}}


# ------------------------------------------------------------------------------------------------------ score
def score(real: np.ndarray, synth: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    from wavefin_core.evaluation.discriminative import posthoc_discriminative_score
    from wavefin_core.evaluation.facts import acf, compare_facts

    steps = {"steps": args.classifier_steps} if args.classifier_steps else {}
    disc = posthoc_discriminative_score(real, synth, seeds=args.seeds, **steps)
    shape = posthoc_discriminative_score(real, synth, seeds=args.seeds, scale="per_window", **steps)
    facts = compare_facts(real, synth)
    flat = synth.ravel()
    kurtosis = float(np.mean((flat - flat.mean()) ** 4) / flat.var() ** 2 - 3.0)
    return {"disc_mean": disc["mean"], "disc_std": disc["std"], "disc_values": disc["values"],
            "disc_seeds": disc["seeds"], "shape_mean": shape["mean"], "shape_std": shape["std"],
            "shape_values": shape["values"], "acf1": float(acf(synth, 1)[1]),
            "std_ratio": float(synth.std() / real.std()), "n_windows": int(len(synth)),
            "excess_kurtosis": kurtosis, "facts_reproduced": int(sum(f["reproduced"] for f in facts.values())),
            "facts": {name: f["synthetic"] for name, f in facts.items()}}


def reference_rows(data: SeriesData, args: argparse.Namespace) -> list[dict[str, Any]]:
    from wavefin_core.evaluation.generators import fit_generator
    from wavefin_core.evaluation.reports import derived_seed

    rows = []
    for name in REFERENCES:
        started = time.perf_counter()
        gen = fit_generator(name, data.train_returns, series=data.name)
        synth = gen.sample(args.samples, data.test_windows.shape[1], seed=derived_seed(args.seed, data.name, name))
        seconds = time.perf_counter() - started
        rows.append({"lever": name, "series": data.name, **score(data.test_windows, synth, args),
                     "residual_median": None, "train_seconds": None, "sample_seconds": seconds})
    return rows


# ----------------------------------------------------------------------------------------------------- output
def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _redraws(row: dict[str, Any]) -> str:
    """' (mean over re-drawn scales)' after the leverage of window-normalised rows (see SCALE_REDRAWS)."""
    redraws = row.get("leverage_redraws")
    return "" if not redraws else f" ({redraws['mean']:.3f} over {redraws['n']} scale draws)"


def markdown(document: dict[str, Any]) -> str:
    real = document["real"]
    lines = [
        "| lever | series | disc. score (mean ± std) | lag-1 ACF | leverage | ACF of abs(r) | std ratio | "
        "excess kurtosis | facts | proj. residual (median) | train + sample s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in document["rows"]:
        seconds = (row["train_seconds"] or 0.0) + (row["sample_seconds"] or 0.0)
        lines.append(
            f"| {row['lever']} | {row['series']} | {_fmt(row['disc_mean'])} ± {_fmt(row['disc_std'])} | "
            f"{_fmt(row['acf1'])} | {_fmt(row['facts'].get('leverage'))}{_redraws(row)} | "
            f"{_fmt(row['facts'].get('acf_abs_r_mean_1_20'))} | {_fmt(row['std_ratio'], 2)} | "
            f"{_fmt(row.get('excess_kurtosis'), 2)} | "
            f"{row.get('facts_reproduced', 'n/a')}/{real[row['series']].get('facts_present', 'n/a')} | "
            f"{_fmt(row['residual_median'], 4)} | "
            f"{seconds:.0f} |")
    lines.append("")
    lines.append("Real test windows (stride 1): " + "; ".join(
        f"{name}: {info['n_test_windows']} windows, lag-1 ACF {info['acf1']:.3f}, leverage "
        f"{info.get('leverage', float('nan')):.3f}, ACF of abs(r) {info.get('abs_acf', float('nan')):.3f}, excess kurtosis "
        f"{info.get('excess_kurtosis', float('nan')):.2f}, {info.get('facts_present', 'n/a')} stylized facts present"
        for name, info in real.items()))
    for lever, reason in document["unavailable"].items():
        lines.append(f"- `{lever}` not run: {reason}.")
    return "\n".join(lines)


def _objective_row(name: str) -> tuple[str, str, int, int] | None:
    """(objective, calibration, steps, seed) of an objective-ladder row name, e.g. 'x0, cal, 300 steps, seed 1'."""
    parts = [part.strip() for part in name.split(",")]
    if len(parts) != 4 or parts[0] not in OBJECTIVES or not parts[2].endswith(" steps") \
            or not parts[3].startswith("seed "):
        return None
    return parts[0], parts[1], int(parts[2].split()[0]), int(parts[3].split()[1])


def paired_differences(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Paired per-seed differences of the discriminative score between objective-ladder rows that differ in one
    thing: the objective (v-pred - x0), the training length (600 - 300 steps), the calibration (bucket cal - cal:
    the same model and samples), pooled over the training seeds with everything else fixed. Pairs are matched on
    the classifier seed (the same real windows, split and initial weights), so the classifier's own noise cancels
    out; the spread left is the models' (training seed) and the samples'. Negative = the first is better."""
    rows = {(row["lever"], row["series"]): row for row in document["rows"]}
    comparisons = (("v-pred - x0", 0, ("v-pred", "x0")), ("600 - 300 steps", 2, (600, 300)),
                   ("bucket cal - cal", 1, ("bucket cal", "cal")))
    out = []
    for label, field_index, (first, second) in comparisons:
        groups: dict[tuple, dict[int, list[float]]] = {}
        for (lever, series), row in rows.items():
            fields = _objective_row(lever)
            if fields is None or fields[field_index] != first:
                continue
            other = list(fields)
            other[field_index] = second
            partner = rows.get((f"{other[0]}, {other[1]}, {other[2]} steps, seed {other[3]}", series))
            if partner is None:
                continue
            fixed = tuple(v for i, v in enumerate(fields[:3]) if i != field_index)
            groups.setdefault((series, fixed), {})[fields[3]] = [
                x - y for x, y in zip(row["disc_values"], partner["disc_values"], strict=True)]
        for (series, fixed), by_seed in sorted(groups.items(), key=lambda item: (str(item[0][1]), item[0][0])):
            d = np.asarray([v for seed in sorted(by_seed) for v in by_seed[seed]])
            out.append({"comparison": label, "fixed": ", ".join(f"{v} steps" if isinstance(v, int) else v
                                                               for v in fixed),
                        "series": series, "n": int(d.size), "mean": float(d.mean()),
                        "std": float(d.std(ddof=1)) if d.size > 1 else None, "first_better": int((d < 0).sum()),
                        "per_train_seed": {str(seed): float(np.mean(v)) for seed, v in sorted(by_seed.items())},
                        "values": [float(v) for v in d]})
    return out + scale_draw_differences(rows) + shape_calibration_differences(rows) + reference_differences(rows)


def reference_differences(rows: dict[tuple, dict[str, Any]], reference: str = "garch_t") -> list[dict[str, Any]]:
    """Every lever minus GARCH-t (the issue's yardstick), matched on the classifier seed and pooled over the lever's
    training seeds (rows named "..., seed N"; a row without a seed suffix is its own group). Negative = the lever
    is harder to tell from real than GARCH-t. Only rows scored with the reference's classifier seeds and held-out
    size are paired (a --merge of runs of one code base and settings)."""
    groups: dict[tuple[str, str], dict[int, list[float]]] = {}
    for (lever, series), row in rows.items():
        ref = rows.get((reference, series))
        if lever in REFERENCES or ref is None or len(row["disc_values"]) != len(ref["disc_values"]) \
                or row.get("n_windows") != ref.get("n_windows"):
            continue
        name, _, seed = lever.rpartition(", seed ")
        key, train_seed = ((name, series), int(seed)) if name and seed.isdigit() else ((lever, series), 0)
        groups.setdefault(key, {})[train_seed] = [x - y for x, y in zip(row["disc_values"], ref["disc_values"],
                                                                         strict=True)]
    out = []
    for (name, series), by_seed in groups.items():
        d = np.asarray([v for seed in sorted(by_seed) for v in by_seed[seed]])
        out.append({"comparison": f"{name} - {reference}", "fixed": f"{len(by_seed)} training seed(s)",
                    "series": series, "n": int(d.size), "mean": float(d.mean()),
                    "std": float(d.std(ddof=1)) if d.size > 1 else None, "first_better": int((d < 0).sum()),
                    "per_train_seed": {str(seed): float(np.mean(v)) for seed, v in sorted(by_seed.items())},
                    "values": [float(v) for v in d]})
    return out


def scale_draw_differences(rows: dict[tuple, dict[str, Any]]) -> list[dict[str, Any]]:
    """The leverage ladder's paired differences (drift - independent scale, the same model and shapes), matched
    on the classifier seed and pooled over the training seeds, with the leverage difference per training seed."""
    groups: dict[str, dict[int, tuple[list[float], float, float]]] = {}
    for (lever, series), row in rows.items():
        parts = [part.strip() for part in lever.split(",")]
        if len(parts) != 3 or parts[0] != SCALE_DRAW_LABELS["drift"] or not parts[2].startswith("seed "):
            continue
        partner = rows.get((", ".join([SCALE_DRAW_LABELS["independent"], *parts[1:]]), series))
        if partner is None:
            continue
        groups.setdefault(series, {})[int(parts[2].split()[1])] = (
            [x - y for x, y in zip(row["disc_values"], partner["disc_values"], strict=True)],
            row["facts"]["leverage"] - partner["facts"]["leverage"],
            (row.get("leverage_redraws") or {}).get("mean", np.nan)
            - (partner.get("leverage_redraws") or {}).get("mean", np.nan))
    out = []
    for series, by_seed in sorted(groups.items()):
        d = np.asarray([v for seed in sorted(by_seed) for v in by_seed[seed][0]])
        out.append({"comparison": "drift - independent scale", "fixed": "600 steps", "series": series,
                    "n": int(d.size), "mean": float(d.mean()), "std": float(d.std(ddof=1)) if d.size > 1 else None,
                    "first_better": int((d < 0).sum()),
                    "per_train_seed": {str(seed): float(np.mean(v[0])) for seed, v in sorted(by_seed.items())},
                    "leverage_difference_per_train_seed": {str(seed): float(v[1])
                                                           for seed, v in sorted(by_seed.items())},
                    "leverage_redraws_difference_per_train_seed": {str(seed): float(v[2])
                                                                   for seed, v in sorted(by_seed.items())},
                    "values": [float(v) for v in d]})
    return out


def shape_calibration_differences(rows: dict[tuple, dict[str, Any]],
                                  first: str = "marginal_leverage", second: str = "marginal") -> list[dict[str, Any]]:
    """The shapes ladder's paired difference ``first - second`` (rows "shapes MODE, 600 steps, seed N": the same
    model and samples), matched on the classifier seed and pooled over the training seeds, with the leverage
    difference (mean over re-drawn scales) per training seed."""
    groups: dict[str, dict[int, tuple[list[float], float]]] = {}
    for (lever, series), row in rows.items():
        head, _, seed = lever.rpartition(", seed ")
        if head != f"shapes {first}, 600 steps" or not seed.isdigit():
            continue
        partner = rows.get((f"shapes {second}, 600 steps, seed {seed}", series))
        if partner is None:
            continue
        groups.setdefault(series, {})[int(seed)] = (
            [x - y for x, y in zip(row["disc_values"], partner["disc_values"], strict=True)],
            (row.get("leverage_redraws") or {}).get("mean", np.nan)
            - (partner.get("leverage_redraws") or {}).get("mean", np.nan))
    out = []
    for series, by_seed in sorted(groups.items()):
        d = np.asarray([v for seed in sorted(by_seed) for v in by_seed[seed][0]])
        out.append({"comparison": f"shapes {first} - {second}", "fixed": "600 steps", "series": series,
                    "n": int(d.size), "mean": float(d.mean()), "std": float(d.std(ddof=1)) if d.size > 1 else None,
                    "first_better": int((d < 0).sum()),
                    "per_train_seed": {str(seed): float(np.mean(v[0])) for seed, v in sorted(by_seed.items())},
                    "leverage_redraws_difference_per_train_seed": {str(seed): float(v[1])
                                                                   for seed, v in sorted(by_seed.items())},
                    "values": [float(v) for v in d]})
    return out


def paired_markdown(document: dict[str, Any]) -> str:
    pairs = paired_differences(document)
    if not pairs:
        return ""
    lines = ["", "| paired difference (disc. score) | with | series | pairs | mean ± std | first better in | "
             "mean per training seed |", "|---|---|---|---|---|---|---|"]
    for p in pairs:
        per_seed = ", ".join(f"seed {k}: {v:+.3f}" for k, v in p["per_train_seed"].items())
        if "leverage_redraws_difference_per_train_seed" in p:  # the leverage ladder: its leverage gain too
            per_seed += "; leverage (mean over scale draws) " + ", ".join(
                f"seed {k}: {v:+.3f}" for k, v in p["leverage_redraws_difference_per_train_seed"].items())
        lines.append(f"| {p['comparison']} | {p['fixed']} | {p['series']} | {p['n']} | {p['mean']:+.3f} ± "
                     f"{_fmt(p['std'])} | {p['first_better']}/{p['n']} | {per_seed} |")
    return "\n".join(lines)


def merge_documents(paths: list[Path], rename: dict[str, str] | None = None,
                    keep: set[str] | None = None) -> dict[str, Any]:
    """One document from runs of disjoint lever subsets started together (a shared 2-core machine gives each
    process its own slice, so three processes finish in about a third of the wall time). The reference rows must
    agree (they are seeded: the same windows and scores in every run), or the runs were not comparable."""
    docs = [json.loads(Path(path).read_text()) for path in paths]
    for doc in docs:  # rows of an earlier ladder that are rows of this one (--rename OLD=NEW), the others dropped
        for row in doc["rows"]:
            row["lever"] = (rename or {}).get(row["lever"], row["lever"])
        if keep is not None:
            doc["rows"] = [row for row in doc["rows"] if row["lever"] in keep | set(REFERENCES)]
    first = docs[0]
    for path, doc in zip(paths[1:], docs[1:], strict=True):
        for key in ("real", "profile"):
            if doc[key] != first[key]:
                raise SystemExit(f"--merge: {path} has a different {key!r} than {paths[0]}; rerun with one code base")
    with_references = [doc for doc in docs if any(row["lever"] in REFERENCES for row in doc["rows"])]
    references = [row for row in (with_references or [first])[0]["rows"] if row["lever"] in REFERENCES]
    for path, doc in zip(paths, docs, strict=True):
        others = [row for row in doc["rows"] if row["lever"] in REFERENCES]
        if others and [(r["lever"], r["series"], r["disc_values"]) for r in others] != \
                [(r["lever"], r["series"], r["disc_values"]) for r in references]:
            raise SystemExit(f"--merge: the reference rows of {path} differ from those of {paths[0]}")
    rows = [row for doc in docs for row in doc["rows"] if row["lever"] not in REFERENCES]
    order = {lever.name: index for index, lever in enumerate(ladder(8) + regime_ladder() + levels_ladder()
                                                             + objective_ladder() + scale_ladder()
                                                             + leverage_ladder() + shapes_ladder())}
    rows.sort(key=lambda row: (order.get(row["lever"], len(order)), SERIES.index(row["series"])))
    return {**first, "rows": rows + references, "merged_from": [str(p) for p in paths],
            "settings": [doc["settings"] for doc in docs],
            "seconds": max(doc.get("seconds", 0.0) for doc in docs),
            "partial": [str(p) for p, doc in zip(paths, docs, strict=True) if doc.get("partial")],
            "unavailable": {k: v for doc in docs for k, v in doc["unavailable"].items()}}


def write_json(path: Path, document: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1) + "\n")


# ------------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--profile", default="quick", choices=("quick", "full"))
    profile = _quick_profile(pre.parse_known_args(argv)[0].profile)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("quick", "full"),
                        help="the data, window, UNet, batch, sampler and sample count of this wavefin_assets "
                             "profile (full: 30 days of mjd minutes, window 256, 4,096 windows; for a GPU)")
    parser.add_argument("--steps", type=int, default=profile["steps"], help="optimizer steps per model")
    parser.add_argument("--samples", type=int, default=profile["samples"], help="synthetic windows per series")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the discriminative score")
    parser.add_argument("--inference-steps", type=int, default=profile["inference_steps"],
                        help=f"{profile['sampler']} steps per sample")
    parser.add_argument("--ema-decay", type=float, default=profile["ema_decay"],
                        help="EMA decay of the EMA lever (default: the quick profile's)")
    parser.add_argument("--classifier-steps", type=int, default=None,
                        help="training steps of the discriminative classifier (default: its own, 100)")
    parser.add_argument("--series", nargs="+", default=list(SERIES), choices=SERIES)
    parser.add_argument("--levers", nargs="+", default=None,
                        help="run only these ladder rows (names as in the table, e.g. baseline '+ projection')")
    parser.add_argument("--ladder", default=None, choices=sorted(LADDERS),
                        help="levers: the lever ladder; regimes: the volatility-regime ladder; levels: the "
                             "lag-1 ACF levers; objective: v-pred vs x0 x 300/600 steps x 2 training seeds "
                             "(default out: results/ablation_<ladder>.json). With --merge: keep only its rows")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the reference generators (and of the models unless --train-seed)")
    parser.add_argument("--train-seed", type=int, default=None,
                        help="seed of the diffusion models and their samples (default: --seed; the objective "
                             "ladder's rows name their own)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when present)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: results/ablation.json for "
                        "--ladder levers, ablation_<ladder>.json beside it for the others)")
    parser.add_argument("--only-references", action="store_true",
                        help="score only the GARCH-t and floor rows (a process of its own beside the rows')")
    parser.add_argument("--no-references", action="store_true",
                        help="skip the GARCH-t and floor rows (when another process of a --merge scores them)")
    parser.add_argument("--merge", nargs="+", type=Path, default=None,
                        help="merge these result files (runs of disjoint --levers started together) into --out")
    parser.add_argument("--rename", nargs="+", default=[], metavar="OLD=NEW",
                        help="with --merge: rename rows of an earlier run that are rows of --ladder (the same "
                             "lever and seeds, e.g. '+ level calibration=v-pred, cal, 300 steps, seed 0')")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 20 steps, 64 samples, 2 seeds, 4 inference steps, 20 classifier steps")
    args = parser.parse_args(argv)
    args.keep_ladder = args.ladder is not None and args.merge is not None
    args.ladder = args.ladder or "levers"
    if any("=" not in item for item in args.rename):
        parser.error("--rename takes OLD=NEW pairs (row names as in the table)")
    if args.out is None:
        args.out = RESULTS.with_name(DEFAULT_OUT[args.ladder])
    if args.quick:
        args.steps, args.samples, args.seeds = 20, 64, 2
        args.inference_steps, args.classifier_steps = 4, 20
    for name in ("steps", "samples", "seeds", "inference_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.samples < 10:
        parser.error("--samples must be >= 10 (the discriminative classifier needs 10 windows per class)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.merge:
        keep = {lever.name for lever in LADDER_ROWS[args.ladder](8)} if args.keep_ladder else None
        document = merge_documents(args.merge, dict(item.split("=", 1) for item in args.rename), keep)
        document["paired_differences"] = paired_differences(document)
        write_json(args.out, document)
        print(markdown(document) + paired_markdown(document))
        return document
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    profile = _quick_profile(args.profile)
    started = time.perf_counter()
    series = [load_series(name, profile) for name in args.series]
    for data in series:
        print(f"{data.name}: {len(data.train_windows)} stride-1 train windows, {len(data.test_windows)} test "
              f"windows", flush=True)
    levers = [] if args.only_references else LADDER_ROWS[args.ladder](profile["stride"])
    if args.levers and not args.only_references:
        unknown = set(args.levers) - {lever.name for lever in levers}
        if unknown:
            raise SystemExit(f"--levers: unknown {sorted(unknown)}; choose from {[lever.name for lever in levers]}")
        levers = [lever for lever in levers if lever.name in args.levers]

    document: dict[str, Any] = {
        "bench": "generation_ablation", "settings": {k: (str(v) if isinstance(v, Path) else v)
                                                     for k, v in vars(args).items()},
        "profile": {k: list(v) if isinstance(v, tuple) else v for k, v in profile.items()},
        "machine": {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
        "real": {d.name: {"n_test_windows": int(len(d.test_windows)), "n_train_windows_stride1":
                          int(len(d.train_windows)), "acf1": None, "std": float(d.test_windows.std())}
                 for d in series},
        "rows": [], "unavailable": {},
    }
    from wavefin_core.evaluation.facts import FACTS, acf, present_in_real, stylized_facts

    for data in series:
        real_facts = stylized_facts(data.test_windows)
        flat = data.test_windows.ravel()
        document["real"][data.name].update(
            acf1=float(acf(data.test_windows, 1)[1]),
            excess_kurtosis=float(np.mean((flat - flat.mean()) ** 4) / flat.var() ** 2 - 3.0),
            leverage=float(real_facts["leverage"]), abs_acf=float(real_facts["acf_abs_r_mean_1_20"]),
            facts_present=int(sum(present_in_real(f, real_facts[f], real_facts) for f in FACTS)))

    trained: dict[tuple, tuple[Any, float, int]] = {}
    for lever in levers:
        reason = missing_api(lever)
        if reason:
            document["unavailable"][lever.name] = reason
            print(f"{lever.name}: skipped ({reason})", flush=True)
            continue
        key = lever.training_key()
        if key not in trained:
            print(f"{lever.name}: training ({lever_steps(lever, args)} steps) ...", flush=True)
            trained[key] = train_model(lever, series, args, profile, device)
        result, train_seconds, n_images = trained[key]
        for index, data in enumerate(series):
            returns, residual, sample_seconds, extra_fields = sample_series(result, lever, index, data, args,
                                                                            profile, device)
            row = {"lever": lever.name, "series": data.name, **score(data.test_windows, returns, args),
                   "residual_median": float(np.median(residual)), "residual_max": float(residual.max()),
                   "train_seconds": train_seconds, "sample_seconds": sample_seconds, "n_train_images": n_images,
                   "lever_settings": dataclasses.asdict(lever), **extra_fields}
            document["rows"].append(row)
            print(f"  {data.name}: disc {row['disc_mean']:.3f} ± {row['disc_std']:.3f}, shape {row['shape_mean']:.3f} ± "
                  f"{row['shape_std']:.3f}, leverage {row['facts']['leverage']:.3f}, acf1 {row['acf1']:.3f}, "
                  f"std ratio {row['std_ratio']:.2f}, kurtosis {row['excess_kurtosis']:.2f}, facts "
                  f"{row['facts_reproduced']}, residual {row['residual_median']:.2e}", flush=True)
        write_json(args.out, {**document, "partial": True})  # a slow shared machine: keep what is done
    if not args.no_references:
        for data in series:
            document["rows"].extend(reference_rows(data, args))
    document["seconds"] = time.perf_counter() - started
    write_json(args.out, document)
    print()
    print(markdown(document) + paired_markdown(document))
    print(f"\n{time.perf_counter() - started:.0f} s in all; results in {args.out}")
    return document


if __name__ == "__main__":
    main()
