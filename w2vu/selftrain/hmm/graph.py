"""The HMM stage's "lang": phone set, HMM topology, lexicon FST and the HCLG decoding graph.

Why: the reference (§4.1 step 1) runs Kaldi's `prepare_lang.sh` with the GAN's phones as words
(each phone is a one-phone word), one silence phone that is also the optional silence, lexicon
entries `SIL -> SIL` and `<UNK> -> SIL`, `--sil-prob 0.5`, no position-dependent phones, 1-state
phone HMMs (one 20 ms frame is already a phone-sized unit) and 3-state silence. kaldi-hmm-gmm ships
none of those scripts, so this module builds the same objects in memory; `mkgraph.sh` is replaced
by `build_hclg` (monophone, so the context FST is the identity).

Phone ids: 0 `<eps>`, 1 the silence phone, 2.. the dictionary's phones in dictionary order, then
the disambiguation symbols `#0..#K`. Word ids: 0 `<eps>`, the lexicon's words, then `#0`, `<s>`,
`</s>` (what kaldilm's arpa2fst needs).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.io.dictionary import SIL, SPECIALS
from w2vu.kaldi_stack import kaldi_hmm_gmm as khg
from w2vu.kaldi_stack import kaldifst, kaldilm
from w2vu.text.lexicon import Lexicon, Pron, add_lex_disambig

UNK_WORDS = ("<unk>", "<UNK>")  # LM words that the reference's lexicon maps to silence
EPS = "<eps>"


@dataclass(frozen=True)
class Lang:
    """Phone and word tables plus the lexicon (word -> its phones, then `#k` where Kaldi's
    add_lex_disambig.pl puts one)."""

    phones: tuple[str, ...]  # real phones: index + 1 is the phone id (SIL is id 1)
    words: tuple[str, ...]  # lexicon words, in word-id order starting at 1
    lexicon: dict[str, Pron] = field(hash=False)
    num_disambig: int  # #1..#K used by the lexicon (#0 is G's backoff symbol)

    @property
    def phone_table(self) -> list[str]:
        """All phone symbols by id: `<eps>`, the phones, `#0..#K`."""
        return [EPS, *self.phones, *(f"#{k}" for k in range(self.num_disambig + 1))]

    @property
    def word_table(self) -> list[str]:
        """All word symbols by id: `<eps>`, the words, `#0`, `<s>`, `</s>`."""
        return [EPS, *self.words, "#0", "<s>", "</s>"]

    @property
    def sil_phone_id(self) -> int:
        return 1

    @property
    def nonsil_phone_ids(self) -> list[int]:
        return list(range(2, len(self.phones) + 1))

    @property
    def disambig_phone_ids(self) -> list[int]:
        first = len(self.phones) + 1
        return list(range(first, first + self.num_disambig + 1))


def dictionary_phones(symbols: Sequence[str]) -> list[str]:
    """The HMM's non-silence phones: fairseq dictionary symbols without specials and `<SIL>`."""
    return [s for s in symbols if s not in SPECIALS and s != SIL]


def make_lang(phones: Sequence[str], extra_words: Sequence[str] = ()) -> Lang:
    """Lexicon of one-phone words plus `<SIL>` (and unknown-word symbols) mapped to silence:
    the reference's phone "lang", where the GAN's phones are the words."""
    entries = [(p, (p,)) for p in phones]
    return _lang(phones, entries, [w for w in extra_words if w in UNK_WORDS])


def word_lang(phones: Sequence[str], lexicon: dict[str, str], arpa: str | os.PathLike) -> Lang:
    """The lang for decoding words with a word LM (the reference's prepare_lang_word.sh, §4.1
    step 5): every LM word through its lexicon pronunciation, `<SIL>` and unknown words as
    silence. An LM word without a pronunciation, or a pronunciation with a phone the HMM does
    not have, is an error."""
    unigrams = arpa_vocabulary(arpa)
    vocab = [w for w in unigrams if w not in ("<s>", "</s>", SIL, *UNK_WORDS)]
    missing = [w for w in vocab if w not in lexicon]
    if missing:
        raise W2vuError(f"{arpa}: the word LM has words {missing[:10]} that the lexicon does not "
                        "pronounce; build the word LM and the lexicon from the same text")
    entries = [(w, tuple(lexicon[w].split())) for w in vocab]
    unknown = sorted({p for _, pron in entries for p in pron} - set(phones))
    if unknown:
        raise W2vuError(f"the lexicon's phones {unknown[:10]} are not phones of the HMM (its "
                        "dictionary); give the lexicon of the phone set the HMM was trained on")
    return _lang(phones, entries, [w for w in unigrams if w in UNK_WORDS])


