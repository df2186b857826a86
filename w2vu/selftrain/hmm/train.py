"""HMM self-training (reference §4.1): monophone GMM-HMMs trained on the GAN's pseudo-labels.

Why: the GAN's transcripts are noisy but their errors are not consistent across utterances; a
GMM-HMM fitted to them with Viterbi training, then decoded with the phone LM, averages the noise
out and lands at a clearly lower phone error rate (the paper's Tatar PER 25.7 -> 13.7 includes
the triphone stages). kaldi-hmm-gmm has no decision-tree building, so only the reference's
**mono** stage is reproduced; tri1/tri2b/tri3b are out.

What follows the reference (Kaldi `train_mono.sh` as `train_subset_lgbeam.sh` calls it):
* 1-state phone HMMs (20 ms frames), 3-state silence, optional silence between words with
  probability 0.5 (`graph.py`);
* features: per-utterance CMVN (utt2spk is the identity there; Kaldi's apply-cmvn default is
  mean normalisation only, `norm_vars=False`) then `add-deltas` (order 2, window 2);
* flat start from the global mean and variance, equal alignment, then 40 passes of Viterbi
  training with realignment at passes 1-10, 12, ..., 38, silence boosted 1.25x when aligning,
  beams 40 (first alignment), 60, retry 120, mixing up linearly to 1000 Gaussians over 30 passes
  with power 0.25, acoustic scale 0.1 / self-loop scale 0.1 / transition scale 1.0.

Deviation: statistics are accumulated in numpy per pdf (component posteriors from the GMM's own
log-likelihoods) and handed to Kaldi's MLE update, instead of a Python call per frame; the
update, alignment and decoding are Kaldi's, and so are mixing up's targets, but its random step
comes from a generator seeded with `seed` (`mixup.py`: kaldi-hmm-gmm's is seeded by the OS, so
its models were not reproducible). Utterances with no frames or an empty
pseudo-label line are left out of training (an empty line would be all silence).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.dictionary import SIL, read_fairseq_dict
from w2vu.io.features import Features, open_features
from w2vu.io.lines import read_text_lines
from w2vu.kaldi_stack import kaldi_hmm_gmm as khg
from w2vu.selftrain.hmm.align import align_utterance, boosted, equal_align, training_graphs
from w2vu.selftrain.hmm.graph import (
    Lang,
    dictionary_phones,
    hmm_topology,
    make_lang,
)
from w2vu.selftrain.hmm.mixup import mix_up
from w2vu.selftrain.hmm.model import HmmConfig, HmmModel, prepare_features, save_hmm

log = logging.getLogger(__name__)


@dataclass
class TrainReport:
    """What training did: counts add up (`utterances = used + dropped`), likelihood per pass."""

    utterances: int
    used: int
    dropped_empty_labels: int
    dropped_no_frames: int
    frames: int
    feature_dim: int
    num_pdfs: int
    num_gaussians: int
    loglike_per_frame: list[float] = field(default_factory=list)  # per pass (0 = equal-align)
    failed_alignments: list[int] = field(default_factory=list)  # per pass
    seconds_per_iter: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------------- labels

def read_label_lines(path: str | os.PathLike, phones: Sequence[str]) -> list[list[str]]:
    """One phone list per line (blank lines kept as []); a phone outside the set names the line.

    `<SIL>` is accepted (the lexicon has it as a word); the reference's labels have none.
    """
    text = read_text_lines(path, "pseudo-labels",
                           "pass the GAN's transcript file (one line of phones per utterance)")
    known = set(phones) | {SIL}
    lines = []
    for number, line in enumerate(text, start=1):
        tokens = line.split()
        bad = [t for t in tokens if t not in known]
        if bad:
            raise W2vuError(f"{path}:{number}: phones {sorted(set(bad))} are not in the phone "
                            "dictionary; make the labels with the same dict.phn.txt")
        lines.append(tokens)
    return lines


def _check_aligned(labels: list[list[str]], features: Features, labels_path: Path) -> None:
    if len(labels) != len(features):
        raise W2vuError(f"{labels_path} has {len(labels)} lines but {features.prefix}.lengths "
                        f"lists {len(features)} utterances; the pseudo-labels must be "
                        "line-aligned with the features (regenerate them from these features)")


def _subset(count: int, limit: int | None) -> np.ndarray:
    """Evenly spaced utterances (deterministic), like utils/subset_data_dir.sh's --speakers-free
    selection in spirit: the whole set when `limit` is None or not smaller."""
    if limit is None or limit >= count:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))


class _Stats:
    """Sufficient statistics per pdf and Gaussian, accumulated in float64 by numpy."""

    def __init__(self, am: khg.AmDiagGmm, trans_model: khg.TransitionModel, dim: int) -> None:
        self.occ = [np.zeros(am.num_gauss_in_pdf(p)) for p in range(am.num_pdfs)]
        self.x1 = [np.zeros((am.num_gauss_in_pdf(p), dim)) for p in range(am.num_pdfs)]
        self.x2 = [np.zeros((am.num_gauss_in_pdf(p), dim)) for p in range(am.num_pdfs)]
        self.trans = trans_model.init_stats()
        self.loglike = 0.0
        self.frames = 0

    def add(self, am: khg.AmDiagGmm, feats: np.ndarray, pdfs: np.ndarray,
            tids: np.ndarray) -> None:
        """Frames `feats` [T, D] aligned to `pdfs` (and transition-ids `tids`)."""
        self.trans += np.bincount(tids, minlength=len(self.trans))
        order = np.argsort(pdfs, kind="stable")
        bounds = np.flatnonzero(np.diff(pdfs[order])) + 1
        for group in np.split(order, bounds):
            if not len(group):
                continue
            pdf = int(pdfs[group[0]])
            x = np.ascontiguousarray(feats[group])
            loglikes = np.asarray(am.get_pdf(pdf).log_likelihoods_matrix(x), dtype=np.float64)
            top = loglikes.max(axis=1, keepdims=True)
            post = np.exp(loglikes - top)
            total = post.sum(axis=1, keepdims=True)
            post /= total
            self.loglike += float((np.log(total) + top).sum())
            x64 = x.astype(np.float64)
            self.occ[pdf] += post.sum(axis=0)
            self.x1[pdf] += post.T @ x64
            self.x2[pdf] += post.T @ (x64 * x64)
        self.frames += len(pdfs)

    def kaldi_accs(self, am: khg.AmDiagGmm) -> khg.AccumAmDiagGmm:
        """The same statistics in Kaldi's accumulator: two weighted points per Gaussian,
        mean ± std, reproduce its count, first and second moments exactly."""
        accs = khg.AccumAmDiagGmm()
        accs.init(model=am, flags=khg.GmmUpdateFlags.kGmmAll)
        for pdf, occ in enumerate(self.occ):
            for g in np.flatnonzero(occ > 0):
                mean = self.x1[pdf][g] / occ[g]
                std = np.sqrt(np.maximum(self.x2[pdf][g] / occ[g] - mean * mean, 0.0))
                for point in (mean + std, mean - std):
                    accs.accumulate_for_gaussian(am=am, data=point.astype(np.float32),
                                                 gmm_index=pdf, gauss_index=int(g),
                                                 weight=float(occ[g] / 2))
        return accs

    def pdf_occupancy(self) -> np.ndarray:
        return np.array([o.sum() for o in self.occ], dtype=np.float32)


def _update(am: khg.AmDiagGmm, trans_model: khg.TransitionModel, stats: _Stats,
            min_gaussian_occupancy: float, mixup: int, config: HmmConfig,
            rng: np.random.Generator) -> None:
    """gmm-est: transition and GMM MLE update, then mixing up to `mixup` Gaussians."""
    trans_model.mle_update(stats.trans, khg.MleTransitionUpdateConfig())
    opts = khg.MleDiagGmmOptions()
    opts.min_gaussian_occupancy = min_gaussian_occupancy
    flags = khg.str_to_gmm_flags("mvw")
    khg.mle_am_diag_gmm_update(config=opts, amdiag_gmm_acc=stats.kaldi_accs(am), flags=flags,
                               am_gmm=am)
    if mixup > am.num_gauss:
        mix_up(am, stats.pdf_occupancy(), mixup, config.perturb_factor, config.power,
               config.min_count, rng)


def _initial_model(lang: Lang, mean: np.ndarray, var: np.ndarray
                   ) -> tuple[khg.AmDiagGmm, khg.TransitionModel, khg.ContextDependency]:
    """gmm-init-mono: every pdf one Gaussian with the global mean and variance."""
    topo = hmm_topology(lang)
    tree = khg.monophone_context_dependency(
        phones=topo.phones, phone2num_pdf_classes=topo.get_phone_to_num_pdf_classes())
    gmm = khg.DiagGmm(nmix=1, dim=len(mean))
    gmm.set_weights(np.ones(1, dtype=np.float32))
    gmm.set_means(mean[None].astype(np.float32))
    gmm.set_invvars((1.0 / np.maximum(var, 1e-6))[None].astype(np.float32))
    gmm.compute_gconsts()
    am = khg.AmDiagGmm()
    for _ in range(tree.num_pdfs):
        am.add_pdf(gmm)
    return am, khg.TransitionModel(ctx_dep=tree, hmm_topo=topo), tree


def _global_stats(features: Features, utts: np.ndarray, config: HmmConfig
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and variance of the prepared features over the training utterances."""
    total = total_sq = None
    frames = 0
    for i in utts:
        x = prepare_features(features[i], config.delta_order, config.norm_vars).astype(np.float64)
        total = x.sum(0) if total is None else total + x.sum(0)
        total_sq = (x * x).sum(0) if total_sq is None else total_sq + (x * x).sum(0)
        frames += len(x)
    mean = total / frames
    return mean, np.maximum(total_sq / frames - mean * mean, 1e-6), frames


