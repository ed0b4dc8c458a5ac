"""Does the post-hoc discriminative score still work for long windows over a short test period?

The full profile scores sp500 on windows of 256 daily returns, and its test split holds only ~500 of them (3 years
at stride 1). This check fits the classical generators on sp500's train split (70%, as the pipeline's segments)
and scores them against the test windows (the last 15%) with the report's classifier, both scales, and prints
per generator the mean, the per-seed values and how many training rows still shared values with held-out ones
(0 = the purge held; see ``wavefin_core.evaluation.discriminative._block_split``). CPU, one thread, ~1 minute.

    .venv/bin/python bench/check_long_windows.py [--window 256] [--seeds 5]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=500, help="windows drawn from each generator")
    args = parser.parse_args()

    import torch

    from wavefin_core.data.bundled import load_sp500
    from wavefin_core.evaluation.discriminative import posthoc_discriminative_scores
    from wavefin_core.evaluation.generators import fit_generator
    from wavefin_core.preprocess import clean_prices

    torch.set_num_threads(1)
    returns = clean_prices(load_sp500(), source="sp500", train_fraction=0.7)["log_return"].dropna().to_numpy()
    n_train, n_val = int(0.7 * returns.size), int(0.15 * returns.size)
    train, test = returns[:n_train], returns[n_train + n_val:]
    real = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(test, args.window))
    print(f"sp500: {train.size} train returns, {real.shape[0]} test windows of {args.window}")
    sets = {name: fit_generator(name, train, series="sp500").sample(args.samples, args.window, seed=7)
            for name in ("garch_t", "gjr_garch_t", "real_train", "iid_gaussian")}
    for scale in ("global", "per_window"):
        scores = posthoc_discriminative_scores(real, sets, seeds=args.seeds, scale=scale, workers=1)
        print(f"\nscale={scale}")
        for name, score in scores.items():
            values = ", ".join(f"{v:.3f}" for v in score["values"])
            print(f"  {name:13s} {score['mean']:.3f} ± {score['std']:.3f}  [{values}]  training rows sharing values "
                  f"with held-out ones: {score['n_train_sharing_values']}")


if __name__ == "__main__":
    main()
