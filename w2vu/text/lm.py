"""Stages `phone-lm` and `word-lm`: an ARPA n-gram LM from text, by w2vu's estimator or by a
configured `lmplz`.

The estimator (`w2vu.text.ngram`) reproduces lmplz with `--discount_fallback`; an `lmplz` binary,
when the user has one, can take over for very large word corpora.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Sequence

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.text.arpa import arpa_counts
from w2vu.text.ngram import estimate_arpa

log = logging.getLogger(__name__)


def run_lmplz(lmplz: str, text: str | os.PathLike, order: int, out: str | os.PathLike,
              prune: Sequence[int] | None) -> list[int]:
    """`lmplz -o order --discount_fallback [--prune ...] < text > out`; return n-gram counts."""
    cmd = [lmplz, "-o", str(order), "--discount_fallback", "-S", "20%"]
    if prune:
        cmd += ["--prune", *map(str, prune)]
    with open(text, "rb") as src, atomic_path(out) as tmp, open(tmp, "wb") as dst:
        try:
            done = subprocess.run(cmd, stdin=src, stdout=dst, stderr=subprocess.PIPE, check=False)
        except OSError as e:
            raise W2vuError(f"cannot run lmplz {lmplz!r}: {e.strerror}; fix text.lmplz") from None
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise W2vuError(f"lmplz failed on {text} (exit {done.returncode}): {' '.join(tail)}")
    return arpa_counts(out)


def build_lm(text: str | os.PathLike, order: int, out: str | os.PathLike,
             prune: Sequence[int] | None = None, lmplz: str | None = None) -> list[int]:
    """Write the ARPA LM of `text` and return its n-gram counts per order."""
    if not os.path.isfile(text) or os.path.getsize(text) == 0:
        raise W2vuError(f"LM text {text} is missing or empty; rerun the text stages")
    start = time.perf_counter()
    if lmplz:
        counts = run_lmplz(lmplz, text, order, out, prune)
        how = f"lmplz ({lmplz})"
    else:
        stats = estimate_arpa(str(text), order, out, prune=prune)
        counts = list(stats.counts)
        how = f"w2vu estimator; {stats.tokens} tokens, {stats.sentences} sentences"
        if stats.fallback_orders:
            log.info("lm: orders %s used the fallback discounts (as lmplz --discount_fallback)",
                     ", ".join(map(str, stats.fallback_orders)))
    log.info("lm: %d-gram %s in %.1f s (%s); n-grams per order: %s", order, out,
             time.perf_counter() - start, how, " ".join(map(str, counts)))
    return counts
