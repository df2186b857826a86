"""Decoding graphs: built from a hand-written ARPA, lexicon and dictionary, decoded with
kaldi-decoder on synthetic CTC emissions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from w2vu.errors import W2vuError
from w2vu.kaldi_stack import kaldi_decoder, kaldifst, pynini
from w2vu.text.graphs import build_graphs, read_fairseq_dict
from w2vu.text.lexicon import add_lex_disambig

PHONES = ["h", "ɛ", "l", "oʊ", "w", "ɜː", "d", "<SIL>"]
LEXICON = {
    "hello": "h ɛ l oʊ",
    "hell": "h ɛ l",  # a prefix of hello
    "world": "w ɜː l d",
    "whirled": "w ɜː l d",  # a homophone of world
    "word": "w ɜː d",
}
# Bigram log10 probabilities: "hello world" is much likelier than its homophone "hello whirled".
WORD_BIGRAMS = {("<s>", "hello"): -0.3, ("hello", "world"): -0.1, ("world", "</s>"): -0.1,
                ("<s>", "word"): -0.5, ("word", "</s>"): -0.1, ("hello", "whirled"): -1.5,
                ("whirled", "</s>"): -0.1, ("hell", "</s>"): -0.1}
PHONE_BIGRAMS = {pair: -0.3 for pair in [
    ("<s>", "h"), ("h", "ɛ"), ("ɛ", "l"), ("l", "l"), ("l", "oʊ"), ("oʊ", "</s>"),
    ("<s>", "w"), ("w", "ɜː"), ("ɜː", "d"), ("d", "</s>")]}


def write_arpa(path: Path, bigrams: dict[tuple[str, str], float]) -> Path:
    """A bigram ARPA: uniform unigrams with back-off weight 0.5, and the given bigrams."""
    vocab = sorted({w for pair in bigrams for w in pair} - {"<s>", "</s>"})
    uni = math.log10(1 / (len(vocab) + 1))
    lines = ["", "\\data\\", f"ngram 1={len(vocab) + 2}", f"ngram 2={len(bigrams)}", "",
             "\\1-grams:", "-99\t<s>\t-0.3", f"{uni:.4f}\t</s>"]
    lines += [f"{uni:.4f}\t{w}\t-0.3" for w in vocab]
    lines += ["", "\\2-grams:"] + [f"{p}\t{a} {b}" for (a, b), p in bigrams.items()]
    path.write_text("\n".join([*lines, "", "\\end\\", ""]), encoding="utf-8")
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    (tmp_path / "dict.phn.txt").write_text("".join(f"{p} {9 - i}\n" for i, p in
                                                   enumerate(PHONES)), encoding="utf-8")
    (tmp_path / "lexicon.lst").write_text("".join(f"{w}\t{p}\n" for w, p in LEXICON.items()),
                                          encoding="utf-8")
    write_arpa(tmp_path / "words.arpa", WORD_BIGRAMS)
    write_arpa(tmp_path / "phones.arpa", PHONE_BIGRAMS)
    return tmp_path


@pytest.fixture
def word_graph(inputs: Path) -> Path:
    return build_graphs(inputs / "dict.phn.txt", inputs / "words.arpa", inputs / "word_graph",
                        lexicon=inputs / "lexicon.lst")


def emissions(frames: str, symbols: list[str], p: float = 0.8) -> np.ndarray:
    """Log-probs (frames x dictionary): each frame puts `p` on its symbol ('_' = `<s>`)."""
    index = {s: i for i, s in enumerate(symbols)}
    probs = np.full((len(frames.split()), len(symbols)), (1 - p) / (len(symbols) - 1))
    for t, symbol in enumerate(frames.split()):
        probs[t, index["<s>" if symbol == "_" else symbol]] = p
    return np.log(probs).astype(np.float32)


def decode(graph_dir: Path, logprobs: np.ndarray) -> list[str]:
    """Best path through HLG.fst (read by kaldifst) as output symbols of words.txt."""
    hlg = kaldifst.StdVectorFst.read(str(graph_dir / "HLG.fst"))
    decoder = kaldi_decoder.FasterDecoder(hlg, kaldi_decoder.FasterDecoderOptions(beam=12))
    decoder.decode(kaldi_decoder.DecodableCtc(logprobs))
    found, best = decoder.get_best_path()
    assert found
    linear, _, olabels, _ = kaldifst.get_linear_symbol_sequence(best)
    assert linear
    words = dict(reversed(line.split()) for line in
                 (graph_dir / "words.txt").read_text(encoding="utf-8").splitlines())
    return [words[str(label)] for label in olabels]


def test_phone_to_word_decoding(inputs: Path, word_graph: Path) -> None:
    symbols = read_fairseq_dict(inputs / "dict.phn.txt")
    # Repeats and blanks inside words; "w ɜː l d" is world or whirled: the LM prefers world.
    frames = "_ h h ɛ _ l l oʊ oʊ _ _ w w ɜː l _ d _"
    assert decode(word_graph, emissions(frames, symbols)) == ["hello", "world"]
    assert decode(word_graph, emissions("h ɛ ɛ l _", symbols)) == ["hell"]
    assert decode(word_graph, emissions("w _ ɜː d d", symbols)) == ["word"]


def test_phone_to_phone_decoding(inputs: Path) -> None:
    out = build_graphs(inputs / "dict.phn.txt", inputs / "phones.arpa", inputs / "phone_graph")
    symbols = read_fairseq_dict(inputs / "dict.phn.txt")
    # "l l" merges into one l; "l _ l" is two.
    assert decode(out, emissions("h ɛ l l oʊ", symbols)) == ["h", "ɛ", "l", "oʊ"]
    assert decode(out, emissions("h _ ɛ l _ l oʊ _", symbols)) == ["h", "ɛ", "l", "l", "oʊ"]


def test_silence_as_second_blank(inputs: Path) -> None:
    out = build_graphs(inputs / "dict.phn.txt", inputs / "words.arpa", inputs / "sil_graph",
                       lexicon=inputs / "lexicon.lst", silence="<SIL>")
    symbols = read_fairseq_dict(inputs / "dict.phn.txt")
    frames = "<SIL> <SIL> h ɛ l oʊ <SIL> _ w ɜː l d <SIL>"
    assert decode(out, emissions(frames, symbols)) == ["hello", "world"]


def test_homophones_and_prefixes_get_disambiguation_symbols(word_graph: Path) -> None:
    lexicon = [(w, tuple(p.split())) for w, p in LEXICON.items()]
    disambiguated, top = add_lex_disambig(lexicon)
    assert dict(disambiguated) == {
        "hello": ("h", "ɛ", "l", "oʊ"),
        "hell": ("h", "ɛ", "l", "#1"),
        "world": ("w", "ɜː", "l", "d", "#1"),
        "whirled": ("w", "ɜː", "l", "d", "#2"),
        "word": ("w", "ɜː", "d"),
    }
    assert top == 2
    lexicon_fst = pynini.Fst.read(str(word_graph / "L.fst"))
    phones = lexicon_fst.input_symbols()
    used = {phones.find(arc.ilabel) for s in lexicon_fst.states() for arc in lexicon_fst.arcs(s)}
    assert {"#0", "#1", "#2"} <= used


def test_graph_properties(inputs: Path, word_graph: Path) -> None:
    lg = pynini.Fst.read(str(word_graph / "LG.fst"))
    assert lg.properties(pynini.I_DETERMINISTIC, True) == pynini.I_DETERMINISTIC
    hlg = pynini.Fst.read(str(word_graph / "HLG.fst"))
    n_tokens = len(read_fairseq_dict(inputs / "dict.phn.txt"))
    ilabels = {arc.ilabel for s in hlg.states() for arc in hlg.arcs(s)}
    assert max(ilabels) <= n_tokens  # no disambiguation symbol is left for DecodableCtc
    tokens = dict(line.split("\t") for line in
                  (word_graph / "tokens.txt").read_text(encoding="utf-8").splitlines())
    assert tokens["<s>"] == "1" and tokens["h"] == "5"  # fairseq index + 1


def test_lexicon_phone_missing_from_dictionary(inputs: Path) -> None:
    (inputs / "bad.lst").write_text("hello\th ɛ l oː\n", encoding="utf-8")
    with pytest.raises(W2vuError, match=r"'hello' uses \['oː'\]"):
        build_graphs(inputs / "dict.phn.txt", inputs / "words.arpa", inputs / "out",
                     lexicon=inputs / "bad.lst")


def test_bad_inputs(inputs: Path) -> None:
    with pytest.raises(W2vuError, match="not found"):
        build_graphs(inputs / "dict.phn.txt", inputs / "missing.arpa", inputs / "out")
    (inputs / "bad.arpa").write_text("not an arpa file\n", encoding="utf-8")
    with pytest.raises(W2vuError, match="could not be read by arpa2fst"):
        build_graphs(inputs / "dict.phn.txt", inputs / "bad.arpa", inputs / "out")
    (inputs / "empty.lst").write_text("\n", encoding="utf-8")
    with pytest.raises(W2vuError, match="is empty"):
        build_graphs(inputs / "dict.phn.txt", inputs / "words.arpa", inputs / "out",
                     lexicon=inputs / "empty.lst")
    assert not (inputs / "out").exists()


def test_two_builds_are_byte_identical(inputs: Path) -> None:
    """No temporary path (G's word table was named after one) may leak into the graphs."""
    first = build_graphs(inputs / "dict.phn.txt", inputs / "words.arpa", inputs / "a",
                         lexicon=inputs / "lexicon.lst")
    second = build_graphs(inputs / "dict.phn.txt", inputs / "words.arpa", inputs / "b",
                          lexicon=inputs / "lexicon.lst")
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert {"G.fst", "L.fst", "LG.fst", "HLG.fst"} <= set(names)
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert b"w2vu-g-" not in (first / "HLG.fst").read_bytes()
