"""Sentences of the bundled book, cleaned for synthesis, and reference words for scoring."""

from __future__ import annotations

import gzip
import re
import unicodedata
from importlib import resources

BOOK = "pride_and_prejudice.txt.gz"
_ILLUSTRATION = re.compile(r"\[Illustration[^\]]*\]", re.S)
_HEADING = re.compile(r"^\s*(CHAPTER|Chapter)\s+[IVXLC]+\.?.*$", re.M)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’]*\s+(?=[\"'“‘]?[A-Z])")
_ASCII_PUNCT = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "—": ", ", "–": "-",
                              "_": ""})
_WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")


def book_text() -> str:
    """The bundled book (Chapter I to the end) as one string."""
    data = resources.files("w2vu.data").joinpath(BOOK).read_bytes()
    return gzip.decompress(data).decode("utf-8")


def split_sentences(text: str, min_words: int = 4, max_words: int = 30) -> list[str]:
    """Paragraph-joined sentences with ASCII punctuation, between min and max words long."""
    text = _HEADING.sub("", _ILLUSTRATION.sub("", text))
    text = unicodedata.normalize("NFKC", text).translate(_ASCII_PUNCT)
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        flat = " ".join(paragraph.split())
        for sentence in _SENTENCE_END.split(flat):
            sentence = sentence.strip(" \"'")
            if min_words <= len(reference_words(sentence).split()) <= max_words:
                sentences.append(sentence)
    return sentences


def reference_words(sentence: str) -> str:
    """Lower-cased words (letters and digits, inner apostrophes and hyphens kept), space-joined."""
    return " ".join(_WORD.findall(sentence.lower()))
