"""Pick the torch device a training or sampling step runs on."""

from __future__ import annotations

import torch

from wavefin_core.errors import ConfigError


def pick_device(preference: str = "auto") -> torch.device:
    """Return the device for `preference`: "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N".

    Asking for CUDA on a machine without it is a configuration mistake, so it raises instead of silently
    falling back: a run that was meant for a GPU should not quietly take hours on a CPU.
    """
    pref = preference.strip().lower()
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={preference!r} but CUDA is not available on this machine; use device='auto' or 'cpu'."
            )
        return torch.device(pref)
    raise ConfigError(f"device={preference!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N'.")
