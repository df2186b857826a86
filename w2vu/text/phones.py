"""Stage `phones`: phone inventory, filtered lexicon, and the phone text the GAN and LMs learn from.

Phones counted fewer than `min_phones` times are pruned. As in the reference, counts are over the
lexicon (each word type once), not over the corpus, although the paper says corpus; `count_by:
corpus` counts running text instead. Words whose pronunciation holds a pruned phone are dropped,
and so is every sentence holding a word missing from the filtered lexicon. `<SIL>` surrounds
every sentence and goes between words with probability `sil_prob`, from a seeded generator (the
reference's is unseeded). `dict.phn.txt` is a fairseq dictionary, by descending count, with
`<SIL>` last.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.io.dictionary import SIL
from w2vu.text.lexicon import read_lexicon, write_lexicon

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhoneSettings:
    """Inventory pruning and silence insertion."""

    min_phones: int = 10
    count_by: str = "lexicon"  # or "corpus"
    sil_prob: float = 0.25
    seed: int = 0


def phone_counts(lexicon: dict[str, str], word_counts: Counter, count_by: str) -> Counter:
    """Phone counts over lexicon entries (reference) or over running text."""
    counts: Counter = Counter()
    for word, phones in lexicon.items():
        weight = word_counts[word] if count_by == "corpus" else 1
        for phone in phones.split():
            counts[phone] += weight
    return counts


def sentence_phones(words: list[str], lexicon: dict[str, str], sil_prob: float,
                    rng: np.random.Generator) -> str:
    """`<SIL>` + pronunciations with `<SIL>` between words at random + `<SIL>`."""
    out = [SIL]
    for i, word in enumerate(words):
        if i and rng.random() < sil_prob:
            out.append(SIL)
        out.append(lexicon[word])
    out.append(SIL)
    return " ".join(out)


def write_dictionary(path: str | os.PathLike, counts: Counter) -> None:
    """fairseq dictionary: `symbol count` by descending count (ties by symbol), `<SIL> 0` last."""
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{p} {n}\n" for p, n in ordered) + f"{SIL} 0\n",
                       encoding="utf-8")


def build_phone_text(text_path: str | os.PathLike, lexicon_path: str | os.PathLike,
                     out_dict: str | os.PathLike, out_lexicon: str | os.PathLike,
                     out_phone_text: str | os.PathLike, settings: PhoneSettings) -> Counter:
    """Write dict.phn.txt, the filtered lexicon and lm.phones.filtered.txt; return counts."""
    lexicon = read_lexicon(lexicon_path)
    word_counts: Counter = Counter()
    if settings.count_by == "corpus":
        with open(text_path, encoding="utf-8") as f:
            for line in f:
                word_counts.update(line.split())
    counts = phone_counts(lexicon, word_counts, settings.count_by)
    kept = Counter({p: n for p, n in counts.items() if n >= settings.min_phones})
    pruned = sorted(set(counts) - set(kept), key=lambda p: -counts[p])
    if not kept:
        raise W2vuError(f"every phone was counted fewer than min_phones={settings.min_phones} "
                        f"times (most frequent: {counts.most_common(1)}); lower text.min_phones")
    if pruned:
        log.info("phones: pruned %d of %d phones (count < %d): %s", len(pruned), len(counts),
                 settings.min_phones, " ".join(f"{p}:{counts[p]}" for p in pruned))
    filtered = {w: p for w, p in lexicon.items() if all(ph in kept for ph in p.split())}
    stats: Counter = Counter(phones=len(kept), pruned_phones=len(pruned),
                             words_dropped=len(lexicon) - len(filtered))
    rng = np.random.default_rng(settings.seed)
    with atomic_path(out_phone_text) as tmp, open(tmp, "w", encoding="utf-8") as dst, \
            open(text_path, encoding="utf-8") as src:
        for line in src:
            words = line.split()
            if not words:
                continue
            if any(w not in filtered for w in words):
                stats["sentences dropped (word not in filtered lexicon)"] += 1
                continue
            dst.write(sentence_phones(words, filtered, settings.sil_prob, rng) + "\n")
            stats["sentences kept"] += 1
    write_dictionary(out_dict, kept)
    write_lexicon(out_lexicon, filtered)
    log.info("phones: %s", ", ".join(f"{k}: {v}" for k, v in stats.items()))
    if not stats["sentences kept"]:
        raise W2vuError("no sentence has all its words in the filtered lexicon; add text, lower "
                        "text.min_word_count or text.min_phones")
    return stats
