"""The pieces of a CTC update: the settings (:class:`CtcConfig`), each epoch's batches, the model
and optimizer, the learning-rate schedule, one training step and the validation that picks
``model.pt``. The loop that runs them with checkpoints is ``w2vu.selftrain.ctc.fit``."""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from w2vu.errors import W2vuError
from w2vu.eval.metrics import edit_distance
from w2vu.io.features import Features
from w2vu.selftrain.ctc.data import (
    CtcBatch,
    LabelledSet,
    bucket_batches,
    collate,
)
from w2vu.selftrain.ctc.model import (
    CtcEncoder,
    CtcModelConfig,
    CtcModule,
    MaskConfig,
)
from w2vu.train.ctc import BLANK_INDEX, greedy_ids


@dataclass(frozen=True)
class CtcConfig:
    """Training settings. Training stops at ``max_updates`` or after ``max_epochs`` epochs,
    whichever comes first (0 = no limit of that kind; at least one must be set)."""

    model: CtcModelConfig = field(default_factory=CtcModelConfig)
    mask: MaskConfig | None = field(default_factory=MaskConfig)
    max_updates: int = 0
    max_epochs: int = 100  # a few minutes of speech need ~100 epochs to get past blank-only
    max_frames: int = 3_000  # padded frames (batch x longest) per batch
    max_batch: int = 64
    length_jitter: float = 0.1
    lr: float = 3e-3
    warmup_updates: int = 30
    warmup_fraction: float = 0.0  # > 0: warm up over this share of the planned updates instead
    final_lr_scale: float = 0.05
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    weight_decay: float = 0.01
    clip_norm: float = 5.0
    valid_fraction: float = 0.05  # held out when no valid split is given
    validate_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 50
    bf16: bool = False  # autocast on CUDA only

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.max_updates <= 0 and self.max_epochs <= 0:
            raise W2vuError("CTC training needs max_updates or max_epochs > 0; set one of them")
        if self.max_frames < 1 or self.max_batch < 1:
            raise W2vuError("CTC max_frames and max_batch must be >= 1")

    def trajectory(self) -> dict[str, Any]:
        """The settings that shape the weights; a resume must not change them."""
        out = asdict(self)
        for name in ("validate_every", "checkpoint_every", "log_every"):
            out.pop(name)
        out["betas"] = list(self.betas)
        return out


def epoch_batches(data: LabelledSet, config: CtcConfig, seed: int, epoch: int
                  ) -> list[np.ndarray]:
    """Utterance indices per batch of one epoch: a pure function of (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    plan = bucket_batches(data.lengths, config.max_frames, config.max_batch, rng,
                          config.length_jitter)
    return [data.indices[b] for b in plan]


# --------------------------------------------------------------------------- model and steps


def feature_statistics(features: Features) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over all frames, streamed block by block."""
    total = np.zeros(features.dim, dtype=np.float64)
    squares = np.zeros(features.dim, dtype=np.float64)
    for block in features.blocks():
        rows = block.data.astype(np.float64)
        total += rows.sum(0)
        squares += (rows * rows).sum(0)
    count = max(features.num_frames, 1)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    return torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(std.astype(np.float32))


def build_ctc_model(config: CtcConfig, features: Features, vocab_size: int) -> CtcEncoder:
    """A fresh encoder with the features' normalisation statistics."""
    model = CtcEncoder(config.model, features.dim, vocab_size)
    model.set_normalisation(*feature_statistics(features))
    return model


def build_optimizer(model: CtcModule, config: CtcConfig) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay, as fairseq's Adam); ``foreach=False`` for exact resume."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas,
                             eps=config.eps, weight_decay=config.weight_decay, foreach=False)


def learning_rate(update: int, total: int, config: CtcConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_updates`` (or ``warmup_fraction`` of ``total``),
    then cosine to ``lr·final_lr_scale``."""
    warmup = (max(1, round(config.warmup_fraction * total)) if config.warmup_fraction > 0
              else max(1, config.warmup_updates))
    if update < warmup:
        return config.lr * (update + 1) / warmup
    span = max(total - warmup, 1)
    progress = min((update - warmup) / span, 1.0)
    scale = config.final_lr_scale + (1 - config.final_lr_scale) * 0.5 * (
        1 + math.cos(math.pi * progress))
    return config.lr * scale


def ctc_loss_sum(model: CtcModule, batch: CtcBatch, mask: MaskConfig | None,
                 generator: torch.Generator | None, bf16: bool) -> torch.Tensor:
    """Summed CTC loss of a batch (blank = ``<s>``; impossible alignments count as zero)."""
    device = batch.features.device
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if bf16 and device.type == "cuda"
                else nullcontext())
    with autocast:
        logits, _ = model(batch.features, batch.padding_mask, mask, generator)
    log_probs = logits.float().log_softmax(-1).transpose(0, 1)
    return F.ctc_loss(log_probs, batch.targets.to(device),
                      model.output_lengths(batch.input_lengths),
                      batch.target_lengths, blank=BLANK_INDEX, reduction="sum",
                      zero_infinity=True)


def train_step(model: CtcModule, optimizer: torch.optim.Optimizer, batch: CtcBatch, lr: float,
               config: CtcConfig, generator: torch.Generator) -> float:
    """One update; returns the CTC loss per utterance (the reference's sentence_avg)."""
    model.train()
    loss = ctc_loss_sum(model, batch, config.mask, generator, config.bf16) / batch.size
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


@torch.no_grad()
def validate_model(model: CtcModule, data: LabelledSet, config: CtcConfig,
                   device: torch.device, sil_index: int) -> tuple[float, float]:
    """Mean CTC loss per utterance and the greedy transcripts' PER against the labels of
    ``data``, without masking or dropout.

    The PER picks ``model.pt``: against noisy pseudo-labels the CTC loss rises as the model
    grows confident (every wrong label costs more), even while its transcripts get better; the
    PER against the same noisy labels falls with the true PER (label errors are not predictable
    from the audio), and needs no references.
    """
    model.eval()
    total = 0.0
    errors = length = 0
    for positions in bucket_batches(data.lengths, config.max_frames, config.max_batch):
        indices = data.indices[positions]
        batch = collate(data, indices).to(device)
        logits, out_mask = model(batch.features, batch.padding_mask)
        log_probs = logits.float().log_softmax(-1)
        total += float(F.ctc_loss(log_probs.transpose(0, 1), batch.targets.to(device),
                                  model.output_lengths(batch.input_lengths),
                                  batch.target_lengths, blank=BLANK_INDEX, reduction="sum",
                                  zero_infinity=True))
        steps = (~out_mask).sum(1).tolist()
        for row, index in enumerate(indices.tolist()):
            hyp = greedy_ids(log_probs[row, : steps[row]].cpu(), sil_index)
            ref = [i for i in data.targets[index].tolist() if i != sil_index]
            errors += edit_distance(hyp, ref)
            length += len(ref)
    return total / max(len(data), 1), errors / length if length else math.nan
