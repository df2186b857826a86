"""Audio commands: the demo and digits corpora, inventory, conversion, VAD, trimming, manifests."""

from __future__ import annotations

import argparse
from pathlib import Path

from w2vu.cli.commands import Commands, LibraryDefault, key_values, workers
from w2vu.errors import W2vuError

COMMANDS = Commands()


def _demo_corpus_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out-dir", required=True, type=Path, help="folder for the audio files")
    p.add_argument("--out-table", required=True, type=Path, help="audio table (TSV) to write")
    p.add_argument("--out-text", required=True, type=Path, help="unpaired text file to write")
    corpus = "w2vu.demo.corpus:CorpusSettings"
    p.add_argument("--minutes", type=float, default=LibraryDefault(f"{corpus}.minutes"),
                   help="audio duration (default %(default)s)")
    p.add_argument("--seed", type=int, default=LibraryDefault(f"{corpus}.seed"))
    p.add_argument("--language", default=LibraryDefault(f"{corpus}.language"),
                   help="espeak language for reference phones (default %(default)s)")


@COMMANDS("demo-corpus", _demo_corpus_arguments,
          "synthesise the English demo corpus with espeak-ng")
def cmd_demo_corpus(a: argparse.Namespace) -> None:
    from w2vu.demo.corpus import CorpusSettings, build_demo_corpus

    build_demo_corpus(a.out_dir, a.out_table, a.out_text,
                      CorpusSettings(minutes=a.minutes, seed=a.seed, language=a.language))


def _digits_corpus_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fsdd", required=True, type=Path, help="FSDD folder (transcripts.tsv)")
    p.add_argument("--out-dir", required=True, type=Path, help="folder for the audio files")
    p.add_argument("--out-table", required=True, type=Path, help="audio table (TSV) to write")
    p.add_argument("--out-text", required=True, type=Path, help="unpaired text file to write")
    digits = "w2vu.digits.corpus:DigitsSettings"
    p.add_argument("--seed", type=int, default=LibraryDefault(f"{digits}.seed"))
    p.add_argument("--test-speakers", nargs="+", default=LibraryDefault(f"{digits}.test_speakers"))
    p.add_argument("--valid-fraction", type=float,
                   default=LibraryDefault(f"{digits}.valid_fraction"),
                   help="share of the other speakers' strings in valid (default %(default)s)")
    p.add_argument("--min-digits", type=int, default=LibraryDefault(f"{digits}.min_digits"))
    p.add_argument("--max-digits", type=int, default=LibraryDefault(f"{digits}.max_digits"))
    p.add_argument("--text-lines", type=int, default=LibraryDefault(f"{digits}.text_lines"),
                   help="unpaired digit strings")
    p.add_argument("--grammar", default=LibraryDefault(f"{digits}.grammar"),
                   help="chain: digits with word statistics (1/rank first digit, a likely "
                        "successor); uniform: independent digits, every recording once "
                        "(default %(default)s)")
    p.add_argument("--successor", type=float, default=LibraryDefault(f"{digits}.successor"),
                   help="chain: probability that a digit is followed by its successor "
                        "(default %(default)s)")
    p.add_argument("--passes", type=int, default=LibraryDefault(f"{digits}.passes"),
                   help="how many times the train and valid speakers' takes are spoken, each "
                        "time in other strings (default %(default)s)")
    p.add_argument("--language", default=LibraryDefault(f"{digits}.language"),
                   help="espeak language for reference phones (default %(default)s)")


@COMMANDS("digits-corpus", _digits_corpus_arguments,
          "join Free Spoken Digit Dataset recordings into digit strings, split by speaker")
def cmd_digits_corpus(a: argparse.Namespace) -> None:
    from w2vu.digits.corpus import DigitsSettings, build_digits_corpus

    settings = DigitsSettings(
        seed=a.seed, test_speakers=tuple(a.test_speakers), valid_fraction=a.valid_fraction,
        min_digits=a.min_digits, max_digits=a.max_digits, text_lines=a.text_lines,
        grammar=a.grammar, successor=a.successor, passes=a.passes, language=a.language)
    build_digits_corpus(a.fsdd, a.out_dir, a.out_table, a.out_text, settings)


def _inventory_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--paths", nargs="*", default=[], help="folders or globs of audio files")
    p.add_argument("--table", help="TSV with a path column (instead of --paths)")
    p.add_argument("--references", help="TSV of path/key, transcript[, phones]")
    p.add_argument("--extensions", nargs="+",
                   default=LibraryDefault("w2vu.audio.inventory:AUDIO_EXTENSIONS"),
                   help="extensions taken when scanning folders (default %(default)s)")
    p.add_argument("--split-method", choices=("hash", "lists", "column"), default="hash")
    p.add_argument("--split-fractions", nargs="*", default=["train=1"], metavar="NAME=FRACTION")
    p.add_argument("--split-lists", nargs="*", default=[], metavar="NAME=FILE")
    p.add_argument("--split-names", nargs="*", default=[], help="names for --split-method column")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--out-dir", required=True, type=Path, help="folder for the SHARD.tsv lists")
    p.add_argument("--out-rejects", required=True, type=Path)


@COMMANDS("inventory", _inventory_arguments, "find audio, assign keys, splits and shards")
def cmd_inventory(a: argparse.Namespace) -> None:
    from w2vu.audio.inventory import SplitRule, build_inventory

    if a.split_method == "hash":
        names, fractions = key_values(a.split_fractions, float)
        rule = SplitRule("hash", tuple(names), fractions=tuple(fractions))
    elif a.split_method == "lists":
        names, lists = key_values(a.split_lists, str)
        rule = SplitRule("lists", tuple(names), lists=tuple(lists))
    else:
        rule = SplitRule("column", tuple(a.split_names))
    if not rule.names:
        raise W2vuError(f"split method {a.split_method!r} needs at least one split")
    build_inventory(patterns=a.paths, table=a.table, references=a.references,
                    extensions=a.extensions, rule=rule, shards=a.shards, out_dir=a.out_dir,
                    out_rejects=a.out_rejects)


