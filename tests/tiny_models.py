"""Tiny random wav2vec 2.0 models, saved as Hugging Face folders and as fairseq-style `.pt` files.

The fairseq files carry the same weights under fairseq's key names (reference §7) and a config in
each historical format: a plain dict `cfg`, an argparse `args` (pre-Hydra), and a pickled omegaconf
DictConfig holding fairseq enum members. The omegaconf/fairseq classes are local look-alikes
registered under the real module names only while saving, so that the pickle records those names
while neither library is installed. The fairseq key names are written out here independently of
w2vu's own mapping, so a wrong rename in either place shows up as a mismatch.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

NUM_LAYERS = 4
HIDDEN = 32
CONV_DIM = 16
CONV_SPEC = f"[({CONV_DIM}, 10, 5)] + [({CONV_DIM}, 3, 2)] * 4 + [({CONV_DIM}, 2, 2)] * 2"
FINETUNED_PREFIX = "w2v_encoder.w2v_model."


def tiny_model(stable: bool, seed: int = 0):
    """A random Wav2Vec2Model: pre-LN + layer-norm CNN (large-style) or post-LN + group norm
    (base-style). Norm weights and biases are randomised too, so no rename can hide behind the
    default ones/zeros."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=HIDDEN, num_hidden_layers=NUM_LAYERS, num_attention_heads=2,
        intermediate_size=64, conv_dim=(CONV_DIM,) * 7, conv_bias=stable,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        do_stable_layer_norm=stable, feat_extract_norm="layer" if stable else "group",
    )
    torch.manual_seed(seed)
    model = Wav2Vec2Model(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
    return model


def save_hf(model, folder: Path, do_normalize: bool | None = True) -> Path:
    """The model as a Hugging Face folder (+ preprocessor_config.json unless None)."""
    model.save_pretrained(folder)
    if do_normalize is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps({
            "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
            "sampling_rate": 16000, "padding_value": 0.0, "do_normalize": do_normalize,
            "return_attention_mask": getattr(model.config, "feat_extract_norm", "layer") == "layer",
        }))
    return folder


def fairseq_state_dict(model) -> dict[str, torch.Tensor]:
    """The model's weights under fairseq wav2vec 2.0 pretraining names (+ heads fairseq has)."""
    hf = {k: v.detach().clone() for k, v in model.state_dict().items()}
    stable = model.config.do_stable_layer_norm
    sd: dict[str, torch.Tensor] = {}
    for i in range(7):
        sd[f"feature_extractor.conv_layers.{i}.0.weight"] = hf[
            f"feature_extractor.conv_layers.{i}.conv.weight"]
        if model.config.conv_bias:
            sd[f"feature_extractor.conv_layers.{i}.0.bias"] = hf[
                f"feature_extractor.conv_layers.{i}.conv.bias"]
        for p in ("weight", "bias"):
            if stable:
                sd[f"feature_extractor.conv_layers.{i}.2.1.{p}"] = hf[
                    f"feature_extractor.conv_layers.{i}.layer_norm.{p}"]
            elif i == 0:
                sd[f"feature_extractor.conv_layers.0.2.{p}"] = hf[
                    f"feature_extractor.conv_layers.0.layer_norm.{p}"]
    for p in ("weight", "bias"):
        sd[f"layer_norm.{p}"] = hf[f"feature_projection.layer_norm.{p}"]
        sd[f"post_extract_proj.{p}"] = hf[f"feature_projection.projection.{p}"]
        sd[f"encoder.layer_norm.{p}"] = hf[f"encoder.layer_norm.{p}"]
    pos = "encoder.pos_conv_embed.conv."
    sd["encoder.pos_conv.0.bias"] = hf[pos + "bias"]
    sd["encoder.pos_conv.0.weight_g"] = hf[pos + "parametrizations.weight.original0"]
    sd["encoder.pos_conv.0.weight_v"] = hf[pos + "parametrizations.weight.original1"]
    for n in range(NUM_LAYERS):
        src, dst = f"encoder.layers.{n}.", f"encoder.layers.{n}."
        for p in ("weight", "bias"):
            for proj in ("q", "k", "v", "out"):
                sd[f"{dst}self_attn.{proj}_proj.{p}"] = hf[f"{src}attention.{proj}_proj.{p}"]
            sd[f"{dst}self_attn_layer_norm.{p}"] = hf[f"{src}layer_norm.{p}"]
            sd[f"{dst}fc1.{p}"] = hf[f"{src}feed_forward.intermediate_dense.{p}"]
            sd[f"{dst}fc2.{p}"] = hf[f"{src}feed_forward.output_dense.{p}"]
            sd[f"{dst}final_layer_norm.{p}"] = hf[f"{src}final_layer_norm.{p}"]
    sd["mask_emb"] = hf["masked_spec_embed"]
    g = torch.Generator().manual_seed(1)
    sd["quantizer.vars"] = torch.randn(1, 8, 8, generator=g)
    sd["quantizer.weight_proj.weight"] = torch.randn(8, CONV_DIM, generator=g)
    sd["project_q.weight"] = torch.randn(8, 8, generator=g)
    sd["final_proj.weight"] = torch.randn(8, HIDDEN, generator=g)
    return sd


