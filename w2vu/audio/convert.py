"""Stage `convert`: any audio file -> 16 kHz mono 16-bit FLAC under the same relative key.

Channels are averaged, resampling uses soxr at high quality. Files that cannot be used (undecodable,
empty, NaN-filled, shorter or longer than the configured limits) become rows of the rejects table.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from w2vu.audio import SAMPLE_RATE
from w2vu.audio.decode import UndecodableAudio, decode
from w2vu.audio.inventory import read_shard_list
from w2vu.audio.shard_output import write_audio_shard
from w2vu.io.rejects import Reject

log = logging.getLogger(__name__)
STAGE = "convert"


@dataclass(frozen=True)
class DurationLimits:
    """Accepted input durations in seconds."""

    min_seconds: float = 0.5
    max_seconds: float = 120.0


def to_mono_16k(data: np.ndarray, rate: int) -> np.ndarray:
    """Average channels and resample to 16 kHz (soxr HQ); float32 in, float32 out."""
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def unusable_reason(data: np.ndarray, rate: int, limits: DurationLimits) -> str | None:
    """Why decoded audio cannot be used, or None when it can."""
    if data.shape[0] == 0:
        return "no audio samples (zero length)"
    if not np.isfinite(data).all():
        return "contains NaN or infinite samples"
    seconds = data.shape[0] / rate
    if seconds < limits.min_seconds:
        return (f"too short: {seconds:.3f} s < audio.min_seconds={limits.min_seconds} "
                "(lower the limit to keep it)")
    if seconds > limits.max_seconds:
        return (f"too long: {seconds:.1f} s > audio.max_seconds={limits.max_seconds} "
                "(split the recording or raise the limit)")
    return None


def write_flac16(path: Path, samples: np.ndarray) -> None:
    """Write float samples in [-1, 1) as 16 kHz 16-bit FLAC, clipping instead of wrapping."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(samples, -1.0, 32767 / 32768), SAMPLE_RATE, format="FLAC",
             subtype="PCM_16")


def _convert_one(item: tuple[str, str], out_dir: Path,
                 limits: DurationLimits) -> tuple[str, int] | Reject:
    """Convert one file; return (relative output path, samples) or a Reject."""
    source, key = item
    try:
        data, rate = decode(source)
    except UndecodableAudio as e:
        return Reject(source, STAGE, str(e))
    reason = unusable_reason(data, rate, limits)
    if reason:
        return Reject(source, STAGE, reason)
    samples = to_mono_16k(data, rate)
    rel = f"{key}.flac"
    write_flac16(out_dir / rel, samples)
    return rel, len(samples)


def convert_shard(shard_list: str | os.PathLike, split: str, out_dir: str | os.PathLike,
                  out_manifest: str | os.PathLike, out_rejects: str | os.PathLike,
                  limits: DurationLimits, workers: int = 1) -> tuple[int, int]:
    """Convert every file of one split of a shard list; return (kept, rejected)."""
    entries = read_shard_list(shard_list, split)
    items = [(e.path, e.key) for e in entries]
    work = functools.partial(_convert_one, limits=limits)
    kept, rejects = write_audio_shard(work, items, out_dir, out_manifest, out_rejects, workers,
                                      STAGE)
    log.info("convert: %d files in, %d kept, %d rejected", len(items), len(kept), len(rejects))
    return len(kept), len(rejects)
