"""Benchmark wavefin's cwt against pywt.cwt and against the FFT work it cannot avoid.

Run on demand (never in CI):  .venv/bin/python bench/bench_cwt.py [--quick] [--repeat N]

Workload: 4096 windows x 256 samples, 64 scales np.geomspace(1, 128, 64), wavelets 'morl' (real) and
'cmor1.5-1.0' (complex), float32 and float64 input. Prints a markdown table (absolute best-of-N seconds and
ratios), the peak memory of our cwt relative to its output, and icwt's time per window.

"FFT floor" = for each group of scales sharing an FFT length: one batched forward FFT of the padded batch
plus the batched inverse FFTs (one per window and scale) at that padded length, with the engine's chunking,
with scipy.fft: the transforms are unavoidable for an FFT-based CWT, everything else (multiplying by the
responses, copying the n valid samples out) is overhead we try to keep small. "one-length floor" is the
same at a single common length for all scales (the engine's longest, 2n here): what an engine without
per-scale lengths cannot go below.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc
from importlib import metadata
from pathlib import Path

import numpy as np
import pywt
import scipy.fft as sfft

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="512 windows, 1 repeat: a smoke run")
    parser.add_argument("--repeat", type=int, default=None, help="best-of-N for our cwt and the FFT floor")
    parser.add_argument("--pywt-repeat", type=int, default=None, help="best-of-N for pywt (slow)")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
