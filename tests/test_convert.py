"""convert: every common format and rate to 16 kHz mono 16-bit FLAC; bad input to rejects."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import resampled, shared
from w2vu.audio.convert import DurationLimits, convert_shard
from w2vu.audio.inventory import Entry, write_shard_lists
from w2vu.io.manifest import read_manifest
from w2vu.io.rejects import read_rejects

LIMITS = DurationLimits(min_seconds=0.5, max_seconds=30.0)


def shard_of_files(tmp_path: Path, files: list[Path]) -> Path:
    """A one-shard inventory list (split train) naming the given files."""
    entries = [Entry(key=f.stem, path=str(f), split="train") for f in files]
    write_shard_lists(entries, 1, tmp_path / "lists")
    return tmp_path / "lists" / "000.tsv"


def run_convert(tmp_path: Path, files: list[Path], workers: int = 1):
    lst = shard_of_files(tmp_path, files)
    out = tmp_path / "out"
    kept, rejected = convert_shard(lst, "train", out / "000", out / "000.tsv",
                                   out / "000.rejects.tsv", LIMITS, workers=workers)
    return kept, rejected, read_manifest(out / "000.tsv"), read_rejects(out / "000.rejects.tsv")


def digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()


def test_formats_and_rates(tmp_path, padded_speech):
    speech = padded_speech[0]
    cases = [("a8k.wav", 8000, "WAV", "PCM_16", 1), ("b22.flac", 22050, "FLAC", "PCM_16", 1),
             ("c44.wav", 44100, "WAV", "FLOAT", 2), ("d48.ogg", 48000, "OGG", "VORBIS", 2),
             ("e16.mp3", 16000, "MP3", "MPEG_LAYER_III", 1), ("f48.opus", 48000, "OGG", "OPUS", 1)]
    files = []
    for name, rate, fmt, subtype, channels in cases:
        x = resampled(speech, rate).samples
        if channels == 2:
            x = np.stack([x, 0.5 * x], axis=1)
        sf.write(tmp_path / name, x, rate, format=fmt, subtype=subtype)
        files.append(tmp_path / name)
    before = digest(files)
    kept, rejected, manifest, rejects = run_convert(tmp_path, files, workers=2)
    assert (kept, rejected) == (len(cases), 0), rejects
    duration = len(speech.samples) / speech.rate
    for path, (_, n) in zip(manifest.paths(), manifest.rows):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.format) == \
            (16000, 1, "PCM_16", "FLAC")
        assert info.frames == n
        assert abs(n / 16000 - duration) < 0.1  # codecs may pad a few ms
    assert digest(files) == before, "inputs must never be modified"


def test_stereo_is_averaged(tmp_path):
    t = np.arange(16000 * 2) / 16000
    left = 0.4 * np.sin(2 * np.pi * 300 * t)
    sf.write(tmp_path / "st.wav", np.stack([left, -left], axis=1), 16000, subtype="FLOAT")
    sf.write(tmp_path / "mono.wav", left, 16000, subtype="FLOAT")
    _, _, manifest, _ = run_convert(tmp_path, [tmp_path / "st.wav", tmp_path / "mono.wav"])
    audio = {p.stem: sf.read(p)[0] for p in manifest.paths()}
    stereo, mono = audio["st"], audio["mono"]
    assert np.abs(stereo).max() < 1e-3  # opposite channels cancel when averaged
    assert np.abs(mono).max() > 0.39


def write_bad_inputs(d: Path) -> dict[str, str]:
    """One file per kind of bad input, with the words its reject reason must contain."""
    d.mkdir()
    (d / "empty.wav").write_bytes(b"")
    (d / "notaudio.wav").write_text("this is not audio\n" * 50)
    (d / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 8)
    sf.write(d / "zero.wav", np.zeros((0,), np.float32), 16000)
    nan = np.full(16000, np.nan, np.float32)
    sf.write(d / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(d / "short.wav", np.zeros(1600, np.float32), 16000)
    sf.write(d / "long.flac", np.zeros(16000 * 31, np.float32), 16000)
    with open(d / "truncated.wav", "wb") as f:
        good = d / "good.wav"
        sf.write(good, np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000)
        f.write(good.read_bytes()[:30])
    good.unlink()
    return {"empty.wav": "empty file", "notaudio.wav": "", "corrupt.flac": "",
            "zero.wav": "zero length", "nan.wav": "NaN", "short.wav": "too short",
            "long.flac": "too long", "truncated.wav": ""}


def test_bad_inputs_are_rejected_with_reasons(tmp_path):
    expected = write_bad_inputs(tmp_path / "bad")
    good = tmp_path / "bad" / "ok.wav"
    sf.write(good, np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000)
    files = sorted((tmp_path / "bad").iterdir())
    kept, rejected, manifest, rejects = run_convert(tmp_path, files)
    assert kept + rejected == len(files) == len(expected) + 1
    assert [rel for rel, _ in manifest.rows] == ["ok.flac"]
    reasons = {Path(r.path).name: r.reason for r in rejects}
    assert set(reasons) == set(expected)
    for name, words in expected.items():
        assert words in reasons[name], reasons[name]
        assert all(r.stage == "convert" for r in rejects)


def test_unsupported_format_without_ffmpeg(tmp_path, monkeypatch):
    """A format soundfile cannot read is a reject that says to install ffmpeg."""
    monkeypatch.setattr("w2vu.audio.decode.ffmpeg_available", lambda: False)
    f = tmp_path / "clip.m4a"
    f.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    _, rejected, _, rejects = run_convert(tmp_path, [f])
    assert rejected == 1 and "install ffmpeg" in rejects[0].reason


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_ffmpeg_decodes_what_soundfile_cannot(tmp_path, padded_speech):
    wav = tmp_path / "src.wav"
    sf.write(wav, padded_speech[0].samples, padded_speech[0].rate)
    m4a = tmp_path / "clip.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(wav), "-c:a", "aac",
                    str(m4a)], check=True)
    kept, _, manifest, rejects = run_convert(tmp_path, [m4a])
    assert kept == 1, rejects
    duration = len(padded_speech[0].samples) / padded_speech[0].rate
    assert abs(manifest.rows[0][1] / 16000 - duration) < 0.1


def test_shared_recordings(tmp_path):
    files = [shared("fsdd", "recordings", "0_george_10.wav"),
             shared("ljspeech_coqui32", "wavs", "LJ001-0002.flac")]
    kept, _, manifest, _ = run_convert(tmp_path, files)
    assert kept == 2
    for src, (_, n) in zip(files, manifest.rows):
        info = sf.info(src)
        assert abs(n - info.frames * 16000 / info.samplerate) <= 1
