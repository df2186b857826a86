"""Words to phones with phonemizer's espeak backend, each distinct word once.

Phonemising the vocabulary rather than every sentence is what makes a large corpus cheap, and it
is how the reference builds its lexicon. A language espeak does not know is a clear error that
lists the closest codes it does know.
"""

from __future__ import annotations

import difflib
import functools
import logging
from collections.abc import Sequence

from w2vu.errors import W2vuError
from w2vu.espeak import configure_phonemizer

# Between the words espeak reads one token as; the ASCII unit separator inside phonemizer's output.
WORD_BREAK = "|"
_SEPARATOR = "\x1f"


@functools.cache
def espeak_languages() -> dict[str, str]:
    """Language codes espeak-ng supports, with their names."""
    configure_phonemizer()
    from phonemizer.backend import EspeakBackend

    return dict(EspeakBackend.supported_languages())


def check_language(language: str) -> None:
    """Raise a W2vuError naming close matches when espeak-ng does not support `language`."""
    known = espeak_languages()
    if language in known:
        return
    close = difflib.get_close_matches(language, known, n=6, cutoff=0.5)
    by_name = [code for code, name in known.items() if language.lower() in name.lower()]
    hints = ", ".join(dict.fromkeys(close + by_name)) or "none"
    raise W2vuError(f"espeak-ng does not support language {language!r}; close matches: {hints} "
                    f"(all {len(known)}: {' '.join(sorted(known))})")


def espeak_words(words: Sequence[str], language: str) -> dict[str, str]:
    """Each token's phones as espeak reads it: space-separated, no stress marks, with
    `WORD_BREAK` between the words espeak makes of it ('' where espeak gives nothing).

    espeak reads some tokens as several words: digits ("123" is "one hundred twenty three"),
    ordinals, some hyphenated words. Without a word separator phonemizer glues the last phone
    of one word to the first of the next ("dt", "np"), and those false phones then drop every
    sentence that holds the token; with one, the words stay apart and can be counted.
    """
    check_language(language)
    from phonemizer.backend import EspeakBackend
    from phonemizer.separator import Separator

    # phonemizer warns when espeak's word count differs from the input's, which is expected
    # here (see above), so its logger only passes errors.
    quiet = logging.getLogger("w2vu.phonemizer")
    quiet.setLevel(logging.ERROR)
    backend = EspeakBackend(language, language_switch="remove-flags", with_stress=False,
                            logger=quiet)
    phones = backend.phonemize(list(words), separator=Separator(phone=" ", word=_SEPARATOR),
                               strip=True)
    return {w: f" {WORD_BREAK} ".join(" ".join(part.split()) for part in p.split(_SEPARATOR)
                                      if part.split())
            for w, p in zip(words, phones)}


def join_words(pronunciation: str) -> str:
    """The phones of an `espeak_words` pronunciation, word breaks removed."""
    return " ".join(p for p in pronunciation.split() if p != WORD_BREAK)


def phonemize_words(words: Sequence[str], language: str) -> dict[str, str]:
    """Space-separated phones of each token ('' where espeak gives nothing); no stress marks."""
    return {w: join_words(p) for w, p in espeak_words(words, language).items()}
