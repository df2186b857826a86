"""CTC fine-tuning of the whole SSL backbone on pseudo-labels (reference §4.2), on the audio.

The reference's last self-training stage starts again from the original pretrained wav2vec 2.0
(not from the GAN), adds a linear CTC head and fine-tunes everything but the convolutional
feature encoder (``feature_grad_mult 0``) on the HMM's labels, with masking (``mask_prob 0.25``
in spans of 10 frames, ``mask_channel_prob 0.1`` in spans of 64 channels), ``layerdrop 0.1``,
``activation_dropout 0.1``, Adam at 3e-5 (betas 0.9/0.98) and batches of 800k samples (50 s)
per GPU. This module does the same on the manifests' 16 kHz audio, for any backbone
``w2vu.features.backbone`` loads (Hugging Face folder or fairseq ``.pt``): the labels are phones,
like every other self-training round, rather than the reference's letters, so the round plugs into
the same LM decoding and unsupervised judging. The schedule is a linear warm-up over 10% of the
updates then cosine decay to 5% (the reference's tri-stage 10/40/50 has the same ends).

Training, validation, checkpoints and bit-exact resume are
:func:`w2vu.selftrain.ctc.fit.fit_ctc`'s; this module supplies the audio (:class:`ManifestAudio`,
read from disk batch by batch, so memory does not grow with the corpus) and the model
(:class:`FinetunedCtc`). Time masks come from the trainer's seeded generator; channel masks are
transformers' own (NumPy's global RNG, which the checkpoint saves and restores). bf16 autocast
applies on CUDA only; on the CPU it all runs in float32, slowly: a real backbone wants a GPU
(``selftrain.gpu``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
import torch
from torch import nn

from w2vu.audio import SAMPLE_RATE
from w2vu.errors import W2vuError
from w2vu.features.backbone import NORM_EPS, load_ssl_model, padding_is_exact
from w2vu.features.extract import read_wave
from w2vu.io.dictionary import load_phone_dictionary
from w2vu.io.manifest import read_manifest
from w2vu.selftrain.ctc.data import LabelSource
from w2vu.selftrain.ctc.fit import fit_ctc
from w2vu.selftrain.ctc.model import CtcModule, MaskConfig, span_starts
from w2vu.selftrain.ctc.steps import CtcConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

FINETUNE_FORMAT = "w2vu-ctc-finetune-1"
REFERENCE_MASK = MaskConfig(time_prob=0.25, time_length=10, channel_prob=0.1, channel_length=64)


def finetune_config(**overrides: Any) -> CtcConfig:
    """The reference's fine-tuning settings as a :class:`CtcConfig` (``max_frames`` counts
    samples here: 800k = 50 s of padded audio a batch), with ``overrides``."""
    base = CtcConfig(mask=REFERENCE_MASK, lr=3e-5, max_frames=800_000, max_batch=64,
                     max_epochs=0, max_updates=20_000, warmup_fraction=0.1,
                     final_lr_scale=0.05, weight_decay=0.0, validate_every=1000,
                     checkpoint_every=500, log_every=50, bf16=True)
    return replace(base, **overrides)


@dataclass(frozen=True)
class FinetuneSettings:
    """Model-side settings (the reference's ``wav2vec_ctc`` values); ``normalize=None`` follows
    the backbone (``do_normalize`` / fairseq ``task.normalize``)."""

    layerdrop: float = 0.1
    activation_dropout: float = 0.1
    final_dropout: float = 0.0
    freeze_feature_encoder: bool = True
    normalize: bool | None = None


class ManifestAudio:
    """The 16 kHz audio of a fairseq manifest as a frame source: utterance ``i`` is its samples
    as a [num_samples, 1] float32 array, read from disk when asked for."""

    dim = 1

    def __init__(self, manifest: str | os.PathLike) -> None:
        self.manifest = Path(manifest)
        rows = read_manifest(manifest)
        self.paths = rows.paths()
        self.lengths = np.array([n for _, n in rows.rows], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        path = self.paths[index]
        try:
            wave = read_wave(path)
        except (OSError, sf.LibsndfileError) as err:
            raise W2vuError(f"{path} (row {index + 2} of {self.manifest}): cannot read it "
                            f"({err}); rerun the audio stages that write the manifest") from None
        if len(wave) != self.lengths[index]:
            raise W2vuError(f"{path} has {len(wave)} samples but {self.manifest} row "
                            f"{index + 2} says {self.lengths[index]}; the audio changed after "
                            "the manifest was written: rerun the audio stages")
        return wave[:, None]


class FinetunedCtc(CtcModule):
    """A transformers SSL model (all blocks) + dropout + linear CTC head over the fairseq
    dictionary. Reads audio [B, S, 1] with its padding mask [B, S]."""

    input_dim = 1
    inference_frames = 100 * SAMPLE_RATE  # padded samples per inference batch

    def __init__(self, backbone: PreTrainedModel, vocab_size: int, normalize: bool,
                 final_dropout: float = 0.0, freeze_feature_encoder: bool = True) -> None:
        super().__init__()
        ensure_mask_embedding(backbone)
        self.backbone = backbone
        self.vocab_size = vocab_size
        self.normalize = normalize
        self.final_dropout = final_dropout
        self.frozen_feature_encoder = freeze_feature_encoder
        if freeze_feature_encoder:
            backbone.feature_extractor._freeze_parameters()
        self.dropout = nn.Dropout(final_dropout)
        self.head = nn.Linear(backbone.config.hidden_size, vocab_size)
        self.max_batch = (1 << 30) if padding_is_exact(backbone.config) else 1
        config = backbone.config
        self._kernels, self._strides = list(config.conv_kernel), list(config.conv_stride)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames of the unpadded convolutions (0 for an input shorter than their receptive
        field)."""
        n = lengths.clone()
        for k, s in zip(self._kernels, self._strides):
            n = torch.where(n >= k, torch.div(n - k, s, rounding_mode="floor") + 1, 0)
        return n

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor,
                mask: MaskConfig | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, T', V] and their padding mask (True on padding)."""
        wave = x[..., 0]
        keep = ~padding_mask
        lengths = keep.sum(1)
        if self.normalize:  # fairseq: F.layer_norm over each utterance's own samples
            count = lengths.clamp_min(1).unsqueeze(1).to(wave.dtype)
            mean = (wave * keep).sum(1, keepdim=True) / count
            var = (((wave - mean) * keep) ** 2).sum(1, keepdim=True) / count
            wave = (wave - mean) / (var + NORM_EPS).sqrt() * keep
        steps = self.output_lengths(lengths)
        width = int(self.output_lengths(torch.tensor([wave.shape[1]]))[0])
        out_mask = torch.arange(width, device=x.device)[None, :] >= steps[:, None]
        attention = keep.long() if bool(padding_mask.any()) else None
        time_mask = None
        if mask is not None and self.training:
            time_mask = torch.zeros(len(wave), width, dtype=torch.bool)
            for row, n in enumerate(steps.tolist()):
                for s in span_starts(mask.time_prob, n, mask.time_length, generator):
                    time_mask[row, s: s + mask.time_length] = True
            time_mask = time_mask.to(x.device)
        hidden = self.backbone(wave, attention_mask=attention,
                               mask_time_indices=time_mask).last_hidden_state
        return self.head(self.dropout(hidden)), out_mask

    def record(self, vocabulary: tuple[str, ...], **extra: Any) -> dict[str, Any]:
        config = self.backbone.config.to_dict()
        return {
            "format": FINETUNE_FORMAT,
            "model_type": config["model_type"],
            "hf_config": config,
            "model": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
            "normalize": self.normalize,
            "final_dropout": self.final_dropout,
            "freeze_feature_encoder": self.frozen_feature_encoder,
            "input_dim": self.input_dim,
            "vocabulary": list(vocabulary),
            **extra,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FinetunedCtc:
        """Rebuild a saved model (no network, no pretrained files needed)."""
        from transformers import AutoConfig, AutoModel

        settings = {k: v for k, v in record["hf_config"].items() if k != "model_type"}
        backbone = AutoModel.from_config(AutoConfig.for_model(record["model_type"], **settings))
        model = cls(backbone, len(record["vocabulary"]), bool(record["normalize"]),
                    float(record["final_dropout"]), bool(record["freeze_feature_encoder"]))
        model.load_state_dict(record["model"])
        return model


def ensure_mask_embedding(backbone: PreTrainedModel) -> PreTrainedModel:
    """Give the backbone the learned mask vector that time masking writes (transformers only
    creates it when its own masking is configured)."""
    if getattr(backbone, "masked_spec_embed", None) is None:
        backbone.masked_spec_embed = nn.Parameter(
            torch.empty(backbone.config.hidden_size).uniform_())
    return backbone


def build_finetune_model(init: str | os.PathLike, vocab_size: int, settings: FinetuneSettings,
                         mask: MaskConfig | None) -> FinetunedCtc:
    """The pretrained backbone, rebuilt with the fine-tuning dropouts and channel masking (both
    are fixed when transformers builds the modules), and a fresh head."""
    from transformers import AutoModel

    pretrained, default_normalize = load_ssl_model(init)
    config = pretrained.config
    config.layerdrop = settings.layerdrop
    config.activation_dropout = settings.activation_dropout
    config.apply_spec_augment = True
    config.mask_time_prob = 0.0  # time masks come from FinetunedCtc.forward (seeded)
    config.mask_feature_prob = mask.channel_prob if mask is not None else 0.0
    config.mask_feature_length = (min(mask.channel_length, config.hidden_size)
                                  if mask is not None else 1)
    backbone = ensure_mask_embedding(AutoModel.from_config(config))
    state = pretrained.state_dict()
    state.setdefault("masked_spec_embed", backbone.masked_spec_embed.detach().clone())
    backbone.load_state_dict(state)
    normalize = default_normalize if settings.normalize is None else settings.normalize
    model = FinetunedCtc(backbone, vocab_size, normalize, settings.final_dropout,
                         settings.freeze_feature_encoder)
    log.info("fine-tuning %s (%s, %d blocks, dim %d, normalize=%s, feature encoder %s)", init,
             config.model_type, config.num_hidden_layers, config.hidden_size, normalize,
             "frozen" if settings.freeze_feature_encoder else "trained")
    return model


def fingerprint(path: str | os.PathLike) -> list[list[Any]]:
    """Names, sizes and modification times of a model file or folder: a rolling checkpoint
    started from other weights is never resumed."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def finetune_ctc(manifest: str | os.PathLike, labels_txt: str | os.PathLike,
                 dictionary: str | os.PathLike, init: str | os.PathLike,
                 out_dir: str | os.PathLike, config: CtcConfig | None = None,
                 settings: FinetuneSettings | None = None, seed: int = 1, device: str = "auto",
                 *, valid_manifest: str | os.PathLike | None = None,
                 valid_labels: str | os.PathLike | None = None,
                 checkpoint_dir: str | os.PathLike | None = None,
                 stop_after: int | None = None, threads: int | None = None,
                 restart_on_change: bool = False) -> Path | None:
    """Fine-tune the backbone ``init`` with CTC on the manifest's audio and its line-aligned
    pseudo-labels; outputs, resume and ``stop_after`` as :func:`w2vu.selftrain.ctc.fit.fit_ctc`.
    """
    config = config or finetune_config()
    settings = settings or FinetuneSettings()
    if (valid_manifest is None) != (valid_labels is None):
        raise W2vuError("pass both valid_manifest and valid_labels, or neither")
    phones = load_phone_dictionary(dictionary)
    valid = (LabelSource(ManifestAudio(valid_manifest), valid_manifest, valid_labels)
             if valid_manifest is not None else None)
    return fit_ctc(lambda: build_finetune_model(init, len(phones), settings, config.mask),
                   LabelSource(ManifestAudio(manifest), manifest, labels_txt), phones,
                   dictionary, out_dir, config, seed, device, valid=valid,
                   identity={"init": fingerprint(init), "settings": asdict(settings)},
                   checkpoint_dir=checkpoint_dir, stop_after=stop_after, threads=threads,
                   restart_on_change=restart_on_change)
