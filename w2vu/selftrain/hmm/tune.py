"""Choosing the HMM's LM weight without references (reference §4.1 step 4, unsup_select.py).

Why: the reference sweeps the LM weight of the HMM decode and keeps the setting with the lowest
``ln(LM perplexity of the output) x error rate against the GAN pseudo-labels`` on valid: a weight
too low gives implausible phone strings (high perplexity), one too high drifts away from what
the acoustics and labels say (high error). The word insertion penalty grid (0, 0.5, 1) of the
reference is not swept here: the decoder scores only the LM weight.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.eval.unsupervised import unsupervised_score
from w2vu.io.lines import read_token_lines
from w2vu.io.tables import read_table, write_table
from w2vu.selftrain.hmm.decode import HmmDecoder
from w2vu.text.arpa import load_phone_lm

COLUMNS = ("lm_weight", "lm_ppl", "ln_ppl", "error_rate", "score", "chosen")


@dataclass(frozen=True)
class Selection:
    """The chosen LM weight, its transcript file and every candidate's row of the table."""

    lm_weight: float
    transcripts: Path
    rows: list[dict[str, object]]


def select_lm_weight(transcripts: Mapping[float, str | os.PathLike],
                     labels_txt: str | os.PathLike, lm_arpa: str | os.PathLike,
                     out_tsv: str | os.PathLike, min_error: float = 0.0,
                     lexicon: dict[str, str] | None = None) -> Selection:
    """Score each LM weight's transcripts (`decode_hmm`'s output) against the pseudo-labels
    with the unsupervised metric, write the table (one row per weight, the chosen one marked)
    and return the lowest-scoring weight (ties: the smaller weight). With `lexicon` the
    transcripts are words, `lm_arpa` the word LM, and their pronunciations meet the labels."""
    if not transcripts:
        raise W2vuError("no decoded transcripts to select from; decode at least one LM weight")
    labels_path = Path(labels_txt)
    labels = read_token_lines(labels_path, "pseudo-labels")
    lm = load_phone_lm(lm_arpa)
    rows: list[dict[str, object]] = []
    for weight in sorted(transcripts):
        path = Path(transcripts[weight])
        hyps = read_token_lines(path, "transcripts")
        if len(hyps) != len(labels):
            raise W2vuError(f"{path} has {len(hyps)} lines but {labels_path} has {len(labels)}; "
                            "decode the split the pseudo-labels belong to")
        score = unsupervised_score(hyps, labels, lm, min_error, lexicon)
        rows.append({"lm_weight": f"{weight:g}", "lm_ppl": f"{score.lm_ppl:.4f}",
                     "ln_ppl": f"{math.log(score.lm_ppl):.4f}",
                     "error_rate": f"{score.error_rate:.4f}", "score": f"{score.score:.4f}",
                     "chosen": 0, "_weight": weight, "_score": score.score})
    best = min(rows, key=lambda r: (r["_score"], r["_weight"]))
    best["chosen"] = 1
    write_table(out_tsv, COLUMNS, rows)
    weight = float(best["_weight"])
    for row in rows:
        del row["_weight"], row["_score"]
    return Selection(weight, Path(transcripts[weight]), rows)


def read_chosen_weight(table_tsv: str | os.PathLike) -> float:
    """The LM weight :func:`select_lm_weight` marked in its table, for decoding other splits."""
    chosen = [r for r in read_table(table_tsv, COLUMNS) if r["chosen"] == "1"]
    if len(chosen) != 1:
        raise W2vuError(f"{table_tsv}: expected one chosen LM weight, found {len(chosen)}; "
                        "rerun the HMM tuning step")
    return float(chosen[0]["lm_weight"])


def decode_chosen_weight(decoder: HmmDecoder, tuning_tsv: str | os.PathLike,
                         features_prefix: str | os.PathLike, out_txt: str | os.PathLike) -> float:
    """Decode a split at the LM weight the tuning table chose into ``out_txt``; return the
    weight. Why one function: the workflow's ``hmm-decode`` and ``w2vu transcribe`` must give
    the same lines."""
    weight = read_chosen_weight(tuning_tsv)
    out = Path(out_txt)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        decoded = decoder.decode(features_prefix, [weight], tmp)
        shutil.move(decoded[weight], out)
    return weight
