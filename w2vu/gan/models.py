"""wav2vec-U GAN modules, laid out like fairseq's ``Wav2vec_U`` so checkpoints map key for key.

Reference: shared/reference/fairseq-wav2vec-u.md §2.2-2.4 and §7. Only torch is needed, so a
GPU node runs this without fairseq. Module order inside ``nn.Sequential`` containers is part of
the checkpoint format (``generator.proj.1``, ``discriminator.net.{0,3.0,4}``) and must not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PAD_INDEX = 1


@dataclass(frozen=True)
class GeneratorConfig:
    """Generator hyper-parameters (§2.6); defaults are w2vu.yaml."""

    input_dim: int = 512
    kernel: int = 4
    stride: int = 1
    dropout: float = 0.1
    batch_norm: float = 0.0  # 0 = no BN, else the initial BN weight (30 in w2vu2.yaml)
    residual: bool = False


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Discriminator hyper-parameters (§2.4, §2.6); defaults are w2vu.yaml."""

    dim: int = 384
    depth: int = 2
    kernel: int = 6
    dropout: float = 0.0
    causal: bool = True


@dataclass(frozen=True)
class SegmentationConfig:
    """JOIN segmentation options; both reference configs use the defaults."""

    mean_pool_join: bool = False
    remove_zeros: bool = False


def w2vu_configs() -> tuple[GeneratorConfig, DiscriminatorConfig]:
    """wav2vec-U (w2vu.yaml) generator and discriminator settings."""
    return GeneratorConfig(), DiscriminatorConfig()


def w2vu2_configs() -> tuple[GeneratorConfig, DiscriminatorConfig]:
    """wav2vec-U 2.0 (w2vu2.yaml) generator and discriminator settings."""
    gen = GeneratorConfig(input_dim=1024, kernel=9, stride=3, batch_norm=30.0, residual=True)
    return gen, DiscriminatorConfig(kernel=8)


