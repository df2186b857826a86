"""The reference's Adam (w2vu/train/adam.py) against steps computed by hand."""

from __future__ import annotations

import io
import math

import pytest
import torch

from w2vu.train.adam import Adam

BETAS = (0.5, 0.98)  # the wav2vec-U configs
EPS = 1e-6


def _run(grads: list[float], lr: float, weight_decay: float = 0.0, start: float = 0.0,
         optimizer: type = Adam) -> list[float]:
    """Parameter values after each step of a float64 scalar fed the given gradients."""
    p = torch.nn.Parameter(torch.tensor([start], dtype=torch.float64))
    opt = optimizer([p], lr=lr, betas=BETAS, eps=EPS, weight_decay=weight_decay)
    out = []
    for g in grads:
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        out.append(float(p.detach()))
    return out


def test_first_step_with_tiny_gradient_is_a_quarter_of_adamw() -> None:
    # By hand: m = 0.5e-6, v = 0.02e-12, sqrt(v) + eps = (sqrt(0.02) + 1) e-6,
    # step size = lr·sqrt(0.02)/0.5, so the move is lr·sqrt(0.02)/(sqrt(0.02) + 1) = 0.1239·lr.
    lr = 1e-3
    expected = -lr * math.sqrt(0.02) / (math.sqrt(0.02) + 1)
    (ours,) = _run([1e-6], lr)
    assert ours == pytest.approx(expected, rel=1e-12)
    assert ours == pytest.approx(-0.12389934 * lr, rel=1e-6)
    (adamw,) = _run([1e-6], lr, optimizer=torch.optim.AdamW)
    assert adamw == pytest.approx(-0.5 * lr, rel=1e-9)  # eps added after bias correction
    assert adamw / ours == pytest.approx(4.0355, rel=1e-4)


def test_three_steps_by_hand() -> None:
    grads = [0.3, -0.1, 2.0]
    lr = 0.01
    m = v = 0.0
    p = 0.0
    expected = []
    for t, g in enumerate(grads, start=1):
        m = BETAS[0] * m + (1 - BETAS[0]) * g
        v = BETAS[1] * v + (1 - BETAS[1]) * g * g
        p -= lr * math.sqrt(1 - BETAS[1] ** t) / (1 - BETAS[0] ** t) * m / (math.sqrt(v) + EPS)
        expected.append(p)
    assert _run(grads, lr) == pytest.approx(expected, rel=1e-12)


def test_weight_decay_is_decoupled_and_applied_first() -> None:
    # p ← p − lr·wd·p, then the Adam move; with g = 0 only the decay acts.
    lr, wd = 0.1, 0.5
    (after_zero_grad,) = _run([0.0], lr, weight_decay=wd, start=2.0)
    assert after_zero_grad == pytest.approx(2.0 * (1 - lr * wd), rel=1e-12)
    g = 1.0
    move = lr * math.sqrt(0.02) / 0.5 * 0.5 * g / (math.sqrt(0.02) * g + EPS)
    (after,) = _run([g], lr, weight_decay=wd, start=2.0)
    assert after == pytest.approx(2.0 * (1 - lr * wd) - move, rel=1e-12)


def test_parameters_without_gradient_and_state_round_trip() -> None:
    a = torch.nn.Parameter(torch.ones(3))
    b = torch.nn.Parameter(torch.ones(2))
    opt = Adam([a, b], lr=0.1, betas=BETAS, eps=EPS)
    a.grad = torch.full((3,), 0.5)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2))  # untouched, no state
    assert b not in opt.state and opt.state[a]["step"] == 1
    clone = Adam([torch.nn.Parameter(a.detach().clone()), b], lr=0.1, betas=BETAS, eps=EPS)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)  # as a checkpoint does (no shared tensors)
    buffer.seek(0)
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    a.grad = torch.full((3,), -0.75)
    clone.param_groups[0]["params"][0].grad = a.grad.clone()
    opt.step()
    clone.step()
    assert torch.equal(clone.param_groups[0]["params"][0].detach(), a.detach())
