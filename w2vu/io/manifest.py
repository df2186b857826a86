"""fairseq manifests (`.tsv`) and VAD segment files (`.vads`), in the reference formats.

Manifest: line 1 is the absolute root folder, then `relative/path<TAB>num_samples` per utterance.
`.vads`: one line per manifest row, space-separated `start:end` sample intervals of speech.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path


@dataclass(frozen=True)
class Manifest:
    """A fairseq manifest: the root folder and (relative path, number of samples) per row."""

    root: Path
    rows: tuple[tuple[str, int], ...]

    def paths(self) -> list[Path]:
        """Absolute path of every row, in manifest order."""
        return [self.root / rel for rel, _ in self.rows]


def write_manifest(path: str | os.PathLike, root: str | os.PathLike,
                   rows: Iterable[tuple[str, int]]) -> None:
    """Write a manifest atomically; the root line is the real absolute path, as fairseq writes."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
        out.write(os.path.realpath(root) + "\n")
        for rel, n in rows:
            out.write(f"{rel}\t{int(n)}\n")


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read a manifest; malformed lines are a user error naming file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise W2vuError(f"{path}: manifest not found") from None
    if not lines:
        raise W2vuError(f"{path}: empty manifest; the first line must be the root folder")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        rel, sep, n = line.rpartition("\t")
        if not sep or not n.isdigit():
            raise W2vuError(f"{path}:{number}: expected 'relative/path<TAB>num_samples', "
                            f"got {line!r}")
        rows.append((rel, int(n)))
    return Manifest(Path(lines[0]), tuple(rows))


Segments = Sequence[tuple[int, int]]


def format_vads_line(segments: Segments) -> str:
    """One `.vads` line: `start:end` pairs separated by spaces (empty when no speech)."""
    return " ".join(f"{s}:{e}" for s, e in segments)


def parse_vads_line(line: str) -> list[tuple[int, int]]:
    """Inverse of `format_vads_line`."""
    return [(int(s), int(e)) for s, e in (pair.split(":") for pair in line.split())]


def write_vads(path: str | os.PathLike, per_utterance: Iterable[Segments]) -> None:
    """Write one `.vads` line per utterance, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
        for segments in per_utterance:
            out.write(format_vads_line(segments) + "\n")


def read_vads(path: str | os.PathLike) -> list[list[tuple[int, int]]]:
    """Read a `.vads` file into one segment list per line."""
    text = Path(path).read_text(encoding="utf-8")
    return [parse_vads_line(line) for line in text.split("\n")[:-1]] if text else []
