"""Stage `extract`: features of one shard of a split manifest, streamed in manifest order.

A shard is a contiguous range of manifest rows, so gathering shards is concatenation and the
fairseq layout (`{split}.npy` rows in manifest order + `{split}.lengths`) falls out. Inside a shard,
utterances are taken in windows; each window is sorted by length and cut into batches of bounded
padded duration, so padding stays small and memory is bounded by the window, never by the corpus.
Utterances longer than `max_chunk_seconds` go through the model in overlapping chunks (each
chunk sees `context_seconds` of audio on both sides of the frames it keeps), so a long recording
cannot run the attention out of memory.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from w2vu.audio import SAMPLE_RATE
from w2vu.errors import W2vuError
from w2vu.features.backbone import Backbone
from w2vu.io.features import FeatureWriter
from w2vu.io.manifest import read_manifest
from w2vu.logs import progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSettings:
    """How much audio goes through the model at once, and how long utterances are cut."""

    batch_seconds: float = 0.0  # padded duration of one batch; 0 = auto (see batch_limit)
    window: int = 64  # utterances sorted together by length (and held in memory)
    max_chunk_seconds: float = 30.0
    context_seconds: float = 2.0


def shard_rows(n_rows: int, shard: int, shards: int) -> range:
    """The contiguous manifest rows of one shard."""
    return range(shard * n_rows // shards, (shard + 1) * n_rows // shards)


def length_batches(lengths: Sequence[int], max_samples: int) -> Iterator[list[int]]:
    """Indices grouped by ascending length so that (longest x count) stays under max_samples."""
    batch: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if batch and lengths[i] * (len(batch) + 1) > max_samples:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def chunked_features(backbone: Backbone, wave: np.ndarray, chunk_s: float,
                     context_s: float) -> np.ndarray:
    """Features of a long wave, computed chunk by chunk with context on both sides."""
    hop = round(SAMPLE_RATE / backbone.frame_rate)
    total = backbone.num_frames(len(wave))
    core = max(1, int(chunk_s * backbone.frame_rate))
    context = int(context_s * backbone.frame_rate)
    pieces = []
    for first in range(0, total, core):
        last = min(first + core, total)
        start = max(0, first - context) * hop
        end = min(len(wave), (last + context + 2) * hop)
        frames = backbone.extract([wave[start:end]])[0]
        offset = first - start // hop
        pieces.append(frames[offset: offset + last - first])
    out = np.concatenate(pieces)
    if len(out) != total:
        raise RuntimeError(f"chunked extraction gave {len(out)} frames, expected {total}")
    return out


GPU_BATCH_SECONDS = 120.0


def batch_limit(backbone: Backbone, settings: BatchSettings) -> int:
    """Padded samples per batch. Auto: one utterance at a time on the CPU, where padded batches
    measured slower and used more memory (bench/features.py), 120 s batches on a GPU."""
    if settings.batch_seconds > 0:
        return int(settings.batch_seconds * SAMPLE_RATE)
    on_gpu = str(getattr(backbone, "device", "cpu")).startswith("cuda")
    return int(GPU_BATCH_SECONDS * SAMPLE_RATE) if on_gpu else 1


def window_features(backbone: Backbone, waves: list[np.ndarray],
                    settings: BatchSettings) -> list[np.ndarray]:
    """Features of a window of utterances, in their original order."""
    out: list[np.ndarray | None] = [None] * len(waves)
    long_samples = settings.max_chunk_seconds * SAMPLE_RATE
    short = [i for i, w in enumerate(waves) if len(w) <= long_samples]
    for i in set(range(len(waves))) - set(short):
        out[i] = chunked_features(backbone, waves[i], settings.max_chunk_seconds,
                                  settings.context_seconds)
    lengths = [len(waves[i]) for i in short]
    for batch in length_batches(lengths, batch_limit(backbone, settings)):
        for j, feats in zip(batch, backbone.extract([waves[short[j]] for j in batch])):
            out[short[j]] = feats
    return out  # type: ignore[return-value]


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def limit_heap_fragmentation() -> None:
    """Serve large allocations with mmap, so memory goes back to the OS after each batch.

    Tensors of ever-different shapes fragment glibc's heap: measured peak RSS grew from 1.4 to
    4.1 GB between 30 and 270 utterances with the default threshold, and from 1.0 to 1.3 GB with
    a 128 KiB one. No-op where the C library has no mallopt (not glibc).
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):
        log.debug("mallopt unavailable; heap fragmentation not limited")


def read_wave(path: str | os.PathLike) -> np.ndarray:
    """A 16 kHz mono file as float32."""
    wave, rate = sf.read(path, dtype="float32")
    if rate != SAMPLE_RATE or wave.ndim != 1:
        raise W2vuError(f"{path}: expected 16 kHz mono audio, got {rate} Hz with "
                        f"{1 if wave.ndim == 1 else wave.shape[1]} channels; the manifests "
                        "must list the convert stage's output")
    return wave


def extract_shard(manifest: str | os.PathLike, shard: int, shards: int, backbone: Backbone,
                  out_prefix: str, settings: BatchSettings = BatchSettings()) -> int:
    """Write `{out_prefix}.npy` and `.lengths` for one shard; return its number of frames."""
    limit_heap_fragmentation()
    rows = read_manifest(manifest)
    paths = rows.paths()
    selected = shard_rows(len(paths), shard, shards)
    audio_s = sum(rows.rows[i][1] for i in selected) / SAMPLE_RATE
    log.info("extract: rows %d-%d of %s (%.1f min of audio), %d-d features at %g Hz",
             selected.start, selected.stop, manifest, audio_s / 60, backbone.dim,
             backbone.frame_rate)
    frames = 0
    windows = [selected[i: i + settings.window] for i in range(0, len(selected), settings.window)]
    with FeatureWriter(out_prefix, backbone.dim) as writer:
        for window in progress(windows, len(windows), "extract windows"):
            for feats in window_features(backbone, [read_wave(paths[i]) for i in window],
                                         settings):
                writer.append(feats)
                frames += len(feats)
    log.info("extract: %d utterances, %d frames", len(selected), frames)
    return frames
