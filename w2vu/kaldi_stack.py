"""The kaldi / OpenFst Python stack, imported in the one order that does not hang the process.

Import these modules from here (`from w2vu.kaldi_stack import pynini`), never directly. Each
wheel bundles its own OpenFst build, and on this stack (kaldi-hmm-gmm 1.1.4, kaldifst 1.7.17,
kaldi-decoder 0.2.11, kaldilm 1.15.5, pynini 2.1.7) some import orders block forever at 0% CPU
inside the later extension's import:

* pynini or kaldilm before kaldifst or kaldi_hmm_gmm hangs;
* even kaldifst, then pynini, then kaldi_hmm_gmm hangs.

kaldi_hmm_gmm first, then kaldifst, kaldi_decoder, kaldilm and pynini works (torch may come before
or after). So this module imports all five, kaldi_hmm_gmm first, even for callers that need only
pynini: a later kaldi_hmm_gmm import in the same process would otherwise hang.

kaldi-hmm-gmm needs kaldifst 1.7.x (its FST types are OpenFst 1.7's) and kaldi-decoder 0.2.x
pairs with that kaldifst. pynini links its own, newer OpenFst, so pynini FST objects cannot be
handed to kaldifst or kaldi-decoder in memory: graphs go between them through binary FST files.
"""

# isort: off
import kaldi_hmm_gmm
import kaldifst
import kaldi_decoder
import kaldilm
import pynini

# isort: on

__all__ = ["kaldi_decoder", "kaldi_hmm_gmm", "kaldifst", "kaldilm", "pynini"]
