"""HMM self-training (reference §4.1): monophone GMM-HMMs trained on the GAN's pseudo-labels.

Why: the GAN's transcripts are noisy but their errors are not consistent across utterances; a
GMM-HMM fitted to them with Viterbi training, then decoded with the phone LM, averages the noise
out and lands at a clearly lower phone error rate (the paper's Tatar PER 25.7 -> 13.7 includes
the triphone stages). kaldi-hmm-gmm has no decision-tree building, so only the reference's
**mono** stage is reproduced; tri1/tri2b/tri3b are out.

What follows the reference (Kaldi `train_mono.sh` as `train_subset_lgbeam.sh` calls it):
* 1-state phone HMMs (20 ms frames), 3-state silence, optional silence between words with
  probability 0.5 (`hmm_graph`);
* features: per-utterance CMVN (utt2spk is the identity there; Kaldi's apply-cmvn default is
  mean normalisation only, `norm_vars=False`) then `add-deltas` (order 2, window 2);
* flat start from the global mean and variance, equal alignment, then 40 passes of Viterbi
  training with realignment at passes 1-10, 12, ..., 38, silence boosted 1.25x when aligning,
  beams 40 (first alignment), 60, retry 120, mixing up linearly to 1000 Gaussians over 30 passes
  with power 0.25, acoustic scale 0.1 / self-loop scale 0.1 / transition scale 1.0.

Deviation: statistics are accumulated in numpy per pdf (component posteriors from the GMM's own
log-likelihoods) and handed to Kaldi's MLE update, instead of a Python call per frame; the
update, mixing up, alignment and decoding are Kaldi's. Utterances with no frames or an empty
pseudo-label line are left out of training (an empty line would be all silence).

Model file (`train_hmm`'s `out_model`): a pickle written by `train_hmm`, holding the Kaldi
objects (AmDiagGmm, TransitionModel, ContextDependency, their own pickle support) and plain
Python values. `load_hmm` unpickles it with an allow-list (the kaldi-hmm-gmm classes and numpy
arrays only), so no other code can run on load; still, only load model files written by w2vu.
"""

from __future__ import annotations

import io
import logging
import math
import os
import pickle
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.io.dictionary import read_fairseq_dict
from w2vu.io.features import Features, open_features
from w2vu.io.lines import read_text_lines
from w2vu.kaldi_stack import kaldi_hmm_gmm as khg
from w2vu.kaldi_stack import kaldifst
from w2vu.selftrain.hmm_graph import (
    SIL,
    UNK_WORDS,
    Lang,
    build_hclg,
    decoding_lang,
    dictionary_phones,
    hmm_topology,
    lexicon_fst,
    make_lang,
)

log = logging.getLogger(__name__)

MODEL_FORMAT = "w2vu-hmm-mono-1"
REFERENCE_REALIGN = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 23, 26, 29, 32, 35, 38)
DELTA_WINDOW = 2


@dataclass(frozen=True)
class HmmConfig:
    """Training settings; the defaults are the reference's train_mono.sh ones."""

    num_iters: int = 40
    total_gaussians: int = 1000
    max_iter_inc: int = 30  # mix up during the first passes only
    realign_iters: tuple[int, ...] = REFERENCE_REALIGN
    boost_silence: float = 1.25
    initial_beam: float = 40.0
    regular_beam: float = 60.0
    retry_beam: float = 120.0
    power: float = 0.25
    sil_prob: float = 0.5
    delta_order: int = 2  # add-deltas order; 0 keeps the input features as they are
    norm_vars: bool = False  # apply-cmvn's default: per-utterance mean normalisation only
    acoustic_scale: float = 0.1
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1
    perturb_factor: float = 0.01
    min_count: float = 20.0  # minimum count per Gaussian when mixing up
    max_utterances: int | None = None  # the reference's mono subset (2000); None: all


@dataclass(frozen=True)
class DecodeConfig:
    """decode.sh defaults: beam 13, lattice beam 6, max-active 7000."""

    beam: float = 13.0
    lattice_beam: float = 6.0
    max_active: int = 7000
    self_loop_scale: float = 0.1  # mkgraph.sh's


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


