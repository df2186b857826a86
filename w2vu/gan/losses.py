"""wav2vec-U GAN losses and update schedule, following fairseq ``Wav2vec_U.forward`` (§2.5).

Conventions kept from the reference:
* label convention fake = 1, real = 0 for BCE-with-logits on per-utterance discriminator logits,
  summed over the batch;
* the discriminator steps on odd update numbers, the generator on even ones (update 0 is G);
* every loss is a sum over the batch or is multiplied by the batch size B, and all losses are
  summed. fairseq then divides the gradients by ``sample_size`` = B (``trainer.multiply_grads``)
  before clipping. :func:`divide_gradients_by_sample_size` reproduces that: call
  ``total_loss(losses).backward()``, then it, then clip (clip_norm 5.0 over all parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from w2vu.gan.models import PAD_INDEX, Discriminator, Wav2vecU, one_hot_tokens

PPL_EPS = 1e-7  # the reference's log(p + 1e-7) in Wav2vec_U.normalize


@dataclass(frozen=True)
class LossWeights:
    """λ, η, γ, δ of §2.6; defaults are w2vu.yaml (``w2vu2_weights`` gives w2vu2.yaml)."""

    gradient_penalty: float = 1.5
    code_penalty: float = 4.0
    smoothness: float = 0.5
    mmi: float = 0.0
    target_downsample_rate: int = 2


def w2vu2_weights() -> LossWeights:
    """w2vu2.yaml: λ 1.0, η 3.0, γ 1.5, δ 0.5."""
    return LossWeights(gradient_penalty=1.0, code_penalty=3.0, smoothness=1.5, mmi=0.5)


def is_discriminator_step(update_num: int) -> bool:
    """Odd update numbers train the discriminator, even ones the generator."""
    return update_num % 2 == 1


def param_group_for_update(update_num: int) -> str:
    """Name of the optimizer group stepped at this update ("discriminator" or "generator")."""
    return "discriminator" if is_discriminator_step(update_num) else "generator"


def bce_fake_as_fake(d_fake: torch.Tensor) -> torch.Tensor:
    """D step, fake side: target 1, summed."""
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake), reduction="sum")


def bce_real_as_real(d_real: torch.Tensor) -> torch.Tensor:
    """D step, real side: target 0, summed."""
    return F.binary_cross_entropy_with_logits(d_real, torch.zeros_like(d_real), reduction="sum")


def bce_fake_as_real(d_fake: torch.Tensor) -> torch.Tensor:
    """G step: the generator wants its output judged real (target 0), summed."""
    return F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake), reduction="sum")


def gradient_penalty_terms(
    discriminator: Discriminator | nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(‖∂D/∂x‖₂ − 1)² with the norm over the TIME axis (dim 1), a B×V tensor (reference quirk).

    Both inputs are cropped to the smaller batch and length, α ~ U(0,1) per utterance is drawn
    on CPU (as the reference), and D sees the interpolates without a padding mask. The caller sums
    and multiplies by λ.
    """
    b = min(real.size(0), fake.size(0))
    t = min(real.size(1), fake.size(1))
    real, fake = real[:b, :t], fake[:b, :t]
    alpha = torch.rand(b, 1, 1, generator=generator).expand(real.size()).to(real.device)
    interp = alpha * real + (1 - alpha) * fake
    if not interp.requires_grad:
        interp.requires_grad_(True)
    d_out = discriminator(interp, None)
    (grads,) = torch.autograd.grad(
        outputs=d_out,
        inputs=interp,
        grad_outputs=torch.ones_like(d_out),
        create_graph=True,
        retain_graph=True,
        only_inputs=True,
    )
    return (grads.norm(2, dim=1) - 1) ** 2