def _lang(phones: Sequence[str], entries: Lexicon, silence_words: Sequence[str]) -> Lang:
    """Lang of `entries` plus `<SIL>` and `silence_words` pronounced as silence; shared
    pronunciations and prefixes get `#1, #2, ...` so that L∘G determinizes."""
    entries = [*entries, (SIL, (SIL,)), *((w, (SIL,)) for w in silence_words)]
    disambiguated, top = add_lex_disambig(entries)
    return Lang(tuple([SIL, *phones]), tuple(w for w, _ in entries), dict(disambiguated), top)


def hmm_topology(lang: Lang) -> khg.HmmTopology:
    """1-state non-silence phones (loop 0.75) and Kaldi's 3-state silence, as the reference."""
    nonsil = " ".join(map(str, lang.nonsil_phone_ids))
    text = (f"<Topology> <TopologyEntry> <ForPhones> {nonsil} </ForPhones> "
            "<State> 0 <PdfClass> 0 <Transition> 0 0.75 <Transition> 1 0.25 </State> "
            "<State> 1 </State> </TopologyEntry> "
            f"<TopologyEntry> <ForPhones> {lang.sil_phone_id} </ForPhones> "
            "<State> 0 <PdfClass> 0 <Transition> 0 0.5 <Transition> 1 0.5 </State> "
            "<State> 1 <PdfClass> 1 <Transition> 1 0.5 <Transition> 2 0.5 </State> "
            "<State> 2 <PdfClass> 2 <Transition> 2 0.75 <Transition> 3 0.25 </State> "
            "<State> 3 </State> </TopologyEntry> </Topology>")
    topo = khg.HmmTopology()
    topo.read(text)
    return topo


def lexicon_fst(lang: Lang, sil_prob: float = 0.5, g_disambig_loop: bool = False
                ) -> kaldifst.StdVectorFst:
    """L with optional silence after every word (Kaldi's make_lexicon_fst.py --sil-prob).

    `g_disambig_loop` adds the `#0:#0` self-loop that lets L compose with a G whose backoff arcs
    carry `#0` (L_disambig in Kaldi); training graphs use L without it. `sil_prob` 0 gives L
    without optional silence (silence only where the word sequence has `<SIL>`).
    """
    if sil_prob == 0.0:
        return _lexicon_fst_no_silence(lang)
    if not 0.0 < sil_prob < 1.0:
        raise ValueError(f"sil_prob must be in (0, 1), got {sil_prob}")
    phone_id = {p: i for i, p in enumerate(lang.phone_table)}
    word_id = {w: i for i, w in enumerate(lang.word_table)}
    sil_cost, no_sil_cost = -math.log(sil_prob), -math.log(1.0 - sil_prob)
    fst = kaldifst.StdVectorFst()
    start, loop, sil = fst.add_state(), fst.add_state(), fst.add_state()
    fst.start = start
    fst.set_final(state=loop, weight=0.0)
    fst.add_arc(state=start, arc=kaldifst.StdArc(0, 0, no_sil_cost, loop))
    fst.add_arc(state=start, arc=kaldifst.StdArc(0, 0, sil_cost, sil))
    fst.add_arc(state=sil, arc=kaldifst.StdArc(phone_id[SIL], 0, 0.0, loop))
    for word in lang.words:
        source, out_label = _chain(fst, lang.lexicon[word][:-1], loop, word_id[word], phone_id)
        last = phone_id[lang.lexicon[word][-1]]
        fst.add_arc(state=source, arc=kaldifst.StdArc(last, out_label, no_sil_cost, loop))
        fst.add_arc(state=source, arc=kaldifst.StdArc(last, out_label, sil_cost, sil))
    if g_disambig_loop:
        fst.add_arc(state=loop, arc=kaldifst.StdArc(phone_id["#0"], word_id["#0"], 0.0, loop))
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst


def _chain(fst: kaldifst.StdVectorFst, symbols: Sequence[str], start: int, word: int,
           phone_id: dict[str, int]) -> tuple[int, int]:
    """Arcs for all but a pronunciation's last symbol, the word on the first: returns the state
    the last arc leaves from and the output label it carries (the word when it is the first)."""
    source, out_label = start, word
    for symbol in symbols:
        target = fst.add_state()
        fst.add_arc(state=source, arc=kaldifst.StdArc(phone_id[symbol], out_label, 0.0, target))
        source, out_label = target, 0
    return source, out_label


def _lexicon_fst_no_silence(lang: Lang) -> kaldifst.StdVectorFst:
    """L as a loop of word paths (no optional silence; training transcripts are linear)."""
    phone_id = {p: i for i, p in enumerate(lang.phone_table)}
    word_id = {w: i for i, w in enumerate(lang.word_table)}
    fst = kaldifst.StdVectorFst()
    loop = fst.add_state()
    fst.start = loop
    fst.set_final(state=loop, weight=0.0)
    for word in lang.words:
        source, out_label = _chain(fst, lang.lexicon[word][:-1], loop, word_id[word], phone_id)
        fst.add_arc(state=source, arc=kaldifst.StdArc(phone_id[lang.lexicon[word][-1]],
                                                      out_label, 0.0, loop))
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst


def arpa_vocabulary(path: str | os.PathLike) -> list[str]:
    """The unigrams of an ARPA file (read up to the bigram section only)."""
    path = Path(path)
    words: list[str] = []
    section = None
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if line.startswith("\\"):
                    if section == 1:
                        break
                    section = 1 if line == "\\1-grams:" else None
                    continue
                if section == 1 and line:
                    fields = line.split()
                    if len(fields) < 2:
                        raise W2vuError(f"{path}: malformed unigram line {line!r}; rebuild the "
                                        "phone LM (an ARPA file)")
                    words.append(fields[1])
    except (OSError, UnicodeDecodeError) as e:
        raise W2vuError(f"phone LM {path}: {e}; pass an ARPA text file") from None
    if not words:
        raise W2vuError(f"{path}: no unigrams found; pass an ARPA phone LM (e.g. "
                        "lm.phones.filtered.04.arpa)")
    return words


def decoding_lang(phones: Sequence[str], arpa: str | os.PathLike) -> Lang:
    """The lang for decoding with this LM; LM words outside the phone set are an error."""
    vocab = [w for w in arpa_vocabulary(arpa) if w not in ("<s>", "</s>")]
    known = set(phones) | {SIL} | set(UNK_WORDS)
    unknown = sorted(set(vocab) - known)
    if unknown:
        raise W2vuError(f"{arpa}: the LM has words {unknown[:10]} that are not phones of the HMM "
                        "(its dictionary); build the phone LM from the same phone set")
    return make_lang(phones, [w for w in UNK_WORDS if w in vocab])


def grammar_fst(lang: Lang, arpa: str | os.PathLike) -> kaldifst.StdVectorFst:
    """G from the ARPA (kaldilm's arpa2fst with `#0` on backoff arcs), ilabel-sorted."""
    with tempfile.TemporaryDirectory(prefix="w2vu-hmm-g-") as tmp:
        words_txt = Path(tmp) / "words.txt"
        words_txt.write_text("".join(f"{w} {i}\n" for i, w in enumerate(lang.word_table)),
                             encoding="utf-8")
        out = Path(tmp) / "G.fst"
        kaldilm.arpa2fst(input_arpa=os.fspath(arpa), output_fst=os.fspath(out),
                         disambig_symbol="#0", read_symbol_table=os.fspath(words_txt),
                         max_arpa_warnings=0)
        grammar = kaldifst.StdVectorFst.read(os.fspath(out))
    kaldifst.arcsort(grammar, sort_type="ilabel")
    return grammar


def _relabel_inputs_to_eps(fst: kaldifst.StdVectorFst, labels: set[int]
                           ) -> kaldifst.StdVectorFst:
    """fstrmsymbols: input labels in `labels` become epsilon (a text round trip; kaldifst has
    no mutable arc iterator usable from Python)."""
    lines = []
    for line in fst.to_str(show_weight_one=True).splitlines():
        fields = line.split()
        if len(fields) >= 4 and int(fields[2]) in labels:
            fields[2] = "0"
        lines.append(" ".join(fields))
    return kaldifst.compile(s="\n".join(lines) + "\n", acceptor=False)


def build_hclg(lang: Lang, arpa: str | os.PathLike, trans_model: khg.TransitionModel,
               tree: khg.ContextDependency, sil_prob: float = 0.5,
               self_loop_scale: float = 0.1) -> kaldifst.StdVectorFst:
    """mkgraph.sh for a monophone model: HCLG with transition-ids in and word ids out."""
    lg = kaldifst.compose(lexicon_fst(lang, sil_prob, g_disambig_loop=True),
                          grammar_fst(lang, arpa))
    kaldifst.determinize_star(lg, use_log=True)
    kaldifst.minimize_encoded(lg)
    clg, ilabels = kaldifst.compose_context(disambig_syms=lang.disambig_phone_ids,
                                            context_width=tree.context_width,
                                            central_position=tree.central_position, ifst=lg)
    kaldifst.arcsort(clg, sort_type="ilabel")
    h, disambig_tids = khg.get_h_transducer(ilabel_info=ilabels, ctx_dep=tree,
                                            trans_model=trans_model,
                                            config=khg.HTransducerConfig(transition_scale=1.0))
    hclga = kaldifst.compose(h, clg)
    kaldifst.determinize_star(hclga, use_log=True)
    hclga = _relabel_inputs_to_eps(hclga, set(disambig_tids))
    kaldifst.rmepsilon(hclga)
    kaldifst.minimize_encoded(hclga)
    return khg.add_self_loops(self_loop_scale=self_loop_scale, disambig_syms=[], reorder=True,
                              trans_model=trans_model, ifst=hclga)
