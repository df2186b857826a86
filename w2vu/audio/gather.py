"""Stages `manifest` and `audio-summary`: gather the shards of a language.

`manifest` writes one fairseq manifest per split (rows sorted by key, so the order does not depend
on the number of shards); `labels` writes `.wrd`, `.ltr` and `.given.phn` label files in the same
line order.
`audio-summary` gathers every rejects table into one, checks that kept + rejected = found, and
stops with a clear error when a language has no usable audio at all.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from w2vu.audio import SAMPLE_RATE
from w2vu.audio.inventory import read_shard_list
from w2vu.errors import W2vuError
from w2vu.io.atomic import write_text
from w2vu.io.manifest import read_manifest, write_manifest
from w2vu.io.rejects import NO_SPLIT, Reject, read_rejects, write_rejects
from w2vu.io.tables import write_table

log = logging.getLogger(__name__)
LABEL_SUFFIXES = ("wrd", "ltr", "given.phn")


def words_to_letters(words: str) -> str:
    """fairseq `.ltr`: letters separated by spaces, `|` after every word (`wrd_to_ltr.py`)."""
    return " ".join(" ".join(word) + " |" for word in words.split())


def gather_split(trimmed_manifests: Sequence[str], split_root: str | os.PathLike,
                 out_manifest: str | os.PathLike) -> int:
    """Write a split's manifest from its trimmed shards; return its number of rows.

    Rows are `<shard folder>/<key>.flac` below `split_root`, sorted by key.
    """
    rows: list[tuple[str, str, int]] = []
    for shard_manifest in trimmed_manifests:
        manifest = read_manifest(shard_manifest)
        shard_dir = os.path.relpath(manifest.root, os.path.realpath(split_root))
        rows += [(rel, f"{shard_dir}/{rel}", n) for rel, n in manifest.rows]
    rows.sort()
    write_manifest(out_manifest, split_root, ((path, n) for _, path, n in rows))
    hours = sum(n for _, _, n in rows) / SAMPLE_RATE / 3600
    log.info("manifest: %d utterances, %.2f h in %s", len(rows), hours, out_manifest)
    if not rows:
        log.warning("manifest: split %s is empty", out_manifest)
    return len(rows)


def write_labels(manifest: str | os.PathLike, shard_lists: Sequence[str], split: str,
                 out_prefix: str) -> None:
    """Write `.wrd`, `.ltr` and `.given.phn` (the references' own phones, which the text stage
    checks or replaces when it writes `.phn`) in the manifest's line order (empty line: none)."""
    by_key = {e.key: e for lst in shard_lists for e in read_shard_list(lst, split)}
    keys = [os.path.splitext(rel.split("/", 1)[1])[0] for rel, _ in read_manifest(manifest).rows]
    entries = [by_key[k] for k in keys]
    lines = {
        "wrd": [" ".join(e.transcript.split()) for e in entries],
        "ltr": [words_to_letters(e.transcript) for e in entries],
        "given.phn": [" ".join(e.phones.split()) for e in entries],
    }
    for suffix in LABEL_SUFFIXES:
        write_text(f"{out_prefix}.{suffix}", "".join(line + "\n" for line in lines[suffix]))
    missing = sum(1 for e in entries if not e.transcript.strip())
    log.info("labels: %d utterances, %d without a reference transcript", len(entries), missing)


def summarize_language(*, inventory_rejects: str, shard_lists: Sequence[str],
                       converted: Sequence[str], convert_rejects: Sequence[str],
                       trimmed: Sequence[str], trim_rejects: Sequence[str],
                       out_rejects: str | os.PathLike, out_summary: str | os.PathLike) -> None:
    """Gather rejects, write per-split counts and durations, check the books balance."""
    rejects: list[Reject] = read_rejects(inventory_rejects)
    for table in [*convert_rejects, *trim_rejects]:
        rejects += read_rejects(table)
    write_rejects(out_rejects, rejects)

    def split_of(path: str) -> str:
        return Path(path).parent.name

    splits: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(
        ("found", "kept", "rejected", "seconds_in", "seconds_kept"), 0))
    for lst in shard_lists:
        for entry in read_shard_list(lst):
            splits[entry.split]["found"] += 1
    for man in converted:
        splits[split_of(man)]["seconds_in"] += sum(n for _, n in read_manifest(man).rows)
    for man in trimmed:
        rows = read_manifest(man).rows
        splits[split_of(man)]["kept"] += len(rows)
        splits[split_of(man)]["seconds_kept"] += sum(n for _, n in rows)
    for table in [*convert_rejects, *trim_rejects]:
        splits[split_of(table)]["rejected"] += len(read_rejects(table))
    for row in splits.values():
        row["seconds_in"] /= SAMPLE_RATE
        row["seconds_kept"] /= SAMPLE_RATE
    inventory_rejected = len(read_rejects(inventory_rejects))
    if inventory_rejected:
        splits[NO_SPLIT].update(found=inventory_rejected, rejected=inventory_rejected)
    write_table(out_summary, ("split", "found", "kept", "rejected", "seconds_in",
                              "seconds_kept"),
                ({"split": s, **{k: round(v, 3) for k, v in r.items()}}
                 for s, r in splits.items()))

    found = sum(r["found"] for r in splits.values())
    kept = sum(r["kept"] for r in splits.values())
    for split, r in splits.items():
        if r["found"] != r["kept"] + r["rejected"]:
            raise RuntimeError(f"split {split}: {r['found']} found != {r['kept']} kept + "
                               f"{r['rejected']} rejected; rerun the audio stages")
    by_stage: dict[str, int] = {}
    for r in rejects:
        by_stage[r.stage] = by_stage.get(r.stage, 0) + 1
    log.info("audio: %d found = %d kept + %d rejected (%s); rejects in %s", found, kept,
             len(rejects), ", ".join(f"{k} {v}" for k, v in by_stage.items()) or "none",
             out_rejects)
    if kept == 0:
        reasons: dict[str, int] = {}
        for r in rejects:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        common = "; ".join(f"{n} x {reason}" for reason, n in
                           sorted(reasons.items(), key=lambda kv: -kv[1])[:5])
        raise W2vuError(f"no usable audio: all {found} files were rejected ({common}); the "
                        "per-shard *.rejects.tsv files under the language's audio/ folder list "
                        "every file with its reason")
