"""VAD: segments land on the silences inserted around real speech, at every input rate."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import pad_with_silence, resampled, shared
from w2vu.audio.convert import to_mono_16k
from w2vu.audio.vad import VadParams, speech_segments, vad_shard
from w2vu.io.manifest import read_vads, write_manifest


def merged_seconds(segments: list[tuple[int, int]], gap_s: float = 0.5,
                   rate: int = 16000) -> list[tuple[float, float]]:
    """Segments in seconds, with pauses shorter than `gap_s` (inside a phrase) bridged."""
    out: list[tuple[float, float]] = []
    for s, e in segments:
        if out and s / rate - out[-1][1] < gap_s:
            out[-1] = (out[-1][0], e / rate)
        else:
            out.append((s / rate, e / rate))
    return out


def boundary_errors(found: list[tuple[float, float]], truth: list[tuple[float, float]]) -> list:
    assert len(found) == len(truth), f"found {found}, inserted speech at {truth}"
    return [abs(f - t) for pair_f, pair_t in zip(found, truth) for f, t in zip(pair_f, pair_t)]


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_segments_match_inserted_silence(padded_speech, rate):
    """rVAD smooths its decision over +-18 frames, which moves the onset of a plosive-initial
    phrase up to ~0.11 s early (0.14 s at 8 kHz). So: median boundary error <= 0.1 s, worst
    <= 0.15 s. A wrong rate or frame-to-sample conversion misses by far more."""
    errors = []
    for padded in padded_speech:
        signal = resampled(padded, rate)
        mono = to_mono_16k(signal.samples[:, None], rate)
        found = merged_seconds(speech_segments(mono, 16000, VadParams()))
        errors += boundary_errors(found, padded.speech)
    assert np.median(errors) <= 0.1, errors
    assert max(errors) <= 0.15, errors


def test_no_speech_in_pure_noise():
    noise = np.random.default_rng(1).normal(0, 1e-4, 16000 * 3).astype(np.float32)
    assert speech_segments(noise, 16000, VadParams()) == []
    assert speech_segments(np.zeros(0, np.float32), 16000, VadParams()) == []


def test_segment_format_matches_reference():
    """Boundaries are multiples of the 160-sample hop; the last may end at the audio length."""
    x = np.zeros(16000 * 2 + 37, np.float32)
    x[8000:24000] = 0.3 * np.sin(np.arange(16000) * 2 * np.pi * 220 / 16000)
    x += np.random.default_rng(0).normal(0, 1e-4, len(x)).astype(np.float32)
    for start, end in speech_segments(x, 16000, VadParams()):
        assert start % 160 == 0 and (end % 160 == 0 or end == len(x))
        assert 0 <= start < end <= len(x)


@pytest.mark.parametrize("folder,files", [
    ("fsdd", ["recordings/0_george_0.wav", "recordings/7_jackson_12.wav",
              "recordings/3_theo_20.wav"]),
    ("ljspeech_coqui32", ["wavs/LJ001-0002.flac", "wavs/LJ001-0004.flac"]),
])
def test_real_recordings_with_inserted_silence(folder, files):
    """Real recordings (8 kHz FSDD, 22.05 kHz LJ Speech FLAC) with 1.5 s of inserted silence:
    every recording is found and no speech is reported inside the inserted silence. The clips'
    own edges hold room noise and rVAD smooths over +-0.18 s, so detections may start up to 0.2 s
    before a short clip."""
    chunks, rate = [], None
    for rel in files:
        audio, rate = sf.read(shared(folder, rel), dtype="float32")
        chunks.append(audio)
    padded = pad_with_silence(chunks, rate)
    mono = to_mono_16k(padded.samples[:, None], rate)
    found = merged_seconds(speech_segments(mono, 16000, VadParams()))
    for start, end in found:
        assert any(s - 0.2 <= start and end <= e + 0.2 for s, e in padded.speech), \
            f"speech found at {start:.2f}-{end:.2f} s, inside inserted silence {padded.speech}"
    for s, e in padded.speech:
        assert any(start < e and end > s for start, end in found), f"missed {s:.2f}-{e:.2f} s"


def test_vad_shard_writes_one_line_per_row(tmp_path, padded_speech):
    root = tmp_path / "audio"
    root.mkdir()
    rows = []
    for i, padded in enumerate(padded_speech):
        mono = to_mono_16k(padded.samples[:, None], padded.rate)
        sf.write(root / f"u{i}.flac", mono, 16000, subtype="PCM_16")
        rows.append((f"u{i}.flac", len(mono)))
    sf.write(root / "silent.flac", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    rows.append(("silent.flac", 16000))
    write_manifest(tmp_path / "m.tsv", root, rows)
    silent = vad_shard(tmp_path / "m.tsv", tmp_path / "m.vads", VadParams(), workers=2)
    lines = read_vads(tmp_path / "m.vads")
    assert len(lines) == len(rows) and silent == 1 and lines[-1] == []
    assert all(lines[i] for i in range(len(padded_speech)))
    single = tmp_path / "single.vads"
    vad_shard(tmp_path / "m.tsv", single, VadParams(), workers=1)
    assert single.read_text() == (tmp_path / "m.vads").read_text()