@dataclass
class HmmModel:
    """A trained monophone system plus what is needed to use it on new features."""

    am: khg.AmDiagGmm
    trans_model: khg.TransitionModel
    tree: khg.ContextDependency
    phones: list[str]  # non-silence phones; phone id = index + 2
    input_dim: int
    delta_order: int
    norm_vars: bool
    sil_prob: float

    @property
    def lang(self) -> Lang:
        return make_lang(self.phones)

    def features(self, frames: np.ndarray) -> np.ndarray:
        """The model's view of one utterance's input frames."""
        if frames.shape[1] != self.input_dim:
            raise W2vuError(f"features have {frames.shape[1]} dims, the HMM was trained on "
                            f"{self.input_dim}; decode the features it was trained on")
        return prepare_features(frames, self.delta_order, self.norm_vars)


# ---------------------------------------------------------------------------------- features

def _delta_scales(order: int, window: int = DELTA_WINDOW) -> list[np.ndarray]:
    """Kaldi's DeltaFeatures filters: order k is the order-1 filter convolved k times."""
    first = np.arange(-window, window + 1, dtype=np.float64)
    first /= 2.0 * sum(n * n for n in range(1, window + 1))
    scales = [np.ones(1)]
    for _ in range(order):
        scales.append(np.convolve(scales[-1], first))
    return scales


def add_deltas(frames: np.ndarray, order: int = 2, window: int = DELTA_WINDOW) -> np.ndarray:
    """Kaldi add-deltas: [x, Δx, ΔΔx] with edge frames repeated (same filters as Kaldi)."""
    if order == 0:
        return frames
    frames = np.asarray(frames, dtype=np.float32)
    out = [frames]
    length = len(frames)
    for scale in _delta_scales(order, window)[1:]:
        half = len(scale) // 2
        padded = np.pad(frames, ((half, half), (0, 0)), mode="edge") if length else frames
        acc = np.zeros_like(frames, dtype=np.float64)
        for j, s in enumerate(scale):
            if s != 0.0:
                acc += s * padded[j: j + length]
        out.append(acc.astype(np.float32))
    return np.concatenate(out, axis=1)


def prepare_features(frames: np.ndarray, delta_order: int = 2, norm_vars: bool = False
                     ) -> np.ndarray:
    """Per-utterance CMVN (each utterance is its own speaker, as in the reference), then deltas."""
    x = np.asarray(frames, dtype=np.float64)
    if len(x):
        x = x - x.mean(axis=0)
        if norm_vars:
            x = x / np.maximum(x.std(axis=0), 1e-5)
    return add_deltas(x.astype(np.float32), delta_order)


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


# ---------------------------------------------------------------------------------- training

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
            min_gaussian_occupancy: float, mixup: int, config: HmmConfig) -> None:
    """gmm-est: transition and GMM MLE update, then mixing up to `mixup` Gaussians."""
    trans_model.mle_update(stats.trans, khg.MleTransitionUpdateConfig())
    opts = khg.MleDiagGmmOptions()
    opts.min_gaussian_occupancy = min_gaussian_occupancy
    flags = khg.str_to_gmm_flags("mvw")
    khg.mle_am_diag_gmm_update(config=opts, amdiag_gmm_acc=stats.kaldi_accs(am), flags=flags,
                               am_gmm=am)
    if mixup > am.num_gauss:
        am.split_by_count(state_occs=stats.pdf_occupancy(), target_components=mixup,
                          perturb_factor=config.perturb_factor, power=config.power,
                          min_count=config.min_count)


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


def _boosted(am: khg.AmDiagGmm, trans_model: khg.TransitionModel, sil_phone: int,
             boost: float) -> khg.AmDiagGmm:
    """gmm-boost-silence: a copy with the silence pdfs' weights scaled by `boost`."""
    if boost == 1.0:
        return am
    out = khg.AmDiagGmm()
    out.copy_from_am_diag_gmm(am)
    for pdf in khg.get_pdfs_for_phones(trans_model, [sil_phone])[1]:
        gmm = out.get_pdf(pdf)
        gmm.set_weights(np.asarray(gmm.weights, dtype=np.float32) * boost)
        gmm.compute_gconsts()
    return out


