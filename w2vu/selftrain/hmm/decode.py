"""Decoding with the monophone HMM over HCLG built from the phone LM (or, with a lexicon, a word
LM: the reference's decode_word_step), at every LM weight in one pass (Kaldi's decode.sh with
score.sh's LMWT)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.io.dictionary import SIL
from w2vu.io.features import open_features
from w2vu.io.lines import write_token_lines
from w2vu.kaldi_stack import kaldi_hmm_gmm as khg
from w2vu.kaldi_stack import kaldifst
from w2vu.logs import progress
from w2vu.selftrain.hmm.graph import (
    UNK_WORDS,
    build_hclg,
    decoding_lang,
    word_lang,
)
from w2vu.selftrain.hmm.model import HmmModel, load_hmm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeConfig:
    """decode.sh defaults: beam 13, lattice beam 6, max-active 7000."""

    beam: float = 13.0
    lattice_beam: float = 6.0
    max_active: int = 7000
    self_loop_scale: float = 0.1  # mkgraph.sh's


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
    """An HMM with its HCLG built from the LM, once: the build takes tens of seconds for a
    phone 6-gram, so whoever decodes several feature sets (`w2vu transcribe`, batch by batch)
    keeps one of these."""

    def __init__(self, model: HmmModel | str | os.PathLike, lm_arpa: str | os.PathLike,
                 config: DecodeConfig = DecodeConfig(),
                 graph: str | os.PathLike | None = None,
                 lexicon: dict[str, str] | None = None) -> None:
        """`lm_arpa` is a phone LM, or a word LM with `lexicon` (word -> phones), which makes
        the output words. `graph`: an HCLG that `save_graph` wrote for this model, LM and
        config, read instead of built."""
        self.model = load_hmm(model) if isinstance(model, (str, os.PathLike)) else model
        self.lang = (decoding_lang(self.model.phones, lm_arpa) if lexicon is None
                     else word_lang(self.model.phones, lexicon, lm_arpa))
        start = time.perf_counter()
        if graph is not None:
            self.graph = kaldifst.StdVectorFst.read(str(graph))
            if self.graph is None or self.graph.start < 0:
                raise W2vuError(f"{graph}: not a readable HCLG; reassemble the model")
        else:
            self.graph = build_hclg(self.lang, lm_arpa, self.model.trans_model,
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
        hyps: dict[float, list[list[str]]] = {w: [] for w in lm_weights}
        failed = 0
        for i in progress(range(len(features)), len(features), "HMM decode (utterances)"):
            feats = model.features(features[i])
            if not len(feats):
                for w in lm_weights:
                    hyps[w].append([])
                continue
            by_tid = pdf_loglikes(model, feats)[:, tid2pdf]
            for w in lm_weights:
                decodable = khg.DecodableCtc(np.ascontiguousarray(by_tid / w, dtype=np.float32))
                ok, _, word_ids, _ = khg.decode_utterance_lattice_faster(
                    decoder=decoder, decodable=decodable, trans_model=model.trans_model,
                    utt=f"utt{i:010d}", allow_partial=True)
                failed += not ok
                hyps[w].append([words[j] for j in word_ids if words[j] not in skip])
        if failed:
            log.warning("%d utterance decodes found no path", failed)
        out: dict[float, Path] = {}
        for w in lm_weights:
            path = Path(out_dir) / f"{lm_weight_name(w)}.txt"
            write_token_lines(path, hyps[w])
            out[w] = path
        log.info("decoded %d utterances at %d LM weights in %.1f s", len(features),
                 len(lm_weights), time.perf_counter() - start)
        return out


def decode_hmm(model: HmmModel | str | os.PathLike, features_prefix: str | os.PathLike,
               lm_arpa: str | os.PathLike, lm_weights: Sequence[float],
               out_dir: str | os.PathLike, config: DecodeConfig = DecodeConfig(),
               lexicon: dict[str, str] | None = None) -> dict[float, Path]:
    """Decode every utterance with HCLG built from the LM (a word LM with `lexicon`), once per
    LM weight.

    The LM weight is the inverse acoustic scale, as in Kaldi's score.sh (LMWT), so the graph is
    built once and only the acoustic scale changes. Writes `{out_dir}/lmwt{W}.txt` (one line per
    utterance, phones or words without `<SIL>`, empty when the decoder found no path) and returns
    the paths by weight.
    """
    if not lm_weights or any(w <= 0 for w in lm_weights):
        raise W2vuError(f"LM weights must be positive numbers, got {list(lm_weights)}")
    return HmmDecoder(model, lm_arpa, config, lexicon=lexicon).decode(features_prefix,
                                                                      lm_weights, out_dir)
