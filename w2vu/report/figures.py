"""The report's figures: one function per figure, reading the pipeline's files, writing an image.

Each function takes the paths a rule gives it and writes one SVG (or PNG, by the output's suffix)
atomically. SVGs are byte-reproducible (no date, fixed id salt), so rerunning a figure on the same
inputs rewrites the same file. Text stays text in the SVG (``svg.fonttype: none``).

Figures:

* :func:`speech_ratio` — audio kept by VAD per split (``audio/summary.tsv``) and the speech
  fraction of each utterance (``audio/vad/*.vads`` against the converted manifests);
* :func:`utterance_lengths` — length distribution of the final manifests;
* :func:`cluster_usage` — how often each k-means cluster is the nearest one (``CLUS{K}/*.src``);
* :func:`phone_frequencies` — phone distribution of the unpaired text against generated output;
* :func:`gan_training` — losses and the unsupervised metric over updates, one line per run;
* :func:`error_rates` — PER/WER per stage and split (``scores.tsv``).
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.io.dictionary import SIL, SPECIALS
from w2vu.io.features import iter_unit_lines
from w2vu.io.manifest import read_manifest, read_vads
from w2vu.io.rejects import NO_SPLIT
from w2vu.io.tables import read_table

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # w2vu.audio.SAMPLE_RATE; the manifests' and .vads' unit
# Symbols that are not phones: silence and fairseq's specials (as w2vu.eval.score.PHONE_DROP).
NOT_PHONES = frozenset((SIL, *SPECIALS))
GAN_PANELS = ("d_loss", "g_loss", "grad_pen", "code_ppl", "vocab_usage", "weighted_lm_ppl",
              "per")
GAN_TITLES = {"d_loss": "discriminator loss", "g_loss": "generator loss",
              "grad_pen": "gradient penalty", "code_ppl": "code perplexity",
              "vocab_usage": "vocabulary usage", "weighted_lm_ppl": "weighted LM perplexity "
              "(selection metric, lower is better)", "per": "validation PER"}
SCORE_COLUMNS = ("stage", "split", "metric", "errors", "reference_tokens", "rate")


def _pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend, with reproducible SVG output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "w2vu", "svg.fonttype": "none", "figure.dpi": 100,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _save(fig, out: str | os.PathLike, layout: bool = True) -> Path:
    """Write the figure atomically in the format of the output's suffix (after a tight layout,
    unless the caller laid it out); close it."""
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in ("svg", "png"):
        raise W2vuError(f"{out}: figures are written as .svg or .png")
    if layout:
        fig.tight_layout()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with atomic_path(out, suffix=out.suffix) as tmp:
        fig.savefig(tmp, format=fmt, metadata=metadata)
    _pyplot().close(fig)
    log.info("wrote %s", out)
    return out


def _duration_unit(seconds: float) -> tuple[str, float]:
    """A readable unit for a total duration: (name, seconds per unit)."""
    if seconds >= 2 * 3600:
        return "hours", 3600.0
    if seconds >= 120:
        return "minutes", 60.0
    return "seconds", 1.0


def _split_of(path: str | os.PathLike) -> str:
    """The split of a per-shard file `.../{split}/{shard}.ext`."""
    return Path(path).parent.name


def speech_fractions(vads: Sequence[str | os.PathLike],
                     manifests: Sequence[str | os.PathLike]) -> dict[str, np.ndarray]:
    """Per split, the fraction of each utterance that VAD kept as speech.

    `vads[i]` and `manifests[i]` are the `.vads` file and the converted manifest of one shard,
    line-aligned (the VAD step writes one line per manifest row).
    """
    if len(vads) != len(manifests):
        raise W2vuError(f"{len(vads)} .vads files but {len(manifests)} manifests; give one "
                        "converted manifest per .vads file, in the same order")
    fractions: dict[str, list[float]] = {}
    for vad_path, manifest_path in zip(vads, manifests):
        rows = read_manifest(manifest_path).rows
        segments = read_vads(vad_path)
        if len(segments) != len(rows):
            raise W2vuError(f"{vad_path}: {len(segments)} lines but {manifest_path} has "
                            f"{len(rows)} rows; rerun the VAD step")
        values = fractions.setdefault(_split_of(vad_path), [])
        for (_, n), segs in zip(rows, segments):
            if n > 0:
                values.append(min(1.0, sum(e - s for s, e in segs) / n))
    return {split: np.array(v) for split, v in fractions.items()}


def speech_ratio(summary: str | os.PathLike, out: str | os.PathLike,
                 vads: Sequence[str | os.PathLike] = (),
                 manifests: Sequence[str | os.PathLike] = ()) -> Path:
    """Audio in and speech kept per split (from `summary.tsv`), and, given the `.vads` files
    and converted manifests, the distribution of the speech fraction per utterance."""
    rows = [row for row in read_table(summary, required=("split", "seconds_in", "seconds_kept"))
            if row["split"] != NO_SPLIT]
    if not rows:
        raise W2vuError(f"{summary}: no splits; rerun the audio stages")
    splits = [r["split"] for r in rows]
    seconds_in = np.array([float(r["seconds_in"]) for r in rows])
    seconds_kept = np.array([float(r["seconds_kept"]) for r in rows])
    fractions = speech_fractions(vads, manifests) if vads else {}

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if fractions else 1, figsize=(11 if fractions else 6, 4),
                             squeeze=False)
    ax = axes[0, 0]
    unit, scale = _duration_unit(float(seconds_in.max(initial=0)))
    x = np.arange(len(splits))
    ax.bar(x - 0.2, seconds_in / scale, 0.4, label="converted audio", color="0.75")
    ax.bar(x + 0.2, seconds_kept / scale, 0.4, label="speech after VAD", color="C0")
    for i, (total, kept) in enumerate(zip(seconds_in, seconds_kept)):
        ratio = kept / total if total > 0 else math.nan
        ax.annotate(f"{ratio:.0%}", (i + 0.2, kept / scale), ha="center", va="bottom",
                    fontsize=9)
    ax.set_xticks(x, splits)
    ax.set_ylabel(unit)
    ax.set_title("speech kept by VAD, per split")
    ax.legend(frameon=False, fontsize=8)
    if fractions:
        ax = axes[0, 1]
        bins = np.linspace(0, 1, 21)
        for i, (split, values) in enumerate(fractions.items()):
            ax.hist(values, bins=bins, histtype="step", linewidth=1.5, color=f"C{i}",
                    label=f"{split} ({len(values)} utt., median {np.median(values):.0%})"
                    if len(values) else f"{split} (0 utt.)")
        ax.set_xlabel("fraction of the utterance kept as speech")
        ax.set_ylabel("utterances")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_title("speech fraction per utterance")
        ax.legend(frameon=False, fontsize=8)
    return _save(fig, out)


def utterance_lengths(manifests: Mapping[str, str | os.PathLike],
                      out: str | os.PathLike) -> Path:
    """Histogram of utterance lengths (seconds) per split, from the final manifests."""
    lengths = {split: np.array([n for _, n in read_manifest(path).rows], dtype=float)
               / SAMPLE_RATE for split, path in manifests.items()}
    every = np.concatenate([v for v in lengths.values()] or [np.zeros(0)])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    top = float(every.max()) if every.size else 1.0
    bins = np.linspace(0, top * 1.02 + 1e-9, 31)
    for i, (split, values) in enumerate(lengths.items()):
        label = (f"{split}: {len(values)} utt., {values.sum() / 60:.1f} min, "
                 f"median {np.median(values):.1f} s" if len(values) else f"{split}: empty")
        ax.hist(values, bins=bins, histtype="step", linewidth=1.5, color=f"C{i}", label=label)
    ax.set_xlabel("utterance length (seconds, after VAD)")
    ax.set_ylabel("utterances")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title("utterance lengths")
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, out)


def cluster_counts(src: str | os.PathLike, clusters: int) -> np.ndarray:
    """How many frames of a `.src` file (one line of cluster ids per utterance) fall in each
    cluster."""
    counts = np.zeros(clusters, dtype=np.int64)
    for number, ids in enumerate(iter_unit_lines(src), start=1):
        if ids.size and (ids.min() < 0 or ids.max() >= clusters):
            raise W2vuError(f"{src}:{number}: cluster id outside 0..{clusters - 1}; the "
                            "file was made with another number of clusters")
        counts += np.bincount(ids, minlength=clusters)
    return counts


def cluster_usage(srcs: Mapping[str, str | os.PathLike], clusters: int,
                  out: str | os.PathLike) -> Path:
    """Share of frames per k-means cluster and split, clusters ranked by their share in the
    first split (the one k-means learnt from, when it is listed first)."""
    counts = {split: cluster_counts(path, clusters) for split, path in srcs.items()}
    if not counts:
        raise W2vuError("cluster usage: no .src files given")
    first = next(iter(counts.values()))
    order = np.argsort(-first, kind="stable")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    rank = np.arange(1, clusters + 1)
    for i, (split, c) in enumerate(counts.items()):
        share = c[order] / max(int(c.sum()), 1)
        used = int((c > 0).sum())
        label = f"{split}: {used}/{clusters} clusters used, {int(c.sum())} frames"
        if i == 0:
            ax.bar(rank, share, width=0.9, color="C0", label=label)
        else:
            ax.step(rank, share, where="mid", color=f"C{i}", linewidth=1.2, label=label)
    ax.axhline(1 / clusters, color="0.4", linestyle=":", linewidth=1, label="uniform")
    ax.set_xlabel(f"cluster (ranked by share in {next(iter(counts))})")
    ax.set_ylabel("share of frames")
    ax.set_title(f"k-means cluster usage (K={clusters})")
    ax.set_xlim(0.5, clusters + 0.5)
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, out)


def phone_counts(path: str | os.PathLike) -> Counter[str]:
    """Phone counts of a phone text (one space-separated sentence per line), silence and
    specials left out."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise W2vuError(f"{path}: phone text not found") from None
    return Counter(p for p in text.split() if p not in NOT_PHONES)


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Total variation distance between two distributions over phones (0 same, 1 disjoint)."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def _distribution(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def phone_frequencies(text: str | os.PathLike, out: str | os.PathLike,
                      generated: Mapping[str, str | os.PathLike] | None = None) -> Path:
    """Relative phone frequencies of the unpaired text, and of each generated transcript
    (label -> file of one line of phones per utterance), phones ranked by the text's."""
    real = _distribution(phone_counts(text))
    if not real:
        raise W2vuError(f"{text}: no phones; rerun the text preparation")
    outputs = {label: _distribution(phone_counts(path)) for label, path in
               (generated or {}).items()}
    phones = sorted(real, key=lambda p: (-real[p], p))
    extra = sorted({p for d in outputs.values() for p in d} - set(real))
    phones += extra
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(7.0, 0.28 * len(phones) + 2), 4.2))
    series = {"unpaired text": real, **outputs}
    width = 0.8 / len(series)
    x = np.arange(len(phones))
    for i, (label, dist) in enumerate(series.items()):
        if i > 0:
            tv = total_variation(real, dist) if dist else math.nan
            label = f"{label} (TV distance {tv:.2f})" if dist else f"{label} (empty)"
        ax.bar(x + (i - (len(series) - 1) / 2) * width, [dist.get(p, 0.0) for p in phones],
               width, color=f"C{i}", label=label)
    ax.set_xticks(x, phones, fontsize=8, rotation=90)
    ax.set_xlim(-0.6, len(phones) - 0.4)
    ax.set_ylabel("relative frequency")
    ax.set_title("phone frequencies: real text" + (" vs generated output" if outputs else ""))
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, out)


