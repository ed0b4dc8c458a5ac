"""Benchmark the diffusion model: training images/s and FLOP rate, loss after a fixed wall time, sampling time.

Run on demand (never in CI):

    .venv/bin/python bench/bench_diffusion.py --quick   # what `make bench` runs (times: bench/README.md)
    .venv/bin/python bench/bench_diffusion.py           # the full tables: more rounds, batch 16, torch.compile,
                                                        # the loss-after-fixed-wall-time runs, DDPM timed

What is measured is what the quick profile ships (``wavefin_assets.profiles.PROFILES["quick"]``): its UNet
(``build_unet``, block_out_channels (16, 32, 64), class-conditioned on 2 series), on its default representation,
the Haar DWT image of a 64-sample window (``make_representation("haar", 64).image_shape`` = 1 x 7 x 64, padded
to 1 x 8 x 64 by the UNet), and, as a second row, the complex Morlet image (2 x 16 x 64 at the profile's 16
scales). Weights are untrained: step and sampler times do not depend on them.

Training: one optimizer step is the body of ``train_diffusion``'s loop, built from the same library pieces (the
training scheduler's ``add_noise`` and ``get_velocity`` for the v-prediction target, class labels, MSE,
backward, gradient clipping, AdamW, the warm-up + cosine ``LambdaLR`` and the EMA update, and the per-step
``loss.item()``). The shipped ``train_diffusion`` itself is timed as one more variant (its set-up included),
which checks that the bench step costs what the real loop costs. Variants: intra-op threads (1 vs all cores),
``channels_last``, batch 16 / 32 / 64, ``torch.compile`` (full run only, or ``--compile``), each lever at 1
thread (the measured choice; ``--cross-threads`` for both thread counts). They run in
interleaved rounds (each variant a few steps per round, so all see the same load; all-core variants one step,
as each takes 10x longer on a busy machine); the table gives the median seconds per step, the medians over
rounds of the ratios to the baseline and to the 1-thread step of the same round, and the CPU seconds per step
(``time.process_time``; at 1 thread about what the step takes on a free core). FLOPs per step are
counted by ``torch.utils.flop_counter`` (forward + backward) and compared with a float32 ``torch.mm`` peak
(1024 x 1024) measured in the same rounds at the same thread count.

Loss after a fixed wall time (full run): the quick profile trains 300 steps of batch 32. For each batch size,
the number of steps that fit in that same wall time is computed from the images/s measured above, and
``train_diffusion`` is run for exactly that many steps on real Haar images (the quick mjd simulation and the
bundled S&P 500, stride-1 train windows), then scored on held-out windows (v-prediction MSE of the EMA weights,
fixed noise and timesteps). Steps come from the measured throughput, so the comparison does not depend on how
busy the machine was while the three models trained.

Sampling: ``sample_diffusion`` with the range projection on (``Representation.project``, as
``synthetic_series`` samples), batch 64 (the profile's), for DDPM (1000 steps, a few windows scaled to 1,000),
DDIM (50), DPM-Solver++ (20) and DPM-Solver++ (10) (the quick profile's sampler), in seconds per 1,000 windows.

CUDA (only when a GPU is present, else skipped with the reason): the same training step in fp32, bf16 autocast,
and bf16 autocast + channels_last, and the samplers on the GPU.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wavefin_assets.profiles import PROFILES  # noqa: E402  (pure dataclasses: no Dagster import)
from wavefin_core.models import (  # noqa: E402
    DiffusionConfig,
    build_unet,
    padded_size,
    sample_diffusion,
    train_diffusion,
)
from wavefin_core.models.diffusion import build_train_scheduler, lr_factor  # noqa: E402
from wavefin_core.models.ema import WeightsEMA  # noqa: E402
from wavefin_core.wavelets import covering_scales  # noqa: E402
from wavefin_core.wavelets.representations import make_representation  # noqa: E402

PROFILE = PROFILES["quick"]
N_CLASSES = 2  # mjd and sp500: the generator is trained on both default series
CORES = os.cpu_count() or 1


def shipped_config(**overrides) -> DiffusionConfig:
    """The DiffusionConfig the `diffusion_model` asset builds from the quick profile."""
    options = dict(
        block_out_channels=PROFILE.unet_channels, attention=PROFILE.unet_attention,
        batch_size=PROFILE.diffusion_batch_size, learning_rate=PROFILE.diffusion_learning_rate,
        epochs=PROFILE.diffusion_epochs, max_steps=PROFILE.diffusion_max_steps,
        conditioning=PROFILE.diffusion_conditioning, prediction_type=PROFILE.diffusion_prediction_type,
        warmup_steps=PROFILE.diffusion_warmup_steps, lr_schedule=PROFILE.diffusion_lr_schedule,
        ema_decay=PROFILE.diffusion_ema_decay,
    )
    options.update(overrides)
    return DiffusionConfig(**options)


def representation(name: str):
    """An unfitted representation of the quick profile's windows (complex: the profile's 16 scales)."""
    scales = covering_scales(PROFILE.window, num=PROFILE.num_scales) if name != "haar" else None
    return make_representation(name, PROFILE.window, scales=scales)


def matmul_rate(threads: int, size: int = 1024, repeat: int = 5) -> float:
    """Best float32 GEMM rate (FLOP/s) of ``repeat`` ``torch.mm`` calls with ``threads`` intra-op threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