def fairseq_model_cfg(model) -> dict[str, Any]:
    """fairseq's Wav2Vec2Config fields for the tiny model (as a resolved plain dict)."""
    c = model.config
    return {
        "_name": "wav2vec2",
        "extractor_mode": "layer_norm" if c.feat_extract_norm == "layer" else "default",
        "encoder_layers": c.num_hidden_layers, "encoder_embed_dim": c.hidden_size,
        "encoder_ffn_embed_dim": c.intermediate_size,
        "encoder_attention_heads": c.num_attention_heads, "activation_fn": "gelu",
        "layer_type": "transformer", "dropout": 0.1, "final_dim": 8,
        "layer_norm_first": c.do_stable_layer_norm, "conv_feature_layers": CONV_SPEC,
        "conv_bias": c.conv_bias, "conv_pos": c.num_conv_pos_embeddings,
        "conv_pos_groups": c.num_conv_pos_embedding_groups, "latent_vars": 8,
    }


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread; with two, a busy machine makes every op wait."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


# --- look-alikes of the omegaconf / fairseq classes that a DictConfig-era checkpoint pickles ----

def _named(cls: type, module: str) -> type:
    cls.__module__ = module
    cls.__qualname__ = cls.__name__
    return cls


class _OmegaBase:
    def __getstate__(self) -> dict:  # omegaconf 2.0 pickles the instance __dict__
        return self.__dict__


class Metadata(_OmegaBase):
    def __init__(self, ref_type: Any = typing.Any, object_type: Any = None, key: Any = None):
        self.ref_type, self.object_type, self.optional, self.key = ref_type, object_type, True, key
        self.flags: dict = {}


class ContainerMetadata(Metadata):
    def __init__(self, object_type: Any = None, key: Any = None):
        super().__init__(typing.Any, object_type, key)
        self.key_type = typing.Any
        self.element_type = typing.Dict[str, typing.Any]  # noqa: UP006 (pickles operator.getitem)


class AnyNode(_OmegaBase):
    def __init__(self, value: Any, key: str, parent: Any = None):
        self._val, self._metadata, self._parent = value, Metadata(key=key), parent


class DictConfig(_OmegaBase):
    def __init__(self, content: dict, key: Any = None, object_type: Any = None):
        self._metadata = ContainerMetadata(object_type, key)
        self._parent = None
        self._content = {k: _wrap(v, k, self) for k, v in content.items()}


class ListConfig(_OmegaBase):
    def __init__(self, content: list, key: Any = None):
        self._metadata = ContainerMetadata(list, key)
        self._parent = None
        self._content = [_wrap(v, i, self) for i, v in enumerate(content)]


class FairseqWav2Vec2Config:  # only referenced as a class (Metadata.object_type)
    pass


Choices = enum.Enum("Choices", {"default": "default", "layer_norm": "layer_norm"},
                    module="fairseq.dataclass.constants", qualname="Choices")

_named(Metadata, "omegaconf.base")
_named(ContainerMetadata, "omegaconf.base")
_named(AnyNode, "omegaconf.nodes")
_named(DictConfig, "omegaconf.dictconfig")
_named(ListConfig, "omegaconf.listconfig")
_named(FairseqWav2Vec2Config, "fairseq.models.wav2vec.wav2vec2").__qualname__ = "Wav2Vec2Config"
FairseqWav2Vec2Config.__name__ = "Wav2Vec2Config"

