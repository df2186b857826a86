"""MFCC front end: Kaldi frame counts, deltas like torchaudio, 50 Hz stacking."""

from __future__ import annotations

import numpy as np
import pytest

from w2vu.features.mfcc import MfccBackbone, compute_deltas, kaldi_mfcc, stack_frames


@pytest.fixture(scope="module")
def wave() -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.arange(16000 * 2) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t * (1 + t)) + 0.01 * rng.standard_normal(len(t))
            ).astype(np.float32)


def reference_deltas(x: np.ndarray, win_length: int = 5) -> np.ndarray:
    """torchaudio.functional.compute_deltas written out frame by frame (edges replicated)."""
    n = (win_length - 1) // 2
    denom = sum(2 * k * k for k in range(1, n + 1))
    out = np.zeros_like(x, dtype=np.float64)
    last = len(x) - 1
    for t in range(len(x)):
        for k in range(1, n + 1):
            out[t] += k * (x[min(t + k, last)].astype(np.float64) - x[max(t - k, 0)])
    return (out / denom).astype(np.float32)


def test_deltas_match_torchaudio(wave):
    mfcc = kaldi_mfcc(wave)
    try:
        import torch
        import torchaudio.functional as AF
    except ImportError:
        want = reference_deltas(mfcc)
        want2 = reference_deltas(want)
    else:  # the reference implementation itself, when installed
        want = AF.compute_deltas(torch.from_numpy(mfcc.T.copy())).numpy().T
        want2 = AF.compute_deltas(torch.from_numpy(want.T.copy())).numpy().T
    got = compute_deltas(mfcc)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(compute_deltas(got), want2, atol=1e-4, rtol=1e-5)


def test_deltas_agree_with_kaldi_add_deltas(wave):
    import kaldi_native_fbank as knf

    mfcc = kaldi_mfcc(wave)
    kaldi = knf.compute_deltas(knf.DeltaOptions(order=2, window=2), mfcc)
    d1 = compute_deltas(mfcc)
    np.testing.assert_allclose(d1, kaldi[:, 13:26], atol=1e-4)
    # Kaldi's second order uses a 9-tap window on the original frames; torchaudio (the wav2vec-U
    # 2.0 reference) applies the 5-tap window twice: they differ only in the 4 edge frames.
    np.testing.assert_allclose(compute_deltas(d1)[4:-4], kaldi[4:-4, 26:], atol=1e-4)


def test_shapes_frame_counts_and_layout(wave):
    mfcc39, mfcc78 = MfccBackbone(), MfccBackbone(stack=2)
    assert (mfcc39.dim, mfcc39.frame_rate, mfcc78.dim, mfcc78.frame_rate) == (39, 100, 78, 50)
    lengths = (0, 399, 400, 559, 560, 719, 720, 16000, 16080, len(wave))
    waves = [wave[:n] for n in lengths]
    for backbone in (mfcc39, mfcc78):
        feats = backbone.extract(waves)
        assert [f.shape for f in feats] == [(backbone.num_frames(n), backbone.dim)
                                            for n in lengths]
        assert all(f.dtype == np.float32 for f in feats)
    for n in lengths:  # 100 Hz: Kaldi snip_edges; 50 Hz: the SSL models' frame count
        assert mfcc39.num_frames(n) == (0 if n < 400 else (n - 400) // 160 + 1)
        assert mfcc78.num_frames(n) == (0 if n < 400 else (n - 400) // 320 + 1)
    full = mfcc39.features(wave)
    np.testing.assert_array_equal(full[:, :13], kaldi_mfcc(wave))
    stacked = mfcc78.features(wave)
    np.testing.assert_array_equal(stacked[:, :39], full[0::2])
    np.testing.assert_array_equal(stacked[: len(full) // 2, 39:], full[1::2])


def test_stacking_repeats_an_odd_last_frame():
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    assert stack_frames(x, 2).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 9]]
    assert stack_frames(np.zeros((0, 2), np.float32), 2).shape == (0, 4)


def test_deterministic(wave):
    backbone = MfccBackbone()
    np.testing.assert_array_equal(backbone.features(wave), backbone.features(wave))


def test_cmvn_normalises_each_utterance_and_removes_a_channel_gain(wave):
    plain, normed = MfccBackbone(stack=2), MfccBackbone(stack=2, cmvn=True)
    feats = normed.features(wave)
    assert feats.shape == plain.features(wave).shape and feats.dtype == np.float32
    np.testing.assert_allclose(feats.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(feats.std(0), 1, atol=1e-3)
    # A gain is an offset of the log-energies, hence of c0 and the cepstra: CMVN removes it.
    assert not np.allclose(plain.features(wave * 0.1), plain.features(wave), atol=1e-2)
    np.testing.assert_allclose(normed.features(wave * 0.1), feats, atol=1e-2)
