"""Evaluation commands: the constant baselines, the supervised probe, PER/WER scores."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from w2vu.cli.commands import Commands, bracketing, note_failure, threads

if TYPE_CHECKING:
    from w2vu.eval.metrics import Score

log = logging.getLogger("w2vu")
COMMANDS = Commands()


def _constant_arguments(text: str, references: str) -> Callable[[argparse.ArgumentParser], None]:
    """The options of a constant baseline whose text and references are the named files."""

    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--text", required=True, type=Path, help=text)
        p.add_argument("--references", required=True, type=Path, help=references)
        p.add_argument("--out", required=True, type=Path)
        note_failure(p)

    return add


_PHONE_BASELINE_ARGUMENTS = _constant_arguments("lm.phones.filtered.txt", "the split's .phn")


def _constant_baseline(a: argparse.Namespace, command: str,
                       baseline: Callable[[Path, Path, Path], Score]) -> None:
    """Write and score one of the constant baselines of ``w2vu.eval.score``."""

    def run() -> None:
        score = baseline(a.text, a.references, a.out)
        log.info("%s: error rate %.4f on %s", command, score.rate, a.references)

    bracketing(a, command, [a.out], [], run)


@COMMANDS("baseline-frequent-phone", _PHONE_BASELINE_ARGUMENTS,
          "baseline: the unpaired text's commonest phone, once per utterance")
def cmd_baseline_frequent_phone(a: argparse.Namespace) -> None:
    from w2vu.eval.score import most_frequent_phone_baseline

    _constant_baseline(a, "baseline-frequent-phone", most_frequent_phone_baseline)


@COMMANDS("baseline-constant-sentence", _PHONE_BASELINE_ARGUMENTS,
          "audio-blind baseline: the one sentence of the unpaired phone text that scores best "
          "against the text itself, for every utterance (PER)")
def cmd_baseline_constant_sentence(a: argparse.Namespace) -> None:
    from w2vu.eval.score import constant_sentence_baseline

    _constant_baseline(a, "baseline-constant-sentence", constant_sentence_baseline)


@COMMANDS("baseline-constant-words",
          _constant_arguments("normalized.txt, the unpaired word text", "the split's .wrd"),
          "audio-blind baseline for the word decoders: the one sentence of the unpaired word "
          "text that scores best against the text itself, for every utterance (WER)")
def cmd_baseline_constant_words(a: argparse.Namespace) -> None:
    from w2vu.eval.score import constant_sentence_baseline

    _constant_baseline(a, "baseline-constant-words",
                       partial(constant_sentence_baseline, metric="wer"))


def _probe_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, help="train feature prefix")
    p.add_argument("--phn", required=True, type=Path, help="the train split's .phn")
    p.add_argument("--dictionary", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--seed", type=int, default=1)
    threads(p)
    note_failure(p)


@COMMANDS("probe-train", _probe_train_arguments,
          "supervised ceiling: a linear CTC probe on the GAN input features")
def cmd_probe_train(a: argparse.Namespace) -> None:
    import torch

    from w2vu.eval.probe import train_probe

    torch.set_num_threads(a.threads)
    bracketing(a, "probe-train", [a.out], [],
               lambda: train_probe(a.features, a.phn, a.dictionary, a.steps, a.batch_size,
                                   a.lr, a.seed, out_path=a.out))


def _probe_decode_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--probe", required=True, type=Path)
    p.add_argument("--features", required=True)
    p.add_argument("--phn", required=True, type=Path, help="the split's .phn (line count, PER)")
    p.add_argument("--dictionary", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    note_failure(p)


@COMMANDS("probe-decode", _probe_decode_arguments, "greedy transcripts of a split by the probe")
def cmd_probe_decode(a: argparse.Namespace) -> None:
    from w2vu.eval.probe import load_probe, probe_per

    def run() -> None:
        score = probe_per(load_probe(a.probe), a.features, a.phn, a.dictionary, a.out)
        log.info("probe: PER %.4f on %s (%d utterances)", score.rate, a.phn, score.utterances)

    bracketing(a, "probe-decode", [a.out], [a.probe], run)


def _score_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--row", nargs=5, action="append", required=True,
                   metavar=("STAGE", "SPLIT", "METRIC", "HYP", "REF"),
                   help="one row: metric per or wer, line-aligned hypothesis and reference")
    p.add_argument("--out", required=True, type=Path, help="scores.tsv")


@COMMANDS("score", _score_arguments, "PER/WER of every stage and split into scores.tsv")
def cmd_score(a: argparse.Namespace) -> None:
    from w2vu.eval.score import failed_row, score_files, score_row, write_scores
    from w2vu.io.failed import failure_reason

    rows = []
    for stage, split, metric, hyp, ref in a.row:
        reason = failure_reason(hyp)
        if reason is not None:
            log.warning("%s %s %s: failed (%s)", stage, split, metric.upper(), reason)
            rows.append(failed_row(stage, split, metric, reason))
            continue
        score = score_files(hyp, ref, metric)
        log.info("%s %s %s: %.4f (%d errors / %d tokens, %d empty references skipped)", stage,
                 split, metric.upper(), score.rate, score.errors, score.ref_len, score.skipped)
        rows.append(score_row(stage, split, metric, score))
    write_scores(a.out, rows)
