"""Is a text file UTF-8, and if not, what is it likely to be?

A file whose lines are mostly not UTF-8 is another encoding (Latin-1, UTF-16) or not text at all;
decoding it with replacement would silently turn it into garbage LMs, so it is refused with the
likely encoding and the fix. A few bad lines in a UTF-8 file are only counted and warned about.
"""

from __future__ import annotations

import os

from w2vu.errors import W2vuError

# How much of a file the configuration check reads (the step itself reads every line).
SAMPLE_BYTES = 1 << 20
_CONTROL = frozenset(range(0x20)) - {0x09, 0x0A, 0x0D, 0x0C}


def is_utf8(line: bytes) -> bool:
    """Whether `line` decodes as UTF-8."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def likely_encoding(sample: bytes) -> str:
    """A guess, in words, at what a non-UTF-8 byte sample is."""
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")) or sample[1:200:2].count(0) > 50:
        return "UTF-16"
    if not sample or sum(b in _CONTROL or b == 0x7F for b in sample) > 0.01 * len(sample):
        return "binary data, not text"
    high = sample.decode("cp1252", errors="replace")
    letters = [c for c in high if ord(c) > 127]
    if letters and sum(c.isalpha() for c in letters) >= 0.8 * len(letters):
        return "Latin-1 or Windows-1252"
    return "an unknown 8-bit encoding"


def not_utf8_error(path: str | os.PathLike, bad: int, lines: int, sample: bytes) -> W2vuError:
    """The one-line error for a file whose lines are mostly not UTF-8."""
    guess = likely_encoding(sample)
    fix = ("convert it to UTF-8, e.g. `iconv -f LATIN1 -t UTF-8`" if guess.startswith("Latin")
           else "convert it to UTF-8, e.g. `iconv -f UTF-16 -t UTF-8`" if guess == "UTF-16"
           else "give a UTF-8 text file, one sentence per line")
    return W2vuError(f"{path}: {bad} of {lines} lines are not UTF-8 (likely {guess}); {fix}")


def check_utf8(path: str | os.PathLike, limit: int = SAMPLE_BYTES) -> None:
    """Raise `not_utf8_error` when most non-blank lines of the first `limit` bytes are not
    UTF-8 (so that a bad config stops before any job runs)."""
    with open(path, "rb") as f:
        sample = f.read(limit)
    lines = sample.split(b"\n")
    if len(lines) > 1:
        lines = lines[:-1]  # empty after a final newline, or cut short (mid-character)
    lines = [line for line in lines if line.strip()]
    bad = sum(not is_utf8(line) for line in lines)
    if bad * 2 > len(lines):
        raise not_utf8_error(path, bad, len(lines), sample)
