"""Tests for the wav2vec-U GAN models and losses (reference §2.2-2.5, §7)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from w2vu.gan.losses import (
    LossWeights,
    code_penalty,
    divide_gradients_by_sample_size,
    gan_losses,
    gradient_penalty_terms,
    is_discriminator_step,
    mmi_loss,
    prob_perplexity,
    smoothness_penalty,
    total_loss,
    w2vu2_weights,
)
from w2vu.gan.models import (
    Discriminator,
    DiscriminatorConfig,
    build_wav2vec_u,
    join_segment,
)
from w2vu.io.dictionary import output_vocabulary

V = 12


def test_output_vocabulary_order() -> None:
    vocab = output_vocabulary(["a", "b", "<SIL>"])
    assert vocab == ["<s>", "<pad>", "</s>", "<unk>", "a", "b", "<SIL>"]


def test_w2vu_state_dict_keys() -> None:
    shapes = {k: tuple(v.shape) for k, v in build_wav2vec_u(44, 1).state_dict().items()}
    assert shapes == {
        "discriminator.net.0.weight": (384, 44, 6),
        "discriminator.net.0.bias": (384,),
        "discriminator.net.3.0.weight": (384, 384, 6),
        "discriminator.net.3.0.bias": (384,),
        "discriminator.net.4.weight": (1, 384, 6),
        "discriminator.net.4.bias": (1,),
        "generator.proj.1.weight": (44, 512, 4),
    }


def test_w2vu2_state_dict_keys() -> None:
    model = build_wav2vec_u(44, 2)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "discriminator.net.0.weight": (384, 44, 8),
        "discriminator.net.0.bias": (384,),
        "discriminator.net.3.0.weight": (384, 384, 8),
        "discriminator.net.3.0.bias": (384,),
        "discriminator.net.4.weight": (1, 384, 8),
        "discriminator.net.4.bias": (1,),
        "generator.proj.1.weight": (44, 1024, 9),
        "generator.bn.weight": (1024,),
        "generator.bn.bias": (1024,),
        "generator.bn.running_mean": (1024,),
        "generator.bn.running_var": (1024,),
        "generator.bn.num_batches_tracked": (),
        "generator.in_proj.weight": (1024, 1024),
        "generator.in_proj.bias": (1024,),
        "decoder.weight": (64, 1024),
        "decoder.bias": (64,),
    }
    assert torch.all(model.generator.bn.weight == 30.0)
    n_gelu = sum(isinstance(m, torch.nn.GELU) for m in model.discriminator.modules())
    assert n_gelu == 1


def _mask(lengths: list[int]) -> torch.Tensor:
    t = max(lengths)
    return torch.arange(t)[None, :] >= torch.tensor(lengths)[:, None]


def test_generator_lengths_and_masks() -> None:
    feats = torch.randn(2, 10, 8)
    mask = _mask([10, 7])
    v1 = build_wav2vec_u(V, 1, input_dim=8).eval().generator(feats, mask)
    assert v1["logits"].shape == (2, 11, V)
    assert v1["padding_mask"].tolist() == [[False] * 11, [False] * 8 + [True] * 3]
    v2 = build_wav2vec_u(V, 2, input_dim=8).eval().generator(feats, mask)
    assert v2["logits"].shape == (2, math.ceil(10 / 3), V)
    assert torch.equal(v2["padding_mask"], mask[:, ::3])
    assert v2["inter_x"].shape == (2, 10, 8)


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Independent loop: (start, end) of runs of equal ids."""
    out: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            out.append((start, i))
            start = i
    return out


def _peaked_logits(ids: list[list[int]], t: int) -> torch.Tensor:
    """Logits with argmax = ids and a frame-unique last channel to identify frames."""
    b = len(ids)
    x = torch.zeros(b, t, V)
    for i, seq in enumerate(ids):
        for j, c in enumerate(seq):
            x[i, j, c] = 10.0
    x[..., V - 1] = torch.rand(b, t)  # < 10, never the argmax, unique per frame
    return x


IDS = [[1, 1, 2, 2, 2, 3, 1, 1], [4, 4, 4, 5, 6, 6]]


def _padded_example() -> tuple[torch.Tensor, torch.Tensor]:
    logits = _peaked_logits(IDS, 8)
    logits[1, 6:] = torch.randn(2, V)  # garbage in padded frames
    return logits, _mask([8, 6])


def test_join_eval_is_run_mean() -> None:
    logits, mask = _padded_example()
    out, pad = join_segment(logits, mask, training=False)
    # new length = max number of runs counting the padding run: max(4, 3 + 1)
    assert out.shape == (2, 4, V)
    for b, seq in enumerate(IDS):
        runs = _runs(seq)
        for r, (s, e) in enumerate(runs):
            torch.testing.assert_close(out[b, r], logits[b, s:e].mean(0))
        assert not pad[b, : len(runs)].any() and pad[b, len(runs) :].all()
        assert torch.all(out[b, len(runs) :] == 0)


