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
    # diffusion sampling and EMA (listed last: the slices above index __all__)
    "build_sampling_scheduler",
    "WeightsEMA",
    # forecasting model zoo (issue 9): shared training, 1-D CNNs, tabular models, augmentation
    "TrainingConfig",
    "FitResult",
    "count_parameters",
    "overfit_single_batch",
    "Conv1dConfig",
    "ReturnCNN1d",
    "load_conv1d",
    "predict_conv1d_proba",
    "save_conv1d",
    "train_conv1d",
    "GradientBoostingForecaster",
    "LogisticDirection",
    "RidgeForecaster",
    "tabular_features",
    "wavelet_features",
    "augment_windows",
]
_MODULE_OF = {
    **{name: "diffusion" for name in __all__[:8]},
    **{name: "classifier" for name in __all__[8:18]},
    **{name: "sequence" for name in __all__[18:26]},
    "Checkpointing": "checkpoint",
    **{name: "versions" for name in __all__[27:31]},
    "build_sampling_scheduler": "diffusion_sampling",
    "WeightsEMA": "ema",
    **dict.fromkeys(("TrainingConfig", "FitResult", "count_parameters", "overfit_single_batch"), "training"),
    **dict.fromkeys(("Conv1dConfig", "ReturnCNN1d", "load_conv1d", "predict_conv1d_proba", "save_conv1d",
                     "train_conv1d"), "conv1d"),
    **dict.fromkeys(("GradientBoostingForecaster", "LogisticDirection", "RidgeForecaster", "tabular_features",
                     "wavelet_features"), "tabular"),
    "augment_windows": "augment",
}

if TYPE_CHECKING:
    from wavefin_core.models.augment import augment_windows
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
    from wavefin_core.models.conv1d import (
        Conv1dConfig,
        ReturnCNN1d,
        load_conv1d,
        predict_conv1d_proba,
        save_conv1d,
        train_conv1d,
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
    from wavefin_core.models.diffusion_sampling import build_sampling_scheduler
    from wavefin_core.models.ema import WeightsEMA
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
    from wavefin_core.models.tabular import (
        GradientBoostingForecaster,
        LogisticDirection,
        RidgeForecaster,
        tabular_features,
        wavelet_features,
    )
    from wavefin_core.models.training import FitResult, TrainingConfig, count_parameters, overfit_single_batch
    from wavefin_core.models.versions import prune_versions, read_manifest, version_dir, write_manifest


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_MODULE_OF[name]}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return __all__
