"""An exponential moving average (EMA) of a model's weights, the copy diffusion models sample from.

Why: the weights of a diffusion UNet wander step to step with the noise of its minibatches (random timesteps and
noise on top of random windows); sampling from their running average gives smoother, better samples at no
training cost. Why our own 30 lines instead of diffusers' `EMAModel`: its state dict carries Python objects that
our safetensors + JSON checkpoints would have to special-case, and resuming must be bitwise exact.

The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so a short run (tests, the quick profile)
is not dominated by the random initial weights.
"""

from __future__ import annotations

import copy

import torch

from wavefin_core.errors import ConfigError


class WeightsEMA:
    """Keeps `shadow`, a frozen copy of `model` whose parameters track their EMA; buffers are copied as they are."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"ema_decay={decay!r} must be in (0, 1), e.g. 0.999; set it to None to switch EMA off.")
        self.decay = float(decay)
        self.updates = 0
        self.shadow = copy.deepcopy(model).eval()
        self.shadow.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update uses (warm-up: a young average forgets its start faster)."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """shadow <- decay * shadow + (1 - decay) * model, after an optimizer step."""
        weight = 1.0 - self.current_decay()
        for shadow, live in zip(self.shadow.parameters(), model.parameters(), strict=True):
            shadow.lerp_(live.detach(), weight)
        for shadow, live in zip(self.shadow.buffers(), model.buffers(), strict=True):
            shadow.copy_(live)
        self.updates += 1

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The shadow weights, named like the model's state dict (for checkpoints)."""
        return dict(self.shadow.state_dict())

    def load_state(self, tensors: dict[str, torch.Tensor], updates: int) -> None:
        """Restore what `state_tensors` and `updates` held (resuming a checkpoint)."""
        self.shadow.load_state_dict(tensors)
        self.updates = int(updates)
