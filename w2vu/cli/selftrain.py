"""Self-training commands: the GMM-HMM, Kaldi export/import, CTC rounds."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from w2vu.cli.commands import Arguments, Commands, LibraryDefault, threads
from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path

log = logging.getLogger("w2vu")
COMMANDS = Commands()
HMM = "w2vu.selftrain.hmm.model:HmmConfig"
CTC = "w2vu.selftrain.ctc.steps:CtcConfig"


def hmm_decoding(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--features", required=True)
    p.add_argument("--lm", required=True, type=Path, help="phone LM (ARPA)")


def _hmm_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, help="train feature prefix (50 Hz)")
    p.add_argument("--labels", required=True, type=Path, help="pseudo-labels, a line each")
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--out", required=True, type=Path, help="model file")
    p.add_argument("--iters", type=int, default=LibraryDefault(f"{HMM}.iters"))
    p.add_argument("--gaussians", type=int, default=LibraryDefault(f"{HMM}.gaussians"))
    p.add_argument("--delta-order", type=int, choices=(0, 1, 2),
                   default=LibraryDefault(f"{HMM}.delta_order"))
    p.add_argument("--max-utterances", type=int, default=LibraryDefault(f"{HMM}.max_utterances"),
                   help="the reference's mono subset (2000)")
    p.add_argument("--seed", type=int, default=0)


@COMMANDS("hmm-train", _hmm_train_arguments,
          "monophone GMM-HMM self-training on pseudo-labels (kaldi-hmm-gmm)")
def cmd_hmm_train(a: argparse.Namespace) -> None:
    from w2vu.selftrain.hmm.model import HmmConfig
    from w2vu.selftrain.hmm.train import train_hmm

    config = HmmConfig(iters=a.iters, gaussians=a.gaussians, delta_order=a.delta_order,
                       max_utterances=a.max_utterances)
    report = train_hmm(a.features, a.labels, a.dictionary, a.out, config, a.seed)
    log.info("hmm-train: %d of %d utterances, %d frames, log-likelihood per frame %.3f -> %.3f",
             report.used, report.utterances, report.frames, report.loglike_per_frame[0],
             report.loglike_per_frame[-1])


def _hmm_tune_arguments(p: argparse.ArgumentParser) -> None:
    hmm_decoding(p)
    p.add_argument("--labels", required=True, type=Path, help="the split's pseudo-labels")
    p.add_argument("--lm-weights", type=float, nargs="+", default=[7, 9, 11, 13, 15, 17])
    p.add_argument("--min-error", type=float, default=0.0)
    p.add_argument("--out-tsv", required=True, type=Path,
                   help="the table; each weight's transcripts go beside it (lmwt{W}.txt)")


@COMMANDS("hmm-tune", _hmm_tune_arguments,
          "decode at every LM weight and choose one by the unsupervised score")
def cmd_hmm_tune(a: argparse.Namespace, lexicon: dict[str, str] | None = None) -> None:
    from w2vu.eval.unsupervised import grid_edge
    from w2vu.selftrain.hmm.decode import decode_hmm
    from w2vu.selftrain.hmm.tune import select_lm_weight

    transcripts = decode_hmm(a.model, a.features, a.lm, a.lm_weights, a.out_tsv.parent,
                             lexicon=lexicon)
    chosen = select_lm_weight(transcripts, a.labels, a.lm, a.out_tsv, a.min_error, lexicon)
    log.info("%s: LM weight %g chosen of %s", a.command, chosen.lm_weight, a.lm_weights)
    edge = grid_edge("LM weight", a.lm_weights, chosen.lm_weight)
    if edge:
        key = "hmm_word_lm_weights" if lexicon else "hmm_lm_weights"
        log.warning("%s: %s (--lm-weights; config selftrain.%s)", a.command, edge, key)


def _word_arguments(arguments: Arguments) -> Arguments:
    """A phone command's options with `--lexicon`, `--lm` then being the word LM."""
    def add(p: argparse.ArgumentParser) -> None:
        arguments(p)
        p.add_argument("--lexicon", required=True, type=Path,
                       help="word<TAB>phones (lexicon_filtered.lst); --lm is then the word LM")
    return add


@COMMANDS("hmm-word-tune", _word_arguments(_hmm_tune_arguments),
          "decode words at every LM weight (word LM, lexicon) and choose one against the phone "
          "pseudo-labels")
def cmd_hmm_word_tune(a: argparse.Namespace) -> None:
    from w2vu.text.lexicon import read_lexicon

    cmd_hmm_tune(a, read_lexicon(a.lexicon))


