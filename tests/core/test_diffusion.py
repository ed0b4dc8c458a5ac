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


# -- issue 8: conditioning, range projection, v-prediction, EMA, LR schedule ------------------------------------
# One small class-conditioned model serves several tests: two toy "series" of return windows whose stds differ
# 10x, encoded with the Haar representation (window 16 -> a (1, 5, 16) image), trained with v-prediction, LR
# warm-up + cosine decay and EMA. x0-style objectives learn this in ~100 steps (epsilon needs far more).
WINDOW = 16
CLASS_STDS = (0.001, 0.01)
LEVERS = {"block_out_channels": (8, 16), "batch_size": 16, "epochs": 1000, "learning_rate": 3e-3,
          "max_steps": 100, "conditioning": "class", "prediction_type": "v_prediction", "warmup_steps": 10,
          "lr_schedule": "cosine", "ema_decay": 0.95, "seed": 0}


def two_series(n_per_class: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    windows = np.concatenate([std * rng.standard_normal((n_per_class, WINDOW)) for std in CLASS_STDS])
    return windows, np.repeat(np.arange(len(CLASS_STDS)), n_per_class)


@pytest.fixture(scope="module")
def conditional():
    from wavefin_core.wavelets.representations import make_representation

    windows, labels = two_series()
    representation = make_representation("haar", WINDOW).fit(windows)
    images = representation.encode(windows)
    result = train_diffusion(images, DiffusionConfig(**LEVERS), "cpu", labels=labels)
    return result, representation


def test_conditional_sampling_produces_the_requested_series(conditional):
    result, representation = conditional
    stds = []
    for label in range(len(CLASS_STDS)):
        images = sample_diffusion(result.sampling_model, result.sample_shape, 32, sampler="dpmsolver",
                                  num_inference_steps=10, train_scheduler=result.scheduler, class_labels=label,
                                  project=representation.project, seed=label)
        returns, _ = representation.decode(images)
        stds.append(float(returns.std()))
    # A 100-step model is rough (measured 0.0022 and 0.0057 for 0.001 and 0.01): each class's samples are nearer
    # (in log scale) to their own class's std than to the other's, and the two classes stay well apart.
    distance = np.abs(np.log(np.asarray(stds)[:, None] / np.asarray(CLASS_STDS)[None, :]))
    assert (distance.argmin(axis=1) == [0, 1]).all(), stds
    assert stds[1] > 2 * stds[0], stds


@pytest.mark.parametrize("sampler", ["ddim", "dpmsolver", "ddpm"])
def test_range_projection_makes_every_sample_realizable(conditional, sampler):
    result, representation = conditional
    labels = np.arange(12) % 2

    def draw(project):
        return sample_diffusion(result.sampling_model, result.sample_shape, 12, sampler=sampler,
                                num_inference_steps=8, train_scheduler=result.scheduler, class_labels=labels,
                                project=project, batch_size=8)

    _, residual = representation.decode(draw(representation.project))
    # float32 sampling, projection computed in float32 and checked in float64: rounding is ~1e-7.
    assert residual.max() < 1e-5
    _, unprojected = representation.decode(draw(None))
    assert np.median(unprojected) > 1e-3  # without projection the samples are not realizable: the test can fail


def test_projection_is_applied_at_every_step():
    """The loop calls `project` once per step on the cropped x0 estimate, plus once on the final samples."""
    model = build_unet(DiffusionConfig(block_out_channels=(8, 16)), 2, SHAPE[1:])
    shapes = []

    def project(x: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(x.shape))
        return torch.zeros_like(x)

    out = sample_diffusion(model, SHAPE, 3, sampler="ddim", num_inference_steps=5, project=project)
    assert shapes == [(3, *SHAPE)] * 6
    np.testing.assert_array_equal(out, 0.0)
    with pytest.raises(ConfigError, match="project"):
        sample_diffusion(model, SHAPE, 1, num_inference_steps=2, project=lambda x: x[:, :1])


def test_class_labels_are_checked(conditional, trained):
    result, _ = conditional
    kwargs = {"num_inference_steps": 2, "train_scheduler": result.scheduler}
    with pytest.raises(ConfigError, match="class_labels"):
        sample_diffusion(result.model, result.sample_shape, 2, **kwargs)
    with pytest.raises(ConfigError, match=r"\[0, 2\)"):
        sample_diffusion(result.model, result.sample_shape, 2, class_labels=2, **kwargs)
    with pytest.raises(ConfigError, match="without conditioning"):
        sample_diffusion(trained.model, SHAPE, 2, class_labels=0, num_inference_steps=2,
                         train_scheduler=trained.scheduler)
    with pytest.raises(ConfigError, match="labels"):
        train_diffusion(tiny_data(4), DiffusionConfig(**{**TINY, "conditioning": "class"}, max_steps=1), "cpu")


def test_lr_warmup_then_cosine_decay_and_ema_differs_from_the_weights(conditional):
    result, _ = conditional
    lrs = result.learning_rates
    assert len(lrs) == LEVERS["max_steps"]
    assert lrs[0] == pytest.approx(LEVERS["learning_rate"] / 10) and lrs[9] == pytest.approx(LEVERS["learning_rate"])
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False)) and lrs[-1] < 0.01 * lrs[9]
    assert result.ema_model is not None and result.sampling_model is result.ema_model
    assert any(not torch.equal(a, b) for a, b in zip(result.model.parameters(), result.ema_model.parameters(),
                                                     strict=True))


