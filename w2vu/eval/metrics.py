"""Error rates: edit distance, PER/WER over token lists. No model imports, so that every step
(GAN validation, CTC and HMM selection, WFST tuning, scoring) measures errors the same way."""

from __future__ import annotations

import math
from collections import Counter
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


def align(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[str | None, str | None]]:
    """One minimal-edit alignment as (ref, hyp) pairs; None marks an insertion or a deletion.

    Full table with backtrace (O(len(ref)·len(hyp)) memory), so kept apart from the lean
    ``edit_distance``; ties prefer a match or substitution, then a deletion.
    """
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1,
                             cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs: list[tuple[str | None, str | None]] = []
    i, j = n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            pairs.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            pairs.append((ref[i - 1], None))
            i -= 1
        else:
            pairs.append((None, hyp[j - 1]))
            j -= 1
    return pairs[::-1]


def confusions(hyps: Iterable[Sequence[str]], refs: Iterable[Sequence[str]]
               ) -> dict[str | None, Counter]:
    """What each reference token became (None: deleted; key None: insertions), summed over
    aligned lines: shows whether a GAN learnt phones or a consistent wrong permutation."""
    table: dict[str | None, Counter] = {}
    for hyp, ref in zip(hyps, refs):
        for r, h in align(ref, hyp):
            table.setdefault(r, Counter())[h] += 1
    return table


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
