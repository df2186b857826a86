"""fairseq wav2vec 2.0 checkpoints (`.pt`) without fairseq, and without trusting the pickle.

A fairseq checkpoint is a pickle; `fairseq_pickle.py` reads it without running anything it names.

The architecture comes from the checkpoint's own config (`cfg['model']`, or `args` for checkpoints
from before Hydra); the weights are renamed onto transformers' `Wav2Vec2Model`, so the rest of the
pipeline has one model implementation (see reference §7 for the key names and config formats).
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from w2vu.errors import W2vuError
from w2vu.features.fairseq_pickle import safe_load, to_plain
from w2vu.io.atomic import atomic_dir

if TYPE_CHECKING:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

log = logging.getLogger(__name__)

FINETUNED_PREFIX = "w2v_encoder.w2v_model."

# ---------------------------------------------------------------------------------------------
# Architecture


@dataclass(frozen=True)
class FairseqArch:
    """The wav2vec 2.0 hyper-parameters that fix the shapes and the computation."""

    extractor_mode: str = "default"
    conv_feature_layers: tuple[tuple[int, int, int], ...] = (
        ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2)
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    layer_norm_first: bool = False
    conv_pos: int = 128
    conv_pos_groups: int = 16
    activation_fn: str = "gelu"
    normalize: bool = False  # the task's waveform normalisation

    @property
    def num_samples_per_frame(self) -> int:
        step = 1
        for _, _, stride in self.conv_feature_layers:
            step *= stride
        return step


# fairseq activation names → transformers ACT2FN names
_ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "gelu_accurate": "gelu_new",
                "gelu_fast": "gelu_new", "tanh": "tanh", "linear": "linear", "swish": "swish"}


def parse_conv_layers(spec: Any, source: str) -> tuple[tuple[int, int, int], ...]:
    """fairseq's `conv_feature_layers` string, e.g. "[(512,10,5)] + [(512,3,2)] * 4", parsed
    without eval(): only list/tuple literals of ints, `+` and `*` are accepted."""
    if isinstance(spec, (list, tuple)):
        value: Any = spec
    else:
        try:
            value = _eval_list_expr(ast.parse(str(spec), mode="eval").body)
        except (SyntaxError, ValueError) as e:
            raise W2vuError(f"{source}: cannot read conv_feature_layers {spec!r} ({e}); "
                            "the checkpoint is not a wav2vec 2.0 model") from e
    try:
        layers = tuple((int(c), int(k), int(s)) for c, k, s in value)
    except (TypeError, ValueError) as e:
        raise W2vuError(f"{source}: conv_feature_layers {spec!r} is not a list of "
                        "(dim, kernel, stride) triples") from e
    if not layers:
        raise W2vuError(f"{source}: conv_feature_layers {spec!r} is empty")
    return layers


def _eval_list_expr(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_eval_list_expr(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        left, right = _eval_list_expr(node.left), _eval_list_expr(node.right)
        if isinstance(node.op, ast.Add) and isinstance(left, list) and isinstance(right, list):
            return left + right
        if isinstance(node.op, ast.Mult) and isinstance(left, list) and isinstance(right, int):
            if not 0 <= right <= 1000:
                raise ValueError("repeat count out of range")
            return left * right
    raise ValueError(f"unsupported expression {ast.dump(node)[:60]}")


_INTERPOLATION = re.compile(r"^\$\{([\w.]+)\}$")


def _resolve(value: Any, root: Mapping[str, Any]) -> Any:
    """Resolve a whole-value omegaconf interpolation such as "${task.normalize}"."""
    for _ in range(10):
        m = _INTERPOLATION.match(value) if isinstance(value, str) else None
        if not m:
            return value
        node: Any = root
        for part in m.group(1).split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        value = node
    return value


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _model_task_root(state: Mapping[str, Any], source: str) -> tuple[dict, dict, dict]:
    """The pretraining model config, task config and the root they may interpolate from."""
    cfg = to_plain(state.get("cfg"))
    if isinstance(cfg, Mapping) and isinstance(cfg.get("model"), Mapping):
        root, model, task = cfg, cfg["model"], cfg.get("task") or {}
    elif state.get("args") is not None:
        root = to_plain(state["args"])
        if not isinstance(root, Mapping):
            raise W2vuError(f"{source}: 'args' is not a namespace; not a fairseq checkpoint")
        model = task = root
    else:
        raise W2vuError(f"{source}: no 'cfg' or 'args' entry, so the architecture is unknown; "
                        "is this a fairseq checkpoint (not a bare state dict)?")
    w2v_args = model.get("w2v_args")
    if w2v_args is not None:  # a fine-tuned model: the pretraining config is nested
        inner = to_plain(w2v_args)
        outer_task = task
        if isinstance(inner, Mapping) and isinstance(inner.get("model"), Mapping):
            root, model, task = inner, inner["model"], inner.get("task") or {}
        elif isinstance(inner, Mapping):
            root = model = task = inner
        if "normalize" not in task and "normalize" in outer_task:
            task = {**task, "normalize": outer_task["normalize"]}
    elif str(model.get("_name", model.get("arch", ""))).startswith("wav2vec_ctc"):
        raise W2vuError(f"{source}: a fine-tuned checkpoint without w2v_args; load the "
                        "pretraining checkpoint it names in w2v_path instead")
    return dict(model), dict(task), dict(root)


def read_architecture(state: Mapping[str, Any], source: str = "<checkpoint>") -> FairseqArch:
    """The architecture of a fairseq wav2vec 2.0 checkpoint from any of its config formats."""
    model, task, root = _model_task_root(state, source)
    name = str(model.get("_name") or model.get("arch") or "wav2vec2")
    if not (name.startswith("wav2vec2") or name.startswith("wav2vec_ctc")):
        raise W2vuError(f"{source}: a fairseq '{name}' model; only wav2vec 2.0 checkpoints "
                        "(pretrained or CTC fine-tuned) load from .pt; convert others to a "
                        "Hugging Face folder and pass that")
    layer_type = _resolve(model.get("layer_type", "transformer"), root)
    if layer_type not in (None, "transformer"):
        raise W2vuError(f"{source}: layer_type '{layer_type}' is not supported (only the "
                        "standard transformer wav2vec 2.0); use a Hugging Face folder")
    if int(_resolve(model.get("pos_conv_depth", 1), root) or 1) != 1:
        raise W2vuError(f"{source}: pos_conv_depth > 1 is not a wav2vec 2.0 layout")
    defaults = FairseqArch()

    def get(key: str, default: Any) -> Any:
        value = _resolve(model.get(key), root)
        return default if value is None else value

    activation = str(get("activation_fn", defaults.activation_fn))
    if activation not in _ACTIVATIONS:
        raise W2vuError(f"{source}: unknown activation_fn '{activation}'")
    mode = str(get("extractor_mode", defaults.extractor_mode))
    if mode not in ("default", "layer_norm"):
        raise W2vuError(f"{source}: unknown extractor_mode '{mode}'")
    return FairseqArch(
        extractor_mode=mode,
        conv_feature_layers=parse_conv_layers(
            get("conv_feature_layers", defaults.conv_feature_layers), source),
        conv_bias=_as_bool(get("conv_bias", defaults.conv_bias)),
        encoder_layers=int(get("encoder_layers", defaults.encoder_layers)),
        encoder_embed_dim=int(get("encoder_embed_dim", defaults.encoder_embed_dim)),
        encoder_ffn_embed_dim=int(get("encoder_ffn_embed_dim", defaults.encoder_ffn_embed_dim)),
        encoder_attention_heads=int(get("encoder_attention_heads",
                                        defaults.encoder_attention_heads)),
        layer_norm_first=_as_bool(get("layer_norm_first", defaults.layer_norm_first)),
        conv_pos=int(get("conv_pos", defaults.conv_pos)),
        conv_pos_groups=int(get("conv_pos_groups", defaults.conv_pos_groups)),
        activation_fn=activation,
        normalize=_as_bool(_resolve(task.get("normalize", False), root)),
    )


def hf_config(arch: FairseqArch, with_mask_emb: bool = True) -> Wav2Vec2Config:
    """The transformers config that computes what the fairseq model computes."""
    from transformers import Wav2Vec2Config

    dims, kernels, strides = zip(*arch.conv_feature_layers)
    return Wav2Vec2Config(
        hidden_size=arch.encoder_embed_dim,
        num_hidden_layers=arch.encoder_layers,
        num_attention_heads=arch.encoder_attention_heads,
        intermediate_size=arch.encoder_ffn_embed_dim,
        hidden_act=_ACTIVATIONS[arch.activation_fn],
        conv_dim=list(dims), conv_kernel=list(kernels), conv_stride=list(strides),
        conv_bias=arch.conv_bias,
        feat_extract_norm="layer" if arch.extractor_mode == "layer_norm" else "group",
        feat_extract_activation="gelu",
        num_conv_pos_embeddings=arch.conv_pos,
        num_conv_pos_embedding_groups=arch.conv_pos_groups,
        do_stable_layer_norm=arch.layer_norm_first,
        layer_norm_eps=1e-5,
        mask_time_prob=0.05 if with_mask_emb else 0.0,
        architectures=["Wav2Vec2Model"],
    )


# ---------------------------------------------------------------------------------------------
# State-dict renaming

_RENAMES = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)",
     r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)",  # layer_norm mode
     r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)",  # default mode: GroupNorm
     r"feature_extractor.conv_layers.0.layer_norm.\1"),
    (r"layer_norm\.(weight|bias)", r"feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"feature_projection.projection.\1"),
    (r"encoder\.pos_conv\.0\.bias", r"encoder.pos_conv_embed.conv.bias"),
    (r"encoder\.pos_conv\.0\.(?:weight_g|parametrizations\.weight\.original0)", "<pos_g>"),
    (r"encoder\.pos_conv\.0\.(?:weight_v|parametrizations\.weight\.original1)", "<pos_v>"),
    (r"encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.(weight|bias)",
     r"encoder.layers.\1.attention.\2_proj.\3"),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)",
     r"encoder.layers.\1.layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)",
     r"encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)",
     r"encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)",
     r"encoder.layers.\1.final_layer_norm.\2"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (r"mask_emb", "masked_spec_embed"),
]
_RENAMES_COMPILED = [(re.compile(p + "$"), r) for p, r in _RENAMES]
# Parts of the pretraining objective or the CTC head: not needed for features.
_DROPPED = re.compile(r"^(quantizer|project_q|final_proj|target_glu|project_inp|input_quantizer)\b")


def hf_key(key: str) -> str | None:
    """The transformers name of a fairseq (prefix-stripped) parameter; None if not needed."""
    for pattern, repl in _RENAMES_COMPILED:
        if pattern.match(key):
            return pattern.sub(repl, key)
    return None


def strip_finetuned_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The wav2vec 2.0 weights of a pretraining or CTC fine-tuned state dict, without prefix."""
    if any(k.startswith(FINETUNED_PREFIX) for k in state_dict):
        return {k[len(FINETUNED_PREFIX):]: v for k, v in state_dict.items()
                if k.startswith(FINETUNED_PREFIX)}
    return dict(state_dict)


