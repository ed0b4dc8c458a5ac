"""Benchmark the diffusion model: training images/s and achieved FLOP rate, and sampling time per 1,000 windows.

Run on demand (never in CI):  .venv/bin/python bench/bench_diffusion.py [--quick] [--compile]

Model: the quick profile's UNet (``DiffusionConfig(block_out_channels=(16, 32, 64))`` built by
``wavefin_core.models.build_unet``) on its scalograms: 2 channels (real, imag) x 32 scales x 64 samples,
untrained weights (timing does not depend on them). Only public APIs of ``wavefin_core.models`` are used.

Training: one optimizer step = what ``train_diffusion`` does per batch (noise a batch at random timesteps,
predict the noise, MSE, backward, gradient clipping, AdamW). Compared by measurement, each alone against
the baseline (batch 32, fp32, contiguous, eager, all cores): threads 1 / 2, ``channels_last``, batch size
16 / 64, ``torch.compile`` (``--compile``: measured no faster on CPU, 3 min to compile, so off by
default to keep ``make bench`` short). FLOPs per step are counted exactly with ``torch.utils.flop_counter``
(forward + backward), and the achieved rate is compared with a measured float32 matmul peak of this machine
(``torch.mm`` of 1024 x 1024 matrices) at the same thread count. The shipped ``train_diffusion`` is timed too.

Sampling: ``sample_diffusion`` with DDPM (1000 steps on 4 windows in one batch, scaled to 1,000: an
upper bound, a batch of 64 costs less per window), DDIM (50) and DPM-Solver++ (20) on 64 windows (one batch
of 64), reported as seconds per 1,000 windows.

CUDA (only when a GPU is present): the same training step in bf16 autocast, with and without channels_last.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wavefin_core.models import DiffusionConfig, build_unet, padded_size, sample_diffusion, train_diffusion  # noqa: E402

QUICK_CHANNELS = (16, 32, 64)
SAMPLE_SHAPE = (2, 32, 64)  # (real+imag, quick profile's 32 scales, 64-sample windows)
TIMESTEPS = 1000


def matmul_peak(threads: int, size: int = 1024, repeat: int = 10) -> float:
    """Best measured float32 GEMM rate (FLOP/s) with ``threads`` intra-op threads."""
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
    """One optimizer step of the quick UNet on random scalograms, in a given layout / precision / compile mode."""

    def __init__(self, batch: int, channels_last: bool = False, compile_model: bool = False,
                 device: str = "cpu", bf16: bool = False):
        cfg = DiffusionConfig(block_out_channels=QUICK_CHANNELS)
        torch.manual_seed(0)
        self.device, self.bf16 = device, bf16
        self.model = build_unet(cfg, SAMPLE_SHAPE[0], SAMPLE_SHAPE[1:]).to(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.forward = torch.compile(self.model) if compile_model else self.model
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=2e-4)
        height, width = padded_size(SAMPLE_SHAPE[1:], cfg)
        self.clean = torch.randn(batch, SAMPLE_SHAPE[0], height, width, device=device).contiguous(
            memory_format=self.memory_format)
        alphas = torch.cos(torch.linspace(0, math.pi / 2, TIMESTEPS, device=device)) ** 2  # a cosine-like schedule
        self.alpha_bar = alphas.clamp(1e-4, 1.0)
        self.batch = batch

    def __call__(self) -> float:
        noise = torch.randn_like(self.clean)
        timesteps = torch.randint(0, TIMESTEPS, (self.batch,), device=self.device)
        scale = self.alpha_bar[timesteps].view(-1, 1, 1, 1)
        noisy = scale.sqrt() * self.clean + (1 - scale).sqrt() * noise
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.bf16):
            loss = F.mse_loss(self.forward(noisy, timesteps).sample.float(), noise)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        return loss.item()  # also synchronises a GPU

    def flops(self) -> int:
        """Forward + backward FLOPs of one step, counted by torch (convolutions, matmuls, attention)."""
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            step = TrainStep.__new__(TrainStep)
            step.__dict__.update(self.__dict__)
            step.forward = self.model  # count the eager graph (compiled code is the same math)
            step()
        return counter.get_total_flops()


def time_steps(step: TrainStep, steps: int, rounds: int = 2) -> float:
    """Best seconds per step over ``rounds`` runs of ``steps`` steps, after two warm-up steps."""
    step()
    step()
    best = math.inf
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def training_table(args) -> None:
    cores = os.cpu_count() or 1
    steps = 2 if args.quick else 4
    peaks = {threads: matmul_peak(threads) for threads in sorted({1, cores})}
    print("float32 matmul peak (torch.mm 1024^2, best of 10): "
          + ", ".join(f"{threads} thread(s) {peak / 1e9:.1f} GFLOP/s" for threads, peak in peaks.items()))
    variants = [
        ("baseline: batch 32, fp32, contiguous, eager", dict(batch=32), cores),
        ("1 thread", dict(batch=32), 1),
        ("channels_last", dict(batch=32, channels_last=True), cores),
        ("batch 16", dict(batch=16), cores),
        ("batch 64", dict(batch=64), cores),
    ]
    if args.compile:
        variants.append(("torch.compile", dict(batch=32, compile_model=True), cores))
    print("\n| training variant (CPU) | threads | s/step | images/s | GFLOP/step | GFLOP/s | % of matmul peak |")
    print("|---|---|---|---|---|---|---|")
    for name, options, threads in variants:
        torch.set_num_threads(threads)
        step = TrainStep(**options)
        flops = step.flops()
        compile_note = ""
        if options.get("compile_model"):
            start = time.perf_counter()
            step()
            compile_note = f" (compiling took {time.perf_counter() - start:.0f} s)"
        seconds = time_steps(step, steps)
        rate = flops / seconds
        print(f"| {name}{compile_note} | {threads} | {seconds:.4f} | {step.batch / seconds:.0f} | "
              f"{flops / 1e9:.3f} | {rate / 1e9:.1f} | {100 * rate / peaks[threads]:.0f}% |", flush=True)
    torch.set_num_threads(cores)
    shipped_steps = 2 if args.quick else 6
    data = np.random.default_rng(0).standard_normal((32 * shipped_steps,) + SAMPLE_SHAPE).astype(np.float32)
    cfg = DiffusionConfig(block_out_channels=QUICK_CHANNELS, epochs=1, batch_size=32)
    train_diffusion(data[:64], DiffusionConfig(block_out_channels=QUICK_CHANNELS, epochs=1, batch_size=32))
    start = time.perf_counter()
    train_diffusion(data, cfg, device="cpu")
    seconds = (time.perf_counter() - start) / shipped_steps
    print(f"| shipped `train_diffusion` (batch 32, {shipped_steps} steps incl. set-up) | {cores} | {seconds:.4f} | "
          f"{32 / seconds:.0f} | | | |")
    if torch.cuda.is_available():
        cuda_training(args)


def cuda_training(args) -> None:
    print(f"\nCUDA ({torch.cuda.get_device_name()}), batch 128:\n")
    print("| training variant (CUDA) | s/step | images/s |")
    print("|---|---|---|")
    for name, options in [("fp32", {}), ("bf16 autocast", dict(bf16=True)),
                          ("bf16 autocast + channels_last", dict(bf16=True, channels_last=True))]:
        step = TrainStep(batch=128, device="cuda", **options)
        seconds = time_steps(step, 20)
        print(f"| {name} | {seconds:.4f} | {128 / seconds:.0f} |", flush=True)


def sampling_table(args) -> None:
    cfg = DiffusionConfig(block_out_channels=QUICK_CHANNELS)
    torch.manual_seed(0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print("\n| sampler | device | windows timed | seconds | seconds per 1,000 windows |")
    print("|---|---|---|---|---|")
    for device in devices:
        model = build_unet(cfg, SAMPLE_SHAPE[0], SAMPLE_SHAPE[1:]).to(device)
        plans = [("ddpm", 1000, 1 if args.quick else 4), ("ddim", 50, 16 if args.quick else 64),
                 ("dpmsolver", 20, 16 if args.quick else 64)]
        for sampler, steps, windows in plans:
            sample_diffusion(model, SAMPLE_SHAPE, min(windows, 8), sampler=sampler, num_inference_steps=2,
                             device=device)  # warm-up
            start = time.perf_counter()
            sample_diffusion(model, SAMPLE_SHAPE, windows, sampler=sampler, num_inference_steps=steps,
                             batch_size=64, device=device)
            seconds = time.perf_counter() - start
            label = {"ddpm": "DDPM (1000 steps)", "ddim": "DDIM (50)", "dpmsolver": "DPM-Solver++ (20)"}[sampler]
            print(f"| {label} | {device} | {windows} | {seconds:.2f} | {seconds / windows * 1000:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and windows: a smoke run")
    parser.add_argument("--only", choices=("training", "sampling"), default=None, help="run one table only")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for sampling (default: torch's, all cores); training compares 1 and all")
    parser.add_argument("--compile", action="store_true",
                        help="add the torch.compile variant (compiling took 177 s on 2 busy cores, for no gain)")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"# diffusion benchmark: quick-profile UNet {QUICK_CHANNELS}, scalograms {SAMPLE_SHAPE}; torch "
          f"{torch.__version__}, {os.cpu_count()} cpus, load average {load[0]:.1f} / {load[1]:.1f}\n")
    if args.only != "sampling":
        training_table(args)
    if args.only != "training":
        if args.threads:
            torch.set_num_threads(args.threads)
        print(f"\nsampling with {torch.get_num_threads()} torch thread(s)")
        sampling_table(args)


if __name__ == "__main__":
    main()
