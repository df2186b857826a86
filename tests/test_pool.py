"""Cluster-run merging and adjacent mean pooling against plain re-computations of the reference
(merge_clusters.py --pooling mean, mean_pool.py), plus the feature file layout they use."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from w2vu.cli import main
from w2vu.errors import W2vuError
from w2vu.features.pool import (
    mean_pool,
    mean_pool_features,
    merge_clusters,
    merge_runs,
    pooled_lengths,
)
from w2vu.io.features import (
    FeatureWriter,
    check_features,
    concatenate_features,
    feature_paths,
    iter_unit_lines,
    open_features,
    read_lengths,
    write_features,
    write_unit_lines,
)

LENGTHS = [0, 1, 2, 3, 7, 10, 0, 5, 1, 4, 9, 0]
DIM = 6


def reference_merge(feats: np.ndarray, clusters: list[int]) -> np.ndarray:
    """merge_clusters.py: one mean frame per run of identical consecutive ids (Python loops)."""
    merged, start = [], 0
    for i in range(1, len(clusters) + 1):
        if i == len(clusters) or clusters[i] != clusters[start]:
            total = [0.0] * feats.shape[1]
            for row in range(start, i):
                for col in range(feats.shape[1]):
                    total[col] += float(feats[row, col])
            merged.append([v / (i - start) for v in total])
            start = i
    return np.array(merged, dtype=np.float64).reshape(-1, feats.shape[1])


def reference_pool(feats: np.ndarray, rate: float = 0.5) -> np.ndarray:
    """mean_pool.py: target = ceil(T * rate), last frame repeated up to a multiple, group means.

    T = 0 gives no rows (the reference divides by zero there)."""
    length = len(feats)
    if length == 0:
        return np.zeros((0, feats.shape[1]))
    target = math.ceil(length * rate)
    rows = [list(map(float, r)) for r in feats]
    rem = length % target
    if rem > 0:
        rows += [rows[-1]] * (target - rem)
    group = len(rows) // target
    out = []
    for j in range(target):
        chunk = rows[j * group: (j + 1) * group]
        out.append([sum(c[col] for c in chunk) / group for col in range(feats.shape[1])])
    return np.array(out)


def random_split(seed: int = 0, lengths: list[int] = LENGTHS) -> tuple[list, list]:
    """Random features and cluster ids drawn from 3 values, so that runs of 1..n occur."""
    rng = np.random.default_rng(seed)
    feats = [rng.standard_normal((n, DIM)).astype(np.float32) for n in lengths]
    ids = [rng.integers(0, 3, size=n) for n in lengths]
    return feats, ids


@pytest.mark.parametrize("block_rows", [1, 5, 1 << 15])
def test_merge_clusters_matches_reference(tmp_path, block_rows):
    feats, ids = random_split()
    write_features(tmp_path / "pca" / "train", feats)
    write_unit_lines(tmp_path / "train.src", ids)
    utts, segments = merge_clusters(tmp_path / "pca" / "train", tmp_path / "train.src",
                                    tmp_path / "merged" / "train", block_rows=block_rows)
    out = open_features(tmp_path / "merged" / "train")
    expected = [reference_merge(f, i.tolist()) for f, i in zip(feats, ids)]
    assert utts == len(LENGTHS) and segments == sum(len(e) for e in expected)
    assert out.lengths.tolist() == [len(e) for e in expected]
    for got, want in zip(out, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert out.lengths[LENGTHS.index(0)] == 0 and out.lengths[LENGTHS.index(1)] == 1


def test_merge_runs_single_utterance():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    got = merge_runs(x, np.array([5, 5, 1, 5, 5, 5]))
    np.testing.assert_allclose(got, [[1, 2], [4, 5], [8, 9]])
    with pytest.raises(ValueError):
        merge_runs(x, np.array([1, 2]))


@pytest.mark.parametrize("rate", [0.5, 1 / 3, 0.25, 1.0])
@pytest.mark.parametrize("block_rows", [1, 7, 1 << 15])
def test_mean_pool_matches_reference(tmp_path, rate, block_rows):
    feats, _ = random_split(1)
    write_features(tmp_path / "in" / "train", feats)
    utts, rows = mean_pool_features(tmp_path / "in" / "train", tmp_path / "out" / "train", rate,
                                    block_rows=block_rows)
    out = open_features(tmp_path / "out" / "train")
    expected = [reference_pool(f, rate) for f in feats]
    assert out.lengths.tolist() == [len(e) for e in expected]
    assert rows == out.num_frames == sum(len(e) for e in expected) and utts == len(LENGTHS)
    for got, want in zip(out, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_mean_pool_command_rate(tmp_path):
    feats, _ = random_split(3)
    write_features(tmp_path / "in" / "train", feats)
    main(["mean-pool", "--features", str(tmp_path / "in" / "train"),
          "--out-prefix", str(tmp_path / "out" / "train"), "--rate", "0.25"])
    assert open_features(tmp_path / "out" / "train").lengths.tolist() == [
        math.ceil(len(f) / 4) for f in feats]


def test_mean_pool_odd_even_and_tiny():
    x = np.array([[1.0], [3.0], [5.0]], dtype=np.float32)
    np.testing.assert_allclose(mean_pool(x), [[2.0], [5.0]])  # 5 duplicated, then paired
    np.testing.assert_allclose(mean_pool(x[:2]), [[2.0]])
    np.testing.assert_allclose(mean_pool(x[:1]), [[1.0]])
    assert mean_pool(x[:0]).shape == (0, 1)
    assert pooled_lengths(np.array([0, 1, 2, 3, 4, 5])).tolist() == [0, 1, 1, 2, 2, 3]


def test_merge_then_pool_chain_loads_by_memmap(tmp_path):
    feats, ids = random_split(2, [3, 0, 8, 1, 6])
    write_features(tmp_path / "pca" / "valid", feats)
    write_unit_lines(tmp_path / "valid.src", ids)
    merge_clusters(tmp_path / "pca" / "valid", tmp_path / "valid.src", tmp_path / "m" / "valid")
    mean_pool_features(tmp_path / "m" / "valid", tmp_path / "p" / "valid")
    for prefix in ("m", "p"):
        npy, lengths = feature_paths(tmp_path / prefix / "valid")
        data = np.load(npy, mmap_mode="r")
        assert isinstance(data, np.memmap) and data.dtype == np.float32
        assert data.shape[0] == read_lengths(lengths).sum()
    merged = [reference_merge(f, i.tolist()) for f, i in zip(feats, ids)]
    pooled = open_features(tmp_path / "p" / "valid")
    for got, m in zip(pooled, merged):
        np.testing.assert_allclose(got, reference_pool(m), rtol=1e-5, atol=1e-6)
    assert not [p for p in os.listdir(tmp_path / "p") if ".tmp-" in p]


def test_misaligned_units_are_user_errors(tmp_path):
    feats, ids = random_split(3, [4, 2, 3])
    write_features(tmp_path / "f" / "train", feats)
    bad = [ids[0], ids[1][:1], ids[2]]
    write_unit_lines(tmp_path / "short.src", bad)
    with pytest.raises(W2vuError, match=r"short\.src:2: 1 cluster ids for an utterance of 2"):
        merge_clusters(tmp_path / "f" / "train", tmp_path / "short.src", tmp_path / "o" / "train")
    write_unit_lines(tmp_path / "few.src", ids[:2])
    with pytest.raises(W2vuError, match="ends after 2 lines"):
        merge_clusters(tmp_path / "f" / "train", tmp_path / "few.src", tmp_path / "o" / "train")
    write_unit_lines(tmp_path / "many.src", ids + [ids[0]])
    with pytest.raises(W2vuError, match="more lines"):
        merge_clusters(tmp_path / "f" / "train", tmp_path / "many.src", tmp_path / "o" / "train")
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")


# --- the feature layout itself (w2vu/io/features.py) ---

def test_writer_layout_zero_lengths_and_fortran_input(tmp_path):
    rng = np.random.default_rng(4)
    first = np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32))
    arrays = [np.zeros((0, 4), np.float32), first, rng.standard_normal((2, 4))]
    assert write_features(tmp_path / "train", arrays) == (3, 5)
    npy, lengths = feature_paths(tmp_path / "train")
    assert lengths.read_text() == "0\n3\n2\n"
    data = np.load(npy, mmap_mode="r")
    assert data.shape == (5, 4) and data.dtype == np.float32 and not np.isfortran(data)
    np.testing.assert_array_equal(data[:3], first)
    assert check_features(tmp_path / "train") == (3, 5, 4)
    feats = open_features(tmp_path / "train")
    assert [len(u) for u in feats] == [0, 3, 2]
    assert [b.lengths.tolist() for b in feats.blocks(3)] == [[0, 3], [2]]


def test_writer_empty_split_and_failure_leaves_nothing(tmp_path):
    assert write_features(tmp_path / "empty", [], dim=7) == (0, 0)
    assert open_features(tmp_path / "empty").data.shape == (0, 7)
    with pytest.raises(RuntimeError), FeatureWriter(tmp_path / "broken", 2) as writer:
        writer.append(np.ones((3, 2)))
        raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path)) == ["empty.lengths", "empty.npy"]
    with pytest.raises(ValueError), FeatureWriter(tmp_path / "dims", 2) as writer:
        writer.append(np.ones((3, 5)))


def test_out_of_step_pair_and_bad_lengths_are_user_errors(tmp_path):
    write_features(tmp_path / "train", [np.ones((3, 2)), np.ones((2, 2))])
    _, lengths = feature_paths(tmp_path / "train")
    lengths.write_text("3\n3\n")
    with pytest.raises(W2vuError, match=r"has 5 rows but .*sums to 6 frames.*delete"):
        open_features(tmp_path / "train")
    lengths.write_text("3\nx\n")
    with pytest.raises(W2vuError, match=r"train\.lengths:2: expected a frame count"):
        open_features(tmp_path / "train")
    with pytest.raises(W2vuError, match="feature file not found"):
        open_features(tmp_path / "missing")


def test_concatenate_and_unit_lines_round_trip(tmp_path):
    feats, ids = random_split(5, [2, 0, 3])
    write_features(tmp_path / "a", feats[:2])
    write_features(tmp_path / "b", feats[2:])
    assert concatenate_features([tmp_path / "a", tmp_path / "b"], tmp_path / "all") == (3, 5)
    np.testing.assert_array_equal(open_features(tmp_path / "all").data, np.concatenate(feats))
    write_unit_lines(tmp_path / "u.src", ids)
    assert (tmp_path / "u.src").read_text().splitlines()[1] == ""
    assert [r.tolist() for r in iter_unit_lines(tmp_path / "u.src")] == [i.tolist() for i in ids]