def read_metrics(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A GAN run's `metrics.tsv` as float columns (`nan`/`inf` kept)."""
    rows = read_table(path, required=("update",))
    columns = list(rows[0]) if rows else ["update"]
    return {c: np.array([float(r[c]) if r[c] else math.nan for r in rows]) for c in columns}


def gan_training(metrics: Mapping[str, str | os.PathLike], out: str | os.PathLike,
                 title: str = "GAN training", *, keep: str) -> Path:
    """Losses and metrics over updates (one panel per column of `metrics.tsv` that has values,
    one line per run, the kept update marked: the selection metric's best, or the last)."""
    runs = {run: read_metrics(path) for run, path in metrics.items()}
    panels = [c for c in GAN_PANELS
              if any(c in m and np.isfinite(m[c]).any() for m in runs.values())]
    if not panels:
        panels = ["weighted_lm_ppl"]
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows + 0.6), squeeze=False)
    for ax, column in zip(axes.flat, panels):
        for i, (run, m) in enumerate(runs.items()):
            if column not in m or not m["update"].size:
                continue
            # Columns are logged at different updates (D and G steps alternate): draw each
            # column's finite points joined, not broken by the other updates' blanks.
            y = m[column]
            finite = np.isfinite(y)
            ax.plot(m["update"][finite], y[finite], "o-" if finite.sum() < 30 else "-",
                    markersize=3, linewidth=1.2, color=f"C{i % 10}", label=run)
            score = m.get("weighted_lm_ppl")
            if score is not None and np.isfinite(score).any():
                kept = (len(score) - 1 if keep == "last"
                        else int(np.nanargmin(np.where(np.isfinite(score), score, np.nan))))
                if np.isfinite(y[kept]):
                    ax.plot(m["update"][kept], y[kept], "*", markersize=10, color=f"C{i % 10}")
        if column == "weighted_lm_ppl":
            finite = [v for m in runs.values() for v in m.get(column, []) if np.isfinite(v)]
            if finite and min(finite) > 0 and max(finite) / min(finite) > 100:
                ax.set_yscale("log")
        ax.set_title(GAN_TITLES.get(column, column), fontsize=9)
        ax.set_xlabel("update")
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), frameon=False,
                   fontsize=8)
    star = "the last update" if keep == "last" else "best update by the selection metric"
    fig.suptitle(f"{title} (star: {star})", fontsize=10)
    fig.tight_layout(rect=(0, 0.1 if handles else 0, 1, 1))
    return _save(fig, out, layout=False)


