"""``metrics.tsv``: one row per validation, rewritten whole from the rows a rolling checkpoint
holds, so a resumed run never duplicates or loses a row."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from w2vu.io.atomic import atomic_path

METRICS = "metrics.tsv"


def write_metrics(path: Path, columns: Sequence[str], rows: list[dict[str, float]],
                  digits: int, counts: Sequence[str] = ("update",)) -> None:
    """A header of ``columns``, then each row: the ``counts`` columns as integers, the others
    to ``digits`` significant digits (``nan``, ``inf``)."""
    lines = ["\t".join(columns)]
    for row in rows:
        lines.append("\t".join(str(int(row[c])) if c in counts else _number(row[c], digits)
                               for c in columns))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _number(value: float, digits: int) -> str:
    return "nan" if math.isnan(value) else ("inf" if math.isinf(value) else f"{value:.{digits}g}")
