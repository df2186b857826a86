"""MFCC front end: the features that need no pretrained model.

Kaldi-compatible MFCC as in the wav2vec-U 2.0 recipe (HuBERT's `dump_mfcc_feature.py`, which calls
torchaudio's Kaldi-compliant MFCC): 13 coefficients, no energy, 25 ms windows every 10 ms,
Kaldi defaults otherwise, dither 0 so that reruns give identical files. Deltas and delta-deltas are
torchaudio's `compute_deltas` (window 5, edges replicated) applied twice: 39-d at 100 Hz.

`stack=2` concatenates consecutive frame pairs (78-d at 50 Hz) so that the frame count equals the
SSL models' floor((N-400)/320)+1; an odd last frame is paired with a copy of itself.

`cmvn=True` normalises each utterance to zero mean and unit variance per dimension (after
stacking). Raw MFCCs carry each recording's channel and speaker offsets, which a linear generator
cannot remove; on the digits corpus (issue 13) a linear probe's PER drops from 0.84 to 0.49 with
it. The reference's MFCC (the 2.0 auxiliary targets) has none, so those never use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from w2vu.audio import SAMPLE_RATE

NUM_CEPS = 13
FRAME_LENGTH = 400  # 25 ms at 16 kHz
FRAME_SHIFT = 160  # 10 ms


def compute_deltas(feats: np.ndarray, win_length: int = 5) -> np.ndarray:
    """torchaudio.functional.compute_deltas along time for a [T, D] array (edges replicated)."""
    if win_length < 3:
        raise ValueError("win_length must be >= 3")
    n = (win_length - 1) // 2
    denom = n * (n + 1) * (2 * n + 1) / 3
    x = np.asarray(feats, dtype=np.float32)
    if len(x) == 0:
        return x.copy()
    padded = np.concatenate([np.repeat(x[:1], n, 0), x, np.repeat(x[-1:], n, 0)])
    out = np.zeros_like(x)
    for k in range(1, n + 1):
        out += k * (padded[n + k: n + k + len(x)] - padded[n - k: n - k + len(x)])
    return (out / denom).astype(np.float32)


def kaldi_mfcc(wave: np.ndarray) -> np.ndarray:
    """[T, 13] Kaldi MFCC of a 16 kHz waveform (amplitude as given, like the reference)."""
    import kaldi_native_fbank as knf

    opts = knf.MfccOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.dither = 0.0
    opts.frame_opts.frame_length_ms = 1000 * FRAME_LENGTH / SAMPLE_RATE
    opts.frame_opts.frame_shift_ms = 1000 * FRAME_SHIFT / SAMPLE_RATE
    opts.frame_opts.snip_edges = True
    opts.num_ceps = NUM_CEPS
    opts.use_energy = False
    extractor = knf.OnlineMfcc(opts)
    extractor.accept_waveform(SAMPLE_RATE, np.ascontiguousarray(wave, dtype=np.float32))
    extractor.input_finished()
    count = extractor.num_frames_ready
    if count == 0:
        return np.zeros((0, NUM_CEPS), np.float32)
    return np.stack([np.array(extractor.get_frame(i), np.float32) for i in range(count)])


def stack_frames(feats: np.ndarray, stack: int) -> np.ndarray:
    """Concatenate `stack` consecutive frames; the last group is completed by repeating its
    final frame, so T becomes ceil(T / stack)."""
    if stack == 1:
        return feats
    if len(feats) == 0:
        return feats.reshape(0, feats.shape[1] * stack)
    missing = -len(feats) % stack
    if missing:
        feats = np.concatenate([feats, np.repeat(feats[-1:], missing, 0)])
    return feats.reshape(len(feats) // stack, -1)


def utterance_cmvn(feats: np.ndarray) -> np.ndarray:
    """[T, D] float32 with zero mean and unit variance per dimension over the utterance."""
    return ((feats - feats.mean(0)) / (feats.std(0) + 1e-5)).astype(np.float32)


class MfccBackbone:
    """MFCC + deltas + delta-deltas with the `Backbone` interface of the SSL models."""

    def __init__(self, stack: int = 1, cmvn: bool = False) -> None:
        if stack not in (1, 2):
            raise ValueError("stack must be 1 (100 Hz, 39-d) or 2 (50 Hz, 78-d)")
        self.stack = stack
        self.cmvn = cmvn

    @property
    def dim(self) -> int:
        return 3 * NUM_CEPS * self.stack

    @property
    def frame_rate(self) -> float:
        return SAMPLE_RATE / FRAME_SHIFT / self.stack

    def num_frames(self, num_samples: int) -> int:
        if num_samples < FRAME_LENGTH:
            return 0
        frames = (num_samples - FRAME_LENGTH) // FRAME_SHIFT + 1
        return -(-frames // self.stack)

    def features(self, wave: np.ndarray) -> np.ndarray:
        """[num_frames, dim] float32 for one waveform."""
        mfcc = kaldi_mfcc(wave)
        if len(mfcc) == 0:
            return np.zeros((0, self.dim), np.float32)
        delta = compute_deltas(mfcc)
        feats = np.concatenate([mfcc, delta, compute_deltas(delta)], axis=1)
        feats = np.ascontiguousarray(stack_frames(feats, self.stack), dtype=np.float32)
        return utterance_cmvn(feats) if self.cmvn else feats

    def extract(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self.features(w) for w in waves]
