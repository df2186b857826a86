"""WFST decoding commands: tune the decoding settings without references, decode."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from w2vu.cli.commands import Commands, LibraryDefault, threads

log = logging.getLogger("w2vu")
COMMANDS = Commands()


def decode_settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("--emissions", required=True, help="frame log-prob prefix (.npy/.lengths)")
    p.add_argument("--graph-dir", required=True, type=Path, help="folder with HLG.fst")
    threads(p)


def _decode_options(a: argparse.Namespace):
    from w2vu.decode.wfst import DecodeOptions

    return DecodeOptions(blank_mode=a.blank_mode, sil_is_blank=a.sil_is_blank, beam=a.beam)


def _wfst_tune_arguments(p: argparse.ArgumentParser) -> None:
    decode_settings(p)
    p.add_argument("--viterbi", required=True, type=Path, help="the GAN's Viterbi {split}.txt")
    p.add_argument("--lexicon", type=Path, help="word lexicon; none for a phone graph")
    p.add_argument("--lm", required=True, type=Path, help="the graph's LM (ARPA)")
    p.add_argument("--acoustic-scales", type=float, nargs="+", default=[0.3, 0.5, 0.8, 1.2])
    p.add_argument("--blank-weights", type=float, nargs="+", default=[0.0, 2.0, 4.0])
    options = "w2vu.decode.wfst:DecodeOptions"
    p.add_argument("--blank-mode", choices=("add", "set"),
                   default=LibraryDefault(f"{options}.blank_mode"))
    p.add_argument("--sil-is-blank", action="store_true", help="<SIL> takes the blank weight")
    p.add_argument("--beam", type=float, default=LibraryDefault(f"{options}.beam"))
    p.add_argument("--min-vt-uer", type=float, default=0.0)
    p.add_argument("--out-tsv", required=True, type=Path, help="every grid point and its score")
    p.add_argument("--out-json", required=True, type=Path, help="the chosen settings")


@COMMANDS("wfst-tune", _wfst_tune_arguments,
          "choose WFST decoding settings without references (reference's tuning score)")
def cmd_wfst_tune(a: argparse.Namespace) -> None:
    from w2vu.decode.tune import make_grid, tune_decoding
    from w2vu.eval.unsupervised import grid_edge

    chosen = tune_decoding(a.emissions, a.graph_dir, a.viterbi, a.lexicon, a.lm,
                           make_grid(a.acoustic_scales, a.blank_weights), a.out_tsv, a.out_json,
                           a.min_vt_uer, _decode_options(a), threads=a.threads)
    for edge, flag, key in (
            (grid_edge("acoustic scale", a.acoustic_scales, chosen.acoustic_scale),
             "--acoustic-scales", "acoustic_scales"),
            (grid_edge("blank weight", a.blank_weights, chosen.blank_weight, low_edge=False),
             "--blank-weights", "blank_weights")):
        if edge:
            log.warning("wfst-tune: %s (%s; config decode.%s)", edge, flag, key)


def _wfst_decode_arguments(p: argparse.ArgumentParser) -> None:
    decode_settings(p)
    p.add_argument("--choice", required=True, type=Path, help="wfst-tune's JSON")
    p.add_argument("--out", required=True, type=Path)


@COMMANDS("wfst-decode", _wfst_decode_arguments, "decode emissions over an HLG graph")
def cmd_wfst_decode(a: argparse.Namespace) -> None:
    from w2vu.decode.tune import read_choice
    from w2vu.decode.wfst import decode_split

    options = read_choice(a.choice)
    hyps = decode_split(a.emissions, a.graph_dir, a.out, options, a.threads)
    log.info("wfst-decode: %d utterances with %s", len(hyps), options)


def _wfst_phones_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--words", required=True, type=Path, help="a WFST-decoded {split}.txt")
    p.add_argument("--lexicon", required=True, type=Path, help="the graph's word lexicon")
    p.add_argument("--out", required=True, type=Path)


@COMMANDS("wfst-phones", _wfst_phones_arguments,
          "a word transcript as phones through the lexicon (self-training's pseudo-labels)")
def cmd_wfst_phones(a: argparse.Namespace) -> None:
    from w2vu.text.lexicon import pronounce_transcript

    lines = pronounce_transcript(a.words, a.lexicon, a.out)
    log.info("wfst-phones: %d lines to %s", lines, a.out)
