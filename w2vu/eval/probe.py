"""Supervised ceiling: a linear CTC probe on the GAN's input features (paper's topline).

A single ``Linear(D, V)`` over the same (pooled) features the GAN sees, trained with CTC on the
train split's reference ``.phn`` (blank = ``<s>``, index 0 of the fairseq dictionary; ``<SIL>``
removed from the targets). If even a supervised linear map cannot read phones out of the
features, the GAN cannot either, so the probe's PER bounds what the features allow.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from w2vu.errors import W2vuError
from w2vu.eval.metrics import Score, score_lines
from w2vu.eval.score import PHONE_DROP, read_lines
from w2vu.io.dictionary import PhoneDictionary, load_phone_dictionary
from w2vu.io.features import Features, open_features
from w2vu.io.lines import write_token_lines
from w2vu.io.torch_files import load_torch_file
from w2vu.train.batches import pad_features
from w2vu.train.checkpoints import save_atomically
from w2vu.train.ctc import BLANK_INDEX, ctc_steps, greedy_ids
from w2vu.train.runtime import resolve_device


def _targets(refs: list[list[str]], dictionary: PhoneDictionary) -> list[np.ndarray]:
    """Reference ids without specials/``<SIL>``; phones missing from the dictionary are dropped."""
    index = dictionary.index
    return [np.array([index[p] for p in ref if p not in PHONE_DROP and p in index],
                     dtype=np.int64) for ref in refs]


def _aligned_refs(features: Features, phn: str | os.PathLike,
                  features_prefix: str | os.PathLike) -> list[list[str]]:
    refs = read_lines(phn)
    if len(refs) != len(features):
        raise W2vuError(f"{phn}: {len(refs)} lines for {len(features)} utterances in "
                        f"{features_prefix}; use the .phn of the same split/manifest")
    return refs


def train_probe(features_prefix: str | os.PathLike, phn: str | os.PathLike,
                dictionary: str | os.PathLike, steps: int = 300, batch_size: int = 32,
                lr: float = 5e-3, seed: int = 1, device: str = "cpu",
                out_path: str | os.PathLike | None = None) -> nn.Linear:
    """Train the linear CTC probe with Adam on seeded random mini-batches; optionally save it.

    Utterances with an empty target or fewer frames than CTC needs are left out of training.
    """
    features = open_features(features_prefix)
    phones = load_phone_dictionary(dictionary)
    targets = _targets(_aligned_refs(features, phn, features_prefix), phones)
    usable = np.array([i for i, t in enumerate(targets)
                       if len(t) and features.lengths[i] >= ctc_steps(t)], dtype=np.int64)
    if not len(usable):
        empty = sum(1 for t in targets if not len(t))
        raise W2vuError(f"{phn}: no utterance has both phones and enough frames for CTC: "
                        f"{empty} of {len(targets)} have no phones in {dictionary}, the other "
                        f"{len(targets) - empty} have fewer frames in {features_prefix} than "
                        "their phones need (mean-pooled wav2vec-U features get longer with "
                        "more features.clusters)")
    gen = torch.Generator().manual_seed(seed)
    dev = resolve_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = nn.Linear(features.dim, len(phones)).to(dev)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    ctc = nn.CTCLoss(blank=BLANK_INDEX, zero_infinity=True)
    probe.train()
    for _ in range(steps):
        pick = usable[torch.randint(len(usable), (min(batch_size, len(usable)),),
                                    generator=gen).numpy()]
        feats, mask = pad_features(features, pick)
        logp = probe(feats.to(dev)).log_softmax(-1).transpose(0, 1)  # T×B×V
        tgt = torch.from_numpy(np.concatenate([targets[i] for i in pick])).to(dev)
        in_lens = (~mask).sum(1)
        tgt_lens = torch.tensor([len(targets[i]) for i in pick])
        loss = ctc(logp, tgt, in_lens, tgt_lens)
        opt.zero_grad()
        loss.backward()
        opt.step()
    probe.eval().cpu()
    if out_path is not None:
        save_atomically({"state": probe.state_dict(), "vocabulary": list(phones.symbols)},
                        Path(out_path))
    return probe


def load_probe(path: str | os.PathLike) -> nn.Linear:
    """A probe saved by :func:`train_probe`."""
    saved = load_torch_file(path, "probe", "run the probe training step first",
                            "retrain it (delete it and rerun probe_train)")
    try:
        vocab, dim = saved["state"]["weight"].shape
        probe = nn.Linear(int(dim), int(vocab))
        probe.load_state_dict(saved["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise W2vuError(f"{path}: not a probe written by probe-train ({e!r}); retrain it "
                        "(delete it and rerun probe_train)") from None
    return probe.eval()


@torch.no_grad()
def probe_decode(probe: nn.Linear, features: Features, dictionary: PhoneDictionary,
                 batch_size: int = 64) -> list[list[str]]:
    """Greedy CTC: frame argmax, repeats merged, blank/specials/``<SIL>`` dropped."""
    sil = dictionary.sil_index
    hyps: list[list[str]] = []
    for start in range(0, len(features), batch_size):
        indices = np.arange(start, min(start + batch_size, len(features)))
        feats, mask = pad_features(features, indices)
        logits = probe(feats)
        for row, pad in zip(logits, mask):
            hyps.append([dictionary.symbols[i] for i in greedy_ids(row[~pad], sil)])
    return hyps


def probe_per(probe: nn.Linear, features_prefix: str | os.PathLike, phn: str | os.PathLike,
              dictionary: str | os.PathLike, out_path: str | os.PathLike | None = None) -> Score:
    """PER of the probe's greedy decode on a split; optionally write its hypotheses."""
    features = open_features(features_prefix)
    phones = load_phone_dictionary(dictionary)
    if probe.out_features != len(phones) or (len(features) and probe.in_features != features.dim):
        raise W2vuError(f"{features_prefix}/{dictionary}: the probe was trained on other "
                        "features or another dictionary; retrain it on this data")
    refs = _aligned_refs(features, phn, features_prefix)
    hyps = probe_decode(probe, features, phones)
    if out_path is not None:
        write_token_lines(out_path, hyps)
    return score_lines(hyps, refs, PHONE_DROP)
