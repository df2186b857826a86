"""Reading ARPA n-gram LMs: the header's counts, and a backoff scorer in plain Python used when
the `kenlm` module is not installed. :func:`load_phone_lm` gives every step the one phone-LM
scorer it needs (GAN validation, WFST tuning, HMM and CTC round selection)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, TextIO

from w2vu.errors import W2vuError

_ABSENT = (0.0, 0.0)  # an n-gram missing from an ARPA: no probability, backoff log10(1)


class PhoneLM(Protocol):
    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float: ...


def load_phone_lm(path: str | os.PathLike) -> PhoneLM:
    """kenlm when importable (as the reference), else the pure-Python ARPA scorer."""
    try:
        import kenlm  # type: ignore[import-not-found]
    except ImportError:
        return ArpaModel(path)
    return kenlm.Model(os.fspath(path))


def arpa_counts(path: str | os.PathLike) -> list[int]:
    """The n-gram counts per order from an ARPA file's \\data\\ header."""
    counts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("ngram "):
                counts.append(int(line.split("=", 1)[1]))
            elif counts and not line.strip():
                break
    return counts


class ArpaModel:
    """A backoff ARPA scorer in plain Python, for when the `kenlm` module is not installed.

    Scores like `kenlm.Model`: log10 probabilities, `<s>` as the first context, `</s>` scored,
    unknown words as `<unk>`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self._ids: dict[str, int] = {}
        self._grams: dict[tuple[int, ...], tuple[float, float]] = {}
        self.order = 0
        with open(path, encoding="utf-8") as f:
            self._read(f, Path(path))
        if "<unk>" not in self._ids:
            raise W2vuError(f"{path}: the ARPA has no <unk> unigram")

    def _read(self, f: TextIO, path: Path) -> None:
        """Load every n-gram section (the \\data\\ header only announces them)."""
        n = 0
        for line in f:
            line = line.strip()
            if line.endswith("-grams:") and line.startswith("\\"):
                n = int(line[1:].split("-", 1)[0])
                self.order = max(self.order, n)
            elif line.startswith("\\"):
                n = 0
            elif n and line:
                fields = line.split()
                if len(fields) not in (n + 1, n + 2):
                    raise W2vuError(f"{path}: malformed {n}-gram line: {line!r}")
                key = tuple(self._ids.setdefault(w, len(self._ids)) for w in fields[1:n + 1])
                backoff = float(fields[n + 1]) if len(fields) == n + 2 else 0.0
                self._grams[key] = (float(fields[0]), backoff)
        if not self.order:
            raise W2vuError(f"{path}: no n-gram sections; not an ARPA file")

    def _word(self, word: str) -> int:
        return self._ids.get(word, self._ids["<unk>"])

    def log10_prob(self, context: Sequence[str], word: str) -> float:
        """log10 p(word | context) with backoff; `context` is the preceding words, oldest first."""
        ids = tuple(self._word(w) for w in context)[-(self.order - 1):] if self.order > 1 else ()
        return self._log10_prob(ids, self._word(word))

    def _log10_prob(self, context: tuple[int, ...], word: int) -> float:
        backoff = 0.0
        for start in range(len(context)):
            found = self._grams.get(context[start:] + (word,))
            if found is not None:
                return found[0] + backoff
            backoff += self._grams.get(context[start:], _ABSENT)[1]
        return self._grams[(word,)][0] + backoff

    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        """log10 p(sentence </s> | <s>), as kenlm.Model.score."""
        words = [self._word(w) for w in sentence.split()]
        if eos:
            words.append(self._word("</s>"))
        keep = self.order - 1
        context = (self._word("<s>"),) if bos and keep else ()
        total = 0.0
        for word in words:
            total += self._log10_prob(context, word)
            context = (context + (word,))[-keep:] if keep else ()
        return total

    def perplexity(self, sentences: Iterable[str]) -> float:
        """Corpus perplexity over the sentences, `</s>` counted as a token of each."""
        total, tokens = 0.0, 0
        for sentence in sentences:
            total += self.score(sentence)
            tokens += len(sentence.split()) + 1
        return math.pow(10.0, -total / tokens) if tokens else math.nan
