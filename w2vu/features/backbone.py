"""SSL backbones that return fairseq `layer=L` features: the output of transformer block L+1.

fairseq's `layer=L` (0-based) stops after block index L and does not apply the final encoder
LayerNorm of pre-LN ("stable layer norm") models (reference §7). The model is therefore cut to its
first L+1 blocks and that final norm is replaced by the identity: the last hidden state of the cut
model is the wanted layer, and the blocks after it are never computed (or even loaded).

Both a local Hugging Face folder (wav2vec 2.0, XLS-R, MMS, HuBERT, WavLM, data2vec-audio) and a
fairseq wav2vec 2.0 `.pt` (through `checkpoint.py`) give the same `SslBackbone`.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from w2vu.audio import SAMPLE_RATE
from w2vu.errors import W2vuError
from w2vu.io.torch_files import load_failure

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
NORM_EPS = 1e-5  # fairseq normalises the waveform with F.layer_norm (eps 1e-5)


@runtime_checkable
class Backbone(Protocol):
    """What feature extraction needs from a front end (SSL model or MFCC)."""

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        ...

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        ...

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a 16 kHz waveform of `num_samples` samples."""
        ...

    def extract(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per waveform (16 kHz float32), a float32 [num_frames(len), dim] array."""
        ...


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` = the GPU when there is one; asking for CUDA without one is a user error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise W2vuError(f"device '{device}' requested but torch sees no CUDA GPU; "
                        "use device 'cpu' (or 'auto')")
    return dev


def conv_frames(num_samples: int, kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Output length of a stack of unpadded 1-D convolutions (0 when the input is too short)."""
    n = int(num_samples)
    for k, s in zip(kernels, strides):
        if n < k:
            return 0
        n = (n - k) // s + 1
    return n


def cnn_norm(config: Any) -> str:
    """"layer" (per-frame LayerNorm) or "group" (GroupNorm over time) in the CNN front end;
    data2vec-audio has no setting because it always uses LayerNorm."""
    norm = getattr(config, "feat_extract_norm", None)
    if norm is None:
        return "layer" if getattr(config, "model_type", "") == "data2vec-audio" else "group"
    return str(norm)


def padding_is_exact(config: Any) -> bool:
    """Whether zero-padding + attention mask leaves every utterance's features unchanged.

    Not with a GroupNorm CNN (it normalises over time, padding included), and not with
    data2vec-audio's stack of positional convolutions (padded frames turn non-zero after the
    first one and leak into the last real frames); there, utterances go one at a time.
    """
    return cnn_norm(config) == "layer" and getattr(config, "model_type", "") != "data2vec-audio"


def truncate_to_layer(model: PreTrainedModel, layer: int, source: str = "<model>") -> None:
    """Keep blocks 0..layer and drop what follows them (final pre-LN norm, adapter), in place."""
    encoder = getattr(model, "encoder", None)
    blocks = getattr(encoder, "layers", None)
    if not isinstance(blocks, torch.nn.ModuleList):
        raise W2vuError(f"{source}: {type(model).__name__} has no encoder.layers; not a "
                        f"supported SSL model ({', '.join(SUPPORTED_MODEL_TYPES)})")
    check_layer(layer, len(blocks), source)
    encoder.layers = blocks[: layer + 1]
    if getattr(model.config, "do_stable_layer_norm", False):
        encoder.layer_norm = torch.nn.Identity()  # fairseq skips it when layer is given
    if getattr(model, "adapter", None) is not None:
        model.adapter = None
    model.config.num_hidden_layers = layer + 1


def check_layer(layer: int, num_blocks: int, source: str) -> None:
    """fairseq numbering: layer L is the output of block L+1, so L runs 0..num_blocks-1."""
    if not 0 <= int(layer) < num_blocks:
        raise W2vuError(f"{source}: layer {layer} does not exist: the model has {num_blocks} "
                        f"transformer blocks, so layer must be 0..{num_blocks - 1} (fairseq "
                        "numbering: layer L = output of block L+1; wav2vec-U uses 14 for "
                        "24-block models)")


class SslBackbone:
    """A (truncated) transformers SSL model that yields layer-L features."""

    def __init__(self, model: PreTrainedModel, layer: int, normalize: bool,
                 device: str | torch.device = "auto", bf16: bool = True, tf32: bool = True,
                 max_batch_samples: int | None = None, source: str = "<model>") -> None:
        truncate_to_layer(model, layer, source)
        self.layer = int(layer)
        self.normalize = bool(normalize)  # waveform zero-mean/unit-variance; the caller may flip it
        self.device = resolve_device(device)
        self.bf16 = bf16
        self.tf32 = tf32
        self.max_batch_samples = max_batch_samples
        self.source = source
        self.model = model.to(self.device).eval()
        cfg = model.config
        self._kernels, self._strides = list(cfg.conv_kernel), list(cfg.conv_stride)
        self._dim = int(cfg.hidden_size)
        self.batched = padding_is_exact(cfg)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def frame_rate(self) -> float:
        return SAMPLE_RATE / float(np.prod(self._strides))

    def num_frames(self, num_samples: int) -> int:
        return conv_frames(num_samples, self._kernels, self._strides)

    def extract(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        arrays = [_as_wave(w) for w in waves]
        frames = [self.num_frames(len(w)) for w in arrays]
        out = [np.zeros((0, self.dim), np.float32) for _ in arrays]
        todo = [i for i, n in enumerate(frames) if n > 0]
        with torch.inference_mode(), self._precision():
            for group in self._groups(todo, arrays):
                feats = self._forward([arrays[i] for i in group])
                for row, i in enumerate(group):
                    if feats.shape[1] < frames[i]:
                        raise RuntimeError(f"model gave {feats.shape[1]} frames for "
                                           f"{len(arrays[i])} samples, expected {frames[i]}")
                    out[i] = feats[row, : frames[i]].float().cpu().numpy()
        return out

    def _groups(self, todo: list[int], arrays: list[np.ndarray]) -> Iterator[list[int]]:
        """Batches of similar length (bounded padded size), or one utterance at a time."""
        if not self.batched:
            yield from ([i] for i in todo)
            return
        group: list[int] = []
        for i in sorted(todo, key=lambda i: len(arrays[i])):
            limit = self.max_batch_samples
            if group and limit is not None and len(arrays[i]) * (len(group) + 1) > limit:
                yield group
                group = []
            group.append(i)
        if group:
            yield group

    def _forward(self, waves: list[np.ndarray]) -> torch.Tensor:
        lengths = [len(w) for w in waves]
        x = torch.zeros(len(waves), max(lengths), device=self.device)
        for row, w in enumerate(waves):
            t = torch.from_numpy(w).to(self.device)
            x[row, : len(w)] = F.layer_norm(t, t.shape, eps=NORM_EPS) if self.normalize else t
        mask = None
        if len(waves) > 1 and min(lengths) < max(lengths):
            positions = torch.arange(max(lengths), device=self.device)
            mask = (positions[None, :] < torch.tensor(lengths, device=self.device)[:, None]).long()
        return self.model(x, attention_mask=mask).last_hidden_state

    @contextmanager
    def _precision(self) -> Iterator[None]:
        """bf16 autocast and TF32 matmuls on the GPU only, restored afterwards."""
        if self.device.type != "cuda":
            yield
            return
        previous = torch.get_float32_matmul_precision()
        if self.tf32:
            torch.set_float32_matmul_precision("high")
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else nullcontext())
        try:
            with autocast:
                yield
        finally:
            torch.set_float32_matmul_precision(previous)


def _as_wave(wave: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(wave, dtype=np.float32)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {arr.shape}")
    return arr


@contextmanager
def _offline_quiet() -> Iterator[None]:
    """No network (HF_HUB_OFFLINE) and no progress bars/unused-weight chatter while loading."""
    saved_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    import huggingface_hub.constants as hub_constants
    from transformers.utils import logging as hf_logging

    saved_const = hub_constants.HF_HUB_OFFLINE
    saved_verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hub_constants.HF_HUB_OFFLINE = True
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = saved_const
        hf_logging.set_verbosity(saved_verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


def read_do_normalize(folder: Path) -> bool:
    """`do_normalize` of the folder's feature extractor (transformers' default, True, if absent)."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        log.warning("%s: no preprocessor_config.json; normalising the waveform (the transformers "
                    "default); pass normalize explicitly if the model was trained otherwise",
                    folder)
        return True
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("do_normalize", True))
    except (json.JSONDecodeError, AttributeError) as e:
        raise W2vuError(f"{path}: not valid JSON ({e}); fix or delete it") from e


def load_hf_folder(folder: str | os.PathLike, layer: int | None) -> PreTrainedModel:
    """The first layer+1 blocks (all of them with ``layer=None``) of a local Hugging Face SSL
    model, in float32 (offline only)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise W2vuError(f"{folder}: no config.json; pass a Hugging Face model folder or a "
                        "fairseq .pt file")
    with _offline_quiet():
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise W2vuError(f"{folder}: model type '{config.model_type}' is not supported; use "
                            f"one of {', '.join(SUPPORTED_MODEL_TYPES)}")
        if layer is not None:
            check_layer(layer, int(config.num_hidden_layers), str(folder))
            config.num_hidden_layers = int(layer) + 1  # later blocks are neither loaded nor run
        try:
            model, info = AutoModel.from_pretrained(folder, config=config, local_files_only=True,
                                                    dtype=torch.float32, output_loading_info=True)
        except (OSError, pickle.UnpicklingError) as e:  # torn, foreign, or carrying code
            raise W2vuError(f"{folder}: cannot load the model weights ({load_failure(e)}); "
                            "re-download the model, or convert it to model.safetensors") from None
    # transformers fills missing weights with random values and only warns: refuse instead
    missing = sorted(k for k in info.get("missing_keys", ()) if "masked_spec_embed" not in k)
    if missing:
        raise W2vuError(f"{folder}: the weights file lacks {len(missing)} tensors of the model "
                        f"(e.g. {', '.join(missing[:3])}); re-download or re-convert the model")
    return model


def load_ssl_model(path: str | os.PathLike, layer: int | None = None
                   ) -> tuple[PreTrainedModel, bool]:
    """A transformers SSL model from a HF folder or a fairseq ``.pt`` (every block with
    ``layer=None``, as CTC fine-tuning needs), and whether its waveform input is normalised."""
    path = Path(path)
    if path.is_dir():
        return load_hf_folder(path, layer), read_do_normalize(path)
    if path.is_file():
        from w2vu.features.checkpoint import load_fairseq_checkpoint

        loaded = load_fairseq_checkpoint(path)
        if layer is not None:
            check_layer(layer, loaded.arch.encoder_layers, str(path))
        return loaded.model, loaded.normalize
    raise W2vuError(f"{path}: no such model; pass a Hugging Face model folder or a fairseq "
                    "wav2vec 2.0 .pt file")


def load_backbone(path: str | os.PathLike, layer: int, device: str | torch.device = "auto", *,
                  normalize: bool | None = None, bf16: bool = True, tf32: bool = True,
                  max_batch_samples: int | None = None) -> SslBackbone:
    """A backbone giving fairseq `layer=L` features from a HF folder or a fairseq `.pt`.

    `normalize=None` follows the model (`do_normalize` / fairseq `task.normalize`); False gives
    the unnormalised-waveform features that the reference clusters on. bf16/tf32 apply on CUDA.
    """
    path = Path(path)
    options: dict[str, Any] = dict(device=device, bf16=bf16, tf32=tf32,
                                   max_batch_samples=max_batch_samples, source=str(path))
    model, default_norm = load_ssl_model(path, layer)
    norm = default_norm if normalize is None else normalize
    backbone = SslBackbone(model, layer, norm, **options)
    log.info("backbone %s: layer %d of %s, dim %d, %.0f Hz, normalize=%s, device %s", path,
             layer, type(model).__name__, backbone.dim, backbone.frame_rate, norm,
             backbone.device)
    return backbone
