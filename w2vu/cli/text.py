"""Text commands: normalisation, lexicon, phone text, n-gram LMs, decoding graphs."""

from __future__ import annotations

import argparse
from pathlib import Path

from w2vu.cli.commands import Commands, LibraryDefault

NORMALIZE = "w2vu.text.normalize:NormalizeSettings"
LEXICON = "w2vu.text.lexicon:LexiconSettings"
PHONES = "w2vu.text.phones:PhoneSettings"

COMMANDS = Commands()


def casefold(p: argparse.ArgumentParser) -> None:
    """Lower-casing, the same for the unpaired text and the words of the references."""
    p.add_argument("--casefold", action=argparse.BooleanOptionalAction,
                   default=LibraryDefault(f"{NORMALIZE}.casefold"),
                   help="lower-case the text (default %(default)s)")


def _normalize_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", nargs="+", required=True, type=Path, help="text files")
    p.add_argument("--out", required=True, type=Path)
    casefold(p)
    p.add_argument("--max-line-chars", type=int,
                   default=LibraryDefault(f"{NORMALIZE}.max_line_chars"),
                   help="longer lines are split")
    p.add_argument("--lid-model", help="local fastText LID model; none: no LID filtering")
    p.add_argument("--lid-label", default=LibraryDefault(f"{NORMALIZE}.lid_label"),
                   help="the language's label in the LID model")
    p.add_argument("--lid-threshold", type=float,
                   default=LibraryDefault(f"{NORMALIZE}.lid_threshold"))


@COMMANDS("normalize", _normalize_arguments, "normalise unpaired text, one sentence per line")
def cmd_normalize(a: argparse.Namespace) -> None:
    from w2vu.text.normalize import NormalizeSettings, normalize_text

    normalize_text(a.inputs, a.out, NormalizeSettings(a.casefold, a.max_line_chars, a.lid_model,
                                                      a.lid_label, a.lid_threshold))


def _lexicon_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", required=True, type=Path, help="normalised text")
    p.add_argument("--language", required=True, help="espeak-ng language code")
    p.add_argument("--out-words", required=True, type=Path)
    p.add_argument("--out-lexicon", required=True, type=Path)
    p.add_argument("--min-word-count", type=int,
                   default=LibraryDefault(f"{LEXICON}.min_word_count"))
    p.add_argument("--user-lexicon", help="word<TAB>phones file")
    p.add_argument("--lexicon-mode", choices=("extend", "replace"),
                   default=LibraryDefault(f"{LEXICON}.lexicon_mode"),
                   help="the user lexicon extends espeak (its entries win) or replaces it")
    p.add_argument("--cache-dir", type=Path, help="keep pronunciations here between runs")


@COMMANDS("lexicon", _lexicon_arguments, "count words and phonemise each kept word once")
def cmd_lexicon(a: argparse.Namespace) -> None:
    from w2vu.text.lexicon import LexiconSettings, build_lexicon

    build_lexicon(a.text, a.out_words, a.out_lexicon,
                  LexiconSettings(a.language, a.min_word_count, a.user_lexicon, a.lexicon_mode),
                  cache_dir=a.cache_dir)


def _phones_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", required=True, type=Path, help="normalised text")
    p.add_argument("--lexicon", required=True, type=Path)
    p.add_argument("--out-dict", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--out-lexicon", required=True, type=Path, help="filtered lexicon")
    p.add_argument("--out-phone-text", required=True, type=Path)
    p.add_argument("--min-phones", type=int, default=LibraryDefault(f"{PHONES}.min_phones"))
    p.add_argument("--count-by", choices=("lexicon", "corpus"),
                   default=LibraryDefault(f"{PHONES}.count_by"))
    p.add_argument("--sil-prob", type=float, default=LibraryDefault(f"{PHONES}.sil_prob"))
    p.add_argument("--seed", type=int, default=LibraryDefault(f"{PHONES}.seed"))


@COMMANDS("phones", _phones_arguments, "phone inventory, filtered lexicon, phone text with <SIL>")
def cmd_phones(a: argparse.Namespace) -> None:
    from w2vu.text.phones import PhoneSettings, build_phone_text

    build_phone_text(a.text, a.lexicon, a.out_dict, a.out_lexicon, a.out_phone_text,
                     PhoneSettings(a.min_phones, a.count_by, a.sil_prob, a.seed))


def _reference_phones_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--words", required=True, type=Path, help="the split's .wrd")
    p.add_argument("--given", required=True, type=Path, help="the split's .given.phn")
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--lexicon", required=True, type=Path, help="the unfiltered lexicon.lst")
    p.add_argument("--out", required=True, type=Path, help="the split's .phn")
    p.add_argument("--language", required=True, help="espeak-ng language code")
    p.add_argument("--user-lexicon", help="word<TAB>phones file")
    p.add_argument("--lexicon-mode", choices=("extend", "replace"),
                   default=LibraryDefault(f"{LEXICON}.lexicon_mode"))
    casefold(p)
    p.add_argument("--cache-dir", type=Path, help="the lexicon step's pronunciation cache")


@COMMANDS("reference-phones", _reference_phones_arguments,
          "a split's phone references: given phones checked, else words phonemised")
def cmd_reference_phones(a: argparse.Namespace) -> None:
    from w2vu.text.lexicon import LexiconSettings
    from w2vu.text.references import write_reference_phones

    write_reference_phones(a.words, a.given, a.dictionary, a.lexicon, a.out,
                           LexiconSettings(a.language, user_lexicon=a.user_lexicon,
                                           lexicon_mode=a.lexicon_mode),
                           casefold=a.casefold, cache_dir=a.cache_dir)


def _lm_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", required=True, type=Path, help="one sentence per line")
    p.add_argument("--order", required=True, type=int)
    p.add_argument("--out", required=True, type=Path)


def _word_lm_arguments(p: argparse.ArgumentParser) -> None:
    _lm_arguments(p)
    p.add_argument("--prune", nargs="*", type=int, help="count thresholds per order, as lmplz")
    p.add_argument("--lmplz", help="use this lmplz binary instead of w2vu's estimator")


@COMMANDS("phone-lm", _lm_arguments,
          "ARPA phone n-gram LM of the phone text (interpolated modified Kneser-Ney, as lmplz)")
def cmd_phone_lm(a: argparse.Namespace) -> None:
    from w2vu.text.lm import build_lm

    build_lm(a.text, a.order, a.out)


@COMMANDS("word-lm", _word_lm_arguments,
          "ARPA word n-gram LM of the normalised text (w2vu's estimator, or --lmplz)")
def cmd_word_lm(a: argparse.Namespace) -> None:
    from w2vu.text.lm import build_lm

    build_lm(a.text, a.order, a.out, prune=a.prune, lmplz=a.lmplz)


def _graphs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt (fairseq)")
    p.add_argument("--arpa", required=True, type=Path, help="word LM, or phone LM without lexicon")
    p.add_argument("--lexicon", type=Path, help="word<TAB>phones; none: phone-to-phone graph")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--blank", default="<s>", choices=("<s>", "<SIL>"))
    p.add_argument("--silence", choices=("<SIL>",), help="also absorb <SIL> frames like a blank")


@COMMANDS("graphs", _graphs_arguments, "H, L, G, LG and HLG decoding graphs (OpenFst binary)")
def cmd_graphs(a: argparse.Namespace) -> None:
    from w2vu.text.graphs import build_graphs

    build_graphs(a.dictionary, a.arpa, a.out_dir, lexicon=a.lexicon, blank=a.blank,
                 silence=a.silence)