def _convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard-list", required=True, type=Path)
    p.add_argument("--split", required=True, help="which split of the shard list")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--out-manifest", required=True, type=Path)
    p.add_argument("--out-rejects", required=True, type=Path)
    limits = "w2vu.audio.convert:DurationLimits"
    p.add_argument("--min-seconds", type=float, default=LibraryDefault(f"{limits}.min_seconds"))
    p.add_argument("--max-seconds", type=float, default=LibraryDefault(f"{limits}.max_seconds"))
    workers(p)


@COMMANDS("convert", _convert_arguments, "decode, downmix and resample a shard to 16 kHz FLAC")
def cmd_convert(a: argparse.Namespace) -> None:
    from w2vu.audio.convert import DurationLimits, convert_shard

    convert_shard(a.shard_list, a.split, a.out_dir, a.out_manifest, a.out_rejects,
                  DurationLimits(a.min_seconds, a.max_seconds), workers=a.workers)


def _vad_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--out-vads", required=True, type=Path)
    vad = "w2vu.audio.vad:VadParams"
    p.add_argument("--window", type=float, default=LibraryDefault(f"{vad}.window"),
                   help="window in seconds")
    p.add_argument("--shift", type=float, default=LibraryDefault(f"{vad}.shift"),
                   help="frame shift in seconds")
    p.add_argument("--n-fft", type=int, default=LibraryDefault(f"{vad}.n_fft"))
    p.add_argument("--sft-threshold", type=float, default=LibraryDefault(f"{vad}.sft_threshold"),
                   help="spectral flatness threshold")
    p.add_argument("--vad-threshold", type=float, default=LibraryDefault(f"{vad}.vad_threshold"))
    workers(p)


@COMMANDS("vad", _vad_arguments, "rVAD speech detection of a shard, written as .vads")
def cmd_vad(a: argparse.Namespace) -> None:
    from w2vu.audio.vad import VadParams, vad_shard

    vad_shard(a.manifest, a.out_vads, VadParams(a.window, a.shift, a.n_fft, a.sft_threshold,
                                                a.vad_threshold), workers=a.workers)


def _trim_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard-list", required=True, type=Path)
    p.add_argument("--split", required=True, help="which split of the shard list")
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--vads", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--out-manifest", required=True, type=Path)
    p.add_argument("--out-rejects", required=True, type=Path)
    trim = "w2vu.audio.trim:TrimParams"
    p.add_argument("--pad-seconds", type=float, default=LibraryDefault(f"{trim}.pad_seconds"))
    p.add_argument("--no-speech", choices=("keep", "reject"),
                   default=LibraryDefault(f"{trim}.no_speech"))
    p.add_argument("--min-seconds", type=float, default=LibraryDefault(f"{trim}.min_seconds"))
    workers(p)


@COMMANDS("trim", _trim_arguments, "keep the speech segments of a shard")
def cmd_trim(a: argparse.Namespace) -> None:
    from w2vu.audio.trim import TrimParams, trim_shard

    trim_shard(a.shard_list, a.split, a.manifest, a.vads, a.out_dir, a.out_manifest, a.out_rejects,
               TrimParams(a.pad_seconds, a.no_speech, a.min_seconds), workers=a.workers)


def _manifest_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trimmed", nargs="+", required=True, help="trimmed shard manifests")
    p.add_argument("--split-root", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)


@COMMANDS("manifest", _manifest_arguments, "gather a split's shards into a fairseq manifest")
def cmd_manifest(a: argparse.Namespace) -> None:
    from w2vu.audio.gather import gather_split

    gather_split(a.trimmed, a.split_root, a.out)


def _labels_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--shard-lists", nargs="+", required=True, help="inventory shard lists")
    p.add_argument("--split", required=True)
    p.add_argument("--out-prefix", required=True, help="written as PREFIX.wrd, .ltr, .given.phn")


@COMMANDS("labels", _labels_arguments, "write .wrd/.ltr/.given.phn aligned with a manifest")
def cmd_labels(a: argparse.Namespace) -> None:
    from w2vu.audio.gather import write_labels

    write_labels(a.manifest, a.shard_lists, a.split, a.out_prefix)


def _audio_summary_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inventory-rejects", required=True)
    p.add_argument("--shard-lists", nargs="+", required=True)
    p.add_argument("--converted", nargs="+", required=True)
    p.add_argument("--convert-rejects", nargs="+", required=True)
    p.add_argument("--trimmed", nargs="+", required=True)
    p.add_argument("--trim-rejects", nargs="+", required=True)
    p.add_argument("--out-rejects", required=True)
    p.add_argument("--out-summary", required=True)


@COMMANDS("audio-summary", _audio_summary_arguments, "gather rejects and check the counts")
def cmd_audio_summary(a: argparse.Namespace) -> None:
    from w2vu.audio.gather import summarize_language

    summarize_language(inventory_rejects=a.inventory_rejects, shard_lists=a.shard_lists,
                       converted=a.converted, convert_rejects=a.convert_rejects,
                       trimmed=a.trimmed, trim_rejects=a.trim_rejects,
                       out_rejects=a.out_rejects, out_summary=a.out_summary)
