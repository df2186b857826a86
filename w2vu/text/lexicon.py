"""Stage `lexicon`: word counts, the words worth keeping, and their pronunciations.

Words seen at least `min_word_count` times are kept (the reference's `--thresholdsrc 2`), minus
pure punctuation, tokens with five or more consecutive digits, and tokens longer than
`MAX_WORD_CHARS` (run-together text, not a word: it would become one enormous phone sentence).
Each distinct word is phonemised once; a cache beside the outputs keeps earlier pronunciations,
so a rerun after adding text phonemises only the new words. A user lexicon (`word<TAB>phones`,
e.g. CMUdict-style) can extend espeak (its entries win) or replace it. Words with no
pronunciation are dropped and counted.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.io.lines import read_token_lines, write_token_lines
from w2vu.text.phonemize import WORD_BREAK, check_language, espeak_words, join_words

log = logging.getLogger(__name__)
_LONG_NUMBER = re.compile(r"\d{5,}")
_HAS_WORD_CHAR = re.compile(r"[^\W_]")
# Longer than any dictionary word (German and Finnish compounds stay well under it).
MAX_WORD_CHARS = 100


@dataclass(frozen=True)
class LexiconSettings:
    """Who pronounces words and which words are worth a pronunciation."""

    language: str
    min_word_count: int = 2
    user_lexicon: str | None = None
    lexicon_mode: str = "extend"  # "extend" espeak, or "replace" it


def count_words(text_path: str | os.PathLike) -> Counter:
    """Word counts of a normalised text file."""
    counts: Counter = Counter()
    with open(text_path, encoding="utf-8") as f:
        for line in f:
            counts.update(line.split())
    return counts


def is_lexicon_word(word: str) -> bool:
    """The reference keeps no pure punctuation and no token with 5+ consecutive digits."""
    return bool(_HAS_WORD_CHAR.search(word)) and not _LONG_NUMBER.search(word)


def read_lexicon(path: str | os.PathLike) -> dict[str, str]:
    """`word<TAB>phones` lines (first entry of a word wins); a bad line is a clear error."""
    lexicon: dict[str, str] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise W2vuError(f"lexicon {path}: {e}; give a UTF-8 file of word<TAB>phones") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        word, sep, phones = line.partition("\t")
        if not sep:
            word, _, phones = line.partition(" ")
        if not word or not phones.strip():
            raise W2vuError(f"{path}:{number}: expected 'word<TAB>phones', got {line!r}")
        lexicon.setdefault(word, " ".join(phones.split()))
    return lexicon


def write_lexicon(path: str | os.PathLike, lexicon: dict[str, str]) -> None:
    """Write `word<TAB>phones`, sorted by word, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{w}\t{p}\n" for w, p in sorted(lexicon.items())),
                       encoding="utf-8")


def cached_phonemes(words: list[str], language: str, cache: Path | None) -> dict[str, str]:
    """espeak's pronunciations of `words` (`espeak_words`: with word breaks), phonemising only
    those missing from the cache."""
    known = read_lexicon_lenient(cache) if cache and cache.exists() else {}
    missing = [w for w in words if w not in known]
    log.info("lexicon: %d words, %d from the cache, %d to phonemise", len(words),
             len(words) - len(missing), len(missing))
    if missing:
        known.update(espeak_words(missing, language))
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cache) as tmp:
                tmp.write_text("".join(f"{w}\t{p}\n" for w, p in sorted(known.items())),
                               encoding="utf-8")
    return {w: known[w] for w in words}


def read_lexicon_lenient(path: Path) -> dict[str, str]:
    """The phonemisation cache, where an empty pronunciation is a valid, remembered answer."""
    entries = (line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines())
    return {parts[0]: parts[1] for parts in entries if len(parts) == 2}


def cache_file(cache_dir: str | os.PathLike, language: str) -> Path:
    """The phonemisation cache of one language and espeak-ng version."""
    from w2vu.espeak import configure_phonemizer

    configure_phonemizer()
    from phonemizer.backend import EspeakBackend

    version = ".".join(map(str, EspeakBackend.version()))
    return Path(cache_dir) / f"phonemes.{language}.espeak-{version}.words.tsv"


def pronunciations(words: list[str], settings: LexiconSettings, cache: Path | None,
                   stats: dict[str, int] | None = None) -> dict[str, str]:
    """Each word's phones ('' when none): the user lexicon's entry, else espeak's (cached),
    with the phones of a token espeak reads as several words joined.

    One function, so that reference transcripts are phonemised exactly as the unpaired text.
    """
    user = read_lexicon(settings.user_lexicon) if settings.user_lexicon else {}
    if user and settings.lexicon_mode == "replace":
        return {w: user.get(w, "") for w in words}
    espeak = cached_phonemes([w for w in words if w not in user], settings.language, cache)
    several = sorted(w for w, p in espeak.items() if WORD_BREAK in p.split())
    if stats is not None:
        stats["read by espeak as several words (phones joined)"] = len(several)
    if several:
        log.info("lexicon: espeak reads %d tokens as several words (digits, some hyphenated "
                 "words); their phones are joined, e.g. %s", len(several),
                 "; ".join(f"{w}: {espeak[w]}" for w in several[:5]))
    return {**{w: join_words(p) for w, p in espeak.items()},
            **{w: user[w] for w in words if w in user}}


