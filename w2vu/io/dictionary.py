"""fairseq dictionaries (`dict.phn.txt`: `symbol count` lines), read the way fairseq loads them.

Four specials come first (`<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3), then the file's symbols in
file order, so index j is logit j of the GAN and j + 1 the input label of the decoding graphs.
Light on purpose: the GAN (torch and numpy only) and the graph builder both read it.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.io.lines import read_text_lines

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


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