def is_rate(text: str) -> bool:
    """A finite number (not empty, `nan` or `failed`)."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


# The audio-blind baselines (w2vu.eval.score.constant_sentence_baseline), one per metric: a
# recognizer that does not get below its line has not shown that it reads the audio.
AUDIO_BLIND = {"per": "baseline_constant_sentence", "wer": "baseline_constant_words"}


def error_rates(scores: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Error rate (%) per stage, one bar per split, one panel per metric (PER, WER...); baselines
    hatched, and the audio-blind baseline's rate on the last split drawn across its panel."""
    rows = read_table(scores, required=SCORE_COLUMNS)
    rows = [r for r in rows if is_rate(r["rate"])]  # no bar for a failed stage (rate `failed`)
    if not rows:
        raise W2vuError(f"{scores}: no scores; run the scoring steps first")
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    widths = [len({r["stage"] for r in rows if r["metric"] == m}) + 1 for m in metrics]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(5.0, 0.9 * sum(widths)), 4.5),
                             squeeze=False, gridspec_kw={"width_ratios": widths})
    for ax, metric in zip(axes.flat, metrics):
        mine = [r for r in rows if r["metric"] == metric]
        stages = list(dict.fromkeys(r["stage"] for r in mine))
        splits = list(dict.fromkeys(r["split"] for r in mine))
        width = 0.8 / len(splits)
        x = np.arange(len(stages))
        for j, split in enumerate(splits):
            rate = {r["stage"]: 100 * float(r["rate"]) for r in mine if r["split"] == split}
            heights = [rate.get(s, math.nan) for s in stages]
            bars = ax.bar(x + (j - (len(splits) - 1) / 2) * width, heights, width,
                          color=f"C{j}", label=split,
                          hatch=["//" if s.startswith("baseline_") else "" for s in stages])
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
        blind = [r for r in mine if r["stage"] == AUDIO_BLIND.get(metric)]
        if blind:
            ax.axhline(100 * float(blind[-1]["rate"]), color="0.3", linestyle="--", linewidth=1,
                       label=f"audio-blind ({blind[-1]['split']})")
        ax.set_xticks(x, stages, fontsize=8, rotation=20)
        ax.set_ylabel(f"{metric.upper()} (%)")
        ax.set_title(f"{metric.upper()} per stage")
        ax.legend(frameon=False, fontsize=8, title="split", title_fontsize=8)
    return _save(fig, out)
