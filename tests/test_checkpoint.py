"""fairseq checkpoints: restricted unpickling, every config era, key renaming, HF conversion."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from tests.tiny_models import ERAS, NUM_LAYERS, one_torch_thread, save_fairseq, tiny_model
from w2vu.errors import W2vuError
from w2vu.features.checkpoint import (
    FairseqArch,
    convert_checkpoint,
    load_fairseq_checkpoint,
    parse_conv_layers,
    read_architecture,
)
from w2vu.features.fairseq_pickle import safe_load


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def stable_model():
    return tiny_model(stable=True)


@pytest.fixture(scope="module")
def post_ln_model():
    return tiny_model(stable=False, seed=1)


class _RunsCommand:
    """What a malicious checkpoint embeds: unpickling it would run a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').system('true')",))


@pytest.mark.parametrize("zipfile_format", [True, False])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path: Path, zipfile_format: bool):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "cfg": _RunsCommand(f"touch '{marker}'")}, path,
               _use_new_zipfile_serialization=zipfile_format)
    with pytest.raises(W2vuError, match=r"refusing to load .*evil\.pt: it asks to run "
                                         r"(posix|os)\.system, which a checkpoint never needs"):
        safe_load(path)
    assert not marker.exists()


def test_eval_in_pickle_is_refused(tmp_path: Path):
    path = tmp_path / "evil.pt"
    torch.save({"args": _Evals()}, path)
    with pytest.raises(W2vuError, match=r"builtins\.eval"):
        safe_load(path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_archive_is_refused(tmp_path: Path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(W2vuError, match="TorchScript"):
        safe_load(path)


def test_missing_file_names_it(tmp_path: Path):
    with pytest.raises(W2vuError, match="no such checkpoint"):
        safe_load(tmp_path / "nope.pt")


def expected_arch(model, normalize: bool) -> FairseqArch:
    c = model.config
    return FairseqArch(
        extractor_mode="layer_norm" if c.feat_extract_norm == "layer" else "default",
        conv_feature_layers=tuple(zip(c.conv_dim, c.conv_kernel, c.conv_stride)),
        conv_bias=c.conv_bias, encoder_layers=NUM_LAYERS, encoder_embed_dim=c.hidden_size,
        encoder_ffn_embed_dim=c.intermediate_size,
        encoder_attention_heads=c.num_attention_heads,
        layer_norm_first=c.do_stable_layer_norm, conv_pos=c.num_conv_pos_embeddings,
        conv_pos_groups=c.num_conv_pos_embedding_groups, activation_fn="gelu",
        normalize=normalize)


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("finetuned", [False, True])
def test_every_config_era_gives_the_architecture(tmp_path, stable_model, era, finetuned):
    path = save_fairseq(stable_model, tmp_path / "m.pt", era=era, normalize=finetuned,
                        finetuned=finetuned)
    # the look-alike omegaconf/fairseq modules exist only while saving
    assert "omegaconf" not in sys.modules and "fairseq" not in sys.modules
    arch = read_architecture(safe_load(path), str(path))
    assert arch == expected_arch(stable_model, normalize=finetuned)
    assert "omegaconf" not in sys.modules and "fairseq" not in sys.modules


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("finetuned", [False, True])
def test_weights_land_on_the_transformers_names(tmp_path, post_ln_model, era, finetuned):
    path = save_fairseq(post_ln_model, tmp_path / "m.pt", era=era, finetuned=finetuned)
    loaded = load_fairseq_checkpoint(path)
    want, got = post_ln_model.state_dict(), loaded.model.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():
        assert torch.equal(got[key], value), key
    assert loaded.model.config.feat_extract_norm == "group"
    assert not loaded.model.config.do_stable_layer_norm


def test_convert_checkpoint_round_trip(tmp_path, stable_model):
    from transformers import Wav2Vec2Model

    pt = save_fairseq(stable_model, tmp_path / "m.pt", era="dictconfig", normalize=True)
    out = convert_checkpoint(pt, tmp_path / "hf")
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "model.safetensors", "preprocessor_config.json"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    pre = json.loads((out / "preprocessor_config.json").read_text())
    assert pre["do_normalize"] is True and pre["return_attention_mask"] is True
    reloaded = Wav2Vec2Model.from_pretrained(out, local_files_only=True)
    want, got = stable_model.state_dict(), reloaded.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():
        assert torch.equal(got[key], value), key
    assert reloaded.config.do_stable_layer_norm and reloaded.config.feat_extract_norm == "layer"


def test_conv_layers_parsed_without_eval():
    spec = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2"
    assert parse_conv_layers(spec, "x") == ((512, 10, 5),) + ((512, 3, 2),) * 4 + (
        (512, 2, 2),) * 2
    with pytest.raises(W2vuError, match="conv_feature_layers"):
        parse_conv_layers("__import__('os').system('true')", "x.pt")


def test_other_fairseq_models_are_named(tmp_path):
    state = {"cfg": {"model": {"_name": "hubert"}, "task": {}}, "model": {}}
    with pytest.raises(W2vuError, match="'hubert'"):
        read_architecture(state, "h.pt")
    with pytest.raises(W2vuError, match="no 'cfg' or 'args'"):
        read_architecture({"model": {}}, "bare.pt")
