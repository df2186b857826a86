"""Tab-separated tables with a header line: w2vu's own bookkeeping files (lists, rejects, counts).

Fields never contain tabs or newlines: the inventory rejects paths that do, and free text is
flattened with `clean_field` before it is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path


def clean_field(value: object) -> str:
    """Render a value as one TSV field: tabs and line breaks become spaces."""
    return " ".join(str(value).split()) if value is not None else ""


def write_table(path: str | os.PathLike, columns: Sequence[str],
                rows: Iterable[Mapping[str, object]]) -> int:
    """Write rows (dicts keyed by column) atomically; return how many were written."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
        out.write("\t".join(columns) + "\n")
        for row in rows:
            out.write("\t".join(clean_field(row.get(c, "")) for c in columns) + "\n")
            count += 1
    return count


def read_table(path: str | os.PathLike, required: Sequence[str] = ()) -> list[dict[str, str]]:
    """Read a headed TSV into dicts; a missing required column is a user error naming the file."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="\n") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise W2vuError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise W2vuError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); "
                        "save it as UTF-8") from None
    if not lines:
        raise W2vuError(f"{path}: empty file; a header line is required")
    header = lines[0].split("\t")
    missing = [c for c in required if c not in header]
    if missing:
        raise W2vuError(f"{path}: missing column(s) {', '.join(missing)} in the header line "
                        f"(found: {', '.join(header)})")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) > len(header):
            raise W2vuError(f"{path}:{number}: {len(fields)} fields but the header has "
                            f"{len(header)}")
        rows.append(dict(zip(header, fields + [""] * (len(header) - len(fields)))))
    return rows