def _align(am: khg.AmDiagGmm, trans_model: khg.TransitionModel, graph: kaldifst.StdVectorFst,
           feats: np.ndarray, beam: float, retry_beam: float, config: HmmConfig,
           name: str) -> np.ndarray | None:
    """gmm-align-compiled for one utterance: transition-ids per frame, or None on failure."""
    fst = graph.copy()
    khg.add_transition_probs(trans_model=trans_model, transition_scale=config.transition_scale,
                             self_loop_scale=config.self_loop_scale, fst=fst)
    decodable = khg.DecodableAmDiagGmmScaled(am=am, tm=trans_model, feats=feats,
                                             scale=config.acoustic_scale)
    result = khg.align_utterance_wrapper(
        config=khg.AlignConfig(beam=beam, retry_beam=retry_beam, careful=False), utt=name,
        acoustic_scale=config.acoustic_scale, fst=fst, decodable=decodable, num_done=0,
        num_error=0, num_retried=0, tot_like=0.0, frame_count=0)
    num_done, alignment = result[0], result[5]
    if num_done != 1 or len(alignment) != len(feats):
        return None
    return np.asarray(alignment, dtype=np.int64)


def _equal_align(graph: kaldifst.StdVectorFst, frames: int, seed: int) -> np.ndarray | None:
    """align-equal-compiled: a random path of the graph spread evenly over the frames."""
    ok, linear = kaldifst.equal_align(ifst=graph, length=frames, rand_seed=seed, num_retries=10)
    if not ok:
        return None
    ok, tids, _, _ = kaldifst.get_linear_symbol_sequence(linear)
    return np.asarray(tids, dtype=np.int64) if ok and len(tids) == frames else None


def _training_graphs(lang: Lang, trans_model: khg.TransitionModel,
                     tree: khg.ContextDependency, labels: list[list[str]], sil_prob: float
                     ) -> list[kaldifst.StdVectorFst]:
    """compile-train-graphs (transition probabilities left out: they are added per alignment)."""
    word_id = {w: i for i, w in enumerate(lang.word_table)}
    compiler = khg.TrainingGraphCompiler(
        trans_model=trans_model, ctx_dep=tree, lex_fst=lexicon_fst(lang, sil_prob),
        disambig_syms=lang.disambig_phone_ids,
        opts=khg.TrainingGraphCompilerOptions(transition_scale=0.0, self_loop_scale=0.0))
    return [compiler.compile_graph_from_text([word_id[w] for w in line]) for line in labels]


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
              config: HmmConfig = HmmConfig(), seed: int = 0) -> TrainReport:
    """Viterbi-train a monophone GMM-HMM on pseudo-labels (train_mono.sh) and write the model.

    Features are streamed from the memory map every pass (per-utterance CMVN and deltas are
    recomputed, which is cheap next to alignment); only alignments and training graphs stay in
    memory. Logs the log-likelihood per frame of every pass.
    """
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
    graphs = _training_graphs(lang, trans_model, tree, [labels[i] for i in utts],
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
    edge_graphs = _training_graphs(lang, trans_model, tree,
                                   [[SIL, *labels[i], SIL] for i in utts], 0.0)
    for k, feats in _iter_features(features, utts, config):
        alignments[k] = _equal_align(edge_graphs[k], len(feats), seed + utts[k])
    del edge_graphs
    failed = sum(a is None for a in alignments)
    stats = _accumulate(am, trans_model, features, utts, alignments, tid2pdf, config)
    num_gauss = am.num_gauss
    _update(am, trans_model, stats, 3.0, num_gauss, config)
    _log_pass(report, 0, stats, failed, time.perf_counter() - start)
    increment = max((config.total_gaussians - num_gauss) // max(config.max_iter_inc, 1), 0)
    beam = config.initial_beam
    for it in range(1, config.num_iters):
        start = time.perf_counter()
        if it in config.realign_iters:
            aligner = _boosted(am, trans_model, lang.sil_phone_id, config.boost_silence)
            for k, feats in _iter_features(features, utts, config):
                alignments[k] = _align(aligner, trans_model, graphs[k], feats, beam,
                                       config.retry_beam, config, f"utt{utts[k]:010d}")
            failed = sum(a is None for a in alignments)
            beam = config.regular_beam
        stats = _accumulate(am, trans_model, features, utts, alignments, tid2pdf, config)
        _update(am, trans_model, stats, 10.0, num_gauss, config)
        if it <= config.max_iter_inc:
            num_gauss += increment
        _log_pass(report, it, stats, failed, time.perf_counter() - start)
    report.num_gaussians = am.num_gauss
    model = HmmModel(am, trans_model, tree, phones, features.dim, config.delta_order,
                     config.norm_vars, config.sil_prob)
    save_hmm(model, out_model, {"config": asdict(config), "seed": seed, "report": asdict(report)})
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


# ---------------------------------------------------------------------------------- model I/O

class _ModelUnpickler(pickle.Unpickler):
    """Only kaldi-hmm-gmm classes and numpy arrays may be created: no arbitrary code on load."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy.core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str) -> object:
        if module == "_kaldi_hmm_gmm" or (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in an HMM model file")


def save_hmm(model: HmmModel, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Write the model atomically (see the module docstring for the format)."""
    payload = {"format": MODEL_FORMAT, "am": model.am, "trans_model": model.trans_model,
               "tree": model.tree, "phones": list(model.phones), "input_dim": model.input_dim,
               "delta_order": model.delta_order, "norm_vars": model.norm_vars,
               "sil_prob": model.sil_prob, **(extra or {})}
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))