def test_v_prediction_and_ema_round_trip_through_save_pretrained(conditional, tmp_path):
    from diffusers import UNet2DModel

    result, representation = conditional
    target = tmp_path / "model"
    save_diffusion(result, target, series=["calm", "wild"], representations={"calm": representation.to_dict()})
    for subdir, live in (("unet", result.model), ("unet_ema", result.ema_model)):
        loaded = UNet2DModel.from_pretrained(target / subdir, use_safetensors=True)
        assert loaded.config.num_class_embeds == 2
        for name, tensor in live.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], tensor), (subdir, name)
    model, scheduler, meta = load_diffusion(target)
    assert meta["weights"] == "unet_ema" and meta["ema"] and meta["series"] == ["calm", "wild"]
    assert scheduler.config.prediction_type == "v_prediction"
    assert DiffusionConfig.from_dict(meta["config"]) == result.config
    assert meta["representations"]["calm"] == representation.to_dict()
    trained_weights, _, _ = load_diffusion(target, weights="trained")
    assert torch.equal(next(trained_weights.parameters()), next(result.model.parameters()))
    # Same weights, batch, threads and seed: the very same computation, so bit for bit.
    kwargs = {"num_inference_steps": 3, "class_labels": [0, 1], "sampler": "dpmsolver"}
    np.testing.assert_array_equal(
        sample_diffusion(model, meta["sample_shape"], 2, train_scheduler=scheduler, **kwargs),
        sample_diffusion(result.ema_model, result.sample_shape, 2, train_scheduler=result.scheduler, **kwargs))

    meta_path = target / "wavefin.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "format_version": 1}))
    with pytest.raises(DataError, match="version 1.*Re-materialize diffusion_model"):
        load_diffusion(target)


def test_a_tiny_model_overfits_a_single_window():
    """Seed 004's overfit check: one smooth image, x0 objective; the loss falls ~20x and samples reproduce it.

    A conv UNet only knows where it is through the zero padding, so it needs three levels (a receptive field
    spanning the image) to pin a fixed image; two levels plateau at 10% of the initial loss.
    """
    time_pattern, scale_pattern = np.sin(np.arange(SHAPE[2]) / 3.0), np.cos(np.arange(SHAPE[1]) / 4.0)
    image = (np.array([1.0, -0.5])[:, None, None] * scale_pattern[:, None] * time_pattern)[None].astype(np.float32)
    cfg = DiffusionConfig(block_out_channels=(8, 16, 16), batch_size=1, epochs=1000, learning_rate=1e-2,
                          max_steps=150, prediction_type="sample", warmup_steps=5, lr_schedule="cosine")
    result = train_diffusion(image, cfg, "cpu")
    assert np.mean(result.losses[-10:]) < 0.1 * np.mean(result.losses[:5])
    samples = sample_diffusion(result.model, SHAPE, 4, sampler="ddim", num_inference_steps=10,
                               train_scheduler=result.scheduler)
    error = np.linalg.norm((samples - image).reshape(4, -1), axis=1) / np.linalg.norm(image)
    assert error.max() < 0.35, error  # measured 0.19-0.21; a model that ignored the image would be ~1.4


