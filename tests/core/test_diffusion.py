"""Diffusion model: padding, training, determinism, atomic save/load and sampling, on tiny shapes.

S=13, T=22 are deliberately not multiples of the UNet's downsampling, so every test also exercises the
pad-then-crop path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.models import (
    DiffusionConfig,
    build_unet,
    load_diffusion,
    padded_size,
    sample_diffusion,
    save_diffusion,
    train_diffusion,
)

SHAPE = (2, 13, 22)
TINY = {"block_out_channels": (16, 32), "batch_size": 16, "epochs": 1000, "learning_rate": 1e-3}


def tiny_data(n: int = 64, seed: int = 0) -> np.ndarray:
    """A structured dataset (a shared time pattern plus noise) so there is something to learn."""
    rng = np.random.default_rng(seed)
    pattern = np.sin(np.arange(SHAPE[2]) / 3.0)[None, None, None, :]
    return (pattern + 0.3 * rng.standard_normal((n, *SHAPE))).astype(np.float32)


pytestmark = pytest.mark.usefixtures("single_thread")  # tests/core/conftest.py


@pytest.fixture(scope="module")
def trained():
    cfg = DiffusionConfig(**TINY, max_steps=96, seed=0)
    return train_diffusion(tiny_data(), cfg, "cpu")


def test_padded_size_rounds_up_to_the_unet_downsampling():
    assert padded_size((13, 22), DiffusionConfig()) == (16, 24)  # 3 blocks: multiple of 4
    assert padded_size((32, 64), DiffusionConfig()) == (32, 64)
    assert padded_size((13, 22), DiffusionConfig(block_out_channels=(16, 32))) == (14, 22)


def test_training_loss_decreases(trained):
    losses = trained.losses
    assert len(losses) == 96
    assert np.isfinite(losses).all()
    assert np.mean(losses[-15:]) < 0.6 * np.mean(losses[:15])
    assert len(trained.epoch_losses) == 24  # 64 samples / batch 16 = 4 steps per epoch
    assert trained.sample_shape == SHAPE
    assert not trained.model.training


def test_training_is_deterministic_and_reports_progress():
    cfg = DiffusionConfig(**TINY, max_steps=4, seed=3)
    calls = []
    first = train_diffusion(tiny_data(), cfg, "cpu", progress=lambda s, t, info: calls.append((s, t, info)))
    second = train_diffusion(tiny_data(), cfg, "cpu")
    assert first.losses == second.losses
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [(s, t) for s, t, _ in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert calls[-1][2]["loss"] == first.losses[-1]
    other = train_diffusion(tiny_data(), DiffusionConfig(**TINY, max_steps=4, seed=4), "cpu")
    assert other.losses != first.losses


def test_save_load_round_trip_gives_identical_outputs(trained, tmp_path):
    target = tmp_path / "diffusion"
    save_diffusion(trained, target, extra={"scale": np.float32(2.5), "stats": np.arange(3)})
    assert (target / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diffusion"]  # no temp dirs left behind

    model, scheduler, meta = load_diffusion(target)
    assert meta["sample_shape"] == SHAPE
    assert meta["extra"] == {"scale": 2.5, "stats": [0, 1, 2]}
    assert DiffusionConfig.from_dict(meta["config"]) == trained.config
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(scheduler.config) == public(trained.scheduler.config)

    x = torch.randn(3, 2, 14, 22, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([1, 500, 999])
    # Same weights, inputs, batch and threads: the very same computation, so bit for bit.
    with torch.no_grad():
        assert torch.equal(model(x, t).sample, trained.model(x, t).sample)
    a = sample_diffusion(model, SHAPE, 2, num_inference_steps=4, train_scheduler=scheduler)
    b = sample_diffusion(trained.model, SHAPE, 2, num_inference_steps=4, train_scheduler=trained.scheduler)
    np.testing.assert_array_equal(a, b)


def test_failed_save_leaves_previous_model_untouched(trained, tmp_path, monkeypatch):
    target = tmp_path / "diffusion"
    save_diffusion(trained, target, extra={"version": 1})

    with pytest.raises(ConfigError, match="extra"):
        save_diffusion(trained, target, extra={"bad": object()})

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(trained.scheduler, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_diffusion(trained, target, extra={"version": 2})
    assert json.loads((target / "wavefin.json").read_text())["extra"] == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diffusion"]


@pytest.mark.parametrize("sampler", ["ddim", "dpmsolver", "ddpm"])
def test_sampling_shape_finite_and_seeded(trained, sampler):
    def draw(seed: int) -> np.ndarray:
        return sample_diffusion(
            trained.model,
            SHAPE,
            3,
            sampler=sampler,
            num_inference_steps=6,
            seed=seed,
            train_scheduler=trained.scheduler,
            batch_size=2,
        )

    first = draw(0)
    assert first.shape == (3, *SHAPE) and first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, draw(0))
    assert not np.allclose(first, draw(1))


def test_sampling_progress_counts_every_denoising_step(trained):
    calls = []
    sample_diffusion(
        trained.model,
        SHAPE,
        3,
        num_inference_steps=5,
        batch_size=2,
        train_scheduler=trained.scheduler,
        progress=lambda s, t, info: calls.append((s, t)),
    )
    assert calls == [(i, 10) for i in range(1, 11)]


def test_sampling_rejects_bad_arguments(trained):
    with pytest.raises(ConfigError, match="sampler"):
        sample_diffusion(trained.model, SHAPE, 1, sampler="euler-magic", train_scheduler=trained.scheduler)
    with pytest.raises(ConfigError, match="num_inference_steps"):
        sample_diffusion(trained.model, SHAPE, 1, num_inference_steps=0, train_scheduler=trained.scheduler)
    with pytest.raises(ConfigError, match="sample_shape"):
        sample_diffusion(trained.model, (3, 13, 22), 1, train_scheduler=trained.scheduler)


def test_attention_unet_handles_unpadded_sizes():
    cfg = DiffusionConfig(block_out_channels=(8, 16), attention=True)
    model = build_unet(cfg, in_channels=2, sample_size=(13, 22))
    assert type(model.down_blocks[-1]).__name__ == "AttnDownBlock2D"
    assert type(model.up_blocks[0]).__name__ == "AttnUpBlock2D"
    x = torch.zeros(1, 2, *padded_size((13, 22), cfg))
    assert model(x, 10).sample.shape == x.shape


def test_config_round_trip_and_errors():
    cfg = DiffusionConfig(block_out_channels=(8, 16), attention=True, max_steps=7)
    assert DiffusionConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="block_out_chanels"):
        DiffusionConfig.from_dict({"block_out_chanels": [8]})
    with pytest.raises(ConfigError, match="beta_schedule"):
        train_diffusion(tiny_data(4), DiffusionConfig(beta_schedule="cosine"), "cpu")
    with pytest.raises(ConfigError, match="attention"):
        DiffusionConfig(block_out_channels=(8, 12), attention=True).validate()
    with pytest.raises(ConfigError, match="batch_size"):
        DiffusionConfig(batch_size=0).validate()


def test_bad_data_is_a_data_error():
    x = tiny_data(4)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        train_diffusion(x, DiffusionConfig(**TINY, max_steps=1), "cpu")
    with pytest.raises(DataError, match="shape"):
        train_diffusion(x[0], DiffusionConfig(**TINY, max_steps=1), "cpu")