def load_hmm(path: str | os.PathLike) -> HmmModel:
    """Read a model written by `train_hmm` (allow-listed unpickling)."""
    path = Path(path)
    try:
        payload = _ModelUnpickler(io.BytesIO(path.read_bytes())).load()
    except OSError as e:
        raise W2vuError(f"HMM model {path}: {e}; run the HMM training first") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise W2vuError(f"{path}: not an HMM model written by w2vu ({e}); retrain it") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise W2vuError(f"{path}: not a {MODEL_FORMAT} model file; retrain it with this version")
    return HmmModel(payload["am"], payload["trans_model"], payload["tree"],
                    list(payload["phones"]), int(payload["input_dim"]),
                    int(payload["delta_order"]), bool(payload["norm_vars"]),
                    float(payload["sil_prob"]))


# ---------------------------------------------------------------------------------- alignment

def align_hmm(model: HmmModel, features_prefix: str | os.PathLike,
              labels: Sequence[Sequence[str]], beam: float = 60.0, retry_beam: float = 120.0
              ) -> list[list[str] | None]:
    """Viterbi forced alignment of labels: the phone (`<SIL>` for silence) of every frame, or
    None where the alignment failed; for checking models and for frame-level targets."""
    features = open_features(features_prefix)
    if len(labels) != len(features):
        raise W2vuError(f"{len(labels)} label lines for {len(features)} utterances in "
                        f"{features_prefix}; pass line-aligned labels")
    lang = model.lang
    config = HmmConfig(sil_prob=model.sil_prob)
    graphs = _training_graphs(lang, model.trans_model, model.tree, [list(x) for x in labels],
                              model.sil_prob)
    out: list[list[str] | None] = []
    for i, graph in enumerate(graphs):
        feats = model.features(features[i])
        if not len(feats):
            out.append([])
            continue
        tids = _align(model.am, model.trans_model, graph, feats, beam, retry_beam, config,
                      f"utt{i:010d}")
        out.append(None if tids is None else
                   [lang.phones[model.trans_model.transition_id_to_phone(int(t)) - 1]
                    for t in tids])
    return out


# ---------------------------------------------------------------------------------- decoding

def pdf_loglikes(model: HmmModel, feats: np.ndarray) -> np.ndarray:
    """[T, num_pdfs] GMM log-likelihoods, computed once per utterance for all LM weights."""
    out = np.empty((len(feats), model.am.num_pdfs), dtype=np.float32)
    for pdf in range(model.am.num_pdfs):
        ll = np.asarray(model.am.get_pdf(pdf).log_likelihoods_matrix(feats), dtype=np.float64)
        top = ll.max(axis=1)
        out[:, pdf] = top + np.log(np.exp(ll - top[:, None]).sum(axis=1))
    return out


def lm_weight_name(weight: float) -> str:
    """File stem for one LM weight's transcripts: `lmwt7`, `lmwt7.5`."""
    return f"lmwt{weight:g}"


