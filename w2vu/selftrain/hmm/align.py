"""Forced alignment of phone labels with the monophone HMM (Kaldi's compile-train-graphs,
align-equal-compiled, gmm-boost-silence, gmm-align-compiled), for training and checks."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.features import open_features
from w2vu.kaldi_stack import kaldi_hmm_gmm as khg
from w2vu.kaldi_stack import kaldifst
from w2vu.selftrain.hmm.graph import (
    Lang,
    lexicon_fst,
)
from w2vu.selftrain.hmm.model import HmmConfig, HmmModel


def boosted(am: khg.AmDiagGmm, trans_model: khg.TransitionModel, sil_phone: int,
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


def align_utterance(am: khg.AmDiagGmm, trans_model: khg.TransitionModel,
                    graph: kaldifst.StdVectorFst, feats: np.ndarray, beam: float,
                    retry_beam: float, config: HmmConfig, name: str) -> np.ndarray | None:
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


def equal_align(graph: kaldifst.StdVectorFst, frames: int, seed: int) -> np.ndarray | None:
    """align-equal-compiled: a random path of the graph spread evenly over the frames."""
    ok, linear = kaldifst.equal_align(ifst=graph, length=frames, rand_seed=seed, num_retries=10)
    if not ok:
        return None
    ok, tids, _, _ = kaldifst.get_linear_symbol_sequence(linear)
    return np.asarray(tids, dtype=np.int64) if ok and len(tids) == frames else None


def training_graphs(lang: Lang, trans_model: khg.TransitionModel,
                     tree: khg.ContextDependency, labels: list[list[str]], sil_prob: float
                     ) -> list[kaldifst.StdVectorFst]:
    """compile-train-graphs (transition probabilities left out: they are added per alignment)."""
    word_id = {w: i for i, w in enumerate(lang.word_table)}
    compiler = khg.TrainingGraphCompiler(
        trans_model=trans_model, ctx_dep=tree, lex_fst=lexicon_fst(lang, sil_prob),
        disambig_syms=lang.disambig_phone_ids,
        opts=khg.TrainingGraphCompilerOptions(transition_scale=0.0, self_loop_scale=0.0))
    return [compiler.compile_graph_from_text([word_id[w] for w in line]) for line in labels]


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
    graphs = training_graphs(lang, model.trans_model, model.tree, [list(x) for x in labels],
                             model.sil_prob)
    out: list[list[str] | None] = []
    for i, graph in enumerate(graphs):
        feats = model.features(features[i])
        if not len(feats):
            out.append([])
            continue
        tids = align_utterance(model.am, model.trans_model, graph, feats, beam, retry_beam,
                               config, f"utt{i:010d}")
        out.append(None if tids is None else
                   [lang.phones[model.trans_model.transition_id_to_phone(int(t)) - 1]
                    for t in tids])
    return out


