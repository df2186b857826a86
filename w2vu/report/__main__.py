"""`python -m w2vu.report <figure> ...`: write one report figure (the report rules call this).

Series labels come from the pipeline's paths: the split is the stem of `manifest/{split}.tsv`,
`CLUS{K}/{split}.src` and `transcripts/{stage}/{split}.txt` (labelled `{stage}/{split}`), the run
the folder of `gan/{variant}/{run}/metrics.tsv`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.logs import setup_logging
from w2vu.report import figures

log = logging.getLogger("w2vu")


def _by_stem(paths: list[Path]) -> dict[str, Path]:
    return {p.stem: p for p in paths}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m w2vu.report", description=__doc__.split(
        "\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="figure", required=True)

    p = sub.add_parser("speech-ratio", help="speech kept by VAD per split and per utterance")
    p.add_argument("--summary", required=True, type=Path, help="audio/summary.tsv")
    p.add_argument("--vads", nargs="*", default=[], type=Path, help="audio/vad/{split}/*.vads")
    p.add_argument("--manifests", nargs="*", default=[], type=Path,
                   help="audio/converted/{split}/{shard}.tsv, in the order of --vads")
    p.set_defaults(run=lambda a: figures.speech_ratio(a.summary, a.out, a.vads, a.manifests))

    p = sub.add_parser("utterance-lengths", help="utterance length histogram per split")
    p.add_argument("--manifests", nargs="+", required=True, type=Path,
                   help="manifest/{split}.tsv")
    p.set_defaults(run=lambda a: figures.utterance_lengths(_by_stem(a.manifests), a.out))

    p = sub.add_parser("cluster-usage", help="share of frames per k-means cluster")
    p.add_argument("--src", nargs="+", required=True, type=Path, help="CLUS{K}/{split}.src")
    p.add_argument("--clusters", required=True, type=int)
    p.set_defaults(run=lambda a: figures.cluster_usage(_by_stem(a.src), a.clusters, a.out))

    p = sub.add_parser("phone-frequencies", help="phone frequencies: text vs generated")
    p.add_argument("--text", required=True, type=Path, help="text/phones/lm.phones.filtered.txt")
    p.add_argument("--generated", nargs="*", default=[], type=Path,
                   help="transcripts/{stage}/{split}.txt (one line of phones per utterance)")
    p.set_defaults(run=lambda a: figures.phone_frequencies(
        a.text, a.out, {f"{g.parent.name}/{g.stem}": g for g in a.generated}))

    p = sub.add_parser("gan-training", help="GAN losses and metrics over updates")
    p.add_argument("--metrics", nargs="+", required=True, type=Path,
                   help="gan/{variant}/{run}/metrics.tsv")
    p.add_argument("--title", default="GAN training")
    p.set_defaults(run=lambda a: figures.gan_training(
        {m.parent.name: m for m in a.metrics}, a.out, a.title))

    p = sub.add_parser("error-rates", help="error rate per stage and split")
    p.add_argument("--scores", required=True, type=Path, help="scores.tsv")
    p.set_defaults(run=lambda a: figures.error_rates(a.scores, a.out))

    for p in sub.choices.values():
        p.add_argument("--out", required=True, type=Path, help="the figure (.svg or .png)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Write the figure named by the first argument; user errors exit with status 2."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        args.run(args)
    except W2vuError as e:
        log.error("report %s: %s", args.figure, e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