class HmmDecoder:
    """An HMM with its HCLG built from the phone LM, once: the build takes tens of seconds for a
    phone 6-gram, so whoever decodes several feature sets (`w2vu transcribe`, batch by batch)
    keeps one of these."""

    def __init__(self, model: HmmModel | str | os.PathLike, phone_lm_arpa: str | os.PathLike,
                 config: DecodeConfig = DecodeConfig(),
                 graph: str | os.PathLike | None = None) -> None:
        """`graph`: an HCLG that `save_graph` wrote for this model, LM and config, read instead
        of built."""
        self.model = load_hmm(model) if isinstance(model, (str, os.PathLike)) else model
        self.lang = decoding_lang(self.model.phones, phone_lm_arpa)
        start = time.perf_counter()
        if graph is not None:
            self.graph = kaldifst.StdVectorFst.read(str(graph))
            if self.graph is None or self.graph.start < 0:
                raise W2vuError(f"{graph}: not a readable HCLG; reassemble the model")
        else:
            self.graph = build_hclg(self.lang, phone_lm_arpa, self.model.trans_model,
                                    self.model.tree, self.model.sil_prob, config.self_loop_scale)
        log.info("HCLG: %d states, %s in %.1f s", self.graph.num_states,
                 "read" if graph is not None else "built", time.perf_counter() - start)
        self.decoder = khg.LatticeFasterDecoder(self.graph, khg.LatticeFasterDecoderConfig(
            beam=config.beam, max_active=config.max_active, lattice_beam=config.lattice_beam))

    def save_graph(self, path: str | os.PathLike) -> None:
        """Write the HCLG (OpenFst binary), so that a model folder need not build it again."""
        with atomic_path(path) as tmp:
            self.graph.write(str(tmp))

    def decode(self, features_prefix: str | os.PathLike, lm_weights: Sequence[float],
               out_dir: str | os.PathLike) -> dict[float, Path]:
        """Decode every utterance once per LM weight into `{out_dir}/lmwt{W}.txt`."""
        if not lm_weights or any(w <= 0 for w in lm_weights):
            raise W2vuError(f"LM weights must be positive numbers, got {list(lm_weights)}")
        model, decoder = self.model, self.decoder
        start = time.perf_counter()
        features = open_features(features_prefix)
        tid2pdf = np.asarray(model.trans_model.transition_id_to_pdf_array(), dtype=np.int64)[1:]
        skip = {SIL, *UNK_WORDS}
        words = self.lang.word_table
        hyps: dict[float, list[str]] = {w: [] for w in lm_weights}
        failed = 0
        for i in range(len(features)):
            feats = model.features(features[i])
            if not len(feats):
                for w in lm_weights:
                    hyps[w].append("")
                continue
            by_tid = pdf_loglikes(model, feats)[:, tid2pdf]
            for w in lm_weights:
                decodable = khg.DecodableCtc(np.ascontiguousarray(by_tid / w, dtype=np.float32))
                ok, _, word_ids, _ = khg.decode_utterance_lattice_faster(
                    decoder=decoder, decodable=decodable, trans_model=model.trans_model,
                    utt=f"utt{i:010d}", allow_partial=True)
                failed += not ok
                hyps[w].append(" ".join(words[j] for j in word_ids if words[j] not in skip))
        if failed:
            log.warning("%d utterance decodes found no path", failed)
        out: dict[float, Path] = {}
        for w in lm_weights:
            path = Path(out_dir) / f"{lm_weight_name(w)}.txt"
            with atomic_path(path) as tmp:
                tmp.write_text("".join(h + "\n" for h in hyps[w]), encoding="utf-8")
            out[w] = path
        log.info("decoded %d utterances at %d LM weights in %.1f s", len(features),
                 len(lm_weights), time.perf_counter() - start)
        return out


def decode_hmm(model: HmmModel | str | os.PathLike, features_prefix: str | os.PathLike,
               phone_lm_arpa: str | os.PathLike, lm_weights: Sequence[float],
               out_dir: str | os.PathLike, config: DecodeConfig = DecodeConfig()
               ) -> dict[float, Path]:
    """Decode every utterance with HCLG built from the phone LM, once per LM weight.

    The LM weight is the inverse acoustic scale, as in Kaldi's score.sh (LMWT), so the graph is
    built once and only the acoustic scale changes. Writes `{out_dir}/lmwt{W}.txt` (one line per
    utterance, phones without `<SIL>`, empty when the decoder found no path) and returns the
    paths by weight.
    """
    if not lm_weights or any(w <= 0 for w in lm_weights):
        raise W2vuError(f"LM weights must be positive numbers, got {list(lm_weights)}")
    return HmmDecoder(model, phone_lm_arpa, config).decode(features_prefix, lm_weights, out_dir)
