"""CTC conventions both CTC trainers (the self-training model and the supervised probe) share:
the blank, whether a label fits an input, the greedy best path."""

from __future__ import annotations

import numpy as np
import torch

from w2vu.io.dictionary import SPECIALS

BLANK_INDEX = 0  # fairseq <s>, the CTC blank of the reference's decoders and CTC setups


def ctc_steps(ids: np.ndarray) -> int:
    """Output steps CTC needs for a label sequence: one per phone plus a blank between repeats."""
    return len(ids) + (int(np.count_nonzero(ids[1:] == ids[:-1])) if len(ids) > 1 else 0)


def greedy_ids(log_probs: torch.Tensor, sil_index: int) -> list[int]:
    """Best path of one utterance [T, V]: repeats merged, blanks/specials and ``<SIL>`` dropped."""
    merged = log_probs.argmax(-1).unique_consecutive()
    keep = (merged >= len(SPECIALS)) & (merged != sil_index)
    return merged[keep].tolist()