class TrainStep:
    """One optimizer step of `train_diffusion`'s loop (v-prediction, class labels, clipping, AdamW, LR schedule,
    EMA), on random images of one representation, in a given layout / precision / compile mode."""

    def __init__(self, image_shape: tuple[int, int, int], batch: int, channels_last: bool = False,
                 compile_model: bool = False, device: str = "cpu", bf16: bool = False):
        cfg = shipped_config(batch_size=batch)
        self.cfg, self.device, self.bf16, self.batch = cfg, device, bf16, batch
        torch.manual_seed(0)
        channels, height, width = image_shape
        self.model = build_unet(cfg, channels, (height, width), num_classes=N_CLASSES).to(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.forward = torch.compile(self.model) if compile_model else self.model
        self.ema = WeightsEMA(self.model, cfg.ema_decay)
        self.scheduler = build_train_scheduler(cfg, data_abs_max=4.0)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.learning_rate)
        total = cfg.max_steps or 1000
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg, total))
        padded_h, padded_w = padded_size((height, width), cfg)
        clean = torch.randn(batch, channels, height, width)
        self.clean = F.pad(clean, (0, padded_w - width, 0, padded_h - height)).to(device).contiguous(
            memory_format=self.memory_format)
        self.labels = torch.arange(batch, device=device) % N_CLASSES

    def __call__(self) -> float:
        noise = torch.randn_like(self.clean)
        timesteps = torch.randint(0, self.cfg.num_train_timesteps, (self.batch,), device=self.device)
        noisy = self.scheduler.add_noise(self.clean, noise, timesteps)
        target = self.scheduler.get_velocity(self.clean, noise, timesteps)
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.bf16):
            output = self.forward(noisy, timesteps, class_labels=self.labels).sample
        loss = F.mse_loss(output.float(), target)
        loss.item()  # train_diffusion checks every loss is finite before stepping
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.ema.update(self.model)
        return loss.item()  # also synchronises a GPU

    def flops(self) -> int:
        """Forward + backward FLOPs of one step (convolutions, matmuls), counted by torch on the eager model."""
        from torch.utils.flop_counter import FlopCounterMode

        eager, self.forward = self.forward, self.model  # compiled code computes the same math
        counter = FlopCounterMode(display=False)
        try:
            with counter:
                self()
        finally:
            self.forward = eager
        return counter.get_total_flops()


class ShippedTraining:
    """`train_diffusion` itself for `steps` optimizer steps (set-up included), as the asset calls it."""

    def __init__(self, image_shape: tuple[int, int, int], batch: int, steps: int, threads: int):
        rng = np.random.default_rng(0)
        self.images = rng.standard_normal((batch * steps,) + image_shape).astype(np.float32)
        self.labels = np.arange(len(self.images)) % N_CLASSES
        self.cfg = shipped_config(batch_size=batch, max_steps=steps)
        self.batch, self.steps, self.threads = batch, steps, threads

    def __call__(self) -> None:
        train_diffusion(self.images, self.cfg, device="cpu", labels=self.labels, num_classes=N_CLASSES,
                        threads=self.threads)


