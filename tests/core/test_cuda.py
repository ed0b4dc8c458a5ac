"""The CUDA paths of the core: training, sampling, projection and saved models on a GPU.

CI has no GPU, so every test here skips there (with the reason); they run on a lent GPU machine through
`bash bench/gpu_checks.sh tests` (bench/README.md). CPU and GPU results are compared with tolerances, never
bit for bit: cuDNN picks other convolution kernels (TF32 by default on Ampere and later), so the same weights
and noise give results that differ by rounding, amplified through the sampler's steps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wavefin_core.models import (
    DiffusionConfig,
    load_diffusion,
    sample_diffusion,
    save_diffusion,
    train_diffusion,
)
from wavefin_core.wavelets.representations import make_representation

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on a GPU machine)")

WINDOW = 16
LEVERS = {"block_out_channels": (8, 16), "batch_size": 16, "epochs": 1000, "learning_rate": 3e-3,
          "max_steps": 60, "conditioning": "class", "prediction_type": "v_prediction", "warmup_steps": 10,
          "lr_schedule": "cosine", "ema_decay": 0.95, "seed": 0}


@pytest.fixture(scope="module")
def trained_on_cuda():
    rng = np.random.default_rng(0)
    windows = np.concatenate([std * rng.standard_normal((48, WINDOW)) for std in (0.001, 0.01)])
    labels = np.repeat([0, 1], 48)
    representation = make_representation("haar", WINDOW).fit(windows)
    result = train_diffusion(representation.encode(windows), DiffusionConfig(**LEVERS), "cuda", labels=labels)
    return result, representation


def test_training_runs_on_the_gpu_and_the_loss_is_finite(trained_on_cuda):
    result, _ = trained_on_cuda
    assert next(result.model.parameters()).is_cuda
    assert np.isfinite(result.losses).all() and len(result.losses) == LEVERS["max_steps"]


def test_projected_gpu_samples_are_realizable(trained_on_cuda):
    result, representation = trained_on_cuda
    images = sample_diffusion(result.sampling_model, result.sample_shape, 24, sampler="dpmsolver",
                              num_inference_steps=8, train_scheduler=result.scheduler,
                              class_labels=np.arange(24) % 2, project=representation.project, device="cuda")
    assert isinstance(images, np.ndarray) and np.isfinite(images).all()
    _, residual = representation.decode(images)
    # the projection runs in float32 on the GPU and is checked in float64 on the CPU: rounding is ~1e-7
    assert residual.max() < 1e-5


def test_cpu_and_gpu_sampling_agree_within_rounding(trained_on_cuda):
    """Same weights, same noise (drawn on the CPU), same sampler: only the kernels differ."""
    result, representation = trained_on_cuda
    kwargs = dict(sampler="dpmsolver", num_inference_steps=8, train_scheduler=result.scheduler,
                  class_labels=np.arange(8) % 2, project=representation.project, seed=3)
    on_gpu = sample_diffusion(result.sampling_model, result.sample_shape, 8, device="cuda", **kwargs)
    cpu_model = type(result.sampling_model).from_config(result.sampling_model.config)
    cpu_model.load_state_dict({k: v.cpu() for k, v in result.sampling_model.state_dict().items()})
    on_cpu = sample_diffusion(cpu_model.eval(), result.sample_shape, 8, device="cpu", **kwargs)
    # TF32 convolutions round at ~1e-3 relative; 8 sampler steps amplify it a little
    relative = np.linalg.norm(on_gpu - on_cpu) / np.linalg.norm(on_cpu)
    assert relative < 2e-2, relative


def test_a_gpu_trained_model_saves_and_loads_on_the_cpu(trained_on_cuda, tmp_path):
    result, _ = trained_on_cuda
    save_diffusion(result, tmp_path / "diffusion")
    model, _, meta = load_diffusion(tmp_path / "diffusion")
    assert not next(model.parameters()).is_cuda
    assert meta["sample_shape"] == result.sample_shape
    x = torch.randn(2, result.model.config.in_channels, 8, 16, generator=torch.Generator().manual_seed(0))
    t, labels = torch.tensor([10, 900]), torch.tensor([0, 1])
    with torch.no_grad():
        # load_diffusion gives the EMA weights (what sampling uses) by default
        on_gpu = result.sampling_model(x.cuda(), t.cuda(), class_labels=labels.cuda()).sample.cpu()
        reloaded_on_gpu = model.cuda()(x.cuda(), t.cuda(), class_labels=labels.cuda()).sample.cpu()
        on_cpu = model.cpu()(x, t, class_labels=labels).sample
    # the same weights on the same device: equal up to cuDNN's choice of kernels between the two calls
    torch.testing.assert_close(reloaded_on_gpu, on_gpu, rtol=1e-4, atol=1e-5)
    # CPU float32 vs the GPU's TF32 convolutions (~1e-3 relative each, through ~20 layers)
    relative = float((on_cpu - on_gpu).norm() / on_gpu.norm())
    assert relative < 1e-2, relative
