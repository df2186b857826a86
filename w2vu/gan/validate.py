"""GAN validation (reference §3.1): the generator's Viterbi hypotheses of the valid split, the
unsupervised metric ``weighted_lm_ppl`` = LM perplexity / vocabulary usage² that selects the
checkpoint, and the PER when references exist."""

from __future__ import annotations

import math

import numpy as np
import torch

from w2vu.errors import W2vuError
from w2vu.eval.metrics import phone_error_rate
from w2vu.gan.data import MIN_LENGTH, eval_batches
from w2vu.gan.models import (
    Wav2vecU,
)
from w2vu.io.dictionary import NUM_SPECIALS, PhoneDictionary
from w2vu.io.features import Features
from w2vu.text.arpa import PhoneLM


def hypothesis_ids(logits: torch.Tensor, padding_mask: torch.Tensor, vocab_size: int,
                   sil_index: int) -> list[list[int]]:
    """§3.1 steps 1-2: argmax of the run-mean JOIN output, runs collapsed, specials/SIL dropped."""
    preds = logits.argmax(-1).cpu()
    mask = padding_mask.cpu()
    out = []
    for row, pad in zip(preds, mask):
        ids = row[~pad].unique_consecutive()
        keep = (ids >= NUM_SPECIALS) & (ids < vocab_size) & (ids != sil_index)
        out.append(ids[keep].tolist())
    return out


@torch.inference_mode()
def generate_ids(model: Wav2vecU, features: Features, device: torch.device,
                 batch_size: int, sil_index: int) -> list[list[int]]:
    """Hypothesis ids for EVERY utterance in order; < 3-frame ones are still decoded.

    Under inference mode (no autograd bookkeeping at all): nothing made here meets a gradient.
    """
    model.eval()
    hyps: list[list[int]] = []
    for batch in eval_batches(features, batch_size):
        batch = batch.to(device)
        out = model.generate(batch.features, batch.padding_mask)
        hyps.extend(hypothesis_ids(out["logits"].float(), out["padding_mask"], model.vocab_size,
                                   sil_index))
    return hyps


def unsupervised_metrics(hyps: list[list[str]], lm: PhoneLM, num_symbols: int,
                         text_len: float) -> dict[str, float]:
    """§3.1: lm_ppl = 10^(−Σscore/(Σlen+N)), vocab usage over num_symbols, weighted_lm_ppl."""
    seen = {p for h in hyps for p in h}
    total_len = sum(len(h) for h in hyps)
    score = sum(lm.score(" ".join(h)) for h in hyps)
    lm_ppl = math.pow(10.0, -score / (total_len + len(hyps))) if hyps else math.inf
    usage = len(seen) / num_symbols
    weighted = lm_ppl / usage**2 if total_len > 0 else math.inf
    out_len = total_len / max(len(hyps), 1)
    return {"lm_ppl": lm_ppl, "vocab_usage": usage, "weighted_lm_ppl": weighted,
            "out_len": out_len, "len_ratio": out_len / text_len if text_len else math.nan}


class Validator:
    """Scores the model on the valid split; holds what does not change between validations."""

    def __init__(self, features: Features, dictionary: PhoneDictionary, lm: PhoneLM,
                 text_len: float, refs: list[list[str]] | None, batch_size: int) -> None:
        self.features = features
        self.dictionary = dictionary
        self.lm = lm
        self.text_len = text_len
        self.batch_size = batch_size
        self.scored = np.flatnonzero(features.lengths >= MIN_LENGTH)  # the reference's valid set
        self.refs = None if refs is None else [_strip_ref(refs[i], dictionary)
                                               for i in self.scored]
        if refs is not None and len(refs) != len(features):
            raise W2vuError(f"{len(refs)} reference lines for {len(features)} valid utterances")

    def __call__(self, model: Wav2vecU, device: torch.device) -> dict[str, float]:
        ids = generate_ids(model, self.features, device, self.batch_size,
                           self.dictionary.sil_index)
        symbols = self.dictionary.symbols
        hyps = [[symbols[i] for i in ids[j]] for j in self.scored]
        metrics = unsupervised_metrics(hyps, self.lm, self.dictionary.num_symbols, self.text_len)
        metrics["per"] = phone_error_rate(hyps, self.refs) if self.refs is not None else math.nan
        return metrics


def _strip_ref(ref: list[str], dictionary: PhoneDictionary) -> list[str]:
    """References lose specials and ``<SIL>`` like the hypotheses."""
    specials = set(dictionary.symbols[:NUM_SPECIALS]) | {dictionary.symbols[-1]}
    return [p for p in ref if p not in specials]
