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


def phonemize_words(words: Sequence[str], language: str) -> dict[str, str]:
    """Space-separated phones of each word ('' where espeak gives nothing); no stress marks."""
    check_language(language)
    from phonemizer.backend import EspeakBackend
    from phonemizer.separator import Separator

    # word=None gives one phone string per word; phonemizer would warn that the word counts
    # differ, which is expected here, so its logger only passes errors.
    quiet = logging.getLogger("w2vu.phonemizer")
    quiet.setLevel(logging.ERROR)
    backend = EspeakBackend(language, language_switch="remove-flags", with_stress=False,
                            logger=quiet)
    phones = backend.phonemize(list(words), separator=Separator(phone=" ", word=None), strip=True)
    return {w: " ".join(p.split()) for w, p in zip(words, phones)}
