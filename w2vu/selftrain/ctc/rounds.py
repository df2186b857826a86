"""Rounds of CTC self-training, each kept only when the unsupervised score improves.

A round trains a CTC model on the current labels, transcribes the split (and writes emissions for
the WFST decoder, which gives the LM-decoded relabelling), and is judged with the reference's
unsupervised score (§3.2, §4.1 step 4): ``ln(LM perplexity of the new transcripts) ×
max(min_error, PER(new transcripts vs the labels the round trained on))``, lower is better. The
error term keeps a round near the labels it learned from; the perplexity term rewards output the
phone LM finds plausible.

Decision: the first round has nothing to compare with and is kept when its score is finite (an
empty output is rejected). A later round is kept only when its score is lower than the best kept
score so far, carried from round to round in the JSON, so a chain of ``round.json`` files is
enough to know which round's model and labels stand. A rejected round's labels are not used: the
next round (if any) starts again from the labels of the best kept round.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from w2vu.decode.wfst import DecodeOptions, decode_split
from w2vu.errors import W2vuError
from w2vu.eval.unsupervised import unsupervised_score
from w2vu.io.atomic import write_text
from w2vu.io.features import FrameSource
from w2vu.io.lines import read_token_lines
from w2vu.selftrain.ctc.fit import train_ctc
from w2vu.selftrain.ctc.steps import CtcConfig
from w2vu.selftrain.ctc.transcribe import transcribe_ctc
from w2vu.text.arpa import load_phone_lm

log = logging.getLogger(__name__)

ROUND_JSON = "round.json"
PHONE_LINES = "pass a UTF-8 file with one line of phones per utterance"


@dataclass(frozen=True)
class RoundDecision:
    """What ``round.json`` holds: the round's score, the decision and the best round so far."""

    round: int
    score: float
    lm_ppl: float
    error_rate: float
    previous_best: float | None
    keep: bool
    best_round: int | None
    best_score: float | None
    labels: str
    transcripts: str
    utterances: int