def test_join_train_picks_frame_inside_run() -> None:
    logits, mask = _padded_example()
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        out, pad = join_segment(logits, mask, training=True, generator=gen)
        for b, seq in enumerate(IDS):
            runs = _runs(seq)
            for r, (s, e) in enumerate(runs):
                hits = [j for j in range(len(seq)) if torch.equal(out[b, r], logits[b, j])]
                assert len(hits) == 1 and s <= hits[0] < e
            assert pad[b, len(runs) :].all() and torch.all(out[b, len(runs) :] == 0)


def test_join_train_gradient_only_through_sampled_frames() -> None:
    logits, mask = _padded_example()
    logits.requires_grad_(True)
    out, _ = join_segment(logits, mask, training=True, generator=torch.Generator().manual_seed(0))
    out.sum().backward()
    used = (logits.grad.abs().sum(-1) > 0).sum(-1).tolist()
    assert used == [4, 3]


def _loop_join(logits: torch.Tensor, mask: torch.Tensor, training: bool,
               gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's row-by-row JOIN (fairseq's ``logit_segment``), as a check."""
    preds = logits.argmax(-1).masked_fill(mask, -1)
    runs = [p.unique_consecutive(return_inverse=True, return_counts=True) for p in preds]
    width = max(u.numel() for u, _, _ in runs)
    out = logits.new_zeros(logits.size(0), width, logits.size(-1))
    pad = torch.zeros(logits.size(0), width, dtype=torch.bool)
    for b, (u, idx, c) in enumerate(runs):
        if training:
            starts = torch.cat([torch.zeros(1, dtype=torch.long), c.cumsum(0)[:-1]])
            multi = c > 1
            starts[multi] += (c[multi] * torch.rand(int(multi.sum()), generator=gen)).long()
            merged = logits[b, starts]
        else:
            merged = logits.new_zeros(c.numel(), logits.size(-1)).index_add(0, idx, logits[b])
            merged = merged / c.unsqueeze(-1)
        kept = merged[u != -1]
        out[b, : kept.size(0)] = kept
        pad[b, kept.size(0):] = True
    return out, pad


@pytest.mark.parametrize("training", [True, False])
def test_join_matches_row_by_row_reference(training: bool) -> None:
    torch.manual_seed(0)
    lengths = [30, 7, 22, 1, 30, 15]
    ids = torch.randint(4, 9, (len(lengths), 30))
    ids = ids.repeat_interleave(2, dim=1)[:, :30]  # runs of length 1 and longer
    logits = torch.nn.functional.one_hot(ids, 12).float() * 5 + torch.randn(len(lengths), 30, 12)
    mask = _mask(lengths)
    got = join_segment(logits, mask, training, generator=torch.Generator().manual_seed(4))
    want = _loop_join(logits, mask, training, torch.Generator().manual_seed(4))
    torch.testing.assert_close(got[0], want[0], rtol=1e-6, atol=1e-6)
    assert torch.equal(got[1], want[1])


def test_discriminator_is_causal_and_masked() -> None:
    torch.manual_seed(0)
    disc = Discriminator(DiscriminatorConfig(kernel=6), V).eval()
    x = torch.randn(2, 9, V).softmax(-1)
    y = disc.frame_logits(x)
    x2 = x.clone()
    x2[:, 5] = torch.randn(V).softmax(-1)
    y2 = disc.frame_logits(x2)
    torch.testing.assert_close(y[:, :5], y2[:, :5])
    assert not torch.allclose(y[:, 5:], y2[:, 5:])
    mask = _mask([9, 5])
    pooled = disc(x, mask)
    torch.testing.assert_close(pooled[0], y[0].mean())
    torch.testing.assert_close(pooled[1], y[1, :5].mean())
    torch.testing.assert_close(disc(x2, mask)[1], pooled[1])  # padded frames ignored


class _LinearCritic(torch.nn.Module):
    """D(x)_b = Σ_{t,v} W[t,v] x[b,t,v]: gradient W for every b, known in closed form."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        assert padding_mask is None
        return (x * self.w[: x.size(1)]).sum(dim=(1, 2))


def test_gradient_penalty_norm_over_time_matches_hand_computation() -> None:
    w = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [3.0, 1.0, 1.0]])
    real = torch.rand(3, 3, 3)  # larger batch: cropped to the fake's 2 utterances
    fake = torch.rand(2, 2, 3, requires_grad=True)  # shorter: crops time to 2
    critic = _LinearCritic(w)
    terms = gradient_penalty_terms(critic, real, fake, torch.Generator().manual_seed(0))
    wn = w[:2].numpy()
    expected = (np.sqrt((wn**2).sum(axis=0)) - 1) ** 2  # norm over time, per channel
    assert terms.shape == (2, 3)
    np.testing.assert_allclose(terms.detach().numpy(), np.tile(expected, (2, 1)), rtol=1e-6)
    terms.sum().backward()  # create_graph: the penalty trains the critic
    assert critic.w.grad is not None and critic.w.grad[2].abs().sum() == 0


