"""The on-disk format of the neural direction classifiers (conv1d, sequence, scalogram classifier).

The wrappers share one save/load pair (`training.save_model` / `load_model`); these tests pin what they write
(file names, config.json keys, the safetensors `format` metadata) and that a directory written by hand in that
layout, as wavefin wrote it before the pair existed, still loads with the very same weights.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from wavefin_core.errors import DataError
from wavefin_core.models.classifier import (
    ClassifierConfig,
    build_classifier,
    load_classifier,
    save_classifier,
)
from wavefin_core.models.conv1d import Conv1dConfig, build_conv1d, load_conv1d, save_conv1d
from wavefin_core.models.sequence import (
    ReturnLSTM,
    SequenceConfig,
    load_sequence_classifier,
    save_sequence_classifier,
)

SHAPE = (2, 6, 16)


def _conv1d():
    cfg = Conv1dConfig(arch="cnn1d_attention", channels=(4,), num_heads=2)
    model = build_conv1d(cfg, 3)
    meta = {"format": "wavefin-conv1d-classifier", "format_version": 1, "arch": cfg.arch, "config": cfg.to_dict(),
            "n_outputs": 3, "extra": {"horizon": 1}}
    return model, cfg, meta, partial(save_conv1d, model, cfg, extra={"horizon": 1}), load_conv1d


def _sequence():
    cfg = SequenceConfig(hidden_size=4, denoise_level=2)
    model = ReturnLSTM(cfg.hidden_size, cfg.num_layers, cfg.dropout, 2)
    meta = {"format": "wavefin-sequence-classifier", "format_version": 1, "arch": "haar-lstm",
            "config": cfg.to_dict(), "n_outputs": 2, "extra": {"horizon": 1}}
    save = partial(save_sequence_classifier, model, cfg, extra={"horizon": 1})
    return model, cfg, meta, save, load_sequence_classifier


def _classifier():
    cfg = ClassifierConfig(arch="vit", patch_size=4, embed_dim=8, depth=1, num_heads=2)
    model = build_classifier(cfg, SHAPE, 2, n_indicators=3)
    meta = {"format": "wavefin-classifier", "format_version": 1, "arch": "vit", "config": cfg.to_dict(),
            "input_shape": list(SHAPE), "n_outputs": 2, "n_indicators": 3, "extra": {"horizon": 1}}
    return model, cfg, meta, partial(save_classifier, model, cfg, SHAPE, extra={"horizon": 1}), load_classifier


WRAPPERS = {"conv1d": _conv1d, "sequence": _sequence, "classifier": _classifier}


def _write_by_hand(directory: Path, model: torch.nn.Module, meta: dict) -> None:
    directory.mkdir()
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": meta["format"]})
    (directory / "config.json").write_text(json.dumps(meta, indent=2))


def _assert_same_weights(loaded: torch.nn.Module, original: torch.nn.Module) -> None:
    expected = original.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name  # the same bytes read back: exact


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_saved_files_keep_their_names_keys_and_format(wrapper, tmp_path):
    model, cfg, old_meta, save, load = WRAPPERS[wrapper]()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5)  # not the init weights: a loader that rebuilt without loading would differ
    save(tmp_path / "new")
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["config.json", "model.safetensors"]
    written = json.loads((tmp_path / "new" / "config.json").read_text())
    assert written == old_meta
    with safe_open(str(tmp_path / "new" / "model.safetensors"), "pt") as handle:
        assert handle.metadata() == {"format": old_meta["format"]}

    _write_by_hand(tmp_path / "old", model, old_meta)
    loaded, loaded_cfg, meta = load(tmp_path / "old")
    assert loaded_cfg == cfg and not loaded.training and meta["extra"] == {"horizon": 1}
    _assert_same_weights(loaded, model)


def test_a_classifier_saved_before_the_indicator_head_still_loads(tmp_path):
    cfg = ClassifierConfig(channels=(4,))
    model = build_classifier(cfg, SHAPE, 2)
    old_meta = {"format": "wavefin-classifier", "format_version": 1, "arch": "cnn", "config": cfg.to_dict(),
                "input_shape": list(SHAPE), "n_outputs": 2, "extra": {}}
    _write_by_hand(tmp_path / "old", model, old_meta)
    (tmp_path / "old" / "model.safetensors").unlink()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("indicators.")}
    save_file(state, str(tmp_path / "old" / "model.safetensors"), metadata={"format": "wavefin-classifier"})

    loaded, _, meta = load_classifier(tmp_path / "old")
    assert meta["input_shape"] == SHAPE  # a tuple again
    _assert_same_weights(loaded, model)


def test_a_newer_format_or_another_models_directory_is_refused(tmp_path):
    model, _, meta, _, _ = _conv1d()
    _write_by_hand(tmp_path / "newer", model, {**meta, "format_version": 2})
    with pytest.raises(DataError, match="up to version 1"):
        load_conv1d(tmp_path / "newer")
    with pytest.raises(DataError, match="'wavefin-sequence-classifier'"):
        load_sequence_classifier(tmp_path / "newer")
    with pytest.raises(DataError, match="model.safetensors missing"):
        load_classifier(tmp_path)
