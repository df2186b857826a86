"""ARPA n-gram LMs estimated as KenLM's `lmplz` does it (reading and scoring them: `arpa.py`).

Why: no PyPI or Debian package estimates ARPA models, and wav2vec-U needs them (phone 4- and
6-grams for GAN model selection and decoding, a pruned word 4-gram for the lexicon decoder). This
module reproduces `lmplz -o N --discount_fallback [--prune ...]`: interpolated modified
Kneser-Ney with lmplz's adjusted counts, its discount formula and fallback, its pruning, its
float32 arithmetic and its ARPA layout, so the files are interchangeable with lmplz's (the test
suite checks counts, discounts and probabilities against the real binary).

Counting is vectorised: every corpus position gets the id of the n-gram that starts there, by a
bincount (small key spaces, e.g. phones) or a sort per order; the peak is about 30 bytes of memory
per token. Probabilities are computed in float32 in lmplz's order of operations, and logarithms
by the C library's log10f like lmplz's, so on the same platform the ARPA is byte-identical.
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import functools
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path

SPECIALS = ("<unk>", "<s>", "</s>")
UNK, BOS, EOS = 0, 1, 2
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz's --discount_fallback default (D1, D2, D3+)
_DENSE_KEYS = 1 << 24  # key spaces up to this size are counted with bincount instead of a sort


class DiscountError(W2vuError):
    """Modified Kneser-Ney discounts cannot be estimated from these counts (lmplz aborts too)."""


@dataclass(frozen=True)
class LmStats:
    """What an estimation produced: the ARPA's n-gram counts and the discounts used per order."""

    counts: tuple[int, ...]  # n-grams per order in the ARPA (after pruning)
    discounts: tuple[tuple[float, float, float], ...]  # D1, D2, D3+ per order
    fallback_orders: tuple[int, ...]  # orders (1-based) that fell back to the fallback discounts
    tokens: int  # words read, without <s> and </s>
    sentences: int


@dataclass
class _Order:
    """The distinct n-grams of one order, ids in lmplz's suffix order (last word compared first)."""

    first: np.ndarray  # int32 first word
    suffix: np.ndarray  # int32 id of the (n-1)-gram without the first word
    context: np.ndarray  # int32 id of the (n-1)-gram without the last word
    raw: np.ndarray  # int64 occurrences in the corpus


