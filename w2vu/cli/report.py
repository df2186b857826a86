"""`w2vu report <figure>`: write one report figure (the report rules call this).

Series labels come from the pipeline's paths: the split is the stem of `manifest/{split}.tsv`,
`CLUS{K}/{split}.src` and `transcripts/{stage}/{split}.txt` (labelled `{stage}/{split}`), the run
the folder of `gan/{variant}/{run}/metrics.tsv`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from w2vu.cli.commands import Commands

COMMANDS = Commands()


def _by_stem(paths: list[Path]) -> dict[str, Path]:
    return {p.stem: p for p in paths}


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="figure", required=True, metavar="FIGURE")

    def figure(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(command=f"report {name}")  # errors name the figure
        return p

    p = figure("speech-ratio", "speech kept by VAD per split and per utterance")
    p.add_argument("--summary", required=True, type=Path, help="audio/summary.tsv")
    p.add_argument("--vads", nargs="*", default=[], type=Path, help="audio/vad/{split}/*.vads")
    p.add_argument("--manifests", nargs="*", default=[], type=Path,
                   help="audio/converted/{split}/{shard}.tsv, in the order of --vads")
    p.set_defaults(draw=lambda a, figures: figures.speech_ratio(a.summary, a.out, a.vads,
                                                                a.manifests))

    p = figure("utterance-lengths", "utterance length histogram per split")
    p.add_argument("--manifests", nargs="+", required=True, type=Path,
                   help="manifest/{split}.tsv")
    p.set_defaults(draw=lambda a, figures: figures.utterance_lengths(_by_stem(a.manifests),
                                                                     a.out))

    p = figure("cluster-usage", "share of frames per k-means cluster")
    p.add_argument("--src", nargs="+", required=True, type=Path, help="CLUS{K}/{split}.src")
    p.add_argument("--clusters", required=True, type=int)
    p.set_defaults(draw=lambda a, figures: figures.cluster_usage(_by_stem(a.src), a.clusters,
                                                                 a.out))

    p = figure("phone-frequencies", "phone frequencies: text vs generated")
    p.add_argument("--text", required=True, type=Path, help="text/phones/lm.phones.filtered.txt")
    p.add_argument("--generated", nargs="*", default=[], type=Path,
                   help="transcripts/{stage}/{split}.txt (one line of phones per utterance)")
    p.set_defaults(draw=lambda a, figures: figures.phone_frequencies(
        a.text, a.out, {f"{g.parent.name}/{g.stem}": g for g in a.generated}))

    p = figure("gan-training", "GAN losses and metrics over updates")
    p.add_argument("--metrics", nargs="+", required=True, type=Path,
                   help="gan/{variant}/{run}/metrics.tsv")
    p.add_argument("--title", default="GAN training")
    p.add_argument("--keep", choices=("best", "last"), required=True,
                   help="the checkpoint each run kept (gan.keep), marked with a star")
    p.set_defaults(draw=lambda a, figures: figures.gan_training(
        {m.parent.name: m for m in a.metrics}, a.out, a.title, keep=a.keep))

    p = figure("error-rates", "error rate per stage and split")
    p.add_argument("--scores", required=True, type=Path, help="scores.tsv")
    p.set_defaults(draw=lambda a, figures: figures.error_rates(a.scores, a.out))

    for p in sub.choices.values():
        p.add_argument("--out", required=True, type=Path, help="the figure (.svg or .png)")


@COMMANDS("report", _report_arguments, "write one report figure (w2vu report FIGURE --help)")
def cmd_report(a: argparse.Namespace) -> None:
    from w2vu.report import figures

    a.draw(a, figures)
