"""Stage `reference_phones`: the phone references (`{split}.phn`) that every PER is scored against.

Where the references give phones (a `phones` column), they are checked against the language's
phone inventory: tokens that are neither in `dict.phn.txt` nor in the lexicon's phones mean the
column is in another phone set (raw IPA words, ARPAbet, ...), and more than `MAX_UNKNOWN` of
them stop the step with a count and examples. Where only words are given, they are phonemised by
the language's own lexicon path (the text filter of `normalize`, the user lexicon, espeak with the
same code and cache), so that a new language is scored without writing phones by hand.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.io.atomic import write_text
from w2vu.io.dictionary import SIL
from w2vu.io.lines import read_token_lines
from w2vu.text.lexicon import LexiconSettings, cache_file, pronunciations, read_lexicon
from w2vu.text.normalize import normalize_line

log = logging.getLogger(__name__)
MAX_UNKNOWN = 0.01  # share of given phone tokens outside the inventory that stops the step


def phone_inventory(dictionary: str | os.PathLike, lexicon: str | os.PathLike) -> set[str]:
    """The language's phones: the kept ones (`dict.phn.txt`) and those pruned from the lexicon."""
    kept = {line.split()[0] for line in Path(dictionary).read_text(encoding="utf-8").splitlines()
            if line.strip()}
    pruned = {p for phones in read_lexicon(lexicon).values() for p in phones.split()}
    return (kept | pruned) - {SIL}


def check_given_phones(lines: list[list[str]], inventory: set[str], source: str) -> None:
    """Stop when the given phones are not the inventory's phones; warn about a few strays."""
    tokens = Counter(t for line in lines for t in line)
    unknown = Counter({t: n for t, n in tokens.items() if t not in inventory})
    total, bad = sum(tokens.values()), sum(unknown.values())
    if not bad:
        return
    examples = " ".join(t for t, _ in unknown.most_common(8))
    summary = (f"{source}: {bad} of {total} phone tokens ({len(unknown)} of {len(tokens)} "
               f"types, e.g. {examples}) are not in the language's phone inventory")
    if bad > MAX_UNKNOWN * total:
        raise W2vuError(f"{summary}; the phones column must hold the text stage's phones "
                        "(results/<lang>/text/phones/dict.phn.txt) separated by spaces, or leave "
                        "it out and the transcripts are phonemised")
    log.warning("reference-phones: %s; they count as errors", summary)


def write_reference_phones(words: str | os.PathLike, given: str | os.PathLike,
                           dictionary: str | os.PathLike, lexicon: str | os.PathLike,
                           out: str | os.PathLike, settings: LexiconSettings,
                           casefold: bool = False,
                           cache_dir: str | os.PathLike | None = None) -> Counter:
    """Write `out` line-aligned with the `.wrd` file: given phones, else phonemised words.

    A line whose words are not all pronounceable is left empty (not scored) and counted.
    """
    word_lines = read_token_lines(words, "reference words", "rerun the labels step")
    given_lines = read_token_lines(given, "given reference phones", "rerun the labels step")
    if len(word_lines) != len(given_lines):
        raise W2vuError(f"{given}: {len(given_lines)} lines but {words} has {len(word_lines)}; "
                        "rerun the labels step")
    check_given_phones([g for g in given_lines if g], phone_inventory(dictionary, lexicon),
                       f"{given} (the references' phones column)")
    to_phonemise = [normalize_line(" ".join(w), casefold).split() if w and not g else []
                    for w, g in zip(word_lines, given_lines)]
    vocabulary = sorted({w for line in to_phonemise for w in line})
    cache = cache_file(cache_dir, settings.language) if cache_dir and vocabulary else None
    lexicon_of = pronunciations(vocabulary, settings, cache) if vocabulary else {}
    stats: Counter = Counter()
    out_lines = []
    for given_phones, todo, word_line in zip(given_lines, to_phonemise, word_lines):
        if given_phones:
            out_lines.append(" ".join(given_phones))
            stats["given"] += 1
        elif todo and all(lexicon_of[w] for w in todo):
            out_lines.append(" ".join(lexicon_of[w] for w in todo))
            stats["phonemised"] += 1
        else:
            out_lines.append("")
            stats["without a pronounceable transcript (not scored)" if word_line
                  else "without a reference"] += 1
    write_text(out, "".join(line + "\n" for line in out_lines))
    unpronounced = sorted(w for w in vocabulary if not lexicon_of[w])
    if unpronounced:
        log.warning("reference-phones: %d words have no pronunciation, e.g. %s",
                    len(unpronounced), " ".join(unpronounced[:10]))
    log.info("reference-phones: %s", ", ".join(f"{k} {v}" for k, v in stats.items()))
    return stats