def test_prob_perplexity_and_code_penalty_match_numpy() -> None:
    logits = torch.randn(2, 5, V)
    logits[1, 3:] = 0.0  # padded frames after JOIN: zero logits, counted as uniform
    x = logits.numpy().reshape(-1, V).astype(np.float64)
    p = np.exp(x - x.max(1, keepdims=True))
    avg = (p / p.sum(1, keepdims=True)).mean(0)
    ppl = np.exp(-(avg * np.log(avg + 1e-7)).sum())
    assert prob_perplexity(logits).item() == pytest.approx(ppl, rel=1e-5)
    assert code_penalty(logits, 2, 4.0).item() == pytest.approx((V - ppl) / V * 2 * 4.0, rel=1e-5)


def test_smoothness_counts_masked_pairs_in_mean() -> None:
    logits = torch.tensor([[[0.0], [1.0], [3.0]], [[1.0], [1.0], [5.0]]])
    mask = torch.tensor([[False, False, False], [False, False, True]])
    # squared diffs: row0 1, 4; row1 0, (16 masked) -> sum 5 over 4 entries
    assert smoothness_penalty(logits, mask, 2, 0.5).item() == pytest.approx(5 / 4 * 2 * 0.5)


def test_mmi_loss_downsamples_and_crops() -> None:
    dec = torch.nn.Linear(4, 3)
    inter_x = torch.randn(2, 3, 4)
    km = torch.tensor([[0, 9, 1, 9, 2, 9, 0], [2, 9, 2, 9, -1, 9, -1]])
    out = dec(inter_x)
    tgt = km[:, ::2][:, :3]
    ce = torch.nn.functional.cross_entropy(
        out.reshape(-1, 3), tgt.reshape(-1).clamp(min=0), reduction="none"
    ) * (tgt.reshape(-1) >= 0)
    expected = ce.sum() / 6 * 2 * 0.5
    torch.testing.assert_close(mmi_loss(dec, inter_x, km, 0.5), expected)


def _batch(version: int) -> tuple[torch.Tensor, ...]:
    feats = torch.randn(3, 12, 8)
    mask = _mask([12, 9, 6])
    labels = torch.randint(4, V, (3, 7))
    labels[2, 5:] = 1  # <pad>
    km = torch.randint(0, 64, (3, 24))
    return feats, mask, labels, km


@pytest.mark.parametrize("version", [1, 2])
def test_step_schedule_and_backward(version: int) -> None:
    torch.manual_seed(0)
    model = build_wav2vec_u(V, version, input_dim=8).train()
    weights = LossWeights() if version == 1 else w2vu2_weights()
    feats, mask, labels, km = _batch(version)
    assert not is_discriminator_step(0) and is_discriminator_step(1)
    g = gan_losses(model, feats, mask, labels, 0, weights, km)
    expected_g = {"dense_g", "code_pen", "smoothness"} | ({"mmi"} if version == 2 else set())
    assert set(g) == expected_g
    d = gan_losses(model, feats, mask, labels, 1, weights, km)
    assert set(d) == {"dense_d", "token_d", "grad_pen"}
    # the discriminator sees the real text only in D steps (G steps have no use for it)
    inputs: list[torch.Tensor] = []
    hook = model.discriminator.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    gan_losses(model, feats, mask, labels, 0, weights, km)
    assert len(inputs) == 1 and inputs[0].requires_grad  # the generator's output, not text
    gan_losses(model, feats, mask, labels, 1, weights, km)
    assert len(inputs) == 4  # fake, real, gradient-penalty interpolates
    hook.remove()
    loss = total_loss(d)
    loss.backward()
    params = list(model.discriminator.parameters())
    before = [p.grad.clone() for p in params]
    divide_gradients_by_sample_size(params, 3)
    torch.testing.assert_close(params[0].grad, before[0] / 3)


def test_losses_deterministic_under_seed() -> None:
    feats, mask, labels, km = _batch(2)

    def run(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)  # init and dropout
        model = build_wav2vec_u(V, 2, input_dim=8).train()
        rng = torch.Generator().manual_seed(seed)
        out = gan_losses(model, feats, mask, labels, 0, w2vu2_weights(), km, rng)
        out.update(gan_losses(model, feats, mask, labels, 1, w2vu2_weights(), km, rng))
        return {k: v.detach() for k, v in out.items()}

    a, b = run(7), run(7)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