def _hmm_decode_arguments(p: argparse.ArgumentParser) -> None:
    hmm_decoding(p)
    p.add_argument("--tuning", required=True, type=Path, help="hmm-tune's table")
    p.add_argument("--out", required=True, type=Path)


@COMMANDS("hmm-decode", _hmm_decode_arguments, "decode a split at the chosen LM weight")
def cmd_hmm_decode(a: argparse.Namespace, lexicon: dict[str, str] | None = None) -> None:
    from w2vu.selftrain.hmm.decode import HmmDecoder
    from w2vu.selftrain.hmm.tune import decode_chosen_weight

    decoder = HmmDecoder(a.model, a.lm, lexicon=lexicon)
    weight = decode_chosen_weight(decoder, a.tuning, a.features, a.out)
    log.info("%s: %s at LM weight %g", a.command, a.out, weight)


@COMMANDS("hmm-word-decode", _word_arguments(_hmm_decode_arguments),
          "decode a split into words at the LM weight hmm-word-tune chose")
def cmd_hmm_word_decode(a: argparse.Namespace) -> None:
    from w2vu.text.lexicon import read_lexicon

    cmd_hmm_decode(a, read_lexicon(a.lexicon))


def _export_kaldi_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, help="feature prefix of the split")
    p.add_argument("--labels", required=True, type=Path, help="pseudo-labels, a line each")
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--references", type=Path, help="the split's .phn (a ground-truth data dir)")
    p.add_argument("--out-dir", required=True, type=Path)


@COMMANDS("export-kaldi", _export_kaldi_arguments,
          "a Kaldi data dir and phone dict of one split, for Kaldi's triphone recipe")
def cmd_export_kaldi(a: argparse.Namespace) -> None:
    from w2vu.selftrain.kaldi_export import export_kaldi

    report = export_kaldi(a.features, a.labels, a.dictionary, a.out_dir, a.references)
    log.info("export-kaldi: %d utterances written to %s (see its README.txt)", report.written,
             a.out_dir)


def _import_kaldi_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", required=True, type=Path, help="Kaldi text (utt%%010d ids)")
    p.add_argument("--features", required=True, help="the exported split's feature prefix")
    p.add_argument("--dictionary", type=Path, help="dict.phn.txt: check every phone")
    p.add_argument("--out", required=True, type=Path)


@COMMANDS("import-kaldi", _import_kaldi_arguments,
          "Kaldi decoded phones (a `text` file) back as a w2vu transcript")
def cmd_import_kaldi(a: argparse.Namespace) -> None:
    from w2vu.io.features import open_features
    from w2vu.selftrain.kaldi_import import import_kaldi_text

    report = import_kaldi_text(a.text, len(open_features(a.features)), a.out, a.dictionary)
    log.info("import-kaldi: %d lines, %d from Kaldi, %d missing", report.lines,
             report.from_kaldi, report.missing)


