"""Error rates: edit distance, PER/WER over token lists. No model imports, so that every step
(GAN validation, CTC and HMM selection, WFST tuning, scoring) measures errors the same way."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def phone_error_rate(hyps: Iterable[Sequence[str]], refs: Iterable[Sequence[str]]) -> float:
    """Σ edit distance / Σ reference length."""
    errors = length = 0
    for h, r in zip(hyps, refs):
        errors += edit_distance(h, r)
        length += len(r)
    return errors / length if length else math.nan


@dataclass(frozen=True)
class Score:
    """One error-rate measurement."""

    errors: int
    ref_len: int
    utterances: int  # scored (non-empty reference)
    skipped: int  # empty reference lines

    @property
    def rate(self) -> float:
        return self.errors / self.ref_len if self.ref_len else math.nan


def score_lines(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]],
                drop: frozenset[str] = frozenset()) -> Score:
    """Edit distance over aligned token lists; ``drop`` tokens are removed from both sides."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    errors = length = scored = skipped = 0
    for hyp, ref in zip(hyps, refs):
        ref = [t for t in ref if t not in drop]
        if not ref:
            skipped += 1
            continue
        hyp = [t for t in hyp if t not in drop]
        errors += edit_distance(hyp, ref)
        length += len(ref)
        scored += 1
    return Score(errors, length, scored, skipped)
