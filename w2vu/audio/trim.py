"""Stage `trim`: keep the speech segments of each file, concatenated, with an optional pad.

A file with no speech is kept whole (the reference's behaviour) or rejected, by configuration.
Samples are copied as 16-bit integers, so trimming adds no requantisation.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from w2vu.audio import SAMPLE_RATE
from w2vu.audio.inventory import read_shard_list
from w2vu.audio.shard_output import write_audio_shard
from w2vu.io.manifest import read_manifest, read_vads
from w2vu.io.rejects import Reject

log = logging.getLogger(__name__)
STAGE = "trim"


@dataclass(frozen=True)
class TrimParams:
    """Pad added around each speech segment, what to do without speech, shortest output kept."""

    pad_seconds: float = 0.0
    no_speech: str = "keep"  # "keep" the whole file, or "reject" it
    min_seconds: float = 0.2


def padded_segments(segments: list[tuple[int, int]], pad: int,
                    length: int) -> list[tuple[int, int]]:
    """Widen segments by `pad` samples on each side, clip to the file and merge overlaps."""
    merged: list[tuple[int, int]] = []
    for start, end in segments:
        start, end = max(0, start - pad), min(length, end + pad)
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _trim_one(item: tuple[str, str, str, list[tuple[int, int]]], out_dir: Path,
              params: TrimParams) -> tuple[str, int] | Reject:
    rel, path, source, segments = item
    audio, rate = sf.read(path, dtype="int16")
    if not segments:
        if params.no_speech == "reject":
            return Reject(source, STAGE, "no speech found by VAD (audio.trim.no_speech=reject)")
        kept = audio
    else:
        pad = int(round(params.pad_seconds * rate))
        kept = np.concatenate([audio[s:e] for s, e in padded_segments(segments, pad, len(audio))])
    if len(kept) < params.min_seconds * rate:
        return Reject(source, STAGE, f"too short after trimming: {len(kept) / rate:.3f} s < "
                      f"audio.trim.min_seconds={params.min_seconds}")
    target = out_dir / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(target, kept, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return rel, len(kept)


def trim_shard(shard_list: str | os.PathLike, split: str, manifest: str | os.PathLike,
               vads: str | os.PathLike, out_dir: str | os.PathLike,
               out_manifest: str | os.PathLike, out_rejects: str | os.PathLike,
               params: TrimParams, workers: int = 1) -> tuple[int, int]:
    """Trim every file of a shard; return (kept, rejected).

    The shard list names the original files, so that rejects point at what the user gave.
    """
    source_of = {f"{e.key}.flac": e.path for e in read_shard_list(shard_list, split)}
    rows = read_manifest(manifest)
    segments = read_vads(vads)
    if len(segments) != len(rows.rows):
        raise RuntimeError(f"{vads} has {len(segments)} lines for {len(rows.rows)} rows of "
                           f"{manifest}; rerun the vad stage")
    items = [(rel, str(path), source_of.get(rel, str(path)), segs)
             for (rel, _), path, segs in zip(rows.rows, rows.paths(), segments)]
    work = functools.partial(_trim_one, params=params)
    kept, rejects = write_audio_shard(work, items, out_dir, out_manifest, out_rejects, workers,
                                      STAGE)
    before = sum(n for _, n in rows.rows)
    after = sum(n for _, n in kept)
    log.info("trim: %d files in, %d kept, %d rejected; %.1f s -> %.1f s (%.1f%% kept)",
             len(items), len(kept), len(rejects), before / SAMPLE_RATE, after / SAMPLE_RATE,
             100 * after / max(before, 1))
    return len(kept), len(rejects)
