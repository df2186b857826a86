"""A small transformer CTC phone recogniser on frame features (the self-training default with
MFCC), and :class:`CtcModule`, what every CTC model gives the trainer.

The reference's last self-training stage fine-tunes the whole wav2vec 2.0 model with CTC (§4.2);
that needs a GPU and the audio (``w2vu.selftrain.ctc.finetune``, used when a backbone is
configured). This model is a small pre-LN transformer encoder on the 50 Hz features the GAN
already uses, which runs on a laptop CPU. On its own its greedy
transcripts of a few minutes of speech are about as good as the noisy pseudo-labels it learned
from; its emissions decoded with a phone LM (``w2vu.selftrain.ctc.rounds.lm_relabel``, the WFST
decoder over a phone graph) are clearly better: 6 minutes with labels at 32% PER give 22% (greedy
32%), see tests/test_ctc.py and bench/selftrain_ctc.py.

Layout: per-utterance CMVN (``utterance_norm``, the default) or ``(x - mean) / std`` with the
training set's statistics (stored as buffers, so a model file is self-contained) → optional
SpecAugment-style time and channel masks (training only) → stacking of ``subsample`` frames
(default 2: 25 Hz emissions, which still leaves 2 steps per phone at 10-15 phones/s, and halves
the work; 1 gives emissions at the feature rate, like the GAN's) → linear projection →
convolutional relative position (a grouped 1-D conv + GELU added to the input, as wav2vec 2.0's
``pos_conv``; no sinusoids) → ``layers`` pre-LN transformer blocks (attention limited to
``attention_window`` steps) → LayerNorm → linear over the full fairseq dictionary (4 specials,
the phones, ``<SIL>`` last).

CTC blank: fairseq's ``<s>`` (index 0), as in the reference's CTC decoders (§0). ``<pad>``,
``</s>`` and ``<unk>`` are never targets, so training drives their log-probabilities down; keeping
their columns makes the emissions the same shape as the GAN's, which the WFST decoder reads.
Padded frames are zeroed before the positional conv, so an utterance decoded in a batch sees the
same context as one decoded alone.
"""

from __future__ import annotations

import abc
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from w2vu.errors import W2vuError

MODEL_FORMAT = "w2vu-ctc-1"


@dataclass(frozen=True)
class CtcModelConfig:
    """Shape of the encoder. The defaults are a small, local model (0.3 M parameters with 78-d
    input): 3 layers of 96-d, 2 frames stacked per step, attention limited to 6 steps (±240 ms)
    either side, dropout 0.2, per-utterance CMVN. Measured on 6 minutes of espeak MFCCs with
    labels at 32% PER, 100 epochs, phone-LM decoding (tests/test_ctc.py): this shape 22% PER;
    2 layers of 64-d, 3 frames per step, window 4: 28%; 3 layers of 96-d, 3 frames per step,
    window 4 (80 epochs): 26%. (Greedy transcripts 31-32% for all three.)"""

    dim: int = 96
    layers: int = 3
    heads: int = 4
    ffn_dim: int = 256
    pos_conv_kernel: int = 15
    pos_conv_groups: int = 8
    dropout: float = 0.2
    subsample: int = 2  # frames stacked per output step (2 = 25 Hz emissions from 50 Hz input)
    attention_window: int = 6  # > 0: each step attends only to steps within this distance
    utterance_norm: bool = True  # per-utterance mean/variance (CMVN) instead of the set's

    def __post_init__(self) -> None:
        if self.dim % self.heads or self.dim % self.pos_conv_groups:
            raise W2vuError(f"CTC model dim {self.dim} must be divisible by heads ({self.heads}) "
                            f"and pos_conv_groups ({self.pos_conv_groups}); change the config")
        if self.pos_conv_kernel % 2 == 0:
            raise W2vuError(f"pos_conv_kernel must be odd (got {self.pos_conv_kernel}) so that "
                            "frames stay centred; change the config")
        if self.subsample < 1:
            raise W2vuError(f"subsample must be >= 1, got {self.subsample}")


