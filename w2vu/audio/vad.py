"""Stage `vad`: rVAD speech detection (the rVADfast package) with the reference parameters.

Writes a `.vads` file aligned with the shard's manifest: per utterance, `start:end` sample pairs.
Boundaries are frame index x hop (160 samples at 10 ms); the last segment may end at the audio
length, as in fairseq's `scripts/vads.py`.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import soundfile as sf
from rVADfast import rVADfast
from rVADfast.process import frame_label_to_start_stop

from w2vu.audio import SAMPLE_RATE
from w2vu.io.manifest import read_manifest, write_vads
from w2vu.parallel import map_in_order

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VadParams:
    """rVAD settings; the defaults are the reference's (fairseq scripts/vads.py)."""

    window: float = 0.025
    shift: float = 0.01
    n_fft: int = 512
    sft_threshold: float = 0.5
    vad_threshold: float = 0.4


def speech_segments(signal: np.ndarray, rate: int, params: VadParams) -> list[tuple[int, int]]:
    """Speech intervals of a mono signal as (start, end) sample indices, end exclusive."""
    if len(signal) == 0:
        return []
    detector = rVADfast(window_duration=params.window, shift_duration=params.shift,
                        n_fft=params.n_fft, sft_threshold=params.sft_threshold,
                        vad_threshold=params.vad_threshold)
    with warnings.catch_warnings():  # rVADfast's nanmax over all-silent blocks; harmless
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        labels, _ = detector(signal.astype(np.float64), rate)
    if not np.any(labels):
        return []
    hop = int(rate * params.shift)
    starts, ends = frame_label_to_start_stop(labels)
    return [(int(s) * hop, min((int(e) + 1) * hop, len(signal))) for s, e in zip(starts, ends)]


def _vad_one(path: str, params: VadParams) -> list[tuple[int, int]]:
    signal, rate = sf.read(path, dtype="float32")
    return speech_segments(signal, rate, params)


def vad_shard(manifest: str | os.PathLike, out_vads: str | os.PathLike, params: VadParams,
              workers: int = 1) -> int:
    """Run VAD on every row of a manifest; return the number of utterances with no speech."""
    rows = read_manifest(manifest)
    log.info("vad: %d files, %s", len(rows.rows), asdict(params))
    work = functools.partial(_vad_one, params=params)
    segments = list(map_in_order(work, [str(p) for p in rows.paths()], workers, "vad"))
    write_vads(out_vads, segments)
    silent = sum(1 for s in segments if not s)
    speech = sum(e - s for segs in segments for s, e in segs)
    total = sum(n for _, n in rows.rows)
    log.info("vad: speech is %.1f%% of %.1f s; %d files with no speech found",
             100 * speech / max(total, 1), total / SAMPLE_RATE, silent)
    return silent