@dataclass
class Variant:
    """A timed training configuration; each call of `run` does `steps_per_call` optimizer steps."""

    name: str
    representation: str
    threads: int
    batch: int
    make: Callable[[], Callable[[], object]]
    channels_last: bool = False
    compiled: bool = False
    steps_per_call: int = 1  # > 1: the shipped train_diffusion, one call = set-up + steps
    seconds: list[float] = field(default_factory=list)  # per round: seconds per optimizer step
    cpu_seconds: list[float] = field(default_factory=list)  # per round: CPU seconds (all threads) per step
    flops: int | None = None
    run: Callable[[], object] | None = None

    @property
    def plain(self) -> bool:
        """Haar, contiguous, eager, the bench step: the variants that differ only in threads and batch."""
        return (self.representation == "haar" and not self.channels_last and not self.compiled
                and self.steps_per_call == 1)

    def images_per_second(self) -> float:
        return self.batch / statistics.median(self.seconds)


def training_variants(args, image_shapes: dict[str, tuple[int, int, int]]) -> list[Variant]:
    """The baseline (what shipped before this bench: batch 32, contiguous, eager, torch's default of all cores)
    first, then each lever alone at 1 thread (the measured choice), the complex image, and the shipped
    `train_diffusion`. The full run adds batch 16, torch.compile and the shipped function at all cores;
    `--cross-threads` crosses every lever with both thread counts; `--only loss` keeps the plain batch sizes."""
    batch = PROFILE.diffusion_batch_size
    haar, complex_ = image_shapes["haar"], image_shapes["complex"]
    thread_counts = sorted({1, CORES}) if args.cross_threads else [1]

    def step(shape, b, **options):
        return lambda: TrainStep(shape, b, **options)

    variants = []
    if args.only != "loss":  # the loss runs use 1-thread rates only
        variants.append(Variant(f"baseline: haar, batch {batch}, fp32, contiguous, eager, {CORES} threads",
                                "haar", CORES, batch, step(haar, batch)))
    if CORES > 1 or not variants:
        variants.append(Variant("1 thread", "haar", 1, batch, step(haar, batch)))
    for threads in thread_counts:
        for other in (64,) if args.quick else (16, 64):
            variants.append(Variant(f"batch {other}, {threads} thread(s)", "haar", threads, other, step(haar, other)))
    if args.only == "loss":
        return variants
    for threads in thread_counts:
        variants.append(Variant(f"channels_last, {threads} thread(s)", "haar", threads, batch,
                                step(haar, batch, channels_last=True), channels_last=True))
    if args.compile:  # 1 thread: compiling takes minutes, and 1 thread is the measured choice
        variants.append(Variant("torch.compile, 1 thread(s)", "haar", 1, batch,
                                step(haar, batch, compile_model=True), compiled=True))
    for threads in thread_counts:
        variants.append(Variant(f"complex {'x'.join(map(str, complex_))}, {threads} thread(s)", "complex", threads,
                                batch, step(complex_, batch)))
    shipped_steps = 3
    for threads in [1] if args.quick else sorted({1, CORES}):
        variants.append(Variant(f"shipped `train_diffusion` ({shipped_steps} steps incl. set-up), {threads} "
                                "thread(s)", "haar", threads, batch,
                                lambda t=threads: ShippedTraining(haar, batch, shipped_steps, t),
                                steps_per_call=shipped_steps))
    return variants


def prepare(variant: Variant) -> None:
    """Build the variant, count its FLOPs and warm it up (compiling, for torch.compile)."""
    torch.set_num_threads(variant.threads)
    variant.run = variant.make()
    if isinstance(variant.run, TrainStep):
        variant.flops = variant.run.flops()
        start = time.perf_counter()
        variant.run()
        if variant.compiled:
            print(f"  {variant.name}: first step (compiling) took {time.perf_counter() - start:.0f} s", flush=True)
    if variant.threads == 1 or not isinstance(variant.run, TrainStep):
        variant.run()