def _iter_features(features: Features, utts: Sequence[int], config: HmmConfig
                   ) -> Iterator[tuple[int, np.ndarray]]:
    for k, i in enumerate(utts):
        yield k, prepare_features(features[i], config.delta_order, config.norm_vars)


def train_hmm(features_prefix: str | os.PathLike, labels_txt: str | os.PathLike,
              dictionary: str | os.PathLike, out_model: str | os.PathLike,
              config: HmmConfig | None = None, seed: int = 0) -> TrainReport:
    """Viterbi-train a monophone GMM-HMM on pseudo-labels (train_mono.sh) and write the model.

    Features are streamed from the memory map every pass (per-utterance CMVN and deltas are
    recomputed, which is cheap next to alignment); only alignments and training graphs stay in
    memory. Logs the log-likelihood per frame of every pass.
    """
    config = config or HmmConfig()
    features = open_features(features_prefix)
    phones = dictionary_phones(read_fairseq_dict(dictionary))
    labels = read_label_lines(labels_txt, phones)
    _check_aligned(labels, features, Path(labels_txt))
    chosen = _subset(len(features), config.max_utterances)
    no_frames = [int(i) for i in chosen if features.lengths[i] == 0]
    empty = [int(i) for i in chosen if features.lengths[i] > 0 and not labels[i]]
    utts = [int(i) for i in chosen if features.lengths[i] > 0 and labels[i]]
    if not utts:
        raise W2vuError(f"{labels_txt}: no utterance has both frames and pseudo-labels; check "
                        f"that {features_prefix} and the labels belong together")
    lang = make_lang(phones)
    mean, var, frames = _global_stats(features, np.array(utts), config)
    am, trans_model, tree = _initial_model(lang, mean, var)
    graphs = training_graphs(lang, trans_model, tree, [labels[i] for i in utts],
                             config.sil_prob)
    report = TrainReport(utterances=len(features), used=len(utts),
                         dropped_empty_labels=len(empty), dropped_no_frames=len(no_frames),
                         frames=frames, feature_dim=len(mean), num_pdfs=am.num_pdfs,
                         num_gaussians=am.num_gauss)
    log.info("HMM training on %d utterances (%d frames, %d-d), %d pdfs; dropped %d with empty "
             "labels, %d without frames", len(utts), frames, len(mean), am.num_pdfs, len(empty),
             len(no_frames))
    tid2pdf = np.asarray(trans_model.transition_id_to_pdf_array(), dtype=np.int64)
    alignments: list[np.ndarray | None] = [None] * len(utts)
    start = time.perf_counter()
    # Flat start with silence at the utterance edges only: equal alignment over the graph with
    # optional silence (Kaldi) spreads random speech into the silence model, which then absorbs
    # the speech that noisy labels do not explain (2-min corpus, 35% noise: PER 0.79 vs 0.60).
    edge_graphs = training_graphs(lang, trans_model, tree,
                                  [[SIL, *labels[i], SIL] for i in utts], 0.0)
    for k, feats in _iter_features(features, utts, config):
        alignments[k] = equal_align(edge_graphs[k], len(feats), seed + utts[k])
    del edge_graphs
    failed = sum(a is None for a in alignments)
    stats = _accumulate(am, trans_model, features, utts, alignments, tid2pdf, config)
    num_gauss = am.num_gauss
    rng = np.random.default_rng(seed)  # mixing up's perturbation (mixup.py)
    _update(am, trans_model, stats, 3.0, num_gauss, config, rng)
    _log_pass(report, 0, stats, failed, time.perf_counter() - start)
    increment = max((config.gaussians - num_gauss) // max(config.max_iter_inc, 1), 0)
    beam = config.initial_beam
    for it in range(1, config.iters):
        start = time.perf_counter()
        if it in config.realign_iters:
            aligner = boosted(am, trans_model, lang.sil_phone_id, config.boost_silence)
            for k, feats in _iter_features(features, utts, config):
                alignments[k] = align_utterance(aligner, trans_model, graphs[k], feats, beam,
                                                config.retry_beam, config, f"utt{utts[k]:010d}")
            failed = sum(a is None for a in alignments)
            beam = config.regular_beam
        stats = _accumulate(am, trans_model, features, utts, alignments, tid2pdf, config)
        _update(am, trans_model, stats, 10.0, num_gauss, config, rng)
        if it <= config.max_iter_inc:
            num_gauss += increment
        _log_pass(report, it, stats, failed, time.perf_counter() - start)
    report.num_gaussians = am.num_gauss
    model = HmmModel(am, trans_model, tree, phones, features.dim, config.delta_order,
                     config.norm_vars, config.sil_prob)
    # The timings stay in the log: same inputs and seed, same model file.
    saved = {k: v for k, v in asdict(report).items() if k != "seconds_per_iter"}
    save_hmm(model, out_model, {"config": asdict(config), "seed": seed, "report": saved})
    return report


def _accumulate(am: khg.AmDiagGmm, trans_model: khg.TransitionModel, features: Features,
                utts: Sequence[int], alignments: Sequence[np.ndarray | None],
                tid2pdf: np.ndarray, config: HmmConfig) -> _Stats:
    """gmm-acc-stats-ali over the aligned utterances, in blocks of about 64k frames."""
    stats = None
    feats_block: list[np.ndarray] = []
    tids_block: list[np.ndarray] = []
    rows = 0

    def flush() -> None:
        nonlocal rows
        if feats_block:
            tids = np.concatenate(tids_block)
            stats.add(am, np.concatenate(feats_block), tid2pdf[tids], tids)
            feats_block.clear()
            tids_block.clear()
            rows = 0

    for k, feats in _iter_features(features, utts, config):
        if stats is None:
            stats = _Stats(am, trans_model, feats.shape[1])
        if alignments[k] is None:
            continue
        feats_block.append(feats)
        tids_block.append(alignments[k])
        rows += len(feats)
        if rows >= 1 << 16:
            flush()
    flush()
    return stats


def _log_pass(report: TrainReport, it: int, stats: _Stats, failed: int, seconds: float) -> None:
    per_frame = stats.loglike / stats.frames if stats.frames else math.nan
    report.loglike_per_frame.append(per_frame)
    report.failed_alignments.append(failed)
    report.seconds_per_iter.append(seconds)
    log.info("HMM pass %d: log-likelihood per frame %.3f over %d frames, %d alignments failed, "
             "%.2f s", it, per_frame, stats.frames, failed, seconds)