def build_lexicon(text_path: str | os.PathLike, out_words: str | os.PathLike,
                  out_lexicon: str | os.PathLike, settings: LexiconSettings,
                  cache_dir: str | os.PathLike | None = None) -> dict[str, int]:
    """Write the word counts (`word count`, fairseq dict style) and the lexicon; return counts."""
    check_language(settings.language)
    cache = cache_file(cache_dir, settings.language) if cache_dir else None
    counts = count_words(text_path)
    frequent = [w for w, n in counts.items() if n >= settings.min_word_count]
    too_long = sorted(w for w in frequent if len(w) > MAX_WORD_CHARS)
    words = sorted(w for w in frequent if len(w) <= MAX_WORD_CHARS and is_lexicon_word(w))
    stats = {"distinct words": len(counts), "kept (count and form)": len(words),
             f"longer than {MAX_WORD_CHARS} characters (dropped)": len(too_long)}
    if too_long:
        log.warning("lexicon: %d frequent tokens are longer than %d characters and are dropped "
                    "(text without spaces between words?), e.g. %s...", len(too_long),
                    MAX_WORD_CHARS, too_long[0][:60])
    pronounced = pronunciations(words, settings, cache, stats)
    lexicon = {w: p for w, p in pronounced.items() if p}
    dropped = sorted(w for w, p in pronounced.items() if not p)
    stats["without pronunciation (dropped)"] = len(dropped)
    stats["in lexicon"] = len(lexicon)
    if dropped:
        log.warning("lexicon: %d words have no pronunciation and are dropped, e.g. %s",
                    len(dropped), ", ".join(dropped[:20]))
    with atomic_path(out_words) as tmp:
        tmp.write_text("".join(f"{w} {n}\n" for w, n in counts.most_common()), encoding="utf-8")
    write_lexicon(out_lexicon, lexicon)
    log.info("lexicon: %s", ", ".join(f"{k}: {v}" for k, v in stats.items()))
    if not lexicon:
        raise W2vuError(f"no word of {text_path} got a pronunciation (min_word_count="
                        f"{settings.min_word_count}); lower text.min_word_count or add text")
    return stats


Pron = tuple[str, ...]
Lexicon = list[tuple[str, Pron]]


def add_lex_disambig(lexicon: Lexicon) -> tuple[Lexicon, int]:
    """Append #1, #2, ... where a pronunciation is a homophone or a prefix of another one.

    Kaldi's add_lex_disambig.pl: without these L∘G is not determinisable. Returns the new lexicon
    and the highest #k used (0 if none).
    """
    counts = Counter(pron for _, pron in lexicon)
    prefixes = {pron[:i] for _, pron in lexicon for i in range(1, len(pron))}
    last: dict[Pron, int] = {}
    out: Lexicon = []
    for word, pron in lexicon:
        if counts[pron] > 1 or pron in prefixes:
            last[pron] = last.get(pron, 0) + 1
            pron = (*pron, f"#{last[pron]}")
        out.append((word, pron))
    return out, max(last.values(), default=0)


def words_to_phones(hyps: Sequence[Sequence[str]], lexicon: dict[str, str] | None
                    ) -> list[list[str]]:
    """Word hypotheses as phones through the lexicon (identity without one); unknown words,
    such as `<unk>`, are dropped. Why: the unsupervised scores compare a word decoder's output
    with phone pseudo-labels (the reference's `--phonemize`)."""
    if lexicon is None:
        return [list(h) for h in hyps]
    return [[p for w in h if w in lexicon for p in lexicon[w].split()] for h in hyps]


def pronounce_transcript(words_txt: str | os.PathLike, lexicon_path: str | os.PathLike,
                         out_txt: str | os.PathLike) -> int:
    """Write a word transcript's lines as phones through the lexicon; return the line count.

    Why: the GAN's WFST decode can be self-training's pseudo-labels (`selftrain.labels:
    gan_wfst`), and the word graph only lets whole words through, so its pronunciations are
    cleaner phone labels than the Viterbi output they were decoded from.
    """
    lexicon = read_lexicon(lexicon_path)
    words = read_token_lines(words_txt, "word transcript",
                             "give the {split}.txt of the GAN's WFST decoding (gan_wfst)")
    unknown = sorted({w for line in words for w in line} - set(lexicon) - {"<unk>", "<UNK>"})
    if unknown:
        raise W2vuError(f"{words_txt}: words {unknown[:10]} are not in {lexicon_path}; decode "
                        "with the graph built from that lexicon")
    write_token_lines(out_txt, words_to_phones(words, lexicon))
    return len(words)