def estimate_arpa(sentences: Iterable[str] | str | os.PathLike, order: int,
                  out_path: str | os.PathLike, prune: Sequence[int] | None = None,
                  discount_fallback: bool = True) -> LmStats:
    """Write `lmplz -o order [--discount_fallback] [--prune ...]`'s ARPA for the text atomically.

    `sentences` is a text file path (a str is a path; one sentence per line) or an iterable of
    sentences; words are split on spaces, tabs, carriage returns and NULs like lmplz does.
    `prune` holds count thresholds per order (n-grams seen at most that often are dropped; the
    last value repeats). Raises DiscountError where lmplz would need --discount_fallback and
    `discount_fallback` is off. One deliberate difference: a file's last line without a final
    newline is a whole sentence here, while lmplz drops its </s>.
    """
    if order < 1:
        raise ValueError(f"order must be at least 1, not {order}")
    thresholds = _prune_thresholds(prune, order)
    stream, vocab, tokens = _encode(_lines(sentences))
    orders = _count(stream, order, len(vocab))
    del stream
    adjusted = _adjusted_counts(orders)
    kept = [o.raw > t for o, t in zip(orders, thresholds)]
    kept[0][:len(SPECIALS)] = True  # lmplz never prunes <unk>, <s>, </s>
    discounts, fallback = _all_discounts(orders, adjusted, discount_fallback)
    probs, backoffs = _interpolate(orders, adjusted, kept, discounts)
    with atomic_path(out_path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
        counts = _write_arpa(out, vocab, orders, kept, probs, backoffs)
    shown = tuple(tuple(float(str(x)) for x in d[1:]) for d in discounts)  # float32's digits
    return LmStats(counts=counts, discounts=shown, fallback_orders=fallback, tokens=tokens,
                   sentences=int(orders[0].raw[EOS]))


def _prune_thresholds(prune: Sequence[int] | None, order: int) -> list[int]:
    """One threshold per order, the last repeated, validated as lmplz's --prune is."""
    values = [int(t) for t in prune] if prune else [0]
    if len(values) > order:
        raise ValueError(f"{len(values)} pruning thresholds for an order-{order} model")
    if any(t < 0 for t in values) or values != sorted(values):
        raise ValueError(f"pruning thresholds must be non-negative and non-decreasing: {values}")
    return values + [values[-1]] * (order - len(values))


def _lines(sentences: Iterable[str] | str | os.PathLike) -> Iterator[str]:
    """Sentences from a file path (lines split on "\\n" only) or from an iterable."""
    if isinstance(sentences, (str, os.PathLike)):
        with open(sentences, encoding="utf-8", newline="\n") as f:
            yield from f
    else:
        yield from sentences


def _encode(lines: Iterable[str]) -> tuple[np.ndarray, list[str], int]:
    """Word ids of the corpus as one stream `<s> w.. </s> <s> w.. </s>`, the vocabulary, tokens.

    Ids follow first appearance after <unk>=0, <s>=1, </s>=2, the order lmplz numbers words in.
    """
    index: defaultdict[str, int] = defaultdict(None, ((w, i) for i, w in enumerate(SPECIALS)))
    index.default_factory = index.__len__  # a new word gets the next id
    lookup = index.__getitem__
    stream = array.array("i")
    sentences = 0
    for line in lines:
        stream.append(BOS)
        stream.extend(map(lookup, _words(line)))
        stream.append(EOS)
        sentences += 1
    if not sentences:
        raise ValueError("no sentences to estimate a language model from")
    ids = np.frombuffer(stream, dtype=np.int32)
    specials = np.bincount(ids[ids <= EOS], minlength=len(SPECIALS))
    if specials.tolist() != [0, sentences, sentences]:
        raise ValueError("the text contains <s>, </s> or <unk>, which lmplz does not allow")
    return ids, list(index), len(ids) - 2 * sentences


def _words(line: str) -> list[str]:
    """Split as lmplz does: on space, tab, CR, NUL and LF only (str.split() knows more spaces)."""
    for delimiter in "\t\r\0\n":
        line = line.replace(delimiter, " ")
    return [w for w in line.split(" ") if w]


def _count(stream: np.ndarray, order: int, vocab_size: int) -> list[_Order]:
    """Distinct n-grams of every order with their raw counts, contexts and suffixes.

    The windows are those inside one sentence padded by a single <s> and </s>: lmplz's padding
    with order-1 <s> only adds n-grams that it folds back into these.
    """
    raw = np.bincount(stream, minlength=vocab_size).astype(np.int64)
    raw[BOS] = 0  # lmplz never counts <s> as a unigram
    words = np.arange(vocab_size, dtype=np.int32)
    orders = [_Order(words, np.zeros(vocab_size, np.int32), np.zeros(vocab_size, np.int32), raw)]
    left = _tokens_left(stream, order)
    ids = stream
    for n in range(2, order + 1):
        starts = np.flatnonzero(left >= n).astype(np.int32)
        ids, gram = _next_order(stream, ids, starts, vocab_size, len(orders[-1].raw))
        orders.append(gram)
    return orders


def _tokens_left(stream: np.ndarray, order: int) -> np.ndarray:
    """Per position, the tokens from it to its sentence's </s>, both included, capped at `order`.

    Capped, one byte holds the value, and only whether an n-gram fits matters.
    """
    ends = np.flatnonzero(stream == EOS)
    lengths = np.diff(ends, prepend=-1)
    left = np.repeat(ends.astype(np.int32), lengths)
    left -= np.arange(len(stream), dtype=np.int32) - 1
    return np.minimum(left, order).astype(np.uint8 if order < 256 else np.int32)


def _next_order(stream: np.ndarray, ids: np.ndarray, starts: np.ndarray, vocab_size: int,
                n_lower: int) -> tuple[np.ndarray, _Order]:
    """N-gram ids per position (from the (n-1)-gram ids) and the distinct n-grams.

    An n-gram is keyed by (id of its suffix, first word), so sorted keys give suffix order, the
    order lmplz writes n-grams in. `starts` are the positions where an n-gram fits in its
    sentence; other positions get id -1.
    """
    keys = ids[starts + 1].astype(np.int64)
    keys *= vocab_size
    keys += stream[starts]
    if n_lower * vocab_size <= max(_DENSE_KEYS, 2 * len(keys)):
        seen = np.bincount(keys, minlength=n_lower * vocab_size)
        uniq = np.flatnonzero(seen)
        raw = seen[uniq]
        rank = np.cumsum(seen > 0, dtype=np.int32)
        del seen
        local = rank[keys]
        local -= 1
        del rank
    else:
        uniq, local, raw = np.unique(keys, return_inverse=True, return_counts=True)
    del keys
    next_ids = np.full(len(stream), -1, np.int32)
    next_ids[starts] = local
    where = np.empty(len(uniq), np.int64)
    where[local] = starts  # one position of each n-gram
    gram = _Order(first=(uniq % vocab_size).astype(np.int32),
                  suffix=(uniq // vocab_size).astype(np.int32),
                  context=ids[where].astype(np.int32), raw=raw.astype(np.int64))
    return next_ids, gram


def _adjusted_counts(orders: list[_Order]) -> list[np.ndarray]:
    """Kneser-Ney counts: distinct left extensions below the top order, raw counts otherwise.

    N-grams that start with <s> cannot be extended to the left and keep their raw count.
    """
    adjusted = []
    for n, gram in enumerate(orders, start=1):
        if n == len(orders):
            counts = gram.raw
        else:
            counts = np.bincount(orders[n].suffix, minlength=len(gram.raw)).astype(np.int64)
            if n > 1:
                counts = np.where(gram.first == BOS, gram.raw, counts)
        adjusted.append(counts)
    return adjusted


def _last_entries(orders: list[_Order]) -> list[int | None]:
    """Per order, the n-gram whose raw count lmplz puts in the count-of-counts by mistake.

    lmplz's adjust step flushes its last n-gram of each lower order (the suffixes of the last
    top-order n-gram in suffix order) with the raw instead of the adjusted count; the discounts
    reproduce only if the same entry is counted the same way.
    """
    last: list[int | None] = [None] * len(orders)
    entry = len(orders[0].raw) - 1  # the largest word id ends the last n-gram
    for n in range(1, len(orders)):
        last[n - 1] = entry
        if n > 1 and orders[n - 1].first[entry] == BOS:
            break
        suffix = orders[n].suffix
        entry = int(np.searchsorted(suffix, entry, side="right")) - 1
        if entry < 0 or suffix[entry] != last[n - 1]:
            break
    return last


def _all_discounts(orders: list[_Order], adjusted: list[np.ndarray],
                   fallback_allowed: bool) -> tuple[list[np.ndarray], tuple[int, ...]]:
    """Discounts [0, D1, D2, D3+] per order, and the orders that needed the fallback ones."""
    discounts, fallback = [], []
    for n, (counts, entry) in enumerate(zip(adjusted, _last_entries(orders)), start=1):
        d, ok = _discounts(_count_of_counts(counts, orders[n - 1].raw, entry))
        if not ok:
            if not fallback_allowed:
                raise DiscountError(f"{n}-gram modified Kneser-Ney discounts are out of range or "
                                    "undefined for this corpus; estimate with discount_fallback")
            d = np.array((0.0, *FALLBACK_DISCOUNTS), np.float32)
            fallback.append(n)
        discounts.append(d)
    return discounts, tuple(fallback)


def _count_of_counts(adjusted: np.ndarray, raw: np.ndarray, last: int | None) -> np.ndarray:
    """How many n-grams have adjusted count 1, 2, 3, 4 (index 0 unused), lmplz's quirk included."""
    n = np.bincount(np.minimum(adjusted, 5), minlength=6)[:5].astype(np.int64)
    if last is not None:
        for count, step in ((adjusted[last], -1), (raw[last], 1)):
            if count < 5:
                n[count] += step
    return n


def _discounts(n: np.ndarray) -> tuple[np.ndarray, bool]:
    """Chen & Goodman's closed-form D1, D2, D3+ in float32 as lmplz computes them, and validity."""
    discounts = np.zeros(4, np.float32)
    if not all(n[1:4]):
        return discounts, False
    y = np.float32(n[1]) / np.float32(float(n[1]) + 2.0 * float(n[2]))
    for j in (1, 2, 3):
        discounts[j] = (np.float32(j)
                        - np.float32(j + 1) * y * np.float32(n[j + 1]) / np.float32(n[j]))
    ok = all(0.0 <= discounts[j] <= j for j in (1, 2, 3))
    return discounts, ok


def _interpolate(orders: list[_Order], adjusted: list[np.ndarray], kept: list[np.ndarray],
                 discounts: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Interpolated probabilities and backoffs (both linear, float32) of every n-gram."""
    gammas, denominators, probs = [], [], []
    uniform = np.float32(1.0 / float(np.float32(np.count_nonzero(kept[0]) - 1)))  # no <s>
    for n, (gram, counts) in enumerate(zip(orders, adjusted), start=1):
        n_contexts = 1 if n == 1 else len(orders[n - 2].raw)
        gamma, denominator = _gammas(gram.context, n_contexts, counts, kept[n - 1],
                                     discounts[n - 1])
        d = discounts[n - 1][np.minimum(counts, 3)]
        with np.errstate(divide="ignore", invalid="ignore"):
            uninterp = (counts.astype(np.float32) - d) / denominator[gram.context]
        weight = gamma[gram.context]
        if n == 1:
            uninterp[BOS], weight[BOS] = 1.0, 0.0  # lmplz: p(<s>) = 1, so b(<s>) scores as q
            lower = np.full(len(counts), uniform, np.float32)
        else:
            lower = probs[-1][gram.suffix]
        probs.append(uninterp + weight * lower)
        gammas.append(gamma)
        denominators.append(denominator)
    backoffs = [np.where(denominators[n] > 0, gammas[n], np.float32(1.0)).astype(np.float32)
                for n in range(1, len(orders))]
    return probs, backoffs


def _gammas(context: np.ndarray, n_contexts: int, counts: np.ndarray, kept: np.ndarray,
            discounts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per context: the mass left for the lower order, and the sum of adjusted counts.

    Pruned n-grams give all their mass to the lower order (lmplz's normaliser).
    """
    denominator = np.bincount(context, weights=counts, minlength=n_contexts).astype(np.float32)
    numerator = np.zeros(n_contexts, np.float32)
    bucket = np.minimum(counts, 3)
    for j in (1, 2, 3):
        of_j = np.bincount(context[kept & (bucket == j)], minlength=n_contexts)
        numerator = numerator + discounts[j] * of_j.astype(np.float32)
    pruned = np.bincount(context[~kept], weights=counts[~kept], minlength=n_contexts)
    numerator = numerator + pruned.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        return numerator / denominator, denominator


def _log10f(x: np.ndarray) -> np.ndarray:
    """log10 of float32 values by the C library's log10f, the function lmplz calls.

    numpy's float32 log10 differs from glibc's in the last bit for about half of all values;
    calling log10f itself makes the ARPA digit-for-digit lmplz's (0.35 us a value).
    """
    log10f = _c_log10f()
    if log10f is None:
        return np.log10(x.astype(np.float64)).astype(np.float32)
    return np.fromiter(map(log10f, x.tolist()), np.float32, count=len(x))


@functools.cache
def _c_log10f() -> Callable[[float], float] | None:
    """The C math library's single-precision log10, or None where no libm can be loaded."""
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    function = ctypes.CDLL(name).log10f
    function.restype, function.argtypes = ctypes.c_float, [ctypes.c_float]
    return function


def _format_floats(values: np.ndarray) -> list[str]:
    """Shortest round-trip float32 text as KenLM prints it: "0", "-1", "-0.30103", "1e-7"."""
    text = values.astype(str).tolist()
    odd = (values == np.round(values)) | (np.abs(values) < 1e-4) | (np.abs(values) >= 1e16)
    for i in np.flatnonzero(odd).tolist():
        text[i] = _format_float(values[i])
    return text


def _format_float(value: np.float32) -> str:
    """One float32 in double-conversion's shortest form (decimal from 1e-6 up to 1e21)."""
    if value == 0 or np.float32(1e-6) <= abs(value) < np.float32(1e21):
        return np.format_float_positional(value, unique=True, trim="-")
    return np.format_float_scientific(value, unique=True, trim="-", exp_digits=1)


def _write_arpa(out: TextIO, vocab: list[str], orders: list[_Order], kept: list[np.ndarray],
                probs: list[np.ndarray], backoffs: list[np.ndarray]) -> tuple[int, ...]:
    """Write the ARPA text in lmplz's layout; return the n-gram counts per order."""
    counts = tuple(int(np.count_nonzero(k)) for k in kept)
    out.write("\\data\\\n")
    out.writelines(f"ngram {n}={c}\n" for n, c in enumerate(counts, start=1))
    words = np.array(vocab, dtype=object)
    names = words
    for n, (gram, keep, prob) in enumerate(zip(orders, kept, probs), start=1):
        if n == 1:
            names = names[keep]
        else:
            position = np.cumsum(kept[n - 2]) - 1  # id -> row among the kept lower n-grams
            lower = names[position[gram.suffix[keep]]]
            names = np.array([f"{w} {s}" for w, s in zip(words[gram.first[keep]], lower)],
                             dtype=object)
        columns = [_format_floats(np.minimum(np.float32(0), _log10f(prob[keep]))), names]
        if n < len(orders):
            columns.append(_format_floats(_log10f(backoffs[n - 1][keep])))
        out.write(f"\n\\{n}-grams:\n")
        out.writelines("\t".join(row) + "\n" for row in zip(*columns))
    out.write("\n\\end\\\n")
    return counts
