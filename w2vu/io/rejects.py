"""The rejects table: every input a stage could not use, with the stage and the reason.

Nothing is dropped silently: kept + rejected = found is checked when the tables are gathered.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from w2vu.io.tables import read_table, write_table

REJECT_COLUMNS = ("path", "stage", "reason")
# The `audio/summary.tsv` row of the files the inventory rejected before they had a split.
NO_SPLIT = "(no split)"


@dataclass(frozen=True)
class Reject:
    """One input that a stage could not use."""

    path: str
    stage: str
    reason: str


def write_rejects(path: str | os.PathLike, rejects: list[Reject]) -> None:
    """Write a rejects table (header only when nothing was rejected)."""
    write_table(path, REJECT_COLUMNS, (r.__dict__ for r in rejects))


def read_rejects(path: str | os.PathLike) -> list[Reject]:
    """Read a rejects table written by `write_rejects`."""
    return [Reject(**row) for row in read_table(path, REJECT_COLUMNS)]
