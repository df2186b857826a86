"""Decoding graphs for the GAN's output: H, L, G, LG and HLG as OpenFst binaries with symbol tables.

This follows the reference's `kaldi_initializer.py` (spec section 3.3) without a Kaldi build:
pynini does the graph algebra and kaldilm's arpa2fst makes G. The graphs are meant for
kaldi-decoder (FasterDecoder + DecodableCtc), which links another OpenFst build than pynini, so
they travel as files (see `w2vu.kaldi_stack`).

Label numbering (DecodableCtc scores input label i with log-prob column i - 1):

* `tokens.txt` (H and HLG input): `<eps>`=0, fairseq dictionary index j -> j + 1 (the 4 specials
  included), then `#0`, `#1`, ... which occur in H only; HLG has none.
* `phones.txt` (H output, L and LG input): `<eps>`=0, the non-special dictionary symbols from 1,
  then `#0`, `#1`, ...
* `words.txt` (L output, G, LG and HLG output): arpa2fst's table: `<eps>`=0, `#0`=1, `<s>`, `</s>`,
  then the LM vocabulary. For phone-to-phone decoding the "words" are the phone LM's phones.

Silence: as in the reference, L has no optional silence; `<SIL>` frames are absorbed by H when
`<SIL>` is the blank or the extra `silence` symbol, and the identity L of phone-to-phone
decoding leaves `<SIL>` out.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.io.dictionary import SIL, SPECIALS, read_fairseq_dict
from w2vu.kaldi_stack import pynini
from w2vu.text.lexicon import Lexicon, add_lex_disambig, read_lexicon

log = logging.getLogger(__name__)

EPS = "<eps>"
BACKOFF = "#0"

def make_g(arpa: str | os.PathLike) -> tuple[pynini.Fst, pynini.SymbolTable]:
    """G from an ARPA LM, with #0 on the back-off arcs, and its word table (arpa2fst's).

    kaldilm aborts the whole process (SIGABRT) on a missing or malformed ARPA file instead of
    raising, so it runs in a child process.
    """
    arpa = Path(arpa)
    if not arpa.is_file():
        raise W2vuError(f"ARPA LM {arpa} not found; build it first (stage phone_lm or word_lm) "
                        "or fix the path")
    with tempfile.TemporaryDirectory(prefix="w2vu-g-") as tmp:
        fst_path, words_path = Path(tmp, "G.fst"), Path(tmp, "words.txt")
        run = subprocess.run(
            [sys.executable, "-m", "kaldilm", f"--disambig-symbol={BACKOFF}",
             f"--write-symbol-table={words_path}", str(arpa), str(fst_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        if run.returncode != 0:
            lines = run.stderr.splitlines()
            why = "; ".join([line for line in lines if line.startswith("[E]")] or lines[-1:])
            raise W2vuError(f"ARPA LM {arpa} could not be read by arpa2fst ({why}); "
                            "regenerate it (stage phone_lm or word_lm)")
        words = pynini.SymbolTable.read_text(str(words_path))
        # read_text names the table after its (random, temporary) path, and every FST that
        # carries the table stores that name: a fixed name keeps identical runs byte-identical.
        words.set_name("words")
        return pynini.Fst.read(str(fst_path)), words


def make_l(lexicon: Lexicon, phones: pynini.SymbolTable,
           words: pynini.SymbolTable) -> pynini.Fst:
    """L (phones -> words): Kaldi's make_lexicon_fst.pl without silence, plus the #0:#0 loop.

    The loop lets G's back-off symbol through composition. Arcs are sorted by output label, as
    composition with G needs.
    """
    fst = pynini.Fst()
    loop = fst.add_state()
    fst.set_start(loop)
    fst.set_final(loop)
    for word, pron in lexicon:
        src, olabel = loop, words.find(word)
        for i, phone in enumerate(pron):
            dst = loop if i == len(pron) - 1 else fst.add_state()
            fst.add_arc(src, _arc(phones.find(phone), olabel, dst))
            src, olabel = dst, 0
    fst.add_arc(loop, _arc(phones.find(BACKOFF), words.find(BACKOFF), loop))
    return fst.arcsort("olabel")


def make_lg(lexicon_fst: pynini.Fst, grammar: pynini.Fst) -> pynini.Fst:
    """det(L∘G) in the log semiring, encoded minimisation, input-label sorted.

    As the reference (fstdeterminizestar --use-log=true | fstminimizeencoded): where
    determinisation merges paths, the log semiring adds their probabilities instead of keeping
    only the best one.
    """
    lg = pynini.compose(lexicon_fst, grammar.arcsort("ilabel"))
    return _minimize_encoded(_determinize_log(lg)).arcsort("ilabel")


def make_h(symbols: Sequence[str], tokens: pynini.SymbolTable, phones: pynini.SymbolTable,
           blank: str = "<s>", silence: str | None = None) -> pynini.Fst:
    """The reference's CTC-like H (tokens -> phones), kaldi_initializer.create_H.

    The root loops on blank (and `silence`, a second blank) with no output. Each phone u has
    root -u:u-> s1 -ε-> root and s1 -blank:ε-> s2 -ε-> root. Repeated frames of u are handled
    later, by the self-loops that `make_hlg` adds. #k:#k loops at the root carry L's
    disambiguation symbols through composition.
    """
    fst = pynini.Fst()
    root = fst.add_state()
    fst.set_start(root)
    fst.set_final(root)
    blanks = [tokens.find(s) for s in (blank, silence) if s is not None]
    for b in blanks:
        fst.add_arc(root, _arc(b, 0, root))
    for phone in symbols[len(SPECIALS):]:
        emitted, after_blank = fst.add_state(), fst.add_state()
        fst.add_arc(root, _arc(tokens.find(phone), phones.find(phone), emitted))
        fst.add_arc(emitted, _arc(0, 0, root))
        for b in blanks:
            fst.add_arc(emitted, _arc(b, 0, after_blank))
        fst.add_arc(after_blank, _arc(0, 0, root))
    for _, symbol in phones:
        if symbol.startswith("#"):
            fst.add_arc(root, _arc(tokens.find(symbol), phones.find(symbol), root))
    return fst.arcsort("olabel")


def make_hlg(h: pynini.Fst, lg: pynini.Fst, disambig_tokens: Iterable[int]) -> pynini.Fst:
    """HLG (tokens -> words): det(H∘LG) in the log semiring, minimised, without #k, with loops.

    The disambiguation tokens become ε only after determinisation (they are what makes it
    possible). The reference minimises after that; minimising first keeps the FST deterministic
    for the minimisation and skips its local ε-removal (a full ε-removal would copy the unigram
    arcs into every back-off state). Last, the repeat self-loops of `add_repeat_loops`.
    """
    hlg = _minimize_encoded(_determinize_log(pynini.compose(h, lg)))
    hlg.relabel_pairs(ipairs=[(label, 0) for label in disambig_tokens])
    return add_repeat_loops(hlg).arcsort("ilabel")


def add_repeat_loops(fst: pynini.Fst) -> pynini.Fst:
    """Give each state entered by token x an x:ε self-loop, so frames repeating x are read once.

    The reference's add-self-loop-simple: first Kaldi's MakePrecedingInputSymbolsSame (a state
    entered by several input labels gets one new state per label, linked to it by ε), so that a
    loop never accepts a token other than the one just read.
    """
    entered_by: dict[int, set[int]] = defaultdict(set)
    for state in fst.states():
        for arc in fst.arcs(state):
            entered_by[arc.nextstate].add(arc.ilabel)
    mixed = {state for state, labels in entered_by.items() if len(labels) > 1}
    split: dict[tuple[int, int], int] = {}
    for state in list(fst.states()):
        arcs = list(fst.arcs(state))
        fst.delete_arcs(state)
        for arc in arcs:
            dst = arc.nextstate
            if arc.ilabel != 0 and dst in mixed:
                if (dst, arc.ilabel) not in split:
                    split[dst, arc.ilabel] = fst.add_state()
                    fst.add_arc(split[dst, arc.ilabel], _arc(0, 0, dst))
                dst = split[dst, arc.ilabel]
            fst.add_arc(state, pynini.Arc(arc.ilabel, arc.olabel, arc.weight, dst))
    loops = [(s, label) for (_, label), s in split.items()]
    loops += [(s, next(iter(labels))) for s, labels in entered_by.items() if s not in mixed]
    for state, label in loops:
        if label != 0:
            fst.add_arc(state, _arc(label, 0, state))
    return fst


def build_graphs(dictionary: str | os.PathLike, arpa: str | os.PathLike,
                 out_dir: str | os.PathLike, lexicon: str | os.PathLike | None = None,
                 blank: str = "<s>", silence: str | None = None) -> Path:
    """Write H, L, G, LG, HLG (`.fst`) and tokens/phones/words tables into `out_dir`.

    With a lexicon (`word<TAB>phones`) HLG maps GAN tokens to words of the word LM `arpa`;
    without one, L is the identity over the dictionary's phones (minus blanks and `<SIL>`) and
    `arpa` is a phone LM: phone-to-phone decoding. `blank` is `<s>` (reference default) or
    `<SIL>`; `silence="<SIL>"` makes `<SIL>` a second blank (the reference's `*_sil` graphs).
    """
    symbols = read_fairseq_dict(dictionary)
    blanks = _check_blanks(symbols, dictionary, blank, silence)
    grammar, words = make_g(arpa)
    units = symbols[len(SPECIALS):]
    if lexicon is None:
        entries = [(u, (u,)) for u in units if u not in blanks | {SIL}]
    else:
        entries = _lexicon_entries(lexicon, units, blanks, dictionary)
    entries, top = add_lex_disambig(_in_vocabulary(entries, words, lexicon or dictionary, arpa))
    disambig = [f"#{k}" for k in range(top + 1)]
    tokens = _symbol_table("tokens", [*symbols, *disambig])
    phones = _symbol_table("phones", [*units, *disambig])
    lexicon_fst = make_l(entries, phones, words)
    lg = make_lg(lexicon_fst, grammar)
    h = make_h(symbols, tokens, phones, blank, silence)
    hlg = make_hlg(h, lg, [tokens.find(d) for d in disambig])
    out = Path(out_dir)
    for name, fst, isyms, osyms in (("H", h, tokens, phones), ("L", lexicon_fst, phones, words),
                                    ("G", grammar, words, words), ("LG", lg, phones, words),
                                    ("HLG", hlg, tokens, words)):
        _write_fst(fst, out / f"{name}.fst", isyms, osyms)
    for name, table in (("tokens", tokens), ("phones", phones), ("words", words)):
        with atomic_path(out / f"{name}.txt") as tmp:
            table.write_text(str(tmp))
    log.info("graphs in %s: HLG has %d states, %d words in L", out, hlg.num_states(),
             len({w for w, _ in entries}))
    return out


def _check_blanks(symbols: list[str], dictionary: str | os.PathLike, blank: str,
                  silence: str | None) -> set[str]:
    """The blank-like symbols of H, which must be dictionary symbols."""
    blanks = {s for s in (blank, silence) if s is not None}
    missing = sorted(blanks - set(symbols))
    if missing:
        raise W2vuError(f"{dictionary}: blank/silence symbols {missing} are not in the "
                        "dictionary; use <s> or <SIL>, or add the symbol to the dictionary")
    return blanks


def _lexicon_entries(path: str | os.PathLike, units: list[str], blanks: set[str],
                     dictionary: str | os.PathLike) -> Lexicon:
    """The lexicon's entries; every phone must be a dictionary unit that H can emit."""
    entries = [(word, tuple(pron.split())) for word, pron in read_lexicon(path).items()]
    if not entries:
        raise W2vuError(f"lexicon {path} is empty; rebuild it (stage lexicon)")
    known = set(units) - blanks
    for word, pron in entries:
        unknown = [p for p in pron if p not in known]
        if unknown:
            raise W2vuError(f"lexicon {path}: word {word!r} uses {unknown}, which are not "
                            f"phones of {dictionary} (or are its blank); use the lexicon "
                            "filtered against this dictionary (stage phones)")
    return entries


def _in_vocabulary(entries: Lexicon, words: pynini.SymbolTable, source: str | os.PathLike,
                   arpa: str | os.PathLike) -> Lexicon:
    """Entries whose word is in the LM (the reference drops the others with a warning)."""
    kept = [(w, p) for w, p in entries if words.member(w) and w not in {BACKOFF, *SPECIALS}]
    if not kept:
        raise W2vuError(f"no word of {source} is in the vocabulary of {arpa}; build the LM and "
                        "the lexicon (or dictionary) from the same text")
    if len(kept) < len(entries):
        log.warning("%d of %d entries of %s are not in %s and were left out of L",
                    len(entries) - len(kept), len(entries), source, arpa)
    return kept


def _symbol_table(name: str, symbols: Iterable[str]) -> pynini.SymbolTable:
    """`<eps>`=0, then `symbols` numbered from 1."""
    table = pynini.SymbolTable(name)
    for symbol in (EPS, *symbols):
        table.add_symbol(symbol)
    return table


def _arc(ilabel: int, olabel: int, nextstate: int) -> pynini.Arc:
    """An arc with weight One (tropical)."""
    return pynini.Arc(ilabel, olabel, pynini.Weight.one("tropical"), nextstate)


def _determinize_log(fst: pynini.Fst) -> pynini.Fst:
    """ε-removal and determinisation in the log semiring, back in the tropical one.

    OpenFst's determinize treats ε as a label, hence the rmepsilon first (Kaldi's
    fstdeterminizestar does both at once).
    """
    log_fst = pynini.arcmap(fst, map_type="to_log").rmepsilon()
    return pynini.arcmap(pynini.determinize(log_fst), map_type="to_std")


def _minimize_encoded(fst: pynini.Fst) -> pynini.Fst:
    """Minimise as an acceptor over (ilabel, olabel, weight) triples: Kaldi's fstminimizeencoded.

    Unlike OpenFst's transducer minimisation this pushes neither labels nor weights.
    """
    mapper = pynini.EncodeMapper(fst.arc_type(), encode_labels=True, encode_weights=True)
    return fst.encode(mapper).minimize().decode(mapper)


def _write_fst(fst: pynini.Fst, path: Path, isyms: pynini.SymbolTable,
               osyms: pynini.SymbolTable) -> None:
    """Write an OpenFst binary with its symbol tables, atomically."""
    fst.set_input_symbols(isyms)
    fst.set_output_symbols(osyms)
    with atomic_path(path, suffix=".fst") as tmp:
        fst.write(str(tmp))
