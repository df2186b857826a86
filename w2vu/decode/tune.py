"""Unsupervised tuning of WFST decoding settings (reference §3.2, `unsupervised_tuning=true`).

Every grid point (acoustic_scale, blank_weight) decodes the same emissions over the same HLG.
Without any reference transcript, a point is scored

    ln(max(min_lm_ppl, word-LM perplexity of its hypotheses))
      x max(min_vt_uer, UER of the lexicon-phonemised hypotheses against the Viterbi transcript)

and the lowest score wins (ties: the first in grid order). The perplexity term rewards word
strings the LM finds plausible, the UER term keeps them close to what the GAN heard. The Viterbi
transcript is `w2vu.gan.generate`'s `{split}.txt` (phones without `<SIL>`); `<SIL>`/`<UNK>` are
stripped from both sides. With a phone graph (`phn_to_phn_sil`) pass no lexicon: the hypotheses
are already phones and `word_lm` is the phone LM.

Outputs: a TSV with one row per grid point (its settings, score, lm_ppl, vt_uer, word count,
empty lines, seconds, chosen flag) and a JSON of the chosen options with its score factors, both
written atomically; optionally the chosen point's hypotheses, so that no second decode is needed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from w2vu.decode.wfst import (
    DecodeOptions,
    check_compatible,
    decode_emissions,
    load_graph,
)
from w2vu.errors import W2vuError
from w2vu.eval.metrics import phone_error_rate
from w2vu.eval.unsupervised import lm_perplexity, strip_tokens
from w2vu.io.atomic import write_text
from w2vu.io.features import open_features
from w2vu.io.lines import read_token_lines, write_token_lines
from w2vu.io.tables import write_table
from w2vu.text.arpa import PhoneLM, load_phone_lm
from w2vu.text.lexicon import read_lexicon, words_to_phones

log = logging.getLogger(__name__)

DEFAULT_ACOUSTIC_SCALES = (0.3, 0.5, 0.8, 1.2)
DEFAULT_BLANK_WEIGHTS = (0.0, 2.0, 4.0)
COLUMNS = ("acoustic_scale", "blank_weight", "score", "lm_ppl", "vt_uer", "words", "empty",
           "seconds", "chosen")


def make_grid(acoustic_scales: Iterable[float] = DEFAULT_ACOUSTIC_SCALES,
              blank_weights: Iterable[float] = DEFAULT_BLANK_WEIGHTS) -> list[tuple[float, float]]:
    """All (acoustic_scale, blank_weight) pairs, acoustic scale major."""
    return [(float(a), float(b)) for a in acoustic_scales for b in blank_weights]


@dataclass(frozen=True)
class GridPoint:
    """One decoded grid point and its score factors."""

    options: DecodeOptions
    score: float
    lm_ppl: float
    vt_uer: float
    words: int
    empty: int
    seconds: float


def choose(points: Sequence[GridPoint]) -> int:
    """Index of the lowest score (NaN counts as worst; ties go to the earlier point)."""
    keys = [p.score if not math.isnan(p.score) else math.inf for p in points]
    return min(range(len(points)), key=lambda i: (keys[i], i))


def tune_decoding(emissions_prefix: str | os.PathLike, graph_dir: str | os.PathLike,
                  viterbi_txt: str | os.PathLike, lexicon: str | os.PathLike | None,
                  word_lm: str | os.PathLike, grid: Sequence[tuple[float, float]],
                  out_tsv: str | os.PathLike, out_json: str | os.PathLike,
                  min_vt_uer: float = 0.0, base: DecodeOptions | None = None,
                  min_lm_ppl: float = 0.0, out_txt: str | os.PathLike | None = None,
                  threads: int = 1) -> DecodeOptions:
    """Decode with every (acoustic_scale, blank_weight) of `grid` and return the best options.

    Why: the reference released no LM decoding settings (GitHub #4390) and there are no
    transcripts to tune them on; the §3.2 unsupervised score picks them from the Viterbi output
    and the LM alone. `base` gives the other settings (beam, sil_is_blank, blank_mode).
    """
    if not grid:
        raise W2vuError("the tuning grid is empty; give at least one acoustic scale and one "
                        "blank weight")
    base = base or DecodeOptions()
    features = open_features(emissions_prefix)
    graph = load_graph(graph_dir)
    check_compatible(graph, features, emissions_prefix, base)
    viterbi = read_token_lines(viterbi_txt, "Viterbi transcript",
                               "give the <split>.txt written by the GAN generation step")
    if len(viterbi) != len(features):
        raise W2vuError(f"{viterbi_txt} has {len(viterbi)} lines but {emissions_prefix}.lengths "
                        f"lists {len(features)} utterances; give the Viterbi transcript of the "
                        "same split and checkpoint as the emissions")
    if not any(viterbi):
        raise W2vuError(f"{viterbi_txt} holds no phones, so the UER factor is undefined; "
                        "check the GAN generation step")
    lex = read_lexicon(lexicon) if lexicon is not None else None
    lm = load_phone_lm(word_lm)
    points: list[GridPoint] = []
    best_hyps: list[list[str]] = []
    for number, (scale, weight) in enumerate(grid, start=1):
        options = replace(base, acoustic_scale=scale, blank_weight=weight)
        start = time.perf_counter()
        hyps = decode_emissions(graph, features, options, threads)
        seconds = time.perf_counter() - start
        point = score_point(options, hyps, viterbi, lex, lm, min_vt_uer, min_lm_ppl, seconds)
        points.append(point)
        log.info("grid %d/%d: acoustic_scale %g, blank_weight %g: score %.4f (ppl %.2f, "
                 "vt_uer %.4f)", number, len(grid), scale, weight, point.score, point.lm_ppl,
                 point.vt_uer)
        if choose(points) == len(points) - 1:
            best_hyps = hyps
    chosen = choose(points)
    write_table(out_tsv, COLUMNS, [_row(p, i == chosen) for i, p in enumerate(points)])
    best = points[chosen]
    summary = {**best.options.to_dict(), "score": best.score, "lm_ppl": best.lm_ppl,
               "vt_uer": best.vt_uer, "min_vt_uer": min_vt_uer, "min_lm_ppl": min_lm_ppl,
               "grid_points": len(points), "graph": str(graph_dir),
               "emissions": os.fspath(emissions_prefix)}
    write_text(out_json, json.dumps(summary, indent=2, allow_nan=True) + "\n")
    if out_txt is not None:
        write_token_lines(out_txt, best_hyps)
    log.info("chose acoustic_scale %g, blank_weight %g (score %.4f) of %d grid points",
             best.options.acoustic_scale, best.options.blank_weight, best.score, len(points))
    return best.options


def read_choice(path: str | os.PathLike) -> DecodeOptions:
    """The options a tuning run chose (its JSON), for the decoding step."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise W2vuError(f"{path}: cannot read the tuning choice ({e}); rerun the tuning "
                        "step") from None
    return DecodeOptions.from_dict(values)


