"""w2vu's ARPA estimator against KenLM's lmplz, and properties that hold without lmplz.

The parity tests build lmplz from the kenlm sdist once (devkit/lmplz.py) and skip, saying why,
where that is impossible. The other tests need only numpy (and kenlm's Python module if present).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from devkit.lmplz import (
    LmplzUnavailable,
    lmplz_binary,
    phone_lexicon,
    phone_sentences,
    run_lmplz,
    source_sentences,
    word_sentences,
)
from tests.conftest import SHARED_DATA
from w2vu.text.arpa import ArpaModel, arpa_counts
from w2vu.text.ngram import FALLBACK_DISCOUNTS, DiscountError, estimate_arpa

try:
    import kenlm
except ImportError:
    kenlm = None

LJSPEECH = SHARED_DATA / "text" / "ljspeech_metadata_all.csv"
HELD_OUT_EVERY = 20
# Float tolerance on printed log10 values: lmplz and w2vu both print float32 through log10f, so
# they agree to the digit where the C library is the same; elsewhere within 2 units in the last
# place of values up to ~10.
LOG10_TOLERANCE = 2e-6

# lmplz -o 3 --discount_fallback on TINY (kenlm 0.3.0). Order 3 needs the fallback discounts.
TINY = ["a b c", "a b", "b c a", "c", "", "a a b c d"]
TINY_LMPLZ_ARPA = """\\data\\
ngram 1=7
ngram 2=13
ngram 3=12

\\1-grams:
-0.90982336	<unk>	0
0	<s>	-0.09691001
-0.55764085	</s>	0
-0.90982336	a	-0.18708666
-0.8351897	b	-0.17609124
-0.8351897	c	-0.18708666
-0.7337321	d	-0.22184873

\\2-grams:
-0.5402983	<s> </s>	0
-0.552842	a </s>	0
-0.4976429	b </s>	0
-0.48148602	c </s>	0
-0.24706554	d </s>	0
-1.0067333	<s> a	-0.30103
-0.7447275	a a	-0.30103
-0.7447275	c a	-0.30103
-0.7361516	<s> b	-0.30103
-0.6108339	a b	-0.30103
-0.7361516	<s> c	-0.30103
-0.52660656	b c	-0.30103
-0.65757734	c d	-0.30103

\\3-grams:
-0.19382004	c a </s>
-0.48726088	a b </s>
-0.17717834	<s> c </s>
-0.47929817	b c </s>
-0.1061956	c d </s>
-0.59063053	<s> a a
-0.59063053	b c a
-0.3411939	<s> a b
-0.20586066	a a b
-0.1879441	<s> b c
-0.31690672	a b c
-0.5580432	b c d