def time_rounds(variants: list[Variant], rounds: int, steps: int, peaks: dict[int, float]) -> None:
    """Interleave: every round runs every variant for `steps` steps (one call for a shipped variant)."""
    for round_index in range(rounds):
        for threads in peaks:
            peaks[threads] = max(peaks[threads], matmul_rate(threads))
        for variant in variants:
            torch.set_num_threads(variant.threads)
            # all-core variants: one step per round (with the other core busy a step takes 10x longer)
            calls = 1 if variant.steps_per_call > 1 or variant.threads > 1 else steps
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(calls):
                variant.run()
            variant.seconds.append((time.perf_counter() - start) / (calls * variant.steps_per_call))
            variant.cpu_seconds.append((time.process_time() - cpu_start) / (calls * variant.steps_per_call))
        load = os.getloadavg()[0]
        print(f"  round {round_index + 1}/{rounds} done (load average {load:.1f})", flush=True)


def training_table(args, image_shapes) -> list[Variant]:
    """Times every variant in interleaved rounds and prints the table; returns the timed variants."""
    rounds, steps = (3, 2) if args.quick else (args.rounds, 3)
    variants = training_variants(args, image_shapes)
    print(f"Training: {len(variants)} variants, {rounds} interleaved rounds of {steps} steps each", flush=True)
    for variant in variants:
        start = time.perf_counter()
        prepare(variant)
        print(f"  ready in {time.perf_counter() - start:.0f} s: {variant.name}", flush=True)
    peaks = {threads: 0.0 for threads in sorted({1, CORES})}
    time_rounds(variants, rounds, steps, peaks)
    print("float32 matmul peak (torch.mm 1024^2, best over the rounds): "
          + ", ".join(f"{t} thread(s) {p / 1e9:.1f} GFLOP/s" for t, p in peaks.items()))
    baseline = variants[0].seconds
    one_thread = next((v.seconds for v in variants if v.name == "1 thread"), baseline)
    print("\n| training variant (CPU) | threads | s/step (median) | images/s | time / baseline | time / 1 thread "
          "| CPU s/step | GFLOP/step | GFLOP/s | % of matmul peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for variant in variants:
        seconds = statistics.median(variant.seconds)
        ratio = statistics.median(s / b for s, b in zip(variant.seconds, baseline, strict=True))
        ratio_one = statistics.median(s / b for s, b in zip(variant.seconds, one_thread, strict=True))
        flop_cells = " | | "
        if variant.flops:
            rate = variant.flops / seconds
            flop_cells = f"{variant.flops / 1e9:.3f} | {rate / 1e9:.1f} | {100 * rate / peaks[variant.threads]:.0f}%"
        print(f"| {variant.name} | {variant.threads} | {seconds:.4f} | {variant.images_per_second():.0f} | "
              f"{ratio:.2f} | {ratio_one:.2f} | {statistics.median(variant.cpu_seconds):.4f} | {flop_cells} |",
              flush=True)
    torch.set_num_threads(CORES)
    return variants


def fastest_threads(variants: list[Variant]) -> int:
    """The thread count of the fastest plain variant at the shipped batch size."""
    candidates = [v for v in variants if v.plain and v.batch == PROFILE.diffusion_batch_size]
    return max(candidates, key=Variant.images_per_second).threads


# -- loss after a fixed wall time ---------------------------------------------------------------------------
def real_haar_images(held_out_fraction: float = 0.2):
    """(train images, train labels, held-out images, held-out labels) of the two default series, quick profile:
    stride-1 windows of each series' first 80% (train) and last 20% (held out, after a window-long gap), each
    series encoded by its own Haar representation fitted on its train windows."""
    from wavefin_core.data import load_sp500, simulate_mjd

    closes = [simulate_mjd(days=PROFILE.mjd_days, freq=PROFILE.mjd_freq, seed=0)["close"].to_numpy(),
              load_sp500()["close"].to_numpy()]
    parts = {"train": ([], []), "held": ([], [])}
    for label, close in enumerate(closes):
        returns = np.diff(np.log(close))
        cut = int(len(returns) * (1 - held_out_fraction))
        train = np.lib.stride_tricks.sliding_window_view(returns[:cut], PROFILE.window)
        held = np.lib.stride_tricks.sliding_window_view(returns[cut + PROFILE.window:], PROFILE.window)
        rep = representation("haar").fit(train)
        for name, windows in (("train", train), ("held", held)):
            parts[name][0].append(rep.encode(windows))
            parts[name][1].append(np.full(len(windows), label))
    return tuple(np.concatenate(arrays) for name in ("train", "held") for arrays in parts[name])


def held_out_loss(result, images: np.ndarray, labels: np.ndarray, draws: int = 4) -> float:
    """v-prediction MSE of the EMA weights on held-out images, fixed timesteps and noise (seeded)."""
    model, scheduler = result.sampling_model, result.scheduler
    height, width = images.shape[2:]
    padded_h, padded_w = padded_size((height, width), result.config)
    clean = F.pad(torch.from_numpy(images), (0, padded_w - width, 0, padded_h - height))
    label_tensor = torch.from_numpy(labels.astype(np.int64))
    generator = torch.Generator().manual_seed(123)
    total, count = 0.0, 0
    with torch.no_grad():
        for _ in range(draws):
            for start in range(0, len(clean), 256):
                batch = clean[start:start + 256]
                noise = torch.randn(batch.shape, generator=generator)
                t = torch.randint(0, scheduler.config.num_train_timesteps, (len(batch),), generator=generator)
                output = model(scheduler.add_noise(batch, noise, t), t,
                               class_labels=label_tensor[start:start + 256]).sample
                total += F.mse_loss(output, scheduler.get_velocity(batch, noise, t), reduction="sum").item()
                count += batch.numel()
    return total / count


def loss_table(variants: list[Variant], threads: int, budget_steps: int) -> None:
    """Train each batch size for the steps that fit in the quick profile's wall time; held-out loss."""
    torch.set_num_threads(threads)
    rates = {v.batch: v.images_per_second() for v in variants if v.plain and v.threads == threads}
    base_batch = PROFILE.diffusion_batch_size
    budget = budget_steps * base_batch / rates[base_batch]
    train_x, train_y, held_x, held_y = real_haar_images()
    print(f"\nLoss after a fixed wall time: {budget:.0f} s at {threads} thread(s) ({budget_steps} steps of batch "
          f"{base_batch} at the measured images/s; the quick profile trains {PROFILE.diffusion_max_steps}), {len(train_x)} "
          f"train and {len(held_x)} held-out Haar images (mjd + sp500)\n")
    print("| batch | images/s | steps in the budget | held-out v-MSE (EMA weights) | last-20 train loss | train s |")
    print("|---|---|---|---|---|---|")
    for batch in sorted(rates):
        steps = max(PROFILE.diffusion_warmup_steps + 1, round(budget * rates[batch] / batch))
        cfg = shipped_config(batch_size=batch, max_steps=steps, epochs=10_000)
        start = time.perf_counter()
        result = train_diffusion(train_x, cfg, device="cpu", labels=train_y, num_classes=N_CLASSES, threads=threads)
        seconds = time.perf_counter() - start
        score = held_out_loss(result, held_x, held_y)
        print(f"| {batch} | {rates[batch]:.0f} | {steps} | {score:.4f} | {np.mean(result.losses[-20:]):.4f} | "
              f"{seconds:.0f} |", flush=True)
    torch.set_num_threads(CORES)


# -- sampling -----------------------------------------------------------------------------------------------
def fitted_representation(name: str):
    """A representation fitted on Student-t returns (sampling cost does not depend on the fitted scaling)."""
    windows = np.random.default_rng(0).standard_t(4, size=(2048, PROFILE.window)) * 0.01
    return representation(name).fit(windows)


def sampling_plans(quick: bool) -> list[tuple[str, str, int, int]]:
    """(label, sampler, steps, windows timed). DDPM's 1000 network calls are timed on a few windows in the full
    run only; both runs also give it as DDIM's measured cost per network call at batch 64 times 1000."""
    plans = [("DDPM (1000)", "ddpm", 1000, 8)] if not quick else []
    return plans + [("DDIM (50)", "ddim", 50, 64),
                    ("DPM-Solver++ (20)", "dpmsolver", 20, 64),
                    (f"DPM-Solver++ ({PROFILE.inference_steps}), the quick profile's", "dpmsolver",
                     PROFILE.inference_steps, 64 if quick else 256)]


def sampling_table(args, threads: int, device: str = "cpu") -> dict[str, float]:
    """Seconds per 1,000 windows per sampler with range projection, haar (all samplers) and complex (DPM++):
    the best wall and CPU time over interleaved rounds (each sampler runs once per round)."""
    cfg = shipped_config()
    scheduler = build_train_scheduler(cfg, data_abs_max=4.0)
    rounds = 2 if args.quick else 3
    jobs = []
    for name in ("haar", "complex"):
        rep = fitted_representation(name)
        torch.manual_seed(0)
        model = build_unet(cfg, rep.image_shape[0], rep.image_shape[1:], num_classes=N_CLASSES).to(device)
        plans = sampling_plans(args.quick)
        if name == "complex":
            plans = [plan for plan in plans if plan[1] == "dpmsolver"]
        for label, sampler, steps, windows in plans:
            options = dict(sampler=sampler, train_scheduler=scheduler, class_labels=0, project=rep.project,
                           batch_size=PROFILE.sampling_batch_size, device=device, threads=threads)
            sample_diffusion(model, rep.image_shape, 4, num_inference_steps=2, **options)  # warm-up
            run = functools.partial(sample_diffusion, model, rep.image_shape, windows, num_inference_steps=steps,
                                    **options)
            jobs.append(dict(rep=f"{name} {'x'.join(map(str, rep.image_shape))}", key=f"{name} {label}", label=label,
                             sampler=sampler, steps=steps, windows=windows, run=run, wall=math.inf, cpu=math.inf))
    for _ in range(rounds):
        for job in jobs:
            start, cpu_start = time.perf_counter(), time.process_time()
            job["run"]()
            job["wall"] = min(job["wall"], time.perf_counter() - start)
            job["cpu"] = min(job["cpu"], time.process_time() - cpu_start)
    print(f"\nSampling on {device}, {threads} thread(s), batch {PROFILE.sampling_batch_size}, range projection on, "
          f"best of {rounds} interleaved rounds (load average {os.getloadavg()[0]:.1f}):\n")
    print("| representation | sampler | windows timed | seconds | seconds per 1,000 windows | CPU seconds per 1,000 |")
    print("|---|---|---|---|---|---|")
    results = {}
    for job in jobs:
        per_1000, cpu_1000 = job["wall"] / job["windows"] * 1000, job["cpu"] / job["windows"] * 1000
        results[job["key"]] = per_1000
        note = f" (batch of {job['windows']}, not 64: an upper bound)" if job["windows"] < 64 else ""
        print(f"| {job['rep']} | {job['label']} | {job['windows']} | {job['wall']:.2f} | {per_1000:.1f}{note} | "
              f"{cpu_1000:.1f} |", flush=True)
        if job["sampler"] == "ddim":
            scale = 1000 / job["steps"]
            print(f"| {job['rep']} | DDPM (1000), estimated: DDIM (50)'s time per network call x 1000 | | | "
                  f"{per_1000 * scale:.0f} | {cpu_1000 * scale:.0f} |", flush=True)
    return results


def sampling_threads_table(rounds: int) -> None:
    """DPM-Solver++ (quick steps) on 64 Haar windows at 1 vs all threads, interleaved: which to sample with."""
    cfg = shipped_config()
    scheduler = build_train_scheduler(cfg, data_abs_max=4.0)
    rep = fitted_representation("haar")
    torch.manual_seed(0)
    model = build_unet(cfg, rep.image_shape[0], rep.image_shape[1:], num_classes=N_CLASSES)
    options = dict(sampler="dpmsolver", train_scheduler=scheduler, class_labels=0, project=rep.project,
                   batch_size=PROFILE.sampling_batch_size, num_inference_steps=PROFILE.inference_steps)
    times = {threads: [] for threads in sorted({1, CORES})}
    sample_diffusion(model, rep.image_shape, 8, **options)
    for _ in range(rounds):
        for threads in times:
            start = time.perf_counter()
            sample_diffusion(model, rep.image_shape, 64, threads=threads, **options)
            times[threads].append(time.perf_counter() - start)
    one = times[1]
    cells = ", ".join(f"{t} thread(s) {statistics.median(v) / 64 * 1000:.1f} s per 1,000 windows" for t, v in
                      times.items())
    ratio = statistics.median(v / o for v, o in zip(times[CORES], one, strict=True))
    print(f"\nSampling threads (haar, DPM-Solver++ ({PROFILE.inference_steps}), 64 windows, {rounds} interleaved "
          f"rounds, medians): {cells}; {CORES} threads / 1 thread = {ratio:.2f}")
    torch.set_num_threads(CORES)


# -- CUDA ---------------------------------------------------------------------------------------------------
def cuda_training(image_shapes) -> None:
    batch = 256
    print(f"\nCUDA ({torch.cuda.get_device_name()}), haar, batch {batch}:\n")
    print("| training variant (CUDA) | s/step | images/s |")
    print("|---|---|---|")
    for name, options in [("fp32", {}), ("bf16 autocast", dict(bf16=True)),
                          ("bf16 autocast + channels_last", dict(bf16=True, channels_last=True))]:
        step = TrainStep(image_shapes["haar"], batch, device="cuda", **options)
        step()
        step()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(10):
                step()
            times.append((time.perf_counter() - start) / 10)
        seconds = statistics.median(times)
        print(f"| {name} | {seconds:.4f} | {batch / seconds:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="what `make bench` runs: 3 rounds, no torch.compile, no loss-after-wall-time runs")
    parser.add_argument("--only", choices=("training", "sampling", "loss"), default=None,
                        help="run one part only (loss: the batch sizes' throughput, then the loss runs)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved training rounds of the full run")
    parser.add_argument("--loss-steps", type=int, default=PROFILE.diffusion_max_steps,
                        help="the loss runs' wall-time budget, in steps of the shipped batch size (default: the "
                             "quick profile's max_steps)")
    parser.add_argument("--cross-threads", action="store_true",
                        help="time every training lever at 1 thread and at all cores (default: at 1 thread)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="time torch.compile (default: on in the full run, off with --quick; compiling the "
                             "UNet takes minutes on 2 busy cores)")
    parser.add_argument("--loss", action=argparse.BooleanOptionalAction, default=None,
                        help="the loss-after-a-fixed-wall-time runs (default: on in the full run, off with --quick)")
    parser.add_argument("--sampling-threads", type=int, default=1,
                        help="torch threads for the sampling table (default 1: measured faster, see bench/README.md)")
    args = parser.parse_args()
    args.compile = (not args.quick) if args.compile is None else args.compile
    args.loss = (args.only == "loss" or not args.quick) if args.loss is None else args.loss
    image_shapes = {name: representation(name).image_shape for name in ("haar", "complex")}
    load = os.getloadavg()
    started = time.perf_counter()
    print(f"# diffusion benchmark ({'quick' if args.quick else 'full'}): quick-profile UNet {PROFILE.unet_channels}, "
          f"images {image_shapes}; torch {torch.__version__}, {CORES} cpus, load average {load[0]:.1f} / "
          f"{load[1]:.1f} / {load[2]:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    summary = []
    if args.only != "sampling":
        variants = training_table(args, image_shapes)
        threads = fastest_threads(variants)
        fastest = max(variants, key=Variant.images_per_second)
        summary.append(f"training: '{variants[0].name}' {variants[0].images_per_second():.0f} images/s, fastest "
                       f"'{fastest.name}' {fastest.images_per_second():.0f} images/s")
        if args.loss:
            loss_table(variants, threads, args.loss_steps)
        else:
            print("\nLoss after a fixed wall time: skipped (--quick; run without --quick, or with --loss)")
        if torch.cuda.is_available():
            cuda_training(image_shapes)
        else:
            print("\nCUDA training rows: skipped (torch.cuda.is_available() is False: no GPU on this machine)")
    if args.only not in ("training", "loss"):
        sampled = sampling_table(args, args.sampling_threads)
        if args.quick:
            print("\nSampling threads (1 vs all cores): skipped (--quick; the training table compares them)")
        else:
            sampling_threads_table(rounds=3)
        key = f"haar DPM-Solver++ ({PROFILE.inference_steps}), the quick profile's"
        summary.append(f"sampling haar DPM-Solver++({PROFILE.inference_steps}): {sampled[key]:.1f} s per 1,000 windows")
        if torch.cuda.is_available():
            sampling_table(args, args.sampling_threads, device="cuda")
        else:
            print("\nCUDA sampling rows: skipped (no GPU on this machine)")
    load = os.getloadavg()
    print(f"\nSUMMARY bench_diffusion: {'; '.join(summary)}; {time.perf_counter() - started:.0f} s, load average "
          f"{load[0]:.1f} at the end")


if __name__ == "__main__":
    main()
