"""Stage `normalize`: unpaired text to one clean sentence per line.

The reference's character filter (fairseq `normalize_and_filter_text.py`): Unicode NFKC, then every
character that is not a letter, digit, mark, apostrophe or hyphen becomes a space; whitespace is
collapsed; lines holding `---` are dropped. Case folding is optional (the reference has none).
A file whose lines are mostly not UTF-8 is refused with its likely encoding (`encoding.py`); a few
bad lines are decoded with replacement, counted and warned about. Lines longer than a limit
(a whole book on one line, say) are split at sentence ends, then at word boundaries; empty lines
are dropped and counted. Language-ID filtering runs only when a local fastText model is given.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import regex

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.text.encoding import SAMPLE_BYTES, likely_encoding, not_utf8_error

log = logging.getLogger(__name__)
_NOT_KEPT = regex.compile(r"[^\p{L}\p{N}\p{M}' -]")
_SENTENCE_END = regex.compile(r"(?<=[.!?。！？])\s+")
_SAMPLE_PER_LINE = 4096  # bytes of each bad line kept for guessing the file's encoding


@dataclass(frozen=True)
class NormalizeSettings:
    """Case folding, the longest line kept whole (characters), and optional fastText LID."""

    casefold: bool = True
    max_line_chars: int = 2000
    lid_model: str | None = None
    lid_label: str = ""
    lid_threshold: float = 0.4


def normalize_line(line: str, casefold: bool = False) -> str:
    """One line through the reference's character filter (empty when nothing is left)."""
    text = _NOT_KEPT.sub(" ", unicodedata.normalize("NFKC", line))
    text = " ".join(text.split())
    return text.casefold() if casefold else text


def split_long_line(line: str, max_chars: int) -> list[str]:
    """Pieces of at most `max_chars`: sentence ends first, then word boundaries."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(line):
        current = ""
        for word in sentence.split():
            if current and len(current) + 1 + len(word) > max_chars:
                pieces.append(current)
                current = word
            else:
                current = f"{current} {word}" if current else word
        if current:
            pieces.append(current)
    return pieces


def read_lines(paths: Sequence[str | os.PathLike], counts: Counter) -> Iterator[str]:
    """Lines of all files, decoding invalid UTF-8 with replacement (counted per line and
    warned about); a file whose non-blank lines are mostly not UTF-8 is a W2vuError."""
    for path in paths:
        try:
            handle = open(path, "rb")
        except OSError as e:
            raise W2vuError(f"{path}: {e.strerror}; check the language's `text` setting") from None
        bad: list[int] = []
        sample, nonblank = b"", 0
        with handle:
            for number, raw in enumerate(handle, start=1):
                nonblank += bool(raw.strip())
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    line = raw.decode("utf-8", errors="replace")
                    bad.append(number)
                    sample += raw[:_SAMPLE_PER_LINE] if len(sample) < SAMPLE_BYTES else b""
                counts["lines in"] += 1
                yield line
        if len(bad) * 2 > nonblank:
            raise not_utf8_error(path, len(bad), nonblank, sample)
        if bad:
            counts["lines with invalid UTF-8 (decoded with replacement)"] += len(bad)
            log.warning("normalize: %s: %d of %d lines are not valid UTF-8 (likely %s) and were "
                        "decoded with replacement characters (lines %s%s)", path, len(bad),
                        nonblank, likely_encoding(sample), ", ".join(map(str, bad[:10])),
                        ", ..." if len(bad) > 10 else "")


class LanguageFilter:
    """fastText language ID: keep a line when the language is top-1 or has probability >= t."""

    def __init__(self, model_path: str, language: str, threshold: float) -> None:
        if not os.path.isfile(model_path):
            raise W2vuError(f"LID model {model_path} not found; set text.lid_model to a local "
                            "fastText model file, or remove it to skip LID")
        try:
            import fasttext
        except ImportError:
            raise W2vuError("text.lid_model is set but fastText is not installed: "
                            "pip install 'w2vu[lid]'") from None
        self._model = fasttext.load_model(model_path)
        self._label = f"__label__{language}"
        self._threshold = threshold

    def keep(self, line: str) -> bool:
        """True when the line is in the configured language."""
        labels, probs = _predict(self._model, line)
        if labels and labels[0] == self._label:
            return True
        return any(lab == self._label and p >= self._threshold for lab, p in zip(labels, probs))


def _predict(model, line: str) -> tuple[list[str], list[float]]:
    """Top labels and probabilities, through fastText's low-level API (numpy-2 safe)."""
    pairs = model.f.predict(line + "\n", 100, 0.0, "strict")
    return [label for _, label in pairs], [prob for prob, _ in pairs]


def normalize_text(inputs: Sequence[str | os.PathLike], out: str | os.PathLike,
                   settings: NormalizeSettings) -> Counter:
    """Normalise all input files into `out`; return the counts of what happened to lines."""
    counts: Counter = Counter()
    lid = (LanguageFilter(settings.lid_model, settings.lid_label, settings.lid_threshold)
           if settings.lid_model else None)
    if lid is None:
        log.info("normalize: no LID model configured, language-ID filtering skipped")
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as dst:
        for line in read_lines(inputs, counts):
            if lid is not None and line.strip() and not lid.keep(" ".join(line.split())):
                counts["lines dropped by LID"] += 1
                continue
            pieces = [line]
            if len(line) > settings.max_line_chars:
                pieces = split_long_line(line, settings.max_line_chars)
                counts["long lines split"] += 1
            for piece in pieces:
                text = normalize_line(piece, settings.casefold)
                if not text:
                    counts["empty lines dropped"] += 1
                elif "---" in text:
                    counts["lines with --- dropped"] += 1
                else:
                    dst.write(text + "\n")
                    counts["lines out"] += 1
    log.info("normalize: %s", ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if not counts["lines out"]:
        names = ", ".join(str(Path(p)) for p in inputs)
        raise W2vuError(f"no text left after normalisation of {names} "
                        f"({counts['lines in']} lines read); check the files and `text`")
    return counts
