"""Benchmark wavefin's cwt against the fastest CWT tools a user could pick instead, and against pywt.cwt.

Run on demand (never in CI):  .venv/bin/python bench/bench_cwt.py [--quick] [--rounds N] [--engine]

Peers (the default table): 1,024 windows x 256 samples (float32), 64 scales np.geomspace(2, 128), single
thread and 2 threads, best wall time over interleaved rounds (every tool runs once per round, so they share
the load of a busy machine), every output freshly allocated per call:

- wavefin ``cwt(x, scales, "cmor1.5-1.0", method="analytic")`` (band-limited analytic Morlet, circular), with
  the pyFFTW backend when installed and with scipy.fft; and the default pywt-exact ``cwt`` for reference;
- fCWT (PyPI ``fcwt``): ``FCWT(Morlet(2.0), threads, fast=False, norm=True)``, one reusable engine, log scales
  2..128, looped over the windows (fCWT transforms one signal per call) into one preallocated batch output;
- ssqueezepy ``cwt(x, ("morlet", {"mu": 6}), scales, padtype=None)`` on the whole batch (no padding, like
  the others; its scales are ours times mu / 2 pi so the centre frequencies match);
- pywt ``cwt(x, scales, "cmor1.5-1.0", method="fft", axis=-1)``.

Optional peers that are not installed are skipped with the reason printed (install them with
``pip install -e ".[bench]"``; fCWT also needs the system FFTW library, e.g. ``apt-get install
libfftw3-single3``).

``--engine`` adds the original engine table (4096 windows, geomspace(1, 128), morl and cmor, float32 and
float64, against pywt's conv and fft methods and the FFT floor, ~2.5 min): "FFT floor" = for each group of
scales sharing an FFT length: one batched forward FFT of the padded batch plus the batched inverse FFTs (one
per window and scale) at that padded length, with the engine's chunking, with scipy.fft: the transforms are
unavoidable for an FFT-based CWT, everything else (multiplying by the responses, copying the n valid samples
out) is overhead we try to keep small. "one-length floor" is the same at a single common length for all
scales (the engine's longest, 2n here): what an engine without per-scale lengths cannot go below.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
import tracemalloc
from importlib import metadata
from pathlib import Path

import numpy as np
import pywt
import scipy.fft as sfft
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wavefin_core.wavelets import covering_scales, cwt, icwt  # noqa: E402
from wavefin_core.wavelets.cwt import CHUNK_BYTES, bank_for  # noqa: E402

WAVELETS = ("morl", "cmor1.5-1.0")
DTYPES = (np.float32, np.float64)


def best_of(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` calls: the least disturbed by other load on a shared machine."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def fft_floor(x: np.ndarray, scales: np.ndarray, wavelet: str, one_length: bool = False):
    """A callable doing only the FFTs our engine does for ``x`` (same lengths, chunking and transform kinds).

    ``one_length``: instead pad every scale to the engine's longest length (one group).
    """
    real_dtype = np.dtype(np.float32 if x.dtype == np.float32 else np.float64)
    bank, _ = bank_for(wavelet, scales, x.shape[-1], real_dtype, complex_input=False)
    groups = [(group.fft_len, group.responses.shape[0]) for group in bank.groups]
    if one_length:
        groups = [(max(length for length, _ in groups), scales.size)]
    plans = []
    for fft_len, count in groups:
        bins = fft_len // 2 + 1 if bank.onesided else fft_len
        chunk = max(1, CHUNK_BYTES // (count * bins * bank.dtype.itemsize))
        plans.append((fft_len, chunk, np.ones((min(chunk, x.shape[0]), count, bins), dtype=bank.dtype)))

    def run():
        for fft_len, chunk, spectra in plans:
            for start in range(0, x.shape[0], chunk):
                block = x[start:start + chunk]
                if bank.onesided:
                    sfft.rfft(block, n=fft_len, axis=-1)
                    sfft.irfft(spectra[:block.shape[0]], n=fft_len, axis=-1)
                else:
                    sfft.fft(block, n=fft_len, axis=-1)
                    sfft.ifft(spectra[:block.shape[0]], axis=-1)

    return run


def peak_memory_ratio(x: np.ndarray, scales: np.ndarray, wavelet: str) -> float:
    """Peak numpy allocation during cwt (tracemalloc sees numpy's buffers) over the output size."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    out = cwt(x, scales, wavelet)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / out.nbytes


def engine_table(args) -> None:
    """The original table: our pywt-exact engine against pywt's methods and the FFT floor."""
    windows = 512 if args.quick else 4096
    repeat = args.repeat or (1 if args.quick else 5)
    pywt_repeat = args.pywt_repeat or (1 if args.quick else 2)
    length = 256
    scales = np.geomspace(1, 128, 64)
    rng = np.random.default_rng(0)
    base = rng.standard_t(3, size=(windows, length)) * 0.01

    print(f"# cwt benchmark: {windows} windows x {length} samples, {scales.size} scales geomspace(1, 128)")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, pywt {metadata.version('PyWavelets')}, scipy {metadata.version('scipy')}, "
          f"cpus {os.cpu_count()}, best of {repeat} (ours, floor) / {pywt_repeat} (pywt)\n")
    header = ("| wavelet | input | ours (s) | pywt conv (s) | pywt fft (s) | FFT floor (s) | one-length floor (s) | "
              "pywt best / ours | ours / floor | peak mem / output | ours, all cores (s) |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for wavelet in WAVELETS:
        for dtype in DTYPES:
            x = base.astype(dtype)
            cwt(x[:8], scales, wavelet)  # build and cache the filter bank outside the timings
            ours = best_of(lambda x=x, w=wavelet: cwt(x, scales, w), repeat)
            floor = best_of(fft_floor(x, scales, wavelet), repeat)
            one_floor = best_of(fft_floor(x, scales, wavelet, one_length=True), repeat)
            conv = best_of(lambda x=x, w=wavelet: pywt.cwt(x, scales, w, method="conv", axis=-1), pywt_repeat)
            fft = best_of(lambda x=x, w=wavelet: pywt.cwt(x, scales, w, method="fft", axis=-1), pywt_repeat)
            memory = peak_memory_ratio(x, scales, wavelet)
            with sfft.set_workers(os.cpu_count() or 1):
                threaded = best_of(lambda x=x, w=wavelet: cwt(x, scales, w), repeat)
            print(f"| {wavelet} | {np.dtype(dtype).name} | {ours:.3f} | {conv:.2f} | {fft:.2f} | {floor:.3f} | {one_floor:.3f} | "
                  f"{min(conv, fft) / ours:.1f}x | {ours / floor:.2f} | {memory:.2f} | {threaded:.3f} |", flush=True)

    window_scales = covering_scales(length)
    for dtype in DTYPES:
        x = base.astype(dtype)
        coefs = cwt(x, window_scales)
        start = time.perf_counter()
        icwt(coefs[:1], window_scales)
        build = time.perf_counter() - start
        per_call = best_of(lambda c=coefs: icwt(c, window_scales), repeat)
        print(f"\nicwt ({np.dtype(dtype).name}, cmor1.5-1.0, covering_scales({length}) = {window_scales.size} "
              f"scales): {per_call / windows * 1e6:.1f} us per window ({windows} windows in {per_call:.3f} s); "
              f"first call incl. building the cached pseudo-inverse: {build:.2f} s")




PEER_WINDOWS, PEER_LENGTH, PEER_SCALES = 1024, 256, np.geomspace(2, 128, 64)


class Peer:
    """One tool: ``run(threads)`` transforms the batch; ``skip`` says why it cannot run here."""

    def __init__(self, name: str, make, note: str = ""):
        self.name, self.note, self.skip, self.run = name, note, None, None
        try:
            self.run = make()
        except Exception as exc:  # noqa: BLE001 - an optional peer may fail to import in many ways
            self.skip = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def wavefin_peer(x: np.ndarray, backend: str | None, method: str):
    from wavefin_core.wavelets import analytic

    def run(threads: int):
        if backend is not None:
            analytic.FFT_BACKEND = backend
        return cwt(x, PEER_SCALES, "cmor1.5-1.0", method=method, workers=threads)

    if backend == "pyfftw" and analytic.pyfftw is None:
        raise ImportError("pyfftw is not installed (pip install pyfftw)")
    return run


def fcwt_peer(x: np.ndarray):
    import fcwt

    morlet = fcwt.Morlet(2.0)
    scales = fcwt.Scales(morlet, fcwt.FCWT_LOGSCALES, 1, 1 / PEER_SCALES[-1], 1 / PEER_SCALES[0], PEER_SCALES.size)
    engines = {threads: fcwt.FCWT(morlet, threads, False, True) for threads in (1, 2)}

    def run(threads: int, keep_alive=(morlet, scales)):  # FCWT keeps raw pointers to both: keep them alive
        out = np.empty((x.shape[0], PEER_SCALES.size, x.shape[1]), dtype=np.complex64)
        engine = engines[threads]
        for row, target in zip(x, out, strict=True):
            engine.cwt(row, scales, target)
        return out

    return run


def ssqueezepy_peer(x: np.ndarray):
    import ssqueezepy

    mu = 6.0
    scales = (PEER_SCALES * mu / (2 * np.pi)).astype(np.float32)

    def run(threads: int):
        os.environ["SSQ_PARALLEL"] = "0" if threads == 1 else "1"
        with sfft.set_workers(threads):
            return ssqueezepy.cwt(x, ("morlet", {"mu": mu}), scales=scales, padtype=None, astensor=False)[0]

    return run


def pywt_peer(x: np.ndarray):
    def run(threads: int):
        with sfft.set_workers(threads):  # pywt's fft method uses scipy.fft when available
            return pywt.cwt(x, PEER_SCALES, "cmor1.5-1.0", method="fft", axis=-1)[0]

    return run


def peers_table(args) -> None:
    # --quick (`make bench`): the workload, fewer rounds (~1 min on 2 busy cores instead of ~1.5-3)
    rounds = args.rounds or (3 if args.quick else 7)
    windows = PEER_WINDOWS
    x = (np.random.default_rng(0).standard_t(3, size=(windows, PEER_LENGTH)) * 0.01).astype(np.float32)
    os.environ.setdefault("SSQ_PARALLEL", "0")
    peers = [
        Peer("wavefin analytic (pyFFTW)", lambda: wavefin_peer(x, "pyfftw", "analytic")),
        Peer("wavefin analytic (scipy.fft)", lambda: wavefin_peer(x, "scipy", "analytic")),
        Peer("fCWT (Morlet 2.0)", lambda: fcwt_peer(x)),
        Peer("ssqueezepy (morlet, no padding)", lambda: ssqueezepy_peer(x)),
        Peer("wavefin pywt-exact (default)", lambda: wavefin_peer(x, None, "pywt")),
        Peer("pywt (fft)", lambda: pywt_peer(x)),
    ]
    slow = {"pywt (fft)", "wavefin pywt-exact (default)"}
    load = os.getloadavg()
    print(f"# CWT peers: {windows} windows x {PEER_LENGTH} samples float32, {PEER_SCALES.size} scales "
          f"geomspace(2, 128); best wall time of {rounds} interleaved rounds (pywt and anything over 1 s: 2); load average "
          f"{load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} cpus")
    versions = []
    for package in ("numpy", "scipy", "PyWavelets", "fcwt", "ssqueezepy", "pyFFTW"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} -")
    print(", ".join(versions) + "\n")
    for peer in peers:
        if peer.skip:
            print(f"skipped {peer.name}: {peer.skip}")
    active = [p for p in peers if p.run is not None]
    # --quick: 1 thread only; with the second core busy, fCWT's OpenMP threads=2 alone can take minutes
    thread_counts = (1,) if args.quick else (1, 2)
    for peer in active:  # warm-up: caches, plans, numba JIT
        for threads in thread_counts:
            peer.run(threads)
    best = {(p.name, t): math.inf for p in active for t in (1, 2)}
    for round_index in range(rounds):
        for peer in active:
            for threads in thread_counts:
                if round_index >= 2 and (peer.name in slow or best[peer.name, threads] > 1.0):
                    continue  # slow entries: best of 2 rounds keeps the whole bench within a few minutes
                gc.collect()
                start = time.perf_counter()
                peer.run(threads)
                best[peer.name, threads] = min(best[peer.name, threads], time.perf_counter() - start)
    reference = {t: best.get(("fCWT (Morlet 2.0)", t)) for t in (1, 2)}
    reference = {t: value if value is not None and math.isfinite(value) else None for t, value in reference.items()}
    print("\n| tool | 1 thread (s) | 2 threads (s) | time / fCWT, 1 thread | time / fCWT, 2 threads |")
    print("|---|---|---|---|---|")
    for peer in active:
        one, two = best[peer.name, 1], best[peer.name, 2]
        ratios = [f"{value / reference[t]:.2f}" if reference[t] and math.isfinite(value) else "-"
                  for value, t in ((one, 1), (two, 2))]
        cells = [f"{value:.3f}" if math.isfinite(value) else "- (full run only)" for value in (one, two)]
        print(f"| {peer.name} | {cells[0]} | {cells[1]} | {ratios[0]} | {ratios[1]} |", flush=True)
    headline = [f"{peer.name} {best[peer.name, 1]:.3f} s" + (f" ({best[peer.name, 1] / reference[1]:.2f}x fCWT)"
                                                                if reference[1] else "") for peer in active]
    print(f"\nSUMMARY bench_cwt: 1 thread, {windows} x {PEER_LENGTH}, {PEER_SCALES.size} scales: "
          + "; ".join(headline))
    if torch.cuda.is_available():
        cuda_table(x, rounds)


def cuda_table(x: np.ndarray, rounds: int) -> None:
    """The torch path on the GPU (both methods), synchronised, input already on the device."""
    device_x = torch.from_numpy(x).cuda()
    print(f"\nCUDA ({torch.cuda.get_device_name()}), torch path, same workload:")
    for method in ("analytic", "pywt"):
        cwt(device_x, PEER_SCALES, method=method)
        torch.cuda.synchronize()
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            cwt(device_x, PEER_SCALES, method=method)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        print(f"- method={method!r}: {min(times) * 1e3:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="what `make bench` runs: 3 rounds at 1 thread (peers), 512 windows, best of 1 (--engine)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds of the peers table")
    parser.add_argument("--engine", action="store_true", help="also the original engine table (~2.5 min)")
    parser.add_argument("--repeat", type=int, default=None, help="engine table: best-of-N for ours and the floor")
    parser.add_argument("--pywt-repeat", type=int, default=None, help="engine table: best-of-N for pywt (slow)")
    args = parser.parse_args()
    peers_table(args)
    if args.engine:
        print()
        engine_table(args)


if __name__ == "__main__":
    main()
