"""Issue 8's levers, measured: the discriminative score of the diffusion generator per lever, quick-profile data.

Materializes the data assets of `mjd` and `sp500` (quick profile) into a temporary storage, then for each
variant trains the diffusion model through the core functions the `diffusion_model` asset calls, samples
`--samples` windows per series and scores them with the generation report's post-hoc discriminative score
(5 seeds, on the series' stride-1 test windows). Prints one line per variant and series and writes a JSON file.

This is a short, noisy measurement for picking defaults (one training seed, fewer samples than the report);
the full ablation belongs in a run of the report itself.

    .venv/bin/python bench/bench_diffusion_levers.py --steps 500 --variants baseline,levers,levers-noproj
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name -> (DiffusionConfig overrides, representation, train_stride, project)
VARIANTS = {
    "baseline": ({"conditioning": "class", "prediction_type": "epsilon", "warmup_steps": 0,
                  "lr_schedule": "constant", "ema_decay": None}, "complex", 8, False),
    "levers": ({}, "complex", 1, True),
    "levers-noproj": ({}, "complex", 1, False),
    "levers-stride8": ({}, "complex", 8, True),
    "levers-noema": ({"ema_decay": None}, "complex", 1, True),
    "levers-epsilon": ({"prediction_type": "epsilon"}, "complex", 1, True),
    "levers-haar": ({}, "haar", 1, True),
    "levers-logmag": ({}, "logmag_phase", 1, True),
}


def materialize_data(root: Path) -> dict:
    import dagster as dg
    import pyarrow.parquet as pq

    from tests.assets.conftest import DATA_ASSETS, series_instance
    from wavefin_assets.definitions import defs
    from wavefin_assets.io_manager import WavefinIOManager
    from wavefin_assets.resources import StorageResource
    from wavefin_core.scalograms import ScalogramSet

    resources = {**defs.resources, "io_manager": WavefinIOManager(base_dir=str(root / "io")),
                 "storage": StorageResource(root=str(root))}
    instance = series_instance()
    sets = {}
    for series in ("mjd", "sp500"):
        dg.materialize(list(defs.assets), selection=DATA_ASSETS, partition_key=series, resources=resources,
                       instance=instance)
        table = pq.read_table(root / "io" / "scalograms" / f"{series}.parquet")
        sets[series] = ScalogramSet.from_table(table)
    return sets


_TRAINED: dict = {}


def run_variant(name: str, sets: dict, steps: int, samples: int, sampling_steps: int,
                ddim_check: bool = False) -> dict:
    from wavefin_assets.assets.generation import _training_images
    from wavefin_assets.profiles import PROFILE
    from wavefin_core.evaluation.discriminative import posthoc_discriminative_score
    from wavefin_core.models import DiffusionConfig, sample_diffusion, train_diffusion
    from wavefin_core.scalograms import contiguous_returns

    overrides, representation, stride, project = VARIANTS[name]
    base = {"block_out_channels": PROFILE.unet_channels, "attention": PROFILE.unet_attention,
            "epochs": 10_000, "batch_size": PROFILE.diffusion_batch_size, "max_steps": steps,
            "learning_rate": PROFILE.diffusion_learning_rate, "conditioning": "class",
            "prediction_type": PROFILE.diffusion_prediction_type, "warmup_steps": PROFILE.diffusion_warmup_steps,
            "lr_schedule": PROFILE.diffusion_lr_schedule, "ema_decay": PROFILE.diffusion_ema_decay}
    cfg = DiffusionConfig(**{**base, **overrides})
    images, labels, reps = _training_images(sets, representation, stride)
    key = json.dumps([cfg.to_dict(), representation, stride])
    if key not in _TRAINED:  # variants that differ only in sampling share one training
        started = time.perf_counter()
        _TRAINED[key] = train_diffusion(images, cfg, "cpu", labels=labels, num_classes=len(sets)), \
            time.perf_counter() - started
    result, train_s = _TRAINED[key]
    out = {"variant": name, "train_images": len(images), "train_s": train_s, "steps": steps, "series": {}}
    for label, (series, s) in enumerate(sets.items()):
        rep = reps[series]
        started = time.perf_counter()
        generated = sample_diffusion(result.sampling_model, result.sample_shape, samples, sampler="dpmsolver",
                                     num_inference_steps=sampling_steps, train_scheduler=result.scheduler,
                                     class_labels=label, project=rep.project if project else None, seed=label)
        sample_s = time.perf_counter() - started
        returns, residual = rep.decode(generated)
        test = contiguous_returns(s, "test")
        real = np.lib.stride_tricks.sliding_window_view(test, s.windows.shape[1])
        score = posthoc_discriminative_score(real, returns, seeds=5)
        acf1 = float(np.mean([np.corrcoef(r[:-1], r[1:])[0, 1] for r in returns]))
        real_acf1 = float(np.mean([np.corrcoef(r[:-1], r[1:])[0, 1] for r in real]))
        # issue 7's DDIM(50) finding: image std of DDIM(50) vs DPM-Solver++(20) samples (unprojected, 64 windows)
        stds = {f"{sampler}({n})": float(sample_diffusion(
            result.sampling_model, result.sample_shape, 64, sampler=sampler, num_inference_steps=n,
            train_scheduler=result.scheduler, class_labels=label, seed=7).std())
            for sampler, n in (("ddim", 50), ("dpmsolver", 20))} if ddim_check else {}
        out["series"][series] = {"image_std": stds, "train_image_std": float(images[labels == label].std()),
            "discriminative": score["mean"], "discriminative_std": score["std"],
            "std_ratio": float(returns.std() / real.std()), "acf1": acf1, "real_acf1": real_acf1,
            "median_residual": float(np.median(residual)), "sample_s": sample_s,
        }
        print(f"{name:16s} {series:6s} disc {score['mean']:.3f} ± {score['std']:.3f}  std ratio "
              f"{returns.std() / real.std():.2f}  acf1 {acf1:+.3f} (real {real_acf1:+.3f})  residual "
              f"{np.median(residual):.1e}  train {train_s:.0f}s sample {sample_s:.0f}s "
              f"{out['series'][series]['image_std']}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--sampling-steps", type=int, default=10)
    parser.add_argument("--variants", default="baseline,levers,levers-noproj")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ddim-check", action="store_true", help="also the image std of DDIM(50) / DPM++(20)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/diffusion_levers.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        sets = materialize_data(Path(tmp))
        results = [run_variant(v, sets, args.steps, args.samples, args.sampling_steps, args.ddim_check)
                   for v in args.variants.split(",")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
