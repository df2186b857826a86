"""PER/WER of line-aligned hypothesis files, the ``scores.tsv`` table and the demo baselines.

Error rate = Σ edit distance / Σ reference tokens over the utterances whose reference is not
empty (empty references are skipped and counted, as in the reference's valid set, where they
cannot be scored). For PER ``<SIL>`` and the fairseq specials are removed from both sides, as the
generator's hypotheses never contain them (§3.1-3.2).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.eval.metrics import Score, edit_distance, score_lines
from w2vu.io.atomic import atomic_path
from w2vu.io.dictionary import SIL, SPECIALS
from w2vu.io.lines import read_token_lines

SCORE_COLUMNS = ("stage", "split", "metric", "errors", "reference_tokens", "rate", "note")
PHONE_DROP = frozenset((*SPECIALS, SIL))


def read_lines(path: str | os.PathLike) -> list[list[str]]:
    """Token lists, one per line, of a stage's output or references."""
    return read_token_lines(path, "transcript", "run the step that writes it first")


def score_files(hyp_path: str | os.PathLike, ref_path: str | os.PathLike,
                metric: str = "per") -> Score:
    """PER (``metric="per"``, drops ``<SIL>``/specials) or WER of two line-aligned files."""
    if metric not in ("per", "wer"):
        raise W2vuError(f"unknown metric {metric!r}; use per or wer")
    hyps, refs = read_lines(hyp_path), read_lines(ref_path)
    if len(hyps) != len(refs):
        raise W2vuError(f"{hyp_path}: {len(hyps)} lines but {ref_path} has {len(refs)}; both "
                        "must be line-aligned with the same manifest (regenerate the hypotheses)")
    return score_lines(hyps, refs, PHONE_DROP if metric == "per" else frozenset())


def score_row(stage: str, split: str, metric: str, score: Score) -> dict[str, str]:
    """One ``scores.tsv`` row."""
    return {"stage": stage, "split": split, "metric": metric, "errors": str(int(score.errors)),
            "reference_tokens": str(int(score.ref_len)), "rate": f"{score.rate:.6g}", "note": ""}


def failed_row(stage: str, split: str, metric: str, reason: str) -> dict[str, str]:
    """The ``scores.tsv`` row of a stage that could not run: rate ``failed`` and the reason."""
    return {"stage": stage, "split": split, "metric": metric, "errors": "",
            "reference_tokens": "", "rate": "failed", "note": reason}


def write_scores(scores_tsv: str | os.PathLike, rows: Sequence[dict[str, str]]) -> None:
    """Write the whole ``scores.tsv`` atomically."""
    with atomic_path(scores_tsv) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SCORE_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def append_scores(scores_tsv: str | os.PathLike, stage: str, split: str, metric: str,
                  score: Score) -> None:
    """Add or replace the (stage, split, metric) row of an existing ``scores.tsv``, so that a
    user scoring outside the workflow keeps one table."""
    path = Path(scores_tsv)
    rows: list[dict[str, str]] = []
    if path.exists():
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t")
            if reader.fieldnames is not None and tuple(reader.fieldnames) != SCORE_COLUMNS:
                raise W2vuError(f"{path}: unexpected columns {reader.fieldnames}; delete it "
                                "and rerun the scoring steps")
            rows = list(reader)
    new = score_row(stage, split, metric, score)
    key = (stage, split, metric)
    for i, row in enumerate(rows):
        if (row["stage"], row["split"], row["metric"]) == key:
            rows[i] = new
            break
    else:
        rows.append(new)
    write_scores(path, rows)


# --------------------------------------------------------------------------- baselines


def most_frequent_phone(text_path: str | os.PathLike) -> str:
    """The commonest phone (``<SIL>`` excluded) of a phone text such as the unpaired LM text."""
    counts = Counter(p for line in read_lines(text_path) for p in line if p not in PHONE_DROP)
    if not counts:
        raise W2vuError(f"{text_path}: no phones; rerun the text preparation")
    return min(counts, key=lambda p: (-counts[p], p))  # ties broken by name: deterministic


# The constant-sentence baseline's search: the text's commonest distinct sentences and sentence
# beginnings tried, each against an evenly spaced sample of about this many tokens (phones or
# words), so that short sentences get a large sample and long ones cost no more: a few seconds
# on natural text or the digits text (bench/constant_sentence.py).
CONSTANT_SENTENCES = 20
CONSTANT_BEGINNINGS = 100  # short, so cheap to try; partial words crowd the first 20 out
CONSTANT_SAMPLE_TOKENS = 16_000


def constant_sentence(text_path: str | os.PathLike) -> list[str]:
    """The sentence that, said for every utterance, has the fewest errors against the text itself.

    Of the text's commonest distinct sentences and the commonest beginnings of sentences
    (``<SIL>`` left out), the one with the fewest edits against an evenly spaced sample of the
    text (all of it when short): an estimate, from the unpaired text alone, of the best constant
    output. The beginnings matter where sentences are predictable but long: on the digits text
    the best constant, *seven eight one*, is no common sentence. Phones or words alike.
    """
    lines = [tuple(p for p in line if p not in PHONE_DROP) for line in read_lines(text_path)]
    lines = [line for line in lines if line]
    if not lines:
        raise W2vuError(f"{text_path}: no tokens; rerun the text preparation")
    sample = lines[:: max(1, sum(map(len, lines)) // CONSTANT_SAMPLE_TOKENS)]
    sentences = Counter(lines)
    beginnings = Counter(line[:n] for line in sample for n in range(1, len(line) + 1))
    candidates = {c for counts, top in ((sentences, CONSTANT_SENTENCES),
                                        (beginnings, CONSTANT_BEGINNINGS))
                  for c in sorted(counts, key=lambda s: (-counts[s], s))[:top]}
    return list(min(candidates, key=lambda c: (sum(edit_distance(c, r) for r in sample), c)))


def write_constant_hypotheses(out_path: str | os.PathLike, line: str, count: int) -> None:
    """The same hypothesis line for every utterance, line-aligned with a ``count``-line manifest."""
    with atomic_path(out_path) as tmp:
        tmp.write_text(f"{line}\n" * count, encoding="utf-8")


def most_frequent_phone_baseline(text_path: str | os.PathLike, ref_path: str | os.PathLike,
                                 out_path: str | os.PathLike) -> Score:
    """Write and score the most-frequent-phone hypotheses against ``ref_path`` (PER)."""
    count = len(read_lines(ref_path))
    write_constant_hypotheses(out_path, most_frequent_phone(text_path), count)
    return score_files(out_path, ref_path, "per")


def constant_sentence_baseline(text_path: str | os.PathLike, ref_path: str | os.PathLike,
                               out_path: str | os.PathLike, metric: str = "per") -> Score:
    """Write and score the text's best constant sentence against ``ref_path``: the phone text
    against phone references (PER), or the word text against words (WER).

    An audio-blind baseline: where the text is predictable (the digits corpus's grammar) one
    sentence said every time scores far better than the commonest phone (test PER 0.68 against
    0.94 there; WER 0.72), and a recognizer that does not beat it has not shown that it reads
    the audio.
    """
    count = len(read_lines(ref_path))
    write_constant_hypotheses(out_path, " ".join(constant_sentence(text_path)), count)
    return score_files(out_path, ref_path, metric)