def test_new_config_fields_are_validated():
    with pytest.raises(ConfigError, match="prediction_type"):
        DiffusionConfig(prediction_type="noise").validate()
    with pytest.raises(ConfigError, match="rescale_betas_zero_snr"):
        DiffusionConfig(rescale_betas_zero_snr=True).validate()
    with pytest.raises(ConfigError, match="ema_decay"):
        DiffusionConfig(ema_decay=1.0).validate()
    with pytest.raises(ConfigError, match="conditioning"):
        DiffusionConfig(conditioning="series").validate()
    with pytest.raises(ConfigError, match="lr_schedule"):
        DiffusionConfig(lr_schedule="step").validate()
    DiffusionConfig(prediction_type="v_prediction", rescale_betas_zero_snr=True).validate()


def test_scheduler_options_reach_the_sampler_and_typos_are_refused(trained):
    """DPM-Solver++'s last step is a knob (issue 8): `final_sigmas_type="sigma_min"` stops at the smallest noise
    level instead of 0, so the samples differ from the default's; the same options repeat bit for bit."""
    from wavefin_core.models.diffusion_sampling import build_sampling_scheduler

    scheduler = build_sampling_scheduler("dpmsolver", trained.scheduler,
                                         scheduler_options={"final_sigmas_type": "sigma_min", "euler_at_final": True})
    assert scheduler.config.final_sigmas_type == "sigma_min" and scheduler.config.euler_at_final
    assert scheduler.config.prediction_type == "sample"  # the loop still owns the parameterization
    kwargs = {"sampler": "dpmsolver", "num_inference_steps": 4, "train_scheduler": trained.scheduler, "seed": 3}
    default = sample_diffusion(trained.model, SHAPE, 2, **kwargs)
    options = {"final_sigmas_type": "sigma_min"}
    changed = sample_diffusion(trained.model, SHAPE, 2, scheduler_options=options, **kwargs)
    assert not np.array_equal(default, changed)
    np.testing.assert_array_equal(changed, sample_diffusion(trained.model, SHAPE, 2, scheduler_options=options,
                                                            **kwargs))
    with pytest.raises(ConfigError, match="final_sigma_type"):
        build_sampling_scheduler("dpmsolver", trained.scheduler, scheduler_options={"final_sigma_type": "zero"})
    with pytest.raises(ConfigError, match="set by the sampling loop"):
        build_sampling_scheduler("dpmsolver", trained.scheduler, scheduler_options={"prediction_type": "epsilon"})


def test_row_loss_weights_are_validated_and_equal_weights_are_plain_mse():
    x = tiny_data(16)
    base = {**TINY, "max_steps": 3, "seed": 1}
    plain = train_diffusion(x, DiffusionConfig(**base), "cpu")
    equal = train_diffusion(x, DiffusionConfig(**base, row_loss_weights=(2.0,) * SHAPE[1]), "cpu")
    # Same data, noise and weights; mean(1 * e^2) vs F.mse_loss sum in a different order: float32 rounding only.
    np.testing.assert_allclose(equal.losses, plain.losses, rtol=1e-5)
    heavy_last = train_diffusion(x, DiffusionConfig(**base, row_loss_weights=(1.0,) * (SHAPE[1] - 1) + (5.0,)), "cpu")
    assert heavy_last.losses[0] != pytest.approx(plain.losses[0], rel=1e-4)
    assert DiffusionConfig.from_dict(json.loads(json.dumps(heavy_last.config.to_dict()))) == heavy_last.config
    with pytest.raises(ConfigError, match="13 rows"):
        train_diffusion(x, DiffusionConfig(**base, row_loss_weights=(1.0, 2.0)), "cpu")
    with pytest.raises(ConfigError, match="row_loss_weights"):
        DiffusionConfig(row_loss_weights=(1.0, -1.0)).validate()
