"""Line-aligned text files (transcripts, pseudo-labels, references: one line per utterance).

One writer and one reader, so that every stage writes them alike, gives the same clear error for
a missing or non-UTF-8 file, and keeps blank lines (in a line-aligned file they are utterances
with no tokens).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path

READ_FIX = "check the path (a UTF-8 text file)"


def read_text_lines(path: str | os.PathLike, what: str, fix: str = READ_FIX) -> list[str]:
    """Every line of ``path``; an unreadable file is a W2vuError naming ``what``, it and ``fix``."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise W2vuError(f"{what} {path}: {e}; {fix}") from None


def read_token_lines(path: str | os.PathLike, what: str, fix: str = READ_FIX
                     ) -> list[list[str]]:
    """Space-separated tokens per line of ``path`` (blank lines give [])."""
    return [line.split() for line in read_text_lines(path, what, fix)]


def write_token_lines(path: str | os.PathLike, rows: Iterable[Sequence[str]]) -> None:
    """One space-separated line per utterance (an empty line for none), atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(" ".join(row) + "\n")
