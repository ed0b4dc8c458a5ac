"""Deep models: a diffusion generator (diffusers UNet), scalogram direction classifiers (CNN, ViT) and LSTM
direction classifiers on return windows (plain and Haar-denoised).

Exports are resolved lazily (PEP 562): importing diffusers costs seconds, and code that only needs the
classifiers, or only lists assets (every Dagster process start), should not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    # diffusion
    "DiffusionConfig",
    "DiffusionResult",
    "build_unet",
    "load_diffusion",
    "padded_size",
    "sample_diffusion",
    "save_diffusion",
    "train_diffusion",
    # classifier
    "ClassifierConfig",
    "ClassifierResult",
    "ScalogramCNN",
    "ScalogramViT",
    "build_classifier",
    "class_weights",
    "load_classifier",
    "predict_proba",
    "save_classifier",
    "train_classifier",
    # sequence
    "ReturnLSTM",
    "SequenceConfig",
    "SequenceResult",
    "load_sequence_classifier",
    "predict_sequence_proba",
    "prepare_sequences",
    "save_sequence_classifier",
    "train_sequence_classifier",
    # checkpoint
    "Checkpointing",
    # versions
    "prune_versions",
    "read_manifest",
    "version_dir",
    "write_manifest",
]
_MODULE_OF = {
    **{name: "diffusion" for name in __all__[:8]},
    **{name: "classifier" for name in __all__[8:18]},
    **{name: "sequence" for name in __all__[18:26]},
    "Checkpointing": "checkpoint",
    **{name: "versions" for name in __all__[27:]},
}

if TYPE_CHECKING:
    from wavefin_core.models.checkpoint import Checkpointing
    from wavefin_core.models.classifier import (
        ClassifierConfig,
        ClassifierResult,
        ScalogramCNN,
        ScalogramViT,
        build_classifier,
        class_weights,
        load_classifier,
        predict_proba,
        save_classifier,
        train_classifier,
    )
    from wavefin_core.models.diffusion import (
        DiffusionConfig,
        DiffusionResult,
        build_unet,
        load_diffusion,
        padded_size,
        sample_diffusion,
        save_diffusion,
        train_diffusion,
    )
    from wavefin_core.models.sequence import (
        ReturnLSTM,
        SequenceConfig,
        SequenceResult,
        load_sequence_classifier,
        predict_sequence_proba,
        prepare_sequences,
        save_sequence_classifier,
        train_sequence_classifier,
    )
    from wavefin_core.models.versions import prune_versions, read_manifest, version_dir, write_manifest


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_MODULE_OF[name]}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return __all__
