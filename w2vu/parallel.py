"""Order-preserving map over files with a pool of worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from w2vu.logs import progress

T = TypeVar("T")
R = TypeVar("R")


def map_in_order(func: Callable[[T], R], items: Sequence[T], workers: int,
                 what: str) -> Iterator[R]:
    """Apply `func` to every item, in order, with progress lines; `workers` > 1 uses processes.

    `func` must be a picklable top-level function (use functools.partial for settings).
    """
    if workers <= 1 or len(items) <= 1:
        yield from progress(map(func, items), len(items), what)
        return
    chunk = max(1, min(16, len(items) // (workers * 8)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from progress(pool.map(func, items, chunksize=chunk), len(items), what)
