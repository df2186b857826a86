"""The `w2vu` command: one subcommand per pipeline step, mirroring the library functions.

User errors (`W2vuError`) print one clear line and exit with status 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.logs import setup_logging

log = logging.getLogger("w2vu")
Handler = Callable[[argparse.Namespace], None]


def _key_values(pairs: list[str], cast: Callable[[str], object]) -> tuple[list[str], list]:
    """Parse `name=value` arguments into parallel lists of names and cast values."""
    names, values = [], []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise W2vuError(f"expected name=value, got {pair!r}")
        names.append(name)
        values.append(cast(value))
    return names, values


def cmd_demo_corpus(a: argparse.Namespace) -> None:
    from w2vu.demo.corpus import CorpusSettings, build_demo_corpus

    build_demo_corpus(a.out_dir, a.out_table, a.out_text,
                      CorpusSettings(minutes=a.minutes, seed=a.seed, language=a.language))


def cmd_inventory(a: argparse.Namespace) -> None:
    from w2vu.audio.inventory import SplitRule, build_inventory

    if a.split_method == "hash":
        names, fractions = _key_values(a.split_fractions, float)
        rule = SplitRule("hash", tuple(names), fractions=tuple(fractions))
    elif a.split_method == "lists":
        names, lists = _key_values(a.split_lists, str)
        rule = SplitRule("lists", tuple(names), lists=tuple(lists))
    else:
        rule = SplitRule("column", tuple(a.split_names))
    if not rule.names:
        raise W2vuError(f"split method {a.split_method!r} needs at least one split")
    build_inventory(patterns=a.paths, table=a.table, references=a.references,
                    extensions=a.extensions, rule=rule, shards=a.shards, out_dir=a.out_dir,
                    out_rejects=a.out_rejects)


def cmd_convert(a: argparse.Namespace) -> None:
    from w2vu.audio.convert import DurationLimits, convert_shard

    convert_shard(a.shard_list, a.split, a.out_dir, a.out_manifest, a.out_rejects,
                  DurationLimits(a.min_seconds, a.max_seconds), workers=a.workers)


def cmd_vad(a: argparse.Namespace) -> None:
    from w2vu.audio.vad import VadParams, vad_shard

    vad_shard(a.manifest, a.out_vads, VadParams(a.window, a.shift, a.n_fft, a.sft_threshold,
                                                a.vad_threshold), workers=a.workers)


def cmd_trim(a: argparse.Namespace) -> None:
    from w2vu.audio.trim import TrimParams, trim_shard

    trim_shard(a.shard_list, a.split, a.manifest, a.vads, a.out_dir, a.out_manifest, a.out_rejects,
               TrimParams(a.pad_seconds, a.no_speech, a.min_seconds), workers=a.workers)


def cmd_manifest(a: argparse.Namespace) -> None:
    from w2vu.audio.gather import gather_split

    gather_split(a.trimmed, a.split_root, a.out)


def cmd_labels(a: argparse.Namespace) -> None:
    from w2vu.audio.gather import write_labels

    write_labels(a.manifest, a.shard_lists, a.split, a.out_prefix)


def cmd_audio_summary(a: argparse.Namespace) -> None:
    from w2vu.audio.gather import summarize_language

    summarize_language(inventory_rejects=a.inventory_rejects, shard_lists=a.shard_lists,
                       converted=a.converted, convert_rejects=a.convert_rejects,
                       trimmed=a.trimmed, trim_rejects=a.trim_rejects,
                       out_rejects=a.out_rejects, out_summary=a.out_summary)


def cmd_normalize(a: argparse.Namespace) -> None:
    from w2vu.text.normalize import NormalizeSettings, normalize_text

    normalize_text(a.inputs, a.out, NormalizeSettings(a.casefold, a.max_line_chars, a.lid_model,
                                                      a.lid_label, a.lid_threshold))


def cmd_lexicon(a: argparse.Namespace) -> None:
    from w2vu.text.lexicon import LexiconSettings, build_lexicon

    build_lexicon(a.text, a.out_words, a.out_lexicon,
                  LexiconSettings(a.language, a.min_word_count, a.user_lexicon, a.mode),
                  cache_dir=a.cache_dir)


def cmd_reference_phones(a: argparse.Namespace) -> None:
    from w2vu.text.lexicon import LexiconSettings
    from w2vu.text.references import write_reference_phones

    write_reference_phones(a.words, a.given, a.dictionary, a.lexicon, a.out,
                           LexiconSettings(a.language, user_lexicon=a.user_lexicon,
                                           user_lexicon_mode=a.mode),
                           casefold=a.casefold, cache_dir=a.cache_dir)


def cmd_phones(a: argparse.Namespace) -> None:
    from w2vu.text.phones import PhoneSettings, build_phone_text

    build_phone_text(a.text, a.lexicon, a.out_dict, a.out_lexicon, a.out_phone_text,
                     PhoneSettings(a.min_phones, a.count_by, a.sil_prob, a.seed))


def cmd_lm(a: argparse.Namespace) -> None:
    from w2vu.text.lm import build_lm

    build_lm(a.text, a.order, a.out, prune=a.prune, lmplz=a.lmplz)


def cmd_graphs(a: argparse.Namespace) -> None:
    from w2vu.text.fst import build_graphs

    build_graphs(a.dictionary, a.arpa, a.out_dir, lexicon=a.lexicon, blank=a.blank,
                 silence=a.silence)


def _backbone(a: argparse.Namespace):
    """The backbone named on the command line: `mfcc`, a HF folder or a fairseq checkpoint."""
    if a.backbone == "mfcc":
        from w2vu.features.mfcc import MfccBackbone

        return MfccBackbone(stack=a.mfcc_stack)
    from w2vu.features.backbone import load_backbone

    normalize = {"auto": None, "yes": True, "no": False}[a.normalize]
    return load_backbone(a.backbone, a.layer, a.device, normalize=normalize, bf16=a.bf16,
                         tf32=a.tf32)


def cmd_extract(a: argparse.Namespace) -> None:
    import torch

    from w2vu.features.extract import BatchSettings, extract_shard

    torch.set_num_threads(a.threads)
    extract_shard(a.manifest, a.shard, a.shards, _backbone(a), a.out_prefix,
                  BatchSettings(a.batch_seconds, a.window, a.max_chunk_seconds))


def cmd_gather_features(a: argparse.Namespace) -> None:
    from w2vu.io.features import concatenate_features

    utterances, frames = concatenate_features(a.parts, a.out_prefix)
    log.info("gather-features: %d utterances, %d frames in %s", utterances, frames, a.out_prefix)


def _kmeans_config(a: argparse.Namespace):
    from w2vu.features.cluster import KmeansConfig

    return KmeansConfig(n_clusters=a.clusters, niter=a.niter, nredo=a.nredo,
                        sample_fraction=a.sample_fraction, seed=a.seed, init=a.init,
                        backend=a.backend, device=a.device, threads=a.threads)


def cmd_kmeans(a: argparse.Namespace) -> None:
    from w2vu.features.cluster import train_kmeans

    train_kmeans(a.features, a.out, _kmeans_config(a))


def cmd_assign_clusters(a: argparse.Namespace) -> None:
    from w2vu.features.cluster import assign_clusters

    assign_clusters(a.features, a.centroids, a.out, backend=a.backend, device=a.device,
                    threads=a.threads)


def cmd_pca(a: argparse.Namespace) -> None:
    from w2vu.features.cluster import train_pca

    train_pca(a.features, a.out_dir, a.dim, backend=a.backend, threads=a.threads)


def cmd_apply_pca(a: argparse.Namespace) -> None:
    from w2vu.features.cluster import apply_pca, pca_paths

    apply_pca(a.features, pca_paths(a.pca_dir, a.dim), a.out_prefix, threads=a.threads)


def cmd_merge_clusters(a: argparse.Namespace) -> None:
    from w2vu.features.pool import merge_clusters

    merge_clusters(a.features, a.units, a.out_prefix)


def cmd_mean_pool(a: argparse.Namespace) -> None:
    from w2vu.features.pool import mean_pool_features

    mean_pool_features(a.features, a.out_prefix)


def cmd_km_targets(a: argparse.Namespace) -> None:
    from w2vu.features.km_targets import km_targets_config, learn_km_targets

    config = km_targets_config(a.backend, a.clusters, a.sample_fraction, a.seed, a.threads)
    learn_km_targets(a.mfcc, a.out, a.centroids, config, manifest=a.manifest)


def cmd_convert_checkpoint(a: argparse.Namespace) -> None:
    from w2vu.features.checkpoint import convert_checkpoint

    convert_checkpoint(a.checkpoint, a.out_dir)


def cmd_gan_train(a: argparse.Namespace) -> None:
    import torch

    from w2vu.gan.losses import LossWeights, w2vu2_weights
    from w2vu.gan.select import write_run_info
    from w2vu.gan.trainer import TrainConfig, TrainPaths, train

    torch.set_num_threads(a.threads)
    base = LossWeights() if a.variant == 1 else w2vu2_weights()
    chosen = {"code_penalty": a.code_penalty, "gradient_penalty": a.gradient_penalty,
              "smoothness": a.smoothness}
    weights = replace(base, **{k: v for k, v in chosen.items() if v is not None})
    config = TrainConfig(variant=a.variant, max_updates=a.max_updates, batch_size=a.batch_size,
                         weights=weights, validate_every=a.validate_every,
                         checkpoint_every=a.validate_every, seed=a.seed, device=a.device,
                         bf16=a.bf16)
    paths = TrainPaths(a.features, a.text, a.dictionary, a.lm, a.valid_features, a.valid_phn,
                       a.km)
    write_run_info(a.out_dir, {"variant": a.variant, "seed": a.seed,
                               **{k: getattr(weights, k) for k in chosen}})
    train(config, paths, a.out_dir, restart_on_change=True)


def cmd_gan_select(a: argparse.Namespace) -> None:
    from w2vu.gan.select import select_run

    result = select_run(a.runs, a.out, a.method, a.tolerance)
    chosen = result["selected"]
    log.info("gan-select (%s): %s of %d runs (%d rankable), best update %s, %s",
             a.method, chosen["run_dir"], result["n_runs"], result["n_valid"],
             chosen["best_update"], chosen["metrics"])


def _variant_features(pairs: list[str]) -> dict[int, str]:
    """``1=prefix 2=prefix``: the features each GAN variant reads."""
    variants, prefixes = _key_values(pairs, str)
    try:
        return {int(v): p for v, p in zip(variants, prefixes)}
    except ValueError:
        raise W2vuError(f"--features takes VARIANT=PREFIX (VARIANT 1 or 2), got {pairs}") from None


def cmd_gan_generate(a: argparse.Namespace) -> None:
    import json

    import torch

    from w2vu.gan.generate import generate, load_checkpoint

    torch.set_num_threads(a.threads)
    checkpoint = a.checkpoint
    if a.selection is not None:
        selected = json.loads(a.selection.read_text(encoding="utf-8"))["selected"]
        checkpoint = Path(selected["run_dir"]) / "best.pt"
        log.info("gan-generate: selected run %s", selected["run_dir"])

    def run() -> None:
        variant = int(load_checkpoint(checkpoint)["variant"])
        features = _variant_features(a.features)
        if variant not in features:
            raise W2vuError(f"{checkpoint} is a wav2vec-U variant {variant} model, but no "
                            f"features were given for it (--features {variant}=PREFIX)")
        hyps = generate(checkpoint, features[variant], a.dictionary, a.out_dir, a.split,
                        decode_stride=a.decode_stride, write_emissions=a.emissions,
                        device=a.device)
        log.info("gan-generate: %d utterances of %s decoded with %s", len(hyps.phones), a.split,
                 checkpoint)

    outputs = [a.out_dir / f"{a.split}.txt", a.out_dir / f"{a.split}_units.txt"]
    _bracketing(a, "gan-generate", outputs, [checkpoint], run)


def _bracketing(a: argparse.Namespace, stage: str, outputs: list, inputs: list,
                run: Callable[[], object]) -> None:
    """Run a probe or baseline step; with --note-failure, a failure (its own or an input's)
    is written into its outputs as a note that scores.tsv reports, and the run goes on."""
    if not a.note_failure:
        run()
        return
    from w2vu.io.failed import run_or_note

    run_or_note(stage, outputs, inputs, run)


def cmd_baseline_frequent_phone(a: argparse.Namespace) -> None:
    from w2vu.eval.score import most_frequent_phone_baseline

    def run() -> None:
        score = most_frequent_phone_baseline(a.text, a.references, a.out)
        log.info("most-frequent-phone baseline: PER %.4f on %s", score.rate, a.references)

    _bracketing(a, "baseline-frequent-phone", [a.out], [], run)


def cmd_baseline_random_checkpoint(a: argparse.Namespace) -> None:
    from w2vu.eval.score import random_checkpoint

    _bracketing(a, "baseline-random-checkpoint", [a.out], [],
                lambda: random_checkpoint(a.out, a.dictionary, a.features, a.variant, a.seed))


def cmd_probe_train(a: argparse.Namespace) -> None:
    import torch

    from w2vu.eval.probe import train_probe

    torch.set_num_threads(a.threads)
    _bracketing(a, "probe-train", [a.out], [],
                lambda: train_probe(a.features, a.phn, a.dictionary, a.steps, a.batch_size,
                                    a.lr, a.seed, out_path=a.out))


def cmd_probe_decode(a: argparse.Namespace) -> None:
    from w2vu.eval.probe import load_probe, probe_per

    def run() -> None:
        score = probe_per(load_probe(a.probe), a.features, a.phn, a.dictionary, a.out)
        log.info("probe: PER %.4f on %s (%d utterances)", score.rate, a.phn, score.utterances)

    _bracketing(a, "probe-decode", [a.out], [a.probe], run)


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


def _decode_options(a: argparse.Namespace):
    from w2vu.decode.wfst import DecodeOptions

    return DecodeOptions(blank_mode=a.blank_mode, sil_is_blank=a.sil_is_blank, beam=a.beam)


def cmd_wfst_tune(a: argparse.Namespace) -> None:
    from w2vu.decode.tune import make_grid, tune_decoding

    tune_decoding(a.emissions, a.graph_dir, a.viterbi, a.lexicon, a.lm,
                  make_grid(a.acoustic_scales, a.blank_weights), a.out_tsv, a.out_json,
                  a.min_vt_uer, _decode_options(a), threads=a.threads)


def cmd_wfst_decode(a: argparse.Namespace) -> None:
    from w2vu.decode.tune import read_choice
    from w2vu.decode.wfst import decode_split

    options = read_choice(a.choice)
    hyps = decode_split(a.emissions, a.graph_dir, a.out, options, a.threads)
    log.info("wfst-decode: %d utterances with %s", len(hyps), options)


def cmd_hmm_train(a: argparse.Namespace) -> None:
    from w2vu.selftrain.hmm import HmmConfig, train_hmm

    config = HmmConfig(num_iters=a.iters, total_gaussians=a.gaussians,
                       delta_order=a.delta_order, max_utterances=a.max_utterances)
    report = train_hmm(a.features, a.labels, a.dictionary, a.out, config, a.seed)
    log.info("hmm-train: %d of %d utterances, %d frames, log-likelihood per frame %.3f -> %.3f",
             report.used, report.utterances, report.frames, report.loglike_per_frame[0],
             report.loglike_per_frame[-1])


def cmd_hmm_tune(a: argparse.Namespace) -> None:
    from w2vu.selftrain.hmm import decode_hmm
    from w2vu.selftrain.hmm_select import select_lm_weight

    transcripts = decode_hmm(a.model, a.features, a.lm, a.lm_weights, a.out_tsv.parent)
    chosen = select_lm_weight(transcripts, a.labels, a.lm, a.out_tsv, a.min_error)
    log.info("hmm-tune: LM weight %g chosen of %s", chosen.lm_weight, a.lm_weights)


def cmd_hmm_decode(a: argparse.Namespace) -> None:
    import shutil
    import tempfile

    from w2vu.selftrain.hmm import decode_hmm
    from w2vu.selftrain.hmm_select import read_chosen_weight

    weight = read_chosen_weight(a.tuning)
    with tempfile.TemporaryDirectory(dir=a.out.parent) as tmp:
        decoded = decode_hmm(a.model, a.features, a.lm, [weight], tmp)
        shutil.move(decoded[weight], a.out)
    log.info("hmm-decode: %s at LM weight %g", a.out, weight)


def cmd_export_kaldi(a: argparse.Namespace) -> None:
    from w2vu.selftrain.kaldi_export import export_kaldi

    report = export_kaldi(a.features, a.labels, a.dictionary, a.out_dir, a.references)
    log.info("export-kaldi: %d utterances written to %s (see its README.txt)", report.written,
             a.out_dir)


def cmd_import_kaldi(a: argparse.Namespace) -> None:
    from w2vu.io.features import open_features
    from w2vu.selftrain.kaldi_export import import_kaldi_text

    report = import_kaldi_text(a.text, len(open_features(a.features)), a.out, a.dictionary)
    log.info("import-kaldi: %d lines, %d from Kaldi, %d missing", report.lines,
             report.from_kaldi, report.missing)


def cmd_ctc_train(a: argparse.Namespace) -> None:
    from w2vu.selftrain.ctc_train import CtcConfig, train_ctc

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
    from w2vu.selftrain.ctc_finetune import finetune_config, finetune_ctc

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


def cmd_ctc_transcribe(a: argparse.Namespace) -> None:
    import tempfile

    from w2vu.decode.wfst import decode_split
    from w2vu.selftrain.ctc_rounds import LM_DECODE
    from w2vu.selftrain.ctc_train import transcribe_ctc

    if a.manifest is not None:
        from w2vu.selftrain.ctc_finetune import ManifestAudio

        source = ManifestAudio(a.manifest)
    else:
        source = a.features
    if a.graph_dir is None:
        hyps = transcribe_ctc(a.model, source, a.dictionary, a.out, device=a.device,
                              threads=a.threads)
    else:  # the phone LM removes what the greedy output of a little data gets wrong
        with tempfile.TemporaryDirectory(dir=a.out.parent) as tmp:
            emissions = Path(tmp) / "emissions"
            transcribe_ctc(a.model, source, a.dictionary, Path(tmp) / "greedy.txt",
                           emissions_prefix=emissions, device=a.device, threads=a.threads)
            hyps = decode_split(emissions, a.graph_dir, a.out, LM_DECODE, a.threads)
    log.info("ctc-transcribe: %d utterances to %s%s", len(hyps), a.out,
             "" if a.graph_dir is None else f" (LM-decoded over {a.graph_dir})")


def cmd_ctc_judge(a: argparse.Namespace) -> None:
    from w2vu.selftrain.ctc_rounds import judge_round

    decision = judge_round(a.round, a.labels, a.transcripts, a.lm, a.out, a.previous)
    log.info("ctc round %d: score %.4f (ppl %.2f, error %.4f): %s; best round so far %s",
             a.round, decision.score, decision.lm_ppl, decision.error_rate,
             "kept" if decision.keep else "rejected", decision.best_round)


def cmd_ctc_best(a: argparse.Namespace) -> None:
    from w2vu.selftrain.ctc_rounds import read_decision

    best = read_decision(a.decision).best_round
    source = (a.fallback if not best  # none kept, or round 0: the input stage's output
              else a.rounds_dir / f"iter{best}" / "transcripts" / f"{a.split}.txt")
    with atomic_path(a.out) as tmp:
        shutil.copyfile(source, tmp)
    log.info("ctc-best: %s from %s", a.out, source)


def build_parser() -> argparse.ArgumentParser:
    """All subcommands and their arguments."""
    parser = argparse.ArgumentParser(prog="w2vu", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    def workers(p: argparse.ArgumentParser) -> None:
        p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")

    p = command("demo-corpus", cmd_demo_corpus, "synthesise the English demo corpus with espeak-ng")
    p.add_argument("--out-dir", required=True, type=Path, help="folder for the audio files")
    p.add_argument("--out-table", required=True, type=Path, help="audio table (TSV) to write")
    p.add_argument("--out-text", required=True, type=Path, help="unpaired text file to write")
    p.add_argument("--minutes", type=float, default=10.0, help="audio duration (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--language", default="en-us", help="espeak language for reference phones")

    p = command("inventory", cmd_inventory, "find audio, assign keys, splits and shards")
    p.add_argument("--paths", nargs="*", default=[], help="folders or globs of audio files")
    p.add_argument("--table", help="TSV with a path column (instead of --paths)")
    p.add_argument("--references", help="TSV of path/key, transcript[, phones]")
    p.add_argument("--extensions", nargs="+", required=True,
                   help="extensions taken when scanning folders")
    p.add_argument("--split-method", choices=("hash", "lists", "column"), default="hash")
    p.add_argument("--split-fractions", nargs="*", default=["train=1"], metavar="NAME=FRACTION")
    p.add_argument("--split-lists", nargs="*", default=[], metavar="NAME=FILE")
    p.add_argument("--split-names", nargs="*", default=[], help="names for --split-method column")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--out-dir", required=True, type=Path, help="folder for the SHARD.tsv lists")
    p.add_argument("--out-rejects", required=True, type=Path)

    p = command("convert", cmd_convert, "decode, downmix and resample a shard to 16 kHz FLAC")
    p.add_argument("--shard-list", required=True, type=Path)
    p.add_argument("--split", required=True, help="which split of the shard list")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--out-manifest", required=True, type=Path)
    p.add_argument("--out-rejects", required=True, type=Path)
    p.add_argument("--min-seconds", type=float, default=0.0)
    p.add_argument("--max-seconds", type=float, default=float("inf"))
    workers(p)

    p = command("vad", cmd_vad, "rVAD speech detection of a shard, written as .vads")
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--out-vads", required=True, type=Path)
    p.add_argument("--window", type=float, default=0.025, help="window in seconds")
    p.add_argument("--shift", type=float, default=0.01, help="frame shift in seconds")
    p.add_argument("--n-fft", type=int, default=512)
    p.add_argument("--sft-threshold", type=float, default=0.5, help="spectral flatness threshold")
    p.add_argument("--vad-threshold", type=float, default=0.4)
    workers(p)

    p = command("trim", cmd_trim, "keep the speech segments of a shard")
    p.add_argument("--shard-list", required=True, type=Path)
    p.add_argument("--split", required=True, help="which split of the shard list")
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--vads", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--out-manifest", required=True, type=Path)
    p.add_argument("--out-rejects", required=True, type=Path)
    p.add_argument("--pad-seconds", type=float, default=0.0)
    p.add_argument("--no-speech", choices=("keep", "reject"), default="keep")
    p.add_argument("--min-seconds", type=float, default=0.0)
    workers(p)

    p = command("manifest", cmd_manifest, "gather a split's shards into a fairseq manifest")
    p.add_argument("--trimmed", nargs="+", required=True, help="trimmed shard manifests")
    p.add_argument("--split-root", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)

    p = command("labels", cmd_labels, "write .wrd/.ltr/.given.phn aligned with a manifest")
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--shard-lists", nargs="+", required=True, help="inventory shard lists")
    p.add_argument("--split", required=True)
    p.add_argument("--out-prefix", required=True, help="written as PREFIX.wrd, .ltr, .given.phn")

    p = command("normalize", cmd_normalize, "normalise unpaired text, one sentence per line")
    p.add_argument("--inputs", nargs="+", required=True, type=Path, help="text files")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--casefold", action="store_true")
    p.add_argument("--max-line-chars", type=int, default=2000, help="longer lines are split")
    p.add_argument("--lid-model", help="local fastText LID model; none: no LID filtering")
    p.add_argument("--lid-label", default="", help="the language's label in the LID model")
    p.add_argument("--lid-threshold", type=float, default=0.4)

    p = command("lexicon", cmd_lexicon, "count words and phonemise each kept word once")
    p.add_argument("--text", required=True, type=Path, help="normalised text")
    p.add_argument("--language", required=True, help="espeak-ng language code")
    p.add_argument("--out-words", required=True, type=Path)
    p.add_argument("--out-lexicon", required=True, type=Path)
    p.add_argument("--min-word-count", type=int, default=2)
    p.add_argument("--user-lexicon", help="word<TAB>phones file")
    p.add_argument("--mode", choices=("extend", "replace"), default="extend",
                   help="the user lexicon extends espeak (its entries win) or replaces it")
    p.add_argument("--cache-dir", type=Path, help="keep pronunciations here between runs")

    p = command("phones", cmd_phones, "phone inventory, filtered lexicon, phone text with <SIL>")
    p.add_argument("--text", required=True, type=Path, help="normalised text")
    p.add_argument("--lexicon", required=True, type=Path)
    p.add_argument("--out-dict", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--out-lexicon", required=True, type=Path, help="filtered lexicon")
    p.add_argument("--out-phone-text", required=True, type=Path)
    p.add_argument("--min-phones", type=int, default=10)
    p.add_argument("--count-by", choices=("lexicon", "corpus"), default="lexicon")
    p.add_argument("--sil-prob", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)

    p = command("reference-phones", cmd_reference_phones,
                "a split's phone references: given phones checked, else words phonemised")
    p.add_argument("--words", required=True, type=Path, help="the split's .wrd")
    p.add_argument("--given", required=True, type=Path, help="the split's .given.phn")
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--lexicon", required=True, type=Path, help="the unfiltered lexicon.lst")
    p.add_argument("--out", required=True, type=Path, help="the split's .phn")
    p.add_argument("--language", required=True, help="espeak-ng language code")
    p.add_argument("--user-lexicon", help="word<TAB>phones file")
    p.add_argument("--mode", choices=("extend", "replace"), default="extend")
    p.add_argument("--casefold", action="store_true")
    p.add_argument("--cache-dir", type=Path, help="the lexicon step's pronunciation cache")

    p = command("lm", cmd_lm, "ARPA n-gram LM (interpolated modified Kneser-Ney, as lmplz)")
    p.add_argument("--text", required=True, type=Path, help="one sentence per line")
    p.add_argument("--order", required=True, type=int)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--prune", nargs="*", type=int, help="count thresholds per order, as lmplz")
    p.add_argument("--lmplz", help="use this lmplz binary instead of w2vu's estimator")

    p = command("graphs", cmd_graphs, "H, L, G, LG and HLG decoding graphs (OpenFst binary)")
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt (fairseq)")
    p.add_argument("--arpa", required=True, type=Path, help="word LM, or phone LM without lexicon")
    p.add_argument("--lexicon", type=Path, help="word<TAB>phones; none: phone-to-phone graph")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--blank", default="<s>", choices=("<s>", "<SIL>"))
    p.add_argument("--silence", choices=("<SIL>",), help="also absorb <SIL> frames like a blank")

    def threads(p: argparse.ArgumentParser) -> None:
        p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")

    def kmeans_backend(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", choices=("faiss", "sklearn"), default="faiss")
        p.add_argument("--device", default="cpu", help="cpu, or cuda for faiss on GPU")
        threads(p)

    p = command("extract", cmd_extract, "layer features of one shard of a split manifest")
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--backbone", required=True,
                   help="mfcc, a Hugging Face model folder, or a fairseq wav2vec 2.0 .pt")
    p.add_argument("--layer", type=int, default=14, help="fairseq layer index (0-based)")
    p.add_argument("--normalize", choices=("auto", "yes", "no"), default="auto",
                   help="waveform normalisation: as the model says, or forced")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 autocast on GPU")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                   help="TF32 matmuls on GPU")
    p.add_argument("--mfcc-stack", type=int, default=2, choices=(1, 2),
                   help="MFCC frames stacked: 1 = 100 Hz 39-d, 2 = 50 Hz 78-d")
    p.add_argument("--batch-seconds", type=float, default=0.0,
                   help="padded audio per batch; 0 = auto (1 utterance on CPU, 120 s on GPU)")
    p.add_argument("--window", type=int, default=64, help="utterances sorted per window")
    p.add_argument("--max-chunk-seconds", type=float, default=30.0,
                   help="longer utterances go through the model in chunks")
    p.add_argument("--out-prefix", required=True, help="writes PREFIX.npy and PREFIX.lengths")
    threads(p)

    p = command("gather-features", cmd_gather_features, "concatenate feature shards in order")
    p.add_argument("--parts", nargs="+", required=True, help="feature prefixes, in order")
    p.add_argument("--out-prefix", required=True)

    p = command("kmeans", cmd_kmeans, "k-means centroids of train features (faiss)")
    p.add_argument("--features", required=True, help="feature prefix (PREFIX.npy/.lengths)")
    p.add_argument("--out", required=True, type=Path, help="centroids.npy")
    p.add_argument("--clusters", type=int, default=128)
    p.add_argument("--niter", type=int, default=50)
    p.add_argument("--nredo", type=int, default=3)
    p.add_argument("--sample-fraction", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--init", choices=("random", "k-means++"), default="random",
                   help="random: the reference (faiss); k-means++: better on clustered data")
    kmeans_backend(p)

    p = command("assign-clusters", cmd_assign_clusters, "nearest centroid per frame (.src)")
    p.add_argument("--features", required=True)
    p.add_argument("--centroids", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    kmeans_backend(p)

    p = command("pca", cmd_pca, "learn PCA (x @ A + b) on train features")
    p.add_argument("--features", required=True)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--backend", choices=("faiss", "sklearn"), default="faiss")
    threads(p)

    p = command("apply-pca", cmd_apply_pca, "apply a learnt PCA to a split's features")
    p.add_argument("--features", required=True)
    p.add_argument("--pca-dir", required=True, type=Path)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--out-prefix", required=True)
    threads(p)

    p = command("merge-clusters", cmd_merge_clusters, "mean of each run of equal cluster ids")
    p.add_argument("--features", required=True)
    p.add_argument("--units", required=True, type=Path, help="the split's .src")
    p.add_argument("--out-prefix", required=True)

    p = command("mean-pool", cmd_mean_pool, "mean of adjacent pairs (odd length: last repeated)")
    p.add_argument("--features", required=True)
    p.add_argument("--out-prefix", required=True)

    p = command("km-targets", cmd_km_targets, "wav2vec-U 2.0 MFCC k-means targets (.km)")
    p.add_argument("--mfcc", required=True, help="MFCC feature prefix (39-d, 100 Hz)")
    p.add_argument("--manifest", type=Path, help="check that the lines match this manifest")
    p.add_argument("--out", required=True, type=Path, help="train.km")
    p.add_argument("--centroids", required=True, type=Path)
    p.add_argument("--clusters", type=int, default=64)
    p.add_argument("--sample-fraction", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=("faiss", "sklearn"), default="faiss")
    threads(p)

    p = command("convert-checkpoint", cmd_convert_checkpoint,
                "write a Hugging Face folder from a fairseq wav2vec 2.0 checkpoint")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)

    p = command("gan-train", cmd_gan_train,
                "train one wav2vec-U GAN run (resumes from checkpoint_last.pt in --out-dir)")
    p.add_argument("--variant", type=int, choices=(1, 2), default=1, help="wav2vec-U 1.0 or 2.0")
    p.add_argument("--features", required=True, help="train feature prefix")
    p.add_argument("--text", required=True, type=Path, help="lm.phones.filtered.txt")
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--lm", required=True, type=Path, help="phone 4-gram (ARPA) for selection")
    p.add_argument("--valid-features", help="validation feature prefix")
    p.add_argument("--valid-phn", type=Path, help="validation references (.phn), for PER")
    p.add_argument("--km", type=Path, help="2.0: train.km auxiliary targets")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--max-updates", type=int, default=150_000)
    p.add_argument("--batch-size", type=int, default=160)
    p.add_argument("--validate-every", type=int, default=1000)
    p.add_argument("--code-penalty", type=float, help="default: the variant's reference value")
    p.add_argument("--gradient-penalty", type=float, help="default: the variant's reference")
    p.add_argument("--smoothness", type=float, help="default: the variant's reference value")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast on GPU")
    threads(p)

    p = command("gan-select", cmd_gan_select,
                "choose one GAN run of a sweep by the unsupervised metric (selected.json)")
    p.add_argument("--runs", nargs="+", required=True, help="run folders (metrics.tsv, run.json)")
    p.add_argument("--method", choices=("reference", "paper"), default="reference")
    p.add_argument("--tolerance", type=float, default=1.2, help="paper method, step 2")
    p.add_argument("--out", required=True, type=Path, help="selected.json")

    p = command("gan-generate", cmd_gan_generate,
                "Viterbi transcripts of a split from a GAN checkpoint ({split}.txt, _units.txt)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--selection", type=Path, help="selected.json: use the chosen run")
    source.add_argument("--checkpoint", type=Path, help="a best.pt")
    p.add_argument("--features", nargs="+", required=True, metavar="VARIANT=PREFIX",
                   help="features of the split for each GAN variant, e.g. 1=.../valid")
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--split", required=True)
    p.add_argument("--decode-stride", type=int, help="2.0: generator stride at decoding")
    p.add_argument("--note-failure", action="store_true",
                   help="a failure becomes a note in the outputs (scores.tsv reports it)")
    p.add_argument("--emissions", action="store_true",
                   help="also write frame log-probs ({split}.emissions.npy) for WFST decoding")
    p.add_argument("--device", default="auto")
    threads(p)

    p = command("baseline-frequent-phone", cmd_baseline_frequent_phone,
                "baseline: the unpaired text's commonest phone, once per utterance")
    p.add_argument("--text", required=True, type=Path, help="lm.phones.filtered.txt")
    p.add_argument("--references", required=True, type=Path, help="the split's .phn")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--note-failure", action="store_true",
                   help="a failure becomes a note in the outputs (scores.tsv reports it)")

    p = command("baseline-random-checkpoint", cmd_baseline_random_checkpoint,
                "baseline: a GAN checkpoint with seeded random weights")
    p.add_argument("--dictionary", required=True, type=Path)
    p.add_argument("--features", required=True, help="feature prefix (gives the input size)")
    p.add_argument("--variant", type=int, choices=(1, 2), default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--note-failure", action="store_true",
                   help="a failure becomes a note in the outputs (scores.tsv reports it)")

    p = command("probe-train", cmd_probe_train,
                "supervised ceiling: a linear CTC probe on the GAN input features")
    p.add_argument("--features", required=True, help="train feature prefix")
    p.add_argument("--phn", required=True, type=Path, help="the train split's .phn")
    p.add_argument("--dictionary", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--note-failure", action="store_true",
                   help="a failure becomes a note in the outputs (scores.tsv reports it)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--seed", type=int, default=1)
    threads(p)

    p = command("probe-decode", cmd_probe_decode, "greedy transcripts of a split by the probe")
    p.add_argument("--probe", required=True, type=Path)
    p.add_argument("--features", required=True)
    p.add_argument("--phn", required=True, type=Path, help="the split's .phn (line count, PER)")
    p.add_argument("--dictionary", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--note-failure", action="store_true",
                   help="a failure becomes a note in the outputs (scores.tsv reports it)")

    def decode_settings(p: argparse.ArgumentParser) -> None:
        p.add_argument("--emissions", required=True, help="frame log-prob prefix (.npy/.lengths)")
        p.add_argument("--graph-dir", required=True, type=Path, help="folder with HLG.fst")
        threads(p)

    p = command("wfst-tune", cmd_wfst_tune,
                "choose WFST decoding settings without references (reference's tuning score)")
    decode_settings(p)
    p.add_argument("--viterbi", required=True, type=Path, help="the GAN's Viterbi {split}.txt")
    p.add_argument("--lexicon", type=Path, help="word lexicon; none for a phone graph")
    p.add_argument("--lm", required=True, type=Path, help="the graph's LM (ARPA)")
    p.add_argument("--acoustic-scales", type=float, nargs="+", default=[0.3, 0.5, 0.8, 1.2])
    p.add_argument("--blank-weights", type=float, nargs="+", default=[0.0, 2.0, 4.0])
    p.add_argument("--blank-mode", choices=("add", "set"), default="add")
    p.add_argument("--sil-is-blank", action="store_true", help="<SIL> takes the blank weight")
    p.add_argument("--beam", type=float, default=5.0)
    p.add_argument("--min-vt-uer", type=float, default=0.0)
    p.add_argument("--out-tsv", required=True, type=Path, help="every grid point and its score")
    p.add_argument("--out-json", required=True, type=Path, help="the chosen settings")

    p = command("wfst-decode", cmd_wfst_decode, "decode emissions over an HLG graph")
    decode_settings(p)
    p.add_argument("--choice", required=True, type=Path, help="wfst-tune's JSON")
    p.add_argument("--out", required=True, type=Path)

    p = command("hmm-train", cmd_hmm_train,
                "monophone GMM-HMM self-training on pseudo-labels (kaldi-hmm-gmm)")
    p.add_argument("--features", required=True, help="train feature prefix (50 Hz)")
    p.add_argument("--labels", required=True, type=Path, help="pseudo-labels, a line each")
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--out", required=True, type=Path, help="model file")
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--gaussians", type=int, default=1000)
    p.add_argument("--delta-order", type=int, default=2, choices=(0, 1, 2))
    p.add_argument("--max-utterances", type=int, help="the reference's mono subset (2000)")
    p.add_argument("--seed", type=int, default=0)

    def hmm_decoding(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", required=True, type=Path)
        p.add_argument("--features", required=True)
        p.add_argument("--lm", required=True, type=Path, help="phone LM (ARPA)")

    p = command("hmm-tune", cmd_hmm_tune,
                "decode at every LM weight and choose one by the unsupervised score")
    hmm_decoding(p)
    p.add_argument("--labels", required=True, type=Path, help="the split's pseudo-labels")
    p.add_argument("--lm-weights", type=float, nargs="+", default=[7, 9, 11, 13, 15, 17])
    p.add_argument("--min-error", type=float, default=0.0)
    p.add_argument("--out-tsv", required=True, type=Path,
                   help="the table; each weight's transcripts go beside it (lmwt{W}.txt)")

    p = command("hmm-decode", cmd_hmm_decode, "decode a split at the chosen LM weight")
    hmm_decoding(p)
    p.add_argument("--tuning", required=True, type=Path, help="hmm-tune's table")
    p.add_argument("--out", required=True, type=Path)

    p = command("export-kaldi", cmd_export_kaldi,
                "a Kaldi data dir and phone dict of one split, for Kaldi's triphone recipe")
    p.add_argument("--features", required=True, help="feature prefix of the split")
    p.add_argument("--labels", required=True, type=Path, help="pseudo-labels, a line each")
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--references", type=Path, help="the split's .phn (a ground-truth data dir)")
    p.add_argument("--out-dir", required=True, type=Path)

    p = command("import-kaldi", cmd_import_kaldi,
                "Kaldi decoded phones (a `text` file) back as a w2vu transcript")
    p.add_argument("--text", required=True, type=Path, help="Kaldi text (utt%%010d ids)")
    p.add_argument("--features", required=True, help="the exported split's feature prefix")
    p.add_argument("--dictionary", type=Path, help="dict.phn.txt: check every phone")
    p.add_argument("--out", required=True, type=Path)

    p = command("ctc-train", cmd_ctc_train,
                "train a CTC phone recogniser on pseudo-labels (resumes from checkpoint_last.pt):"
                " the small encoder on --features, or the backbone --init fine-tuned on the "
                "audio of --manifest")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--features", help="train feature prefix (the small encoder)")
    source.add_argument("--manifest", type=Path, help="train manifest (fine-tuning, with --init)")
    p.add_argument("--init", type=Path,
                   help="a HF folder or fairseq .pt: fine-tune this backbone with CTC")
    p.add_argument("--labels", required=True, type=Path, help="pseudo-labels, a line each")
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--max-epochs", type=int, default=100, help="0: no limit of this kind")
    p.add_argument("--max-updates", type=int, default=0, help="0: no limit of this kind")
    p.add_argument("--lr", type=float, help="peak learning rate (default 3e-3, fine-tuning 3e-5)")
    p.add_argument("--batch-seconds", type=float,
                   help="fine-tuning: padded audio a batch (default 50, the reference's 800k)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="fine-tuning: bf16 autocast on CUDA")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="auto")
    threads(p)

    p = command("ctc-transcribe", cmd_ctc_transcribe, "CTC transcripts of a split")
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

    p = command("ctc-judge", cmd_ctc_judge,
                "keep a self-training round only when the unsupervised score improves")
    p.add_argument("--round", required=True, type=int, help="0: score the input stage's output")
    p.add_argument("--labels", required=True, type=Path,
                   help="pseudo-labels the error is measured against")
    p.add_argument("--transcripts", required=True, type=Path, help="its output on that split")
    p.add_argument("--lm", required=True, type=Path, help="phone LM (ARPA)")
    p.add_argument("--previous", type=Path, help="the previous round's decision")
    p.add_argument("--out", required=True, type=Path, help="round.json")

    p = command("ctc-best", cmd_ctc_best, "the transcripts of the best kept round so far")
    p.add_argument("--decision", required=True, type=Path, help="the last round's round.json")
    p.add_argument("--rounds-dir", required=True, type=Path,
                   help="folder of iter{N}/transcripts/")
    p.add_argument("--split", required=True)
    p.add_argument("--fallback", required=True, type=Path,
                   help="the input stage's transcripts: used when no CTC round was kept")
    p.add_argument("--out", required=True, type=Path)

    p = command("score", cmd_score, "PER/WER of every stage and split into scores.tsv")
    p.add_argument("--row", nargs=5, action="append", required=True,
                   metavar=("STAGE", "SPLIT", "METRIC", "HYP", "REF"),
                   help="one row: metric per or wer, line-aligned hypothesis and reference")
    p.add_argument("--out", required=True, type=Path, help="scores.tsv")

    p = command("audio-summary", cmd_audio_summary, "gather rejects and check the counts")
    p.add_argument("--inventory-rejects", required=True)
    p.add_argument("--shard-lists", nargs="+", required=True)
    p.add_argument("--converted", nargs="+", required=True)
    p.add_argument("--convert-rejects", nargs="+", required=True)
    p.add_argument("--trimmed", nargs="+", required=True)
    p.add_argument("--trim-rejects", nargs="+", required=True)
    p.add_argument("--out-rejects", required=True)
    p.add_argument("--out-summary", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `w2vu` console script."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        args.handler(args)
    except W2vuError as e:
        log.error("%s: %s", args.command, e)
        return 2
    except OSError as e:  # a full disk or an unwritable folder: say where, not a traceback
        outputs = [e.filename] if e.filename else _output_paths(args)
        log.error("%s: cannot complete (%s) while writing %s; free space or fix permissions "
                  "there, then rerun (outputs are only ever renamed into place when complete)",
                  args.command, _os_error_cause(e, outputs), ", ".join(map(str, outputs)))
        return 2
    return 0


def _os_error_cause(error: OSError, outputs: list[str]) -> str:
    """The error's reason; numpy's short-write errors carry none, so check the disk as well."""
    cause = error.strerror or str(error)
    for out in outputs:
        folder = Path(out).parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if shutil.disk_usage(folder).free < 1 << 20:
            return f"{cause}; No space left on device under {folder}"
    return cause


def _output_paths(args: argparse.Namespace) -> list[str]:
    """The values of a command's --out* arguments, to name them in an error."""
    paths: list[str] = []
    for name, value in vars(args).items():
        if name.startswith("out") and value is not None:
            paths += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return paths


if __name__ == "__main__":
    sys.exit(main())