@dataclass(frozen=True)
class MaskConfig:
    """SpecAugment-style masking on the normalised input (zeros = the training mean).

    ``time_prob`` is the expected share of frames masked, in spans of ``time_length`` frames;
    ``channel_prob`` likewise for feature channels (one draw per utterance, as wav2vec 2.0).
    """

    time_prob: float = 0.1
    time_length: int = 5
    channel_prob: float = 0.1
    channel_length: int = 8


class CtcModule(nn.Module, abc.ABC):
    """What the CTC trainer and transcriber need from a model: ``forward(x [B, T, D],
    padding_mask [B, T], mask, generator) -> (logits [B, T', V], output padding mask)``, the
    output length of an input length, and a self-contained record to save."""

    input_dim: int  # D of the frames it reads (1 for audio)
    vocab_size: int
    max_batch: int = 1 << 30  # utterances per inference batch (1 where padding changes output)
    inference_frames: int = 40_000  # padded input frames per inference batch

    @abc.abstractmethod
    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Output steps for input lengths (0 where the input is too short)."""

    @abc.abstractmethod
    def record(self, vocabulary: tuple[str, ...], **extra: Any) -> dict[str, Any]:
        """What a model file holds: weights on CPU, what rebuilds the model, ``extra`` facts."""


class CtcEncoder(CtcModule):
    """Frame features [B, T, D] → logits [B, T, V]; see the module docstring."""

    def __init__(self, config: CtcModelConfig, input_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.input_dim = input_dim
        self.vocab_size = vocab_size
        self.register_buffer("feature_mean", torch.zeros(input_dim))
        self.register_buffer("feature_std", torch.ones(input_dim))
        self.in_proj = nn.Linear(input_dim * config.subsample, config.dim)
        self.pos_conv = nn.Conv1d(config.dim, config.dim, config.pos_conv_kernel,
                                  padding=config.pos_conv_kernel // 2,
                                  groups=config.pos_conv_groups)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(config.dim, config.heads, config.ffn_dim, config.dropout)
            for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.dim)
        self.out_proj = nn.Linear(config.dim, vocab_size)

    def record(self, vocabulary: tuple[str, ...], **extra: Any) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "model": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
            "model_config": asdict(self.config),
            "input_dim": self.input_dim,
            "vocabulary": list(vocabulary),
            **extra,
        }

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training set's per-channel mean and standard deviation."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp_min(1e-5))

    def normalise(self, x: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """Standardised features with padded frames set to zero.

        With ``utterance_norm`` each utterance is first brought to zero mean and unit variance
        over its own frames (Kaldi's per-utterance CMVN, instead of the training set's
        statistics), which removes much of the speaker and channel from MFCCs."""
        keep = (~padding_mask).unsqueeze(-1).to(x.dtype)
        if self.config.utterance_norm:
            count = keep.sum(1, keepdim=True).clamp_min(1.0)
            mean = (x * keep).sum(1, keepdim=True) / count
            var = (((x - mean) * keep) ** 2).sum(1, keepdim=True) / count
            x = (x - mean) / (var + 1e-5).sqrt()
        else:
            x = (x - self.feature_mean) / self.feature_std
        return x * keep

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Output steps per utterance: ``ceil(T / subsample)``."""
        s = self.config.subsample
        return torch.div(lengths + s - 1, s, rounding_mode="floor")

    def stack_frames(self, x: torch.Tensor, padding_mask: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Concatenate ``subsample`` consecutive frames (zero-padded at the end)."""
        s = self.config.subsample
        if s == 1:
            return x, padding_mask
        batch, width, dim = x.shape
        extra = (-width) % s
        x = nn.functional.pad(x, (0, 0, 0, extra))
        mask = nn.functional.pad(padding_mask, (0, extra), value=True)
        mask = mask.view(batch, -1, s).all(-1)
        return x.reshape(batch, -1, s * dim), mask

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor,
                mask: MaskConfig | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, T', V] and their padding mask (True on padding, fairseq's convention);
        T' = ceil(T / subsample)."""
        x = self.normalise(x, padding_mask)
        if mask is not None and self.training:
            x = spec_augment(x, padding_mask, mask, generator)
        x, padding_mask = self.stack_frames(x, padding_mask)
        x = self.in_proj(x).masked_fill(padding_mask.unsqueeze(-1), 0.0)
        pos = nn.functional.gelu(self.pos_conv(x.transpose(1, 2))).transpose(1, 2)
        x = self.dropout(x + pos)
        attend = attention_mask(padding_mask, self.config.attention_window)
        for block in self.blocks:
            x = block(x, attend)
        return self.out_proj(self.final_norm(x)), padding_mask


def attention_mask(padding_mask: torch.Tensor, window: int) -> torch.Tensor:
    """True where attention is allowed: [B, 1, 1, T] (keys not padded), or [B, 1, T, T] also
    limited to ``|i - j| <= window``. A local window is a prior for small data: phones depend on
    nearby frames, and a model with global attention memorises whole training utterances."""
    keys = ~padding_mask[:, None, None, :]
    if window <= 0:
        return keys
    steps = torch.arange(padding_mask.size(1), device=padding_mask.device)
    band = (steps[:, None] - steps[None, :]).abs() <= window
    return keys & band[None, None]


class TransformerBlock(nn.Module):
    """Pre-LN self-attention + GELU feed-forward, attention through PyTorch's fused
    ``scaled_dot_product_attention`` (several times faster than ``nn.MultiheadAttention``'s
    explicit path on CPU at a few hundred frames). No dropout on the attention weights."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_out = nn.Linear(dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn_in = nn.Linear(dim, ffn_dim)
        self.ffn_out = nn.Linear(ffn_dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        """``x`` [B, T, C]; ``attend`` [B, 1, 1, T] is True on the frames that may be attended."""
        batch, width, dim = x.shape
        qkv = self.qkv(self.attn_norm(x)).view(batch, width, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attend)
        x = x + self.dropout(self.attn_out(a.transpose(1, 2).reshape(batch, width, dim)))
        h = self.dropout(nn.functional.gelu(self.ffn_in(self.ffn_norm(x))))
        return x + self.dropout(self.ffn_out(h))


def spec_augment(x: torch.Tensor, padding_mask: torch.Tensor, mask: MaskConfig,
                 generator: torch.Generator | None) -> torch.Tensor:
    """Zero random time spans and channel spans of each utterance (drawn from ``generator``).

    A light regulariser: with noisy pseudo-labels the model should lean on context rather than
    memorise single frames. Span starts are uniform over the unpadded length.
    """
    batch, width, dim = x.shape
    lengths = (~padding_mask).sum(1).tolist()
    keep = torch.ones(batch, width, dim, dtype=torch.bool)
    for row, length in enumerate(lengths):
        for s in span_starts(mask.time_prob, length, mask.time_length, generator):
            keep[row, s: s + mask.time_length, :] = False
        for s in span_starts(mask.channel_prob, dim, mask.channel_length, generator):
            keep[row, :, s: s + mask.channel_length] = False
    return x * keep.to(x.device, x.dtype)


def span_starts(prob: float, length: int, span: int, generator: torch.Generator | None
                ) -> list[int]:
    """Starts of random spans of ``span`` positions covering ``prob`` of ``length`` on average
    (none when the axis is not longer than a span)."""
    count = _span_count(prob, length, span, generator)
    if not count or length <= span:
        return []
    return torch.randint(0, length - span + 1, (count,), generator=generator).tolist()


def _span_count(prob: float, length: int, span: int, generator: torch.Generator | None) -> int:
    """Spans so that ``prob`` of ``length`` is masked on average (stochastic rounding)."""
    if prob <= 0 or span <= 0:
        return 0
    expected = prob * length / span
    whole = math.floor(expected)
    return whole + int(float(torch.rand((), generator=generator)) < expected - whole)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (for the log)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