def score_point(options: DecodeOptions, hyps: Sequence[Sequence[str]],
                viterbi: Sequence[Sequence[str]], lexicon: dict[str, str] | None, lm: PhoneLM,
                min_vt_uer: float, min_lm_ppl: float = 0.0, seconds: float = 0.0) -> GridPoint:
    """The §3.2 score of one point: the perplexity is the word LM's on the word hypotheses, the
    UER is on their phones (`unsupervised_score` with both factors from the same strings would
    mix the two)."""
    ppl = max(min_lm_ppl, lm_perplexity(hyps, lm))
    phones = words_to_phones(hyps, lexicon)
    uer = phone_error_rate([strip_tokens(h) for h in phones], [strip_tokens(v) for v in viterbi])
    score = math.log(ppl) * max(min_vt_uer, uer)
    return GridPoint(options, score, ppl, uer, sum(len(h) for h in hyps),
                     sum(1 for h in hyps if not h), seconds)


def _row(point: GridPoint, chosen: bool) -> dict[str, object]:
    return {"acoustic_scale": point.options.acoustic_scale,
            "blank_weight": point.options.blank_weight, "score": f"{point.score:.6g}",
            "lm_ppl": f"{point.lm_ppl:.6g}", "vt_uer": f"{point.vt_uer:.6g}",
            "words": point.words, "empty": point.empty, "seconds": f"{point.seconds:.3f}",
            "chosen": int(chosen)}