def fairseq_to_hf_state_dict(state_dict: Mapping[str, torch.Tensor], pos_g: str, pos_v: str,
                             source: str = "<checkpoint>") -> dict[str, torch.Tensor]:
    """Rename fairseq wav2vec 2.0 weights to transformers names (pos-conv names given)."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in strip_finetuned_prefix(state_dict).items():
        new = hf_key(key)
        if new is None:
            if not _DROPPED.match(key):
                unknown.append(key)
            continue
        out[{"<pos_g>": pos_g, "<pos_v>": pos_v}.get(new, new)] = value
    if unknown:
        raise W2vuError(f"{source}: weights this loader does not know: {unknown[:5]}"
                        f"{' ...' if len(unknown) > 5 else ''}; not a standard wav2vec 2.0 "
                        "model (convert it to a Hugging Face folder with its own tools)")
    return out


# ---------------------------------------------------------------------------------------------
# Public entry points


@dataclass
class LoadedCheckpoint:
    """A fairseq checkpoint as a transformers model plus the waveform-normalisation flag."""

    model: Wav2Vec2Model
    arch: FairseqArch

    @property
    def normalize(self) -> bool:
        return self.arch.normalize


def load_fairseq_checkpoint(path: str | os.PathLike) -> LoadedCheckpoint:
    """A fairseq wav2vec 2.0 `.pt` (pretraining or CTC fine-tuned) as an eval-mode HF model."""
    from transformers import Wav2Vec2Model

    source = str(path)
    state = safe_load(path)
    if not isinstance(state, Mapping) or not isinstance(state.get("model"), Mapping):
        raise W2vuError(f"{source}: no 'model' state dict; not a fairseq checkpoint")
    arch = read_architecture(state, source)
    fairseq_sd = strip_finetuned_prefix(state["model"])
    if "encoder.layers.0.self_attn.q_proj.weight" not in fairseq_sd:
        raise W2vuError(f"{source}: no wav2vec 2.0 transformer weights "
                        "(encoder.layers.0.self_attn.*) in the state dict")
    config = hf_config(arch, with_mask_emb="mask_emb" in fairseq_sd)
    with torch.device("meta"):
        model = Wav2Vec2Model(config)
    pos = "encoder.pos_conv_embed.conv."
    if pos + "parametrizations.weight.original0" in model.state_dict():  # torch weight_norm 2.x
        pos_g = pos + "parametrizations.weight.original0"
        pos_v = pos + "parametrizations.weight.original1"
    else:
        pos_g, pos_v = pos + "weight_g", pos + "weight_v"
    hf_sd = fairseq_to_hf_state_dict(fairseq_sd, pos_g, pos_v, source)
    if "feature_projection.projection.weight" not in hf_sd:  # fairseq skips an identity projection
        dim = arch.encoder_embed_dim
        hf_sd["feature_projection.projection.weight"] = torch.eye(dim)
        hf_sd["feature_projection.projection.bias"] = torch.zeros(dim)
    hf_sd = {k: v.float() if v.is_floating_point() else v for k, v in hf_sd.items()}
    try:
        model.load_state_dict(hf_sd, strict=True, assign=True)
    except RuntimeError as e:
        raise W2vuError(f"{source}: the weights do not match the architecture in its config "
                        f"({str(e)[:300]})") from e
    return LoadedCheckpoint(model=model.eval(), arch=arch)


def convert_checkpoint(pt_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write a fairseq wav2vec 2.0 `.pt` as a Hugging Face folder (config.json,
    model.safetensors, preprocessor_config.json with do_normalize = task.normalize)."""
    loaded = load_fairseq_checkpoint(pt_path)
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        loaded.model.save_pretrained(tmp, safe_serialization=True)
        (tmp / "preprocessor_config.json").write_text(json.dumps(
            preprocessor_config(loaded.arch.normalize,
                                loaded.model.config.feat_extract_norm == "layer"),
            indent=2) + "\n", encoding="utf-8")
    log.info("converted %s → %s (%d layers, dim %d, normalize=%s)", pt_path, out,
             loaded.arch.encoder_layers, loaded.arch.encoder_embed_dim, loaded.arch.normalize)
    return out


def preprocessor_config(do_normalize: bool, return_attention_mask: bool) -> dict[str, Any]:
    """What transformers' Wav2Vec2FeatureExtractor reads from preprocessor_config.json."""
    return {
        "feature_extractor_type": "Wav2Vec2FeatureExtractor",
        "feature_size": 1,
        "sampling_rate": 16000,
        "padding_side": "right",
        "padding_value": 0.0,
        "do_normalize": bool(do_normalize),
        "return_attention_mask": bool(return_attention_mask),
    }