def _ctc_train_arguments(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--features", help="train feature prefix (the small encoder)")
    source.add_argument("--manifest", type=Path, help="train manifest (fine-tuning, with --init)")
    p.add_argument("--init", type=Path,
                   help="a HF folder or fairseq .pt: fine-tune this backbone with CTC")
    p.add_argument("--labels", required=True, type=Path, help="pseudo-labels, a line each")
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--max-epochs", type=int, default=LibraryDefault(f"{CTC}.max_epochs"),
                   help="0: no limit of this kind")
    p.add_argument("--max-updates", type=int, default=LibraryDefault(f"{CTC}.max_updates"),
                   help="0: no limit of this kind")
    p.add_argument("--lr", type=float, help="peak learning rate (default 3e-3, fine-tuning 3e-5)")
    p.add_argument("--batch-seconds", type=float,
                   help="fine-tuning: padded audio a batch (default 50, the reference's 800k)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="fine-tuning: bf16 autocast on CUDA")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="auto")
    threads(p)


@COMMANDS("ctc-train", _ctc_train_arguments,
          "train a CTC phone recogniser on pseudo-labels (resumes from checkpoint_last.pt):"
                " the small encoder on --features, or the backbone --init fine-tuned on the "
                "audio of --manifest")
def cmd_ctc_train(a: argparse.Namespace) -> None:
    from w2vu.selftrain.ctc.fit import train_ctc
    from w2vu.selftrain.ctc.steps import CtcConfig

    if a.init is None:
        if a.features is None:
            raise W2vuError("ctc-train: the small CTC model reads --features; --manifest (the "
                            "audio) is for fine-tuning a backbone given with --init")
        config = CtcConfig(max_epochs=a.max_epochs, max_updates=a.max_updates,
                           **({"lr": a.lr} if a.lr else {}))
        train_ctc(a.features, a.labels, a.dictionary, a.out_dir, config, a.seed, a.device,
                  threads=a.threads, restart_on_change=True)
        return
    from w2vu.audio import SAMPLE_RATE
    from w2vu.selftrain.ctc.finetune import finetune_config, finetune_ctc

    if a.manifest is None:
        raise W2vuError("ctc-train --init fine-tunes the backbone on the audio: pass the "
                        "split's --manifest instead of --features")
    overrides = {"lr": a.lr} if a.lr else {}
    if a.batch_seconds:
        overrides["max_frames"] = int(a.batch_seconds * SAMPLE_RATE)
    config = finetune_config(max_epochs=a.max_epochs, max_updates=a.max_updates, bf16=a.bf16,
                             **overrides)
    finetune_ctc(a.manifest, a.labels, a.dictionary, a.init, a.out_dir, config, seed=a.seed,
                 device=a.device, threads=a.threads, restart_on_change=True)


def _ctc_transcribe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--graph-dir", type=Path,
                   help="a phone HLG folder: decode with the phone LM instead of greedily")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--features", help="feature prefix (the small encoder)")
    source.add_argument("--manifest", type=Path, help="the split's manifest (a fine-tuned model)")
    p.add_argument("--dictionary", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--device", default="auto")
    threads(p)


@COMMANDS("ctc-transcribe", _ctc_transcribe_arguments, "CTC transcripts of a split")
def cmd_ctc_transcribe(a: argparse.Namespace) -> None:
    from w2vu.selftrain.ctc.rounds import transcribe_round

    if a.manifest is not None:
        from w2vu.selftrain.ctc.finetune import ManifestAudio

        source = ManifestAudio(a.manifest)
    else:
        source = a.features
    hyps = transcribe_round(a.model, source, a.dictionary, a.out, a.graph_dir, a.device,
                            a.threads)
    log.info("ctc-transcribe: %d utterances to %s%s", len(hyps), a.out,
             "" if a.graph_dir is None else f" (LM-decoded over {a.graph_dir})")


def _ctc_judge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--round", required=True, type=int, help="0: score the input stage's output")
    p.add_argument("--labels", required=True, type=Path,
                   help="pseudo-labels the error is measured against")
    p.add_argument("--transcripts", required=True, type=Path, help="its output on that split")
    p.add_argument("--lm", required=True, type=Path, help="phone LM (ARPA)")
    p.add_argument("--previous", type=Path, help="the previous round's decision")
    p.add_argument("--out", required=True, type=Path, help="round.json")


@COMMANDS("ctc-judge", _ctc_judge_arguments,
          "keep a self-training round only when the unsupervised score improves")
def cmd_ctc_judge(a: argparse.Namespace) -> None:
    from w2vu.selftrain.ctc.rounds import judge_round

    decision = judge_round(a.round, a.labels, a.transcripts, a.lm, a.out, a.previous)
    log.info("ctc round %d: score %.4f (ppl %.2f, error %.4f): %s; best round so far %s",
             a.round, decision.score, decision.lm_ppl, decision.error_rate,
             "kept" if decision.keep else "rejected", decision.best_round)


def _ctc_best_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--decision", required=True, type=Path, help="the last round's round.json")
    p.add_argument("--rounds-dir", required=True, type=Path,
                   help="folder of iter{N}/transcripts/")
    p.add_argument("--split", required=True)
    p.add_argument("--fallback", required=True, type=Path,
                   help="the input stage's transcripts: used when no CTC round was kept")
    p.add_argument("--out", required=True, type=Path)


@COMMANDS("ctc-best", _ctc_best_arguments, "the transcripts of the best kept round so far")
def cmd_ctc_best(a: argparse.Namespace) -> None:
    from w2vu.selftrain.ctc.rounds import read_decision

    best = read_decision(a.decision).best_round
    source = (a.fallback if not best  # none kept, or round 0: the input stage's output
              else a.rounds_dir / f"iter{best}" / "transcripts" / f"{a.split}.txt")
    with atomic_path(a.out) as tmp:
        shutil.copyfile(source, tmp)
    log.info("ctc-best: %s from %s", a.out, source)
