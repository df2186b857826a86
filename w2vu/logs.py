"""Logging for the CLI and progress lines that are readable in a rule's log file."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("w2vu")


def setup_logging(verbose: bool = False) -> None:
    """Send w2vu's log to stderr with timestamps (rules redirect stderr into their log file)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


def progress(items: Iterable[T], total: int, what: str, every_s: float = 10.0) -> Iterator[T]:
    """Yield `items`, logging 'what: done/total (pct, rate)' at most every `every_s` seconds.

    Plain log lines rather than a redrawn bar, so that a rule's log file stays readable.
    """
    start = last = time.monotonic()
    done = 0
    for done, item in enumerate(items, start=1):
        yield item
        now = time.monotonic()
        if now - last >= every_s and done < total:
            last = now
            log.info("%s: %d/%d (%.0f%%, %.1f/s)", what, done, total, 100 * done / max(total, 1),
                     done / (now - start))
    elapsed = time.monotonic() - start
    log.info("%s: %d/%d done in %.1f s", what, done, total, elapsed)
