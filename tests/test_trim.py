"""trim: speech segments concatenated, pads merged, no-speech keep/reject, lossless copy."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from w2vu.audio.inventory import Entry, write_shard_lists
from w2vu.audio.trim import TrimParams, padded_segments, trim_shard
from w2vu.io.manifest import read_manifest, write_manifest, write_vads
from w2vu.io.rejects import read_rejects


def test_padded_segments_clip_and_merge():
    assert padded_segments([(100, 200), (260, 300)], 40, 320) == [(60, 320)]
    assert padded_segments([(0, 10), (500, 600)], 5, 1000) == [(0, 15), (495, 605)]
    assert padded_segments([], 5, 100) == []


def make_shard(tmp_path, signals, vads):
    root = tmp_path / "conv"
    root.mkdir()
    rows, entries = [], []
    for i, x in enumerate(signals):
        sf.write(root / f"u{i}.flac", x, 16000, subtype="PCM_16")
        rows.append((f"u{i}.flac", len(x)))
        entries.append(Entry(key=f"u{i}", path=f"/src/u{i}.wav", split="train"))
    write_manifest(tmp_path / "conv.tsv", root, rows)
    write_vads(tmp_path / "conv.vads", vads)
    write_shard_lists(entries, 1, tmp_path / "lists")


def run_trim(tmp_path, params):
    out = tmp_path / "trim"
    result = trim_shard(tmp_path / "lists" / "000.tsv", "train", tmp_path / "conv.tsv",
                        tmp_path / "conv.vads", out / "000", out / "000.tsv",
                        out / "000.rejects.tsv", params)
    return result, read_manifest(out / "000.tsv"), read_rejects(out / "000.rejects.tsv")


def test_keeps_speech_exactly(tmp_path):
    x = (np.random.default_rng(0).integers(-3000, 3000, 32000)).astype(np.int16)
    make_shard(tmp_path, [x.astype(np.float32) / 32768, np.zeros(16000, np.float32)],
               [[(1600, 8000), (16000, 20000)], []])
    (kept, rejected), manifest, _ = run_trim(tmp_path, TrimParams())
    assert (kept, rejected) == (2, 0)
    trimmed, _ = sf.read(manifest.paths()[0], dtype="int16")
    assert np.array_equal(trimmed, np.concatenate([x[1600:8000], x[16000:20000]]))
    assert manifest.rows[1][1] == 16000  # no speech: kept whole, as the reference does


def test_reject_no_speech_and_too_short(tmp_path):
    make_shard(tmp_path, [np.zeros(16000, np.float32), np.full(16000, 0.1, np.float32)],
               [[], [(0, 800)]])
    (kept, rejected), _, rejects = run_trim(tmp_path, TrimParams(0.0, "reject", 0.2))
    assert (kept, rejected) == (0, 2)
    assert [r.path for r in rejects] == ["/src/u0.wav", "/src/u1.wav"]
    assert "no speech" in rejects[0].reason and "too short" in rejects[1].reason


def test_pad_extends_segments(tmp_path):
    make_shard(tmp_path, [np.full(16000, 0.1, np.float32)], [[(4000, 8000)]])
    _, manifest, _ = run_trim(tmp_path, TrimParams(pad_seconds=0.1))
    assert manifest.rows[0][1] == 4000 + 2 * 1600
