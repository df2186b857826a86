"""fairseq dictionaries (`dict.phn.txt`: `symbol count` lines), read the way fairseq loads them.

Four specials come first (`<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3), then the file's symbols in
file order, so index j is logit j of the GAN and j + 1 the input label of the decoding graphs.
Light on purpose: the GAN (torch and numpy only) and the graph builder both read it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.lines import read_text_lines

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
NUM_SPECIALS = len(SPECIALS)
UNK_INDEX = 3
SIL = "<SIL>"  # the silence phone: last in the generator's output, a word of the phone LM


def read_fairseq_dict(path: str | os.PathLike) -> list[str]:
    """Symbols in fairseq `Dictionary` order (4 specials, then the file's), so index j = logit j."""
    path = Path(path)
    symbols = list(SPECIALS)
    lines = [line for line in read_text_lines(path, "dictionary") if line.strip()]
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise W2vuError(f"{path}:{number}: expected 'symbol count', got {line!r}; "
                            "write the dictionary in fairseq's dict.txt format")
        symbols.append(fields[0])
    doubled = sorted(s for s, n in Counter(symbols).items() if n > 1)
    if doubled:
        raise W2vuError(f"{path}: symbols {doubled} occur twice (the specials {SPECIALS} are "
                        "added on load); remove the duplicates")
    reserved = [s for s in symbols if s.startswith("#")]
    if reserved:
        raise W2vuError(f"{path}: symbols {reserved} start with '#', which marks the graphs' "
                        "disambiguation symbols; rename them")
    if len(symbols) == len(SPECIALS):
        raise W2vuError(f"{path}: the dictionary is empty; rebuild dict.phn.txt (stage phones)")
    return symbols


def output_vocabulary(phones: list[str]) -> list[str]:
    """Generator output symbols in fairseq dictionary order: specials, phones, then ``<SIL>``.

    ``phones`` is dict.phn.txt order; ``<SIL>`` is appended only when it is not already there.
    """
    body = [p for p in phones if p != SIL]
    return [*SPECIALS, *body, SIL]


@dataclass(frozen=True)
class PhoneDictionary:
    """fairseq dictionary of the generator output: 4 specials, the file's phones, ``<SIL>`` last."""

    symbols: tuple[str, ...]

    @property
    def index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def num_symbols(self) -> int:
        """Non-special symbols, ``<SIL>`` included (the denominator of vocabulary usage, §3.1)."""
        return len(self.symbols) - NUM_SPECIALS

    @property
    def sil_index(self) -> int:
        return self.symbols.index(SIL)

    def encode(self, phones: Sequence[str]) -> np.ndarray:
        """Ids of the phones; unknown ones become ``<unk>`` as fairseq's binarizer does."""
        index = self.index
        return np.array([index.get(p, UNK_INDEX) for p in phones], dtype=np.int64)


def load_phone_dictionary(path: str | os.PathLike) -> PhoneDictionary:
    """Read ``dict.phn.txt`` into fairseq order, with ``<SIL>`` last."""
    return PhoneDictionary(tuple(output_vocabulary(read_fairseq_dict(path)[len(SPECIALS):])))
