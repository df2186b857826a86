"""Extraction: shards in manifest order, length batches, long utterances in chunks."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from tests.tiny_models import one_torch_thread, save_hf, tiny_model
from w2vu.features.backbone import load_backbone
from w2vu.features.extract import (
    BatchSettings,
    chunked_features,
    extract_shard,
    length_batches,
    shard_rows,
)
from w2vu.features.mfcc import MfccBackbone
from w2vu.io.features import concatenate_features, open_features
from w2vu.io.manifest import write_manifest


def test_shards_cover_all_rows_in_order():
    ranges = [shard_rows(10, s, 3) for s in range(3)]
    assert [i for r in ranges for i in r] == list(range(10))
    assert list(shard_rows(2, 2, 3)) == [1] and list(shard_rows(0, 0, 2)) == []


def test_length_batches_bound_padded_size():
    lengths = [5, 100, 7, 60, 60, 1, 99]
    batches = list(length_batches(lengths, 200))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(max(lengths[i] for i in b) * len(b) <= 200 or len(b) == 1 for b in batches)


def test_chunked_mfcc_equals_whole():
    wave = np.random.default_rng(0).normal(0, 0.1, 16000 * 7).astype(np.float32)
    backbone = MfccBackbone(stack=1)
    whole = backbone.extract([wave])[0]
    chunked = chunked_features(backbone, wave, chunk_s=2.0, context_s=0.1)
    assert chunked.shape == whole.shape
    np.testing.assert_allclose(chunked, whole, atol=1e-4)


def test_chunked_ssl_has_the_right_frames(tmp_path):
    with one_torch_thread():
        backbone = load_backbone(save_hf(tiny_model(True), tmp_path / "m"), layer=1, device="cpu")
        wave = np.random.default_rng(1).normal(0, 0.1, 16000 * 5 + 123).astype(np.float32)
        chunked = chunked_features(backbone, wave, chunk_s=1.5, context_s=0.5)
        whole = backbone.extract([wave])[0]
    assert chunked.shape == whole.shape == (backbone.num_frames(len(wave)), backbone.dim)
    assert np.isfinite(chunked).all()


def test_shards_gather_to_the_unsharded_result(tmp_path):
    rng = np.random.default_rng(2)
    rows = []
    for i, seconds in enumerate([1.0, 3.5, 0.3, 2.2, 0.03, 1.7, 4.1]):
        sf.write(tmp_path / f"u{i}.flac", rng.normal(0, 0.1, int(16000 * seconds)), 16000,
                 subtype="PCM_16")
        rows.append((f"u{i}.flac", int(16000 * seconds)))
    write_manifest(tmp_path / "m.tsv", tmp_path, rows)
    settings = BatchSettings(batch_seconds=5, window=3, max_chunk_seconds=2.0,
                             context_seconds=0.2)
    backbone = MfccBackbone(stack=2)
    extract_shard(tmp_path / "m.tsv", 0, 1, backbone, str(tmp_path / "all"), settings)
    for shard in range(3):
        extract_shard(tmp_path / "m.tsv", shard, 3, backbone, str(tmp_path / f"s{shard}"),
                      settings)
    concatenate_features([tmp_path / f"s{s}" for s in range(3)], tmp_path / "gathered")
    whole, gathered = open_features(tmp_path / "all"), open_features(tmp_path / "gathered")
    assert len(whole) == len(rows) and whole.lengths.tolist() == gathered.lengths.tolist()
    assert whole.lengths.tolist() == [backbone.num_frames(n) for _, n in rows]
    np.testing.assert_allclose(np.asarray(whole.data), np.asarray(gathered.data), atol=1e-4)