def prob_perplexity(logits: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of the softmax averaged over ALL B×T' frames, padded ones included."""
    avg = torch.softmax(logits.reshape(-1, logits.size(-1)).float(), dim=-1).mean(dim=0)
    return torch.exp(-torch.sum(avg * torch.log(avg + PPL_EPS), dim=-1))


def code_penalty(logits: torch.Tensor, sample_size: int, weight: float) -> torch.Tensor:
    """η·B·(V − PPL)/V with V the full output size (specials included)."""
    num_vars = logits.size(-1)
    return (num_vars - prob_perplexity(logits)) / num_vars * sample_size * weight


def smoothness_penalty(
    logits: torch.Tensor, padding_mask: torch.Tensor, sample_size: int, weight: float
) -> torch.Tensor:
    """γ·B·mean (l_t − l_{t+1})²; pairs with a padded right frame are zeroed but still counted."""
    sq = F.mse_loss(logits[:, :-1], logits[:, 1:], reduction="none")
    sq = sq.masked_fill(padding_mask[:, 1:].unsqueeze(-1), 0.0)
    return sq.mean() * sample_size * weight


def mmi_loss(
    decoder: nn.Linear,
    inter_x: torch.Tensor,
    aux_target: torch.Tensor,
    weight: float,
    downsample_rate: int = 2,
) -> torch.Tensor:
    """δ·B·mean CE(decoder(inter_x), km[:, ::rate]) at 50 Hz, ignore_index −1 (2.0 only).

    As in the reference the mean runs over all B×T positions with ``reduction="none"``, so
    ignored (−1) positions count as zero loss in the denominator.
    """
    out = decoder(inter_x)
    if downsample_rate > 1:
        aux_target = aux_target[:, ::downsample_rate]
    t = min(aux_target.size(1), out.size(1))
    ce = F.cross_entropy(
        out[:, :t].transpose(1, 2), aux_target[:, :t].long(), ignore_index=-1, reduction="none"
    )
    return ce.mean() * ce.size(0) * weight


def gan_losses(
    model: Wav2vecU,
    features: torch.Tensor,
    padding_mask: torch.Tensor,
    random_label: torch.Tensor,
    update_num: int,
    weights: LossWeights,
    aux_target: torch.Tensor | None = None,
    rng: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The named losses of one update (fairseq's ``result["losses"]``), absent ones left out.

    D step: ``dense_d`` + ``token_d`` (+ ``grad_pen`` in training).
    G step: ``dense_g`` + ``code_pen`` + ``smoothness`` (+ ``mmi`` for 2.0 with targets).
    The reference also runs the discriminator on the real text in G steps and discards it; that
    pass is skipped here (no loss, no gradient and, with the discriminator's dropout at 0 as in
    both reference configs, no random draw depends on it, so the weights are the same).
    """
    gen = model.generate(features, padding_mask, rng)
    d_fake = model.discriminator(gen["probs"], gen["padding_mask"])
    b = features.size(0)
    if is_discriminator_step(update_num):
        token_x = one_hot_tokens(random_label, model.vocab_size, gen["probs"].dtype)
        d_real = model.discriminator(token_x, random_label == PAD_INDEX)
        return _discriminator_losses(model, d_fake, d_real, token_x, gen["probs"], weights, rng)
    losses = {"dense_g": bce_fake_as_real(d_fake)}
    if weights.code_penalty > 0:
        losses["code_pen"] = code_penalty(gen["logits"], b, weights.code_penalty)
    if weights.smoothness > 0:
        losses["smoothness"] = smoothness_penalty(
            gen["logits"], gen["padding_mask"], b, weights.smoothness
        )
    if weights.mmi > 0 and aux_target is not None and model.decoder is not None:
        losses["mmi"] = mmi_loss(
            model.decoder, gen["inter_x"], aux_target, weights.mmi, weights.target_downsample_rate
        )
    return losses


def _discriminator_losses(
    model: Wav2vecU,
    d_fake: torch.Tensor,
    d_real: torch.Tensor,
    token_x: torch.Tensor,
    probs: torch.Tensor,
    weights: LossWeights,
    rng: torch.Generator | None,
) -> dict[str, torch.Tensor]:
    """D-step losses; the gradient penalty only in training mode, as in the reference."""
    losses = {"dense_d": bce_fake_as_fake(d_fake), "token_d": bce_real_as_real(d_real)}
    if model.training and weights.gradient_penalty > 0:
        terms = gradient_penalty_terms(model.discriminator, token_x, probs, rng)
        losses["grad_pen"] = terms.sum() * weights.gradient_penalty
    return losses


def total_loss(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """Plain sum of all losses, as fairseq's model criterion does."""
    return torch.stack([v.float() for v in losses.values()]).sum()


def divide_gradients_by_sample_size(parameters: list[nn.Parameter], sample_size: int) -> None:
    """fairseq's ``optimizer.multiply_grads(1 / sample_size)`` (one GPU), before clipping."""
    for p in parameters:
        if p.grad is not None:
            p.grad.div_(sample_size)
