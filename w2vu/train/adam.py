"""The reference's Adam update rule (fairseq ``fairseq/optim/adam.py``, class ``Adam``).

Why not ``torch.optim.AdamW``: fairseq divides by ``sqrt(v) + eps`` and folds both bias
corrections into the step size, ``lr · sqrt(1 − β2^t) / (1 − β1^t)``; torch bias-corrects v first
and adds eps afterwards, ``lr · m̂ / (sqrt(v̂) + eps)``. The two agree once |g| ≫ eps but not
for small gradients early on: at the first step with |g| = 1e-6, β = (0.5, 0.98) and eps = 1e-6,
fairseq moves a parameter by 0.124·lr and AdamW by 0.5·lr, a factor of four. The GAN's
discriminator and generator see such gradients in their first updates, so the reference's rule is
the one used here.

Weight decay is decoupled as fairseq applies it: ``p ← p − lr·wd·p`` before the Adam step.
No amsgrad (off in both wav2vec-U configs). fairseq takes this path whenever no fused CUDA Adam
(apex) is installed, which is the case for a plain ``pip install fairseq``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch


class Adam(torch.optim.Optimizer):
    """Adam with eps outside the square root of the raw second moment (see module docstring).

    The per-parameter state is ``step`` (an int), ``exp_avg`` and ``exp_avg_sq``, kept in float32
    (or the parameter's dtype when wider), so a checkpoint loads with ``weights_only=True``.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter] | Iterable[dict],
                 lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"Adam needs lr, eps, weight_decay >= 0, got {lr}, {eps}, "
                             f"{weight_decay}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Adam betas must lie in [0, 1), got {betas}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group)
        return loss

    def _update(self, p: torch.Tensor, group: dict) -> None:
        if p.grad.is_sparse:
            raise RuntimeError("Adam does not support sparse gradients")
        work = p if p.dtype not in (torch.float16, torch.bfloat16) else p.float()
        grad = p.grad.to(work.dtype)
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(work)
            state["exp_avg_sq"] = torch.zeros_like(work)
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        state["step"] += 1
        t = state["step"]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = exp_avg_sq.sqrt().add_(group["eps"])
        step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        if wd != 0:
            work.add_(work, alpha=-wd * lr)
        work.addcdiv_(exp_avg, denom, value=-step_size)
        if work is not p:
            p.copy_(work)
