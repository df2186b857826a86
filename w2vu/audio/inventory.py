"""Stage `inventory`: find a language's audio, give each file a key, a split and a shard.

Sources are folders and globs, or a TSV table (`path` plus optional `speaker`, `split`,
`transcript`, `phones` columns). The key is the path relative to the common folder of all files,
without its extension; converted and trimmed audio keep it (`key.flac`). Splits come from a
deterministic hash of the key with given fractions, from explicit list files, or from the table's
`split` column. Shards come from a second hash: adding files only changes the shards they land in.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.io.rejects import Reject, write_rejects
from w2vu.io.tables import read_table, write_table

log = logging.getLogger(__name__)
STAGE = "inventory"
ENTRY_COLUMNS = ("key", "split", "path", "speaker", "transcript", "phones")
# What a folder scan takes: every format the decoder reads (ffmpeg for the compressed ones).
AUDIO_EXTENSIONS = ("wav", "flac", "ogg", "opus", "mp3", "m4a", "aac", "wma", "webm", "aiff", "aif",
                    "au", "sph", "w64", "caf")


@dataclass(frozen=True)
class Entry:
    """One audio file and what is known about it."""

    key: str
    path: str
    speaker: str = ""
    transcript: str = ""
    phones: str = ""
    split: str = ""


@dataclass(frozen=True)
class SplitRule:
    """How files are assigned to splits: `hash` (fractions), `lists` (files) or `column`."""

    method: str
    names: tuple[str, ...]
    fractions: tuple[float, ...] = ()
    lists: tuple[str, ...] = ()


def unit_hash(text: str, salt: str) -> float:
    """A stable number in [0, 1) from a string (SHA-1), independent of Python's hash seed."""
    digest = hashlib.sha1(f"{salt}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def shard_of(key: str, shards: int) -> int:
    """The shard a key belongs to."""
    return int(unit_hash(key, "shard") * shards)


def split_by_fraction(key: str, names: Sequence[str], fractions: Sequence[float]) -> str:
    """The split a key falls into when splits take the given fractions of the hash range."""
    u = unit_hash(key, "split") * sum(fractions)
    edge = 0.0
    for name, fraction in zip(names, fractions):
        edge += fraction
        if u < edge:
            return name
    return names[-1]


def find_audio_files(patterns: Sequence[str], extensions: Sequence[str],
                     base: Path) -> tuple[list[str], Counter]:
    """Expand folders (recursively, audio extensions only) and globs (every file matched).

    Returns sorted absolute paths and a count of folder files skipped per extension, so that
    nothing a folder holds goes unmentioned.
    """
    wanted = {e.lower().lstrip(".") for e in extensions}
    found: set[str] = set()
    skipped: Counter = Counter()
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        if os.path.isdir(full):
            for root, dirs, files in os.walk(full):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    ext = os.path.splitext(name)[1].lower().lstrip(".")
                    if name.startswith("."):
                        continue
                    if ext in wanted:
                        found.add(os.path.abspath(os.path.join(root, name)))
                    else:
                        skipped[ext or "(none)"] += 1
        else:
            matches = [m for m in glob.glob(full, recursive=True) if os.path.isfile(m)]
            if not matches and not glob.has_magic(full):
                raise W2vuError(f"audio path {pattern!r} does not exist (resolved to {full})")
            found.update(os.path.abspath(m) for m in matches)
    return sorted(found), skipped


def entries_from_table(table: Path) -> list[Entry]:
    """Entries from a TSV table; relative paths are relative to the table's folder."""
    entries = []
    for row in read_table(table, required=("path",)):
        path = row["path"] if os.path.isabs(row["path"]) else str(table.parent / row["path"])
        entries.append(Entry(key="", path=os.path.abspath(path), speaker=row.get("speaker", ""),
                             transcript=row.get("transcript", ""), phones=row.get("phones", ""),
                             split=row.get("split", "")))
    return entries


def key_for(path: str, common: str) -> str:
    """Relative path without extension: the name the file keeps through every stage."""
    return os.path.splitext(os.path.relpath(path, common))[0]


def is_utf8(path: str) -> bool:
    """False for a name the file system gave as undecodable bytes (Python's surrogate escapes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_path(path: str) -> str:
    """A path that is not UTF-8 with its odd bytes written as `\\xe9`, for the rejects table."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def assign_keys(entries: list[Entry]) -> tuple[list[Entry], list[Reject]]:
    """Give every entry its key; duplicates, missing files and unwritable names become rejects."""
    rejects: list[Reject] = []
    present: list[Entry] = []
    seen_paths: set[str] = set()
    for e in entries:
        if not is_utf8(e.path):
            rejects.append(Reject(printable_path(e.path), STAGE,
                                  "file name is not valid UTF-8, which the manifests and label "
                                  "files are written in; rename the file"))
        elif any(c in e.path for c in "\t\n\r"):
            rejects.append(Reject(e.path.replace("\t", " ").replace("\n", " "), STAGE,
                                  "path contains a tab or line break, which a manifest cannot "
                                  "hold; rename the file"))
        elif e.path in seen_paths:
            rejects.append(Reject(e.path, STAGE, "listed more than once"))
        elif not os.path.isfile(e.path):
            rejects.append(Reject(e.path, STAGE, "file not found"))
        else:
            seen_paths.add(e.path)
            present.append(e)
    if not present:
        return [], rejects
    common = os.path.commonpath([os.path.dirname(e.path) for e in present])
    keyed: list[Entry] = []
    owner: dict[str, str] = {}
    for e in sorted(present, key=lambda e: e.path):
        key = key_for(e.path, common)
        if key in owner:
            rejects.append(Reject(e.path, STAGE, f"same name as {owner[key]} once converted to "
                                  "FLAC; rename one of them"))
            continue
        owner[key] = e.path
        keyed.append(replace(e, key=key))
    return keyed, rejects


def read_split_lists(names: Sequence[str], lists: Sequence[str], base: Path) -> dict[str, str]:
    """Map what each list names to its split: a path (absolute, or relative to the list file;
    with or without extension) or a key."""
    split_of: dict[str, str] = {}
    for name, list_file in zip(names, lists):
        list_path = Path(list_file) if os.path.isabs(list_file) else base / list_file
        try:
            lines = list_path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise W2vuError(f"split list for {name!r}: {list_path}: {e.strerror}") from None
        for line in filter(None, (ln.strip() for ln in lines)):
            resolved = os.path.abspath(line if os.path.isabs(line) else list_path.parent / line)
            for ident in (resolved, os.path.splitext(resolved)[0], os.path.splitext(line)[0]):
                split_of[ident] = name
    return split_of


def assign_splits(entries: list[Entry], rule: SplitRule,
                  base: Path) -> tuple[list[Entry], list[Reject]]:
    """Set each entry's split according to the rule; unassignable entries become rejects."""
    assigned: list[Entry] = []
    rejects: list[Reject] = []
    listed = read_split_lists(rule.names, rule.lists, base) if rule.method == "lists" else {}
    for e in entries:
        if rule.method == "hash":
            split = split_by_fraction(e.key, rule.names, rule.fractions)
        elif rule.method == "lists":
            split = (listed.get(e.path) or listed.get(os.path.splitext(e.path)[0])
                     or listed.get(e.key, ""))
        else:
            split = e.split
        if split in rule.names:
            assigned.append(replace(e, split=split))
        elif rule.method == "lists":
            rejects.append(Reject(e.path, STAGE, "not in any split list"))
        else:
            rejects.append(Reject(e.path, STAGE, f"split {split!r} is not one of the configured "
                                  f"split names ({', '.join(rule.names)})"))
    return assigned, rejects


def attach_references(entries: list[Entry], references: Path) -> list[Entry]:
    """Fill transcripts and phones from a references table (`path` or `key`, `transcript`,
    optional `phones`)."""
    refs: dict[str, dict[str, str]] = {}
    for row in read_table(references, required=("transcript",)):
        ident = row.get("path") or row.get("key")
        if not ident:
            raise W2vuError(f"{references}: needs a 'path' or 'key' column")
        resolved = ident if os.path.isabs(ident) else str(references.parent / ident)
        refs[os.path.abspath(resolved)] = row
        refs[os.path.splitext(ident)[0]] = row
    out = []
    for e in entries:
        row = refs.get(e.path) or refs.get(e.key) or {}
        out.append(replace(e, transcript=row.get("transcript", e.transcript),
                           phones=row.get("phones", e.phones)))
    return out


def shard_list_path(out_dir: str | os.PathLike, shard: int) -> Path:
    """Where the list of one shard (all splits) is written."""
    return Path(out_dir) / f"{shard:03d}.tsv"


def write_shard_lists(entries: list[Entry], shards: int, out_dir: str | os.PathLike) -> None:
    """Write every shard's list, sorted by key; an empty shard gets a header-only file.

    One list per shard holds all splits (the split is a column), because the set of splits
    differs between languages while the shard count does not.
    """
    buckets: list[list[Entry]] = [[] for _ in range(shards)]
    for e in sorted(entries, key=lambda e: e.key):
        buckets[shard_of(e.key, shards)].append(e)
    for shard, bucket in enumerate(buckets):
        write_table(shard_list_path(out_dir, shard), ENTRY_COLUMNS, (e.__dict__ for e in bucket))


def read_shard_list(path: str | os.PathLike, split: str | None = None) -> list[Entry]:
    """Read one shard list written by `write_shard_lists`, optionally one split of it."""
    entries = [Entry(**row) for row in read_table(path, ENTRY_COLUMNS)]
    return [e for e in entries if split is None or e.split == split]


def build_inventory(*, patterns: Sequence[str], table: str | None, references: str | None,
                    extensions: Sequence[str], rule: SplitRule, shards: int,
                    out_dir: str | os.PathLike, out_rejects: str | os.PathLike,
                    base: Path = Path(".")) -> dict[str, int]:
    """Find, key, split and shard a language's audio; return the number of files per split."""
    if table:
        entries = entries_from_table(Path(base, table))
        log.info("inventory: %d rows in %s", len(entries), table)
    else:
        paths, skipped = find_audio_files(patterns, extensions, base)
        entries = [Entry(key="", path=p) for p in paths]
        log.info("inventory: %d audio files under %s", len(entries), ", ".join(patterns))
        if skipped:
            log.info("inventory: skipped files whose extension is not in audio.extensions: %s",
                     ", ".join(f".{ext} ({n})" for ext, n in skipped.most_common()))
    found = len(entries)
    if found == 0:
        raise W2vuError(f"no audio found in {table or ', '.join(patterns)}; check the language's "
                        "`audio` setting in the config")
    keyed, rejects = assign_keys(entries)
    if references:
        keyed = attach_references(keyed, Path(base, references))
    assigned, split_rejects = assign_splits(keyed, rule, base)
    rejects += split_rejects
    write_shard_lists(assigned, shards, out_dir)
    write_rejects(out_rejects, rejects)
    counts = Counter(e.split for e in assigned)
    for r in rejects:
        log.warning("rejected %s: %s", r.path, r.reason)
    log.info("inventory: %d found = %d listed (%s) + %d rejected", found, sum(counts.values()),
             ", ".join(f"{k} {counts[k]}" for k in rule.names), len(rejects))
    for name in rule.names:
        if not counts[name]:
            log.warning("inventory: split %r has no files", name)
    assert found == sum(counts.values()) + len(rejects), "inventory counts do not add up"
    return dict(counts)
