"""Benchmark of the text side's phonemisation: vocabulary once vs sentence by sentence.

The reference phonemises its word list; a naive pipeline phonemises every sentence. Both give
phones for the same corpus; this prints the time of each, words per second, the ratio, and peak
RSS. It also phonemises a 100,000-word vocabulary (the corpus's words plus pseudo-words made from
its syllables) to show vocabulary-scale throughput. LM estimation is benchmarked in
`bench/text_lm.py`.

    python bench/text.py [--sentences 20000]
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from pathlib import Path

from w2vu.demo.sentences import book_text, split_sentences
from w2vu.text.normalize import normalize_line
from w2vu.text.phonemize import phonemize_words

SHARED_TEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "text"
LJSPEECH = SHARED_TEXT / "ljspeech_metadata_all.csv"


def corpus_sentences(limit: int) -> list[str]:
    """Normalised sentences: LJ Speech transcripts when present, then the bundled book."""
    raw = []
    if LJSPEECH.exists():
        raw += [line.split("|")[-1] for line in LJSPEECH.read_text(encoding="utf-8").splitlines()]
    raw += split_sentences(book_text())
    sentences = [s for s in (normalize_line(x, casefold=True) for x in raw) if s]
    return sentences[:limit]


def pseudo_words(words: list[str], total: int, seed: int = 0) -> list[str]:
    """`words` padded to `total` distinct entries with made-up words glued from their halves."""
    rng = random.Random(seed)
    vocabulary = dict.fromkeys(words)
    halves = [w[: len(w) // 2] for w in words if len(w) > 3] + [w[len(w) // 2:] for w in words]
    while len(vocabulary) < total:
        vocabulary[rng.choice(halves) + rng.choice(halves)] = None
    return list(vocabulary)[:total]


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def naive_sentence_phonemes(sentences: list[str]) -> None:
    """The naive path: every sentence through espeak (the same backend and settings)."""
    from phonemizer.backend import EspeakBackend
    from phonemizer.separator import Separator

    backend = EspeakBackend("en-us", language_switch="remove-flags", with_stress=False)
    backend.phonemize(sentences, separator=Separator(phone=" ", word="|"), strip=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=20000)
    parser.add_argument("--vocabulary", type=int, default=100_000)
    args = parser.parse_args()
    sentences = corpus_sentences(args.sentences)
    tokens = sum(len(s.split()) for s in sentences)
    distinct = sorted({w for s in sentences for w in s.split()})
    phonemize_words(["warm", "up"], "en-us")

    naive = timed(lambda: naive_sentence_phonemes(sentences))
    ours = timed(lambda: phonemize_words(distinct, "en-us"))
    vocabulary = pseudo_words(distinct, args.vocabulary)
    vocab_time = timed(lambda: phonemize_words(vocabulary, "en-us"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"corpus: {len(sentences)} sentences, {tokens} tokens, {len(distinct)} distinct words")
    print(f"{'path':<34}{'seconds':>9}{'corpus words/s':>16}")
    print(f"{'naive: sentence by sentence':<34}{naive:>9.2f}{tokens / naive:>16.0f}")
    print(f"{'w2vu: each distinct word once':<34}{ours:>9.2f}{tokens / ours:>16.0f}")
    print(f"ratio (naive time / w2vu time): {naive / ours:.1f}x")
    print(f"{len(vocabulary)}-word vocabulary: {vocab_time:.2f} s, "
          f"{len(vocabulary) / vocab_time:.0f} words/s")
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