def read_decision(path: str | os.PathLike) -> RoundDecision:
    """A previous round's ``round.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RoundDecision(**data)
    except (OSError, ValueError, TypeError) as err:
        raise W2vuError(f"{path}: not a round decision written by judge_round ({err}); delete it "
                        "and rerun that round") from None


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def judge_round(round_number: int, labels_txt: str | os.PathLike,
                transcripts_txt: str | os.PathLike, lm: str | os.PathLike,
                out_json: str | os.PathLike, previous_json: str | os.PathLike | None = None,
                min_error: float = 0.0) -> RoundDecision:
    """Score a round's transcripts against the labels it trained on and decide keep/reject.

    ``lm`` is the phone LM (ARPA, or a KenLM binary when kenlm is importable), the one GAN
    selection uses. ``previous_json`` is the previous round's decision; without it this is the
    first round. Writes the decision to ``out_json`` (atomically) and returns it.
    """
    labels = read_token_lines(labels_txt, "labels", PHONE_LINES)
    hyps = read_token_lines(transcripts_txt, "transcripts", PHONE_LINES)
    if len(labels) != len(hyps):
        raise W2vuError(f"{transcripts_txt} has {len(hyps)} lines but {labels_txt} has "
                        f"{len(labels)}; both must be line-aligned with the same features")
    result = unsupervised_score(hyps, labels, load_phone_lm(lm), min_error)
    score = result.score if sum(map(len, hyps)) else math.inf
    previous = read_decision(previous_json) if previous_json is not None else None
    prev_best = previous.best_score if previous is not None else None
    if prev_best is None:
        keep = math.isfinite(score)
    else:
        keep = score < prev_best
    best_round = round_number if keep else (previous.best_round if previous else None)
    best_score = score if keep else prev_best
    decision = RoundDecision(round_number, score, result.lm_ppl, result.error_rate, prev_best,
                             keep, best_round, _finite_or_none(best_score), os.fspath(labels_txt),
                             os.fspath(transcripts_txt), len(hyps))
    write_text(out_json, json.dumps(asdict(decision), indent=2, allow_nan=True) + "\n")
    log.info("round %d: score %.4g (ln ppl %.4g x error %.4g) vs best %s -> %s", round_number,
             score, math.log(result.lm_ppl) if result.lm_ppl > 0 else math.nan,
             result.error_rate, "none" if prev_best is None else f"{prev_best:.4g}",
             "keep" if keep else "reject")
    return decision


Relabel = Callable[[Path, Path], Path]
"""(round folder, model.pt) -> labels file for the next round (e.g. WFST-decoded emissions)."""

LM_DECODE = DecodeOptions(acoustic_scale=0.9, beam=10.0, max_active=1000)
"""WFST settings for CTC emissions over a phone graph: measured on 6 minutes of espeak speech with
labels at 32% PER, acoustic scales 0.8-1.0 give 22% PER (0.5: 41%, 1.5: 26%, greedy 32%)."""


def transcribe_round(model: str | os.PathLike, source: FrameSource | str | os.PathLike,
                     dictionary: str | os.PathLike, out_txt: str | os.PathLike,
                     graph_dir: str | os.PathLike | None = None, device: str = "auto",
                     threads: int | None = None) -> list[list[str]]:
    """A round's transcripts of one split: greedy, or (with ``graph_dir``, a phone graph) its
    emissions decoded with :data:`LM_DECODE`, which removes what the greedy output of a little
    data gets wrong. Shared by ``ctc-transcribe`` and ``w2vu transcribe`` so both agree."""
    if graph_dir is None:
        return transcribe_ctc(model, source, dictionary, out_txt, device=device, threads=threads)
    out = Path(out_txt)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        emissions = Path(tmp) / "emissions"
        transcribe_ctc(model, source, dictionary, Path(tmp) / "greedy.txt",
                       emissions_prefix=emissions, device=device, threads=threads)
        return decode_split(emissions, graph_dir, out, LM_DECODE, threads or 1)


def lm_relabel(graph_dir: str | os.PathLike, options: DecodeOptions | None = None,
               emissions: str = "emissions", out_name: str = "labels.txt",
               threads: int = 1) -> Relabel:
    """A :data:`Relabel` that decodes a round's ``emissions`` over ``graph_dir``'s HLG (a phone
    graph: ``w2vu.text.graphs.build_graphs`` with a phone ARPA and no lexicon) into ``out_name``.

    This is what makes CTC self-training beat its labels on little data: the CTC model's greedy
    transcripts of a few minutes of speech are about as noisy as its labels, but its emissions
    carry the phone evidence, and the phone LM removes the implausible sequences
    (tests/test_ctc.py). The output is skipped when it exists, so a rerun resumes.
    """
    options = options or LM_DECODE

    def relabel(folder: Path, model: Path) -> Path:
        out = folder / out_name
        if not out.exists():
            decode_split(folder / emissions, graph_dir, out, options, threads)
        return out

    return relabel


def run_ctc_rounds(features_prefix: str | os.PathLike, labels_txt: str | os.PathLike,
                   dictionary: str | os.PathLike, lm: str | os.PathLike,
                   out_dir: str | os.PathLike, iterations: int, config: CtcConfig | None = None,
                   seed: int = 1, device: str = "auto", relabel: Relabel | None = None,
                   min_error: float = 0.0) -> RoundDecision:
    """``iterations`` rounds in one process: ``out_dir/iter{N}/`` gets ``model.pt``,
    ``transcripts.txt``, ``emissions.npy|.lengths``, ``labels.txt`` (next round's labels) and
    ``round.json``. Returns the last decision (whose ``best_round`` names the model to use).

    The workflow runs the same steps as separate jobs, with LM decoding of the emissions in
    between; here ``relabel`` may do that (:func:`lm_relabel`, recommended), and by default
    the greedy transcripts are the next labels. Each step is skipped when its output exists, so
    a rerun resumes.
    """
    if iterations < 1:
        raise W2vuError(f"iterations must be >= 1, got {iterations}")
    out = Path(out_dir)
    labels = Path(labels_txt)
    previous: Path | None = None
    decision: RoundDecision | None = None
    for number in range(1, iterations + 1):
        folder = out / f"iter{number}"
        model = folder / "model.pt"
        if not model.exists():
            trained = train_ctc(features_prefix, labels, dictionary, folder, config, seed + number,
                                device)
            assert trained is not None
        transcripts = folder / "transcripts.txt"
        if not transcripts.exists():
            transcribe_ctc(model, features_prefix, dictionary, transcripts,
                           emissions_prefix=folder / "emissions", device=device)
        next_labels = relabel(folder, model) if relabel is not None else transcripts
        decision_path = folder / ROUND_JSON
        decision = judge_round(number, labels, next_labels, lm, decision_path, previous,
                               min_error)
        previous = decision_path
        if decision.keep:
            labels = next_labels
    assert decision is not None
    return decision
