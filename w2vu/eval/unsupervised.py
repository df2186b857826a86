"""The reference's unsupervised score for choosing decoding and self-training settings.

§3.2 (WFST tuning) and §4.1 step 4 (HMM selection) share one formula: a candidate's output is
scored ``ln(LM perplexity of the output) x max(min_error, error rate against the pseudo-labels)``,
lower is better. Perplexity is ``10^(-Σ log10 P / Σ(tokens + 1))`` (one end-of-sentence per line),
with ``<SIL>`` and ``<UNK>`` stripped first. The error term keeps a candidate close to the labels it
was built from; the perplexity term rewards outputs the LM finds plausible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from w2vu.eval.metrics import phone_error_rate
from w2vu.io.dictionary import SIL
from w2vu.text.arpa import PhoneLM
from w2vu.text.lexicon import words_to_phones

STRIPPED = frozenset({SIL, "<UNK>", "<unk>"})


def strip_tokens(line: Sequence[str]) -> list[str]:
    """A hypothesis without the tokens the reference strips before scoring."""
    return [t for t in line if t not in STRIPPED]


def lm_perplexity(lines: Sequence[Sequence[str]], lm: PhoneLM) -> float:
    """Per-token perplexity with one end-of-sentence per line; ``inf`` for no lines."""
    if not lines:
        return math.inf
    clean = [strip_tokens(line) for line in lines]
    log10 = sum(lm.score(" ".join(line)) for line in clean)
    return math.pow(10.0, -log10 / sum(len(line) + 1 for line in clean))


@dataclass(frozen=True)
class UnsupervisedScore:
    """The score and its two factors, so that a table can show why a candidate won."""

    score: float
    lm_ppl: float
    error_rate: float


def unsupervised_score(hyps: Sequence[Sequence[str]], pseudo_labels: Sequence[Sequence[str]],
                       lm: PhoneLM, min_error: float = 0.0,
                       lexicon: dict[str, str] | None = None) -> UnsupervisedScore:
    """``ln(ppl(hyps)) x max(min_error, ER(hyps vs pseudo_labels))``; both sides are stripped of
    ``<SIL>``/``<UNK>`` first and must be line-aligned. With ``lexicon``, ``hyps`` are words
    (``lm`` a word LM) and the error is of their pronunciations against phone pseudo-labels,
    the reference's ``--phonemize`` selection of its word decodes (§4.1 step 5)."""
    if len(hyps) != len(pseudo_labels):
        raise ValueError(f"{len(hyps)} hypotheses against {len(pseudo_labels)} pseudo-labels")
    ppl = lm_perplexity(hyps, lm)
    error = phone_error_rate([strip_tokens(h) for h in words_to_phones(hyps, lexicon)],
                             [strip_tokens(p) for p in pseudo_labels])
    return UnsupervisedScore(math.log(ppl) * max(min_error, error), ppl, error)


def grid_edge(name: str, values: Sequence[float], chosen: float, low_edge: bool = True
              ) -> str | None:
    """Why: a choice at the end of a swept grid means the score may still fall beyond it (on the
    digits corpus the HMM word decode chose 45, its grid's largest weight), which no table row
    shows. Returns a one-line warning naming the edge, or None (also for grids of fewer than
    three values, which are not a sweep). `low_edge=False` ignores the smallest value, for
    settings whose floor is natural (a blank weight of 0)."""
    grid = sorted(set(values))
    if len(grid) < 3:
        return None
    if chosen == grid[-1]:
        side = "largest"
    elif low_edge and chosen == grid[0]:
        side = "smallest"
    else:
        return None
    tried = ", ".join(f"{v:g}" for v in grid)
    return (f"{name} {chosen:g} is the {side} of those tried ({tried}): the unsupervised score "
            "may be lower beyond it; widen the grid")