class TransposeLast(nn.Module):
    """B×T×C <-> B×C×T; a parameter-free module so ``proj.1`` stays the conv's key."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(-2, -1)


class SamePad(nn.Module):
    """Crops the k-1 trailing frames of a conv padded by k-1, which makes it causal."""

    def __init__(self, kernel_size: int, causal: bool = True) -> None:
        super().__init__()
        self.remove = kernel_size - 1 if causal else (1 if kernel_size % 2 == 0 else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.remove] if self.remove > 0 else x


class Generator(nn.Module):
    """Maps features B×T×D_in to phone logits B×T'×V (§2.2)."""

    def __init__(self, cfg: GeneratorConfig, output_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.output_dim = output_dim
        self.stride = cfg.stride
        self.dropout = nn.Dropout(cfg.dropout)
        conv = nn.Conv1d(
            cfg.input_dim,
            output_dim,
            kernel_size=cfg.kernel,
            stride=cfg.stride,
            padding=cfg.kernel // 2,
            bias=False,
        )
        self.proj = nn.Sequential(TransposeLast(), conv, TransposeLast())
        self.bn: nn.BatchNorm1d | None = None
        self.in_proj: nn.Linear | None = None
        if cfg.batch_norm != 0:
            self.bn = nn.BatchNorm1d(cfg.input_dim)
            self.bn.weight.data.fill_(cfg.batch_norm)
        if cfg.residual:
            self.in_proj = nn.Linear(cfg.input_dim, cfg.input_dim)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns ``logits``, their ``padding_mask`` and, with the residual, ``inter_x``."""
        out: dict[str, torch.Tensor] = {}
        if self.bn is not None:
            x = self._batch_norm_valid(x, padding_mask)
        if self.in_proj is not None:
            inter_x = self.in_proj(self.dropout(x))
            x = x + inter_x
            out["inter_x"] = inter_x
        logits = self.proj(self.dropout(x))
        out["logits"] = logits
        out["padding_mask"] = self._output_padding(padding_mask, logits.size(1))
        return out

    def _batch_norm_valid(self, x: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """BN statistics come from non-padded frames only, as in the reference."""
        assert self.bn is not None
        normed = x.clone()
        normed[~padding_mask] = self.bn(x[~padding_mask].unsqueeze(-1)).squeeze(-1)
        return normed

    def _output_padding(self, padding_mask: torch.Tensor, out_len: int) -> torch.Tensor:
        """Strided: mask[::stride]. Longer output (k4 pad 2 gives T+1): prepend valid frames."""
        if self.stride > 1:
            padding_mask = padding_mask[:, :: self.stride]
        diff = out_len - padding_mask.size(1)
        if diff == 0:
            return padding_mask
        if diff < 0:
            raise ValueError(f"generator output shorter than its mask: {out_len} frames")
        new = padding_mask.new_zeros(padding_mask.size(0), out_len)
        new[:, diff:] = padding_mask
        return new


class Discriminator(nn.Module):
    """Causal CNN giving one logit per utterance, averaged over valid frames (§2.4)."""

    def __init__(self, cfg: DiscriminatorConfig, input_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        k = cfg.kernel
        pad = k - 1 if cfg.causal else k // 2

        def conv(d_in: int, d_out: int) -> nn.Conv1d:
            return nn.Conv1d(d_in, d_out, kernel_size=k, padding=pad)

        inner = [
            nn.Sequential(
                conv(cfg.dim, cfg.dim),
                SamePad(k, cfg.causal),
                nn.Dropout(cfg.dropout),
                nn.GELU(),
            )
            for _ in range(cfg.depth - 1)
        ]
        self.net = nn.Sequential(
            conv(input_dim, cfg.dim),
            SamePad(k, cfg.causal),
            nn.Dropout(cfg.dropout),
            *inner,
            conv(cfg.dim, 1),
            SamePad(k, cfg.causal),
        )

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame logits B×T before pooling (exposed to test causality)."""
        return self.net(x.transpose(1, 2)).transpose(1, 2).squeeze(-1)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        """B×T×V probabilities -> B logits; padded frames are zeroed and not counted."""
        y = self.frame_logits(x)
        size: torch.Tensor | int = y.size(1)
        if padding_mask is not None and padding_mask.dim() > 1 and padding_mask.any():
            padding_mask = padding_mask[:, : y.size(1)]
            y = y.masked_fill(padding_mask, 0.0)
            size = size - padding_mask.sum(dim=-1)
        return y.sum(dim=-1) / size


def join_segment(
    logits: torch.Tensor,
    padding_mask: torch.Tensor,
    training: bool,
    cfg: SegmentationConfig | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merges runs of equal argmax (§2.3): one random frame per run in training, run mean in eval.

    Mirrors fairseq's ``JoinSegmenter.logit_segment`` including its random-number use
    (``torch.rand`` on CPU, one draw per run longer than 1, padding run included), so with
    ``generator=None`` it consumes the global RNG as fairseq does. The new length is the largest
    number of runs in the batch counting the padding run, as in the reference.
    """
    cfg = cfg or SegmentationConfig()
    bsz, tsz, csz = logits.shape
    preds = logits.detach().argmax(dim=-1).cpu()
    if padding_mask.any():
        preds = preds.masked_fill(padding_mask.cpu(), -1)
    runs = _batch_runs(preds)
    keep = runs.valid & (runs.label != -1)
    if cfg.remove_zeros:
        keep &= runs.label != 0
    flat = logits.reshape(bsz * tsz, csz)
    if training and not cfg.mean_pool_join:
        frames = _random_frame_per_run(runs, generator)
        merged = flat[frames[keep].to(logits.device)]
    else:
        slots = runs.slot_of_frame.to(logits.device)
        sums = flat.new_zeros(bsz * runs.width, csz).index_add(0, slots, flat)
        means = sums / runs.counts.reshape(-1, 1).clamp(min=1).to(logits.device, logits.dtype)
        merged = means[keep.reshape(-1).to(logits.device)]
    # Kept runs move to the front of their row; one scatter keeps the autograd graph small
    # (a per-row slice assignment would copy the whole output once per row in backward).
    position = keep.cumsum(dim=1) - 1
    kept = keep.sum(dim=1)
    new_tsz = runs.width
    target = (torch.arange(bsz).unsqueeze(1) * new_tsz + position)[keep]
    new_logits = logits.new_zeros(bsz * new_tsz, csz).index_copy(
        0, target.to(logits.device), merged).view(bsz, new_tsz, csz)
    new_pad = torch.arange(new_tsz).unsqueeze(0) >= kept.unsqueeze(1)
    return new_logits, new_pad.to(padding_mask.device)


@dataclass(frozen=True)
class BatchRuns:
    """Runs of equal ids in each row of a B×T id matrix, as B×R slots (R = most runs in a row)."""

    label: torch.Tensor  # B×R id of each run (-1 = padding run)
    counts: torch.Tensor  # B×R frames per run (0 for slots past the row's last run)
    valid: torch.Tensor  # B×R slot holds a run
    slot_of_frame: torch.Tensor  # B·T flat slot index (b·R + run) of every frame
    width: int


def _batch_runs(preds: torch.Tensor) -> BatchRuns:
    """Run boundaries of every row at once (what ``unique_consecutive`` gives row by row)."""
    bsz, tsz = preds.shape
    starts = torch.ones_like(preds, dtype=torch.bool)
    starts[:, 1:] = preds[:, 1:] != preds[:, :-1]
    run_of_frame = starts.cumsum(dim=1) - 1
    num_runs = run_of_frame[:, -1] + 1
    width = int(num_runs.max())
    slot_of_frame = (run_of_frame + torch.arange(bsz).unsqueeze(1) * width).reshape(-1)
    counts = torch.bincount(slot_of_frame, minlength=bsz * width).view(bsz, width)
    label = torch.full((bsz * width,), -1, dtype=preds.dtype)
    label[slot_of_frame] = preds.reshape(-1)
    valid = torch.arange(width).unsqueeze(0) < num_runs.unsqueeze(1)
    return BatchRuns(label.view(bsz, width), counts, valid, slot_of_frame, width)


def _random_frame_per_run(runs: BatchRuns, generator: torch.Generator | None) -> torch.Tensor:
    """Flat frame index (b·T + start + floor(len·U)) of each run's representative frame.

    One ``torch.rand`` call per row, over that row's runs longer than 1 (padding run included),
    in the order fairseq draws them, so the random stream matches the reference's.
    """
    bsz, _ = runs.counts.shape
    tsz = int(runs.counts[0].sum())
    starts = runs.counts.cumsum(dim=1) - runs.counts
    multi = runs.counts > 1
    draws = [torch.rand(int(row.sum()), generator=generator) for row in multi]
    offsets = torch.zeros(runs.counts.shape, dtype=torch.float32)
    offsets[multi] = torch.cat(draws)
    frames = starts + (runs.counts * offsets).long()
    return frames + torch.arange(bsz).unsqueeze(1) * tsz


def one_hot_tokens(tokens: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Real-side discriminator input; padding ids become one-hot too and are masked later."""
    return nn.functional.one_hot(tokens.long(), num_classes).to(dtype)


class Wav2vecU(nn.Module):
    """Generator + discriminator (+ 2.0 ``decoder`` for the MFCC k-means targets), fairseq keys."""

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        decoder: nn.Linear | None = None,
        segmentation: SegmentationConfig | None = None,
    ) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.decoder = decoder
        self.segmentation = segmentation or SegmentationConfig()

    @property
    def vocab_size(self) -> int:
        return self.generator.output_dim

    def generate(
        self,
        features: torch.Tensor,
        padding_mask: torch.Tensor,
        rng: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Generator + JOIN: ``logits`` (segmented, pre-softmax), ``probs``, ``padding_mask``.

        Also returns ``frame_logits``/``frame_padding_mask`` (before JOIN) and ``inter_x`` (2.0).
        """
        gen = self.generator(features, padding_mask)
        logits, pad = join_segment(
            gen["logits"], gen["padding_mask"], self.training, self.segmentation, rng
        )
        out = {
            "frame_logits": gen["logits"],
            "frame_padding_mask": gen["padding_mask"],
            "logits": logits,
            "probs": logits.softmax(-1),
            "padding_mask": pad,
        }
        if "inter_x" in gen:
            out["inter_x"] = gen["inter_x"]
        return out


def build_wav2vec_u(
    vocab_size: int,
    version: int = 1,
    input_dim: int | None = None,
    target_dim: int = 64,
) -> Wav2vecU:
    """The w2vu.yaml (version 1) or w2vu2.yaml (version 2) model; 2.0 gets the 1024→64 decoder."""
    if version == 1:
        gen_cfg, disc_cfg = w2vu_configs()
    elif version == 2:
        gen_cfg, disc_cfg = w2vu2_configs()
    else:
        raise ValueError(f"version must be 1 or 2, got {version}")
    if input_dim is not None:
        gen_cfg = GeneratorConfig(**{**gen_cfg.__dict__, "input_dim": input_dim})
    decoder = nn.Linear(gen_cfg.input_dim, target_dim) if version == 2 else None
    return Wav2vecU(Generator(gen_cfg, vocab_size), Discriminator(disc_cfg, vocab_size), decoder)