\\end\\
"""

PARITY_CASES = [
    ("phones", 4, None),  # GAN model selection LM
    ("phones", 6, None),  # phone decoding LM
    ("words", 4, (0, 0, 0, 3)),  # wav2vec-U's pruned word LM
    ("words", 3, None),
]


@dataclass(frozen=True)
class Corpus:
    """A training text file and held-out sentences."""

    train: Path
    held_out: list[str]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Corpus]:
    """Words and espeak phones (with <SIL>) of the book and LJSpeech; every 20th held out."""
    folder = tmp_path_factory.mktemp("lm_corpora")
    words = word_sentences(source_sentences(LJSPEECH if LJSPEECH.exists() else None))
    out = {}
    phones = phone_sentences(words, phone_lexicon(words))
    for name, sentences in (("words", words), ("phones", phones)):
        train = folder / f"{name}.txt"
        train.write_text("".join(s + "\n" for i, s in enumerate(sentences)
                                 if i % HELD_OUT_EVERY), encoding="utf-8")
        out[name] = Corpus(train, sentences[::HELD_OUT_EVERY])
    return out


@pytest.fixture(scope="module")
def lmplz() -> Path:
    try:
        return lmplz_binary()
    except LmplzUnavailable as e:
        pytest.skip(f"lmplz unavailable: {e}")


def compare_arpa_lines(ours: Path, reference: Path) -> tuple[int, float]:
    """Line-by-line: same layout and n-grams in the same order; (lines differing, max |diff|)."""
    differing, worst = 0, 0.0
    with open(ours, encoding="utf-8") as a, open(reference, encoding="utf-8") as b:
        for number, (x, y) in enumerate(zip(a, b, strict=True), start=1):
            if x == y:
                continue
            differing += 1
            fx, fy = x.rstrip("\n").split("\t"), y.rstrip("\n").split("\t")
            assert len(fx) == len(fy) > 1 and fx[1] == fy[1], f"line {number}: {x!r} vs {y!r}"
            for u, v in zip(fx[::2], fy[::2]):
                worst = max(worst, abs(float(u) - float(v)))
    return differing, worst


def perplexities(arpa: Path, sentences: list[str]) -> dict[str, float]:
    """Held-out perplexity by every scorer available: ArpaModel, and kenlm if installed."""
    out = {"ArpaModel": ArpaModel(arpa).perplexity(sentences)}
    if kenlm is not None:
        model = kenlm.Model(str(arpa))
        total = sum(model.score(s) for s in sentences)
        out["kenlm"] = 10 ** (-total / sum(len(s.split()) + 1 for s in sentences))
    return out


@pytest.mark.parametrize(("corpus", "order", "prune"), PARITY_CASES)
def test_matches_lmplz(corpora: dict[str, Corpus], lmplz: Path, tmp_path: Path, corpus: str,
                       order: int, prune: tuple[int, ...] | None) -> None:
    data = corpora[corpus]
    reference, ours = tmp_path / "lmplz.arpa", tmp_path / "ours.arpa"
    run = run_lmplz(lmplz, data.train, order, reference, prune)
    stats = estimate_arpa(data.train, order, ours, prune=prune)

    assert arpa_counts(ours) == arpa_counts(reference) == list(stats.counts)
    assert len(run.discounts) == order
    for printed, computed in zip(run.discounts, stats.discounts):  # lmplz prints 6 digits
        assert computed == pytest.approx(printed, rel=1e-5, abs=1e-6)
    differing, worst = compare_arpa_lines(ours, reference)
    assert worst <= LOG10_TOLERANCE
    ppl_ours, ppl_lmplz = perplexities(ours, data.held_out), perplexities(reference, data.held_out)
    scores = {name: (ppl_ours[name], ppl_lmplz[name]) for name in ppl_ours}
    for with_ours, with_lmplz in scores.values():
        assert with_ours == pytest.approx(with_lmplz, rel=0.01)
    if "kenlm" in scores:  # the pure-Python scorer on lmplz's own model
        assert ppl_lmplz["ArpaModel"] == pytest.approx(ppl_lmplz["kenlm"], rel=1e-5)
    print(f"{corpus} {order}-gram prune={prune}: counts {stats.counts}, {differing} lines "
          f"differ, max |log10 diff| {worst:.2g}, held-out perplexity (ours, lmplz) {scores}")


def test_tiny_corpus_matches_recorded_lmplz_output(tmp_path: Path) -> None:
    arpa = tmp_path / "tiny.arpa"
    (tmp_path / "ref.arpa").write_text(TINY_LMPLZ_ARPA, encoding="utf-8")
    stats = estimate_arpa(TINY, 3, arpa)
    assert stats.counts == (7, 13, 12)
    assert stats.fallback_orders == (3,)
    assert np.allclose(stats.discounts, [(0.2, 1.7, 3.0), (0.6, 1.4, 3.0), FALLBACK_DISCOUNTS])
    _, worst = compare_arpa_lines(arpa, tmp_path / "ref.arpa")
    assert worst <= LOG10_TOLERANCE


def zipf_corpus(sentences: int = 400, symbols: int = 12, seed: int = 0) -> list[str]:
    """Random sentences over a small alphabet with skewed frequencies (like phones)."""
    rng = random.Random(seed)
    alphabet = [f"p{i}" for i in range(symbols)]
    weights = [1 / (i + 1) for i in range(symbols)]
    return [" ".join(rng.choices(alphabet, weights, k=rng.randint(1, 12)))
            for _ in range(sentences)]


SCORED = ["p0 p1 p2", "p3 unseen p0", "", "p11 p11 p11 p11"]


def contexts_of(arpa: Path) -> list[list[str]]:
    """Every context an ARPA conditions on: its n-grams below the top order, and the empty one."""
    lines = arpa.read_text(encoding="utf-8").splitlines()
    top = len(arpa_counts(arpa))
    contexts = [[]]
    for line in lines:
        fields = line.split("\t")
        if len(fields) == 3 and len(fields[1].split()) < top and not fields[1].endswith("</s>"):
            contexts.append(fields[1].split())
    return contexts


@pytest.mark.parametrize("prune", [None, (0, 1, 1, 2)])
def test_every_context_sums_to_one(tmp_path: Path, prune: tuple[int, ...] | None) -> None:
    sentences = zipf_corpus()
    arpa = tmp_path / "lm.arpa"
    estimate_arpa(sentences, 4, arpa, prune=prune)
    model = ArpaModel(arpa)
    vocab = sorted({w for s in sentences for w in s.split()}) + ["</s>", "<unk>"]
    contexts = contexts_of(arpa)
    assert len(contexts) > 100
    for context in contexts:
        total = sum(10 ** model.log10_prob(context, w) for w in vocab)
        assert total == pytest.approx(1.0, abs=1e-4), context


def test_arpa_model_scores_with_backoff(tmp_path: Path) -> None:
    arpa = tmp_path / "lm.arpa"
    estimate_arpa(zipf_corpus(), 3, arpa)
    model = ArpaModel(arpa)
    assert model.order == 3
    scores = [model.score(s) for s in SCORED]
    assert all(math.isfinite(s) and s < 0 for s in scores)
    assert model.score("p0", eos=False) == pytest.approx(model.log10_prob(["<s>"], "p0"))
    assert model.log10_prob(["p3"], "unseen") == model.log10_prob(["p3"], "<unk>")
    assert model.perplexity(SCORED) == pytest.approx(
        10 ** (-sum(scores) / sum(len(s.split()) + 1 for s in SCORED)))


def test_arpa_model_agrees_with_kenlm(tmp_path: Path) -> None:
    if kenlm is None:
        pytest.skip("kenlm module not installed")
    arpa = tmp_path / "lm.arpa"
    sentences = zipf_corpus()
    estimate_arpa(sentences, 3, arpa, prune=(0, 1))
    model, reference = ArpaModel(arpa), kenlm.Model(str(arpa))
    assert reference.order == model.order == 3
    for s in SCORED + sentences[:50]:
        for bos, eos in ((True, True), (False, False), (True, False)):
            assert model.score(s, bos, eos) == pytest.approx(reference.score(s, bos, eos),
                                                             abs=1e-4)


def test_fallback_discounts_when_counts_are_degenerate(tmp_path: Path) -> None:
    # Every sentence twice: no top-order n-gram is seen once, so D1 has no closed form.
    sentences = zipf_corpus(100) * 2
    stats = estimate_arpa(sentences, 3, tmp_path / "lm.arpa")
    assert 3 in stats.fallback_orders
    assert stats.discounts[2] == FALLBACK_DISCOUNTS
    assert ArpaModel(tmp_path / "lm.arpa").perplexity(sentences[:10]) > 1
    with pytest.raises(DiscountError):
        estimate_arpa(sentences, 3, tmp_path / "strict.arpa", discount_fallback=False)
    assert not (tmp_path / "strict.arpa").exists()


def test_file_and_iterable_give_the_same_model(tmp_path: Path) -> None:
    sentences = zipf_corpus(50) + ["", "p1\tp2  p3\r"]
    text = tmp_path / "text.txt"
    text.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
    from_file = estimate_arpa(text, 3, tmp_path / "a.arpa")
    from_list = estimate_arpa(sentences, 3, tmp_path / "b.arpa")
    assert from_file == from_list
    assert (tmp_path / "a.arpa").read_bytes() == (tmp_path / "b.arpa").read_bytes()
    assert from_file.sentences == len(sentences)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.arpa", "b.arpa", "text.txt"]


@pytest.mark.parametrize(("sentences", "prune"), [
    (["a <s> b"], None),
    (["a </s>"], None),
    (["<unk>"], None),
    ([], None),
    (["a b"], (0, 2, 1)),
    (["a b"], (0, 0, 0, 1)),
])
def test_rejects_what_lmplz_rejects(tmp_path: Path, sentences: list[str],
                                    prune: tuple[int, ...] | None) -> None:
    with pytest.raises(ValueError):
        estimate_arpa(sentences, 3, tmp_path / "lm.arpa", prune=prune)
    assert not list(tmp_path.iterdir())


def test_pruning_drops_rare_ngrams_but_keeps_their_prefixes(tmp_path: Path) -> None:
    sentences = zipf_corpus()
    full = estimate_arpa(sentences, 3, tmp_path / "full.arpa")
    pruned = estimate_arpa(sentences, 3, tmp_path / "pruned.arpa", prune=(0, 0, 1))
    assert pruned.counts[:2] == full.counts[:2] and pruned.counts[2] < full.counts[2]
    grams = {tuple(line.split("\t")[1].split()) for line in
             (tmp_path / "pruned.arpa").read_text(encoding="utf-8").splitlines()
             if line.count("\t") >= 1}
    for gram in grams:
        assert len(gram) == 1 or (gram[:-1] in grams and gram[1:] in grams), gram
    held_out = zipf_corpus(50, seed=1)
    assert np.isfinite(ArpaModel(tmp_path / "pruned.arpa").perplexity(held_out))