_FAKE_MODULES = {
    "omegaconf": {}, "omegaconf.base": {"Metadata": Metadata,
                                        "ContainerMetadata": ContainerMetadata},
    "omegaconf.nodes": {"AnyNode": AnyNode}, "omegaconf.dictconfig": {"DictConfig": DictConfig},
    "omegaconf.listconfig": {"ListConfig": ListConfig},
    "fairseq": {}, "fairseq.dataclass": {}, "fairseq.dataclass.constants": {"Choices": Choices},
    "fairseq.models": {}, "fairseq.models.wav2vec": {},
    "fairseq.models.wav2vec.wav2vec2": {"Wav2Vec2Config": FairseqWav2Vec2Config},
}


def _wrap(value: Any, key: Any, parent: Any) -> Any:
    if isinstance(value, dict):
        node = DictConfig(value, key)
        node._parent = parent
        return node
    if isinstance(value, list):
        node = ListConfig(value, key)
        node._parent = parent
        return node
    return AnyNode(value, key, parent)


@contextmanager
def fake_fairseq_modules() -> Iterator[None]:
    """Register the look-alike modules so pickle can name them; remove them afterwards."""
    saved = {name: sys.modules.get(name) for name in _FAKE_MODULES}
    try:
        for name, attrs in _FAKE_MODULES.items():
            module = types.ModuleType(name)
            module.__dict__.update(attrs)
            sys.modules[name] = module
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


# --- checkpoints ----------------------------------------------------------------------------

ERAS = ("dict", "namespace", "dictconfig")


def _common_state(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    return {"model": sd, "criterion": None,
            "optimizer_history": [{"criterion_name": "Wav2vecCriterion",
                                   "optimizer_name": "FairseqAdam", "num_updates": 400000}],
            "task_state": {}, "extra_state": {"epoch": 3, "best": np.float64(1.5),
                            "val_losses": np.array([1.7, 1.5])},
            "last_optimizer_state": None}


def _pretraining_cfg(model, era: str, normalize: bool) -> Any:
    model_cfg = fairseq_model_cfg(model)
    task = {"_name": "audio_pretraining", "data": "/data", "normalize": normalize,
            "sample_rate": 16000}
    if era == "namespace":
        return argparse.Namespace(arch="wav2vec2", task="audio_pretraining", criterion="wav2vec",
                                  optimizer="adam", adam_betas="(0.9,0.98)", lr=[0.005],
                                  **{k: v for k, v in model_cfg.items() if k != "_name"},
                                  **{k: v for k, v in task.items() if k != "_name"})
    cfg = {"_name": None, "common": {"fp16": True, "log_interval": 200},
           "optimization": {"max_update": 400000, "lr": [0.005]}, "model": model_cfg,
           "task": task}
    if era == "dictconfig":
        model_cfg["extractor_mode"] = Choices(model_cfg["extractor_mode"])
        dc = DictConfig(cfg)
        dc._content["model"]._metadata.object_type = FairseqWav2Vec2Config
        return dc
    return cfg


def save_fairseq(model, path: Path, era: str = "dict", normalize: bool = True,
                 finetuned: bool = False) -> Path:
    """The model as a fairseq `.pt` (pretraining, or CTC fine-tuned with prefixed keys)."""
    sd = fairseq_state_dict(model)
    inner = _pretraining_cfg(model, era, normalize)
    if finetuned:
        sd = {FINETUNED_PREFIX + k: v for k, v in sd.items()}
        sd["w2v_encoder.proj.weight"] = torch.randn(10, HIDDEN)
        sd["w2v_encoder.proj.bias"] = torch.zeros(10)
    state = _common_state(sd)
    if era == "namespace":
        if finetuned:
            state["args"] = argparse.Namespace(arch="wav2vec_ctc", task="audio_pretraining",
                                               w2v_path="/ckpt/pretrained.pt", w2v_args=inner,
                                               normalize=normalize)
        else:
            state["args"] = inner
    else:
        state["args"] = None
        if finetuned:
            model_cfg = {"_name": "wav2vec_ctc", "w2v_path": "/ckpt/pretrained.pt",
                         "normalize": "${task.normalize}", "w2v_args": None}
            task = {"_name": "audio_finetuning", "normalize": normalize}
            outer = {"_name": None, "model": model_cfg, "task": task}
            if era == "dictconfig":
                outer_dc = DictConfig(outer)
                outer_dc._content["model"]._content["w2v_args"] = inner
                state["cfg"] = outer_dc
            else:
                model_cfg["w2v_args"] = inner
                state["cfg"] = outer
        else:
            state["cfg"] = inner
    with fake_fairseq_modules():
        torch.save(state, path)
    return path
