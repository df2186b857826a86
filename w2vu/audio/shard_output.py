"""Writing one shard of audio: per-file work in worker processes, then manifest and rejects.

`convert` and `trim` both turn a list of items into FLAC files under a shard folder; this is the
shared part: an atomic folder, the order-preserving pool, and the bookkeeping of what was kept.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from w2vu.io.atomic import atomic_dir
from w2vu.io.manifest import write_manifest
from w2vu.io.rejects import Reject, write_rejects
from w2vu.parallel import map_in_order

log = logging.getLogger(__name__)
T = TypeVar("T")
Kept = tuple[str, int]


def write_audio_shard(work: Callable[..., Kept | Reject], items: Sequence[T],
                      out_dir: str | os.PathLike, out_manifest: str | os.PathLike,
                      out_rejects: str | os.PathLike, workers: int,
                      stage: str) -> tuple[list[Kept], list[Reject]]:
    """Run `work(item, out_dir=...)` on every item; write the manifest of what was kept (relative
    path, samples) and the rejects table. The folder appears only once every file is written."""
    kept: list[Kept] = []
    rejects: list[Reject] = []
    with atomic_dir(out_dir) as tmp_dir:
        job = functools.partial(work, out_dir=Path(tmp_dir))
        for result in map_in_order(job, items, workers, stage):
            (rejects if isinstance(result, Reject) else kept).append(result)
    write_manifest(out_manifest, out_dir, kept)
    write_rejects(out_rejects, rejects)
    for r in rejects:
        log.warning("%s rejected %s: %s", stage, r.path, r.reason)
    return kept, rejects
