"""Segment the PCA features by cluster runs, then mean-pool adjacent segments (wav2vec-U 1.0).

Reference (fairseq `examples/wav2vec/unsupervised/scripts/`):

* `merge_clusters.py --pooling mean`: each run of consecutive identical cluster ids in an
  utterance becomes one segment, the mean of its frames → `precompute_pca512_cls128_mean/`;
* `mean_pool.py` (subsample rate 0.5, remove_extra off): target = ceil(T * rate) segments; when
  T % target > 0 the last frame is repeated up to a multiple of target, then each group of
  consecutive frames is averaged → `precompute_pca512_cls128_mean_pooled/` (the GAN input).

Both scripts loop over utterances (and merge over runs) in Python; here each block of whole
utterances is reduced with one sparse matrix product. Differences: an utterance with T = 0 yields
0 segments (both reference scripts crash on it), and a `.src` line whose length differs from the
utterance's frame count is an error (the reference merges silently misaligned runs).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import numpy as np
from scipy import sparse

from w2vu.errors import W2vuError
from w2vu.io.features import (
    DEFAULT_BLOCK_ROWS,
    Block,
    FeatureWriter,
    iter_unit_lines,
    open_features,
)

log = logging.getLogger(__name__)

POOL_RATE = 0.5  # the reference's mean_pool.py subsample rate


def segment_means(x: np.ndarray, starts: np.ndarray,
                  rows: np.ndarray | None = None) -> np.ndarray:
    """Mean of each segment of rows of `x`, as one sparse product (float32, like the reference).

    Segment i is rows[starts[i]:starts[i+1]] (the last one runs to the end); `rows` indexes `x`
    and defaults to 0..len(x)-1, so a row may appear in several places (pooling's repeated last
    frame). Segments must be non-empty. A CSR product is about 30x faster than
    `np.add.reduceat` on [32768, 512] blocks, which dominated the run time.
    """
    x = np.asarray(x)
    if rows is None:
        rows = np.arange(len(x))
    if len(starts) == 0:
        return np.zeros((0, x.shape[1]), dtype=np.float32)
    bounds = np.append(starts, len(rows)).astype(np.int64)
    sizes = np.diff(bounds)
    weights = np.repeat((1.0 / sizes).astype(np.float32), sizes)
    means = sparse.csr_array((weights, rows, bounds), shape=(len(starts), len(x)))
    return np.ascontiguousarray(means @ x.astype(np.float32, copy=False), dtype=np.float32)


def run_starts(ids: np.ndarray, utterance_starts: np.ndarray | None = None) -> np.ndarray:
    """Row index where each run of equal consecutive ids begins; runs also break at utterances."""
    ids = np.asarray(ids)
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    begins = np.empty(len(ids), dtype=bool)
    begins[0] = True
    np.not_equal(ids[1:], ids[:-1], out=begins[1:])
    if utterance_starts is not None:
        begins[utterance_starts[utterance_starts < len(ids)]] = True
    return np.flatnonzero(begins)


def merge_runs(feats: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """One utterance: the mean frame of each run of identical cluster ids, [runs, D]."""
    if len(feats) != len(ids):
        raise ValueError(f"{len(feats)} frames but {len(ids)} cluster ids")
    return segment_means(np.asarray(feats), run_starts(ids))


def merge_block(data: np.ndarray, lengths: np.ndarray,
                ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Several utterances at once: (merged rows, segments per utterance)."""
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    starts = run_starts(ids, offsets[:-1])
    begins_before = np.searchsorted(starts, offsets)  # runs starting before each utterance offset
    return segment_means(data, starts), np.diff(begins_before)


def pooled_lengths(lengths: np.ndarray, rate: float = POOL_RATE) -> np.ndarray:
    """Segments per utterance after pooling: ceil(T * rate), the reference's `target_num`."""
    return np.ceil(np.asarray(lengths, dtype=np.int64) * rate).astype(np.int64)


def pool_block(data: np.ndarray, lengths: np.ndarray,
               rate: float = POOL_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Adjacent mean pooling of several utterances: (pooled rows, targets per utterance)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    targets = pooled_lengths(lengths, rate)
    rem = lengths % np.maximum(targets, 1)
    padded = lengths + np.where(rem > 0, targets - rem, 0)  # last frame repeated up to this
    group = padded // np.maximum(targets, 1)
    # Source row of every padded position: positions past T - 1 read the last frame.
    pad_starts = np.concatenate(([0], np.cumsum(padded)))
    utt = np.repeat(np.arange(len(lengths)), padded)
    position = np.arange(pad_starts[-1]) - pad_starts[utt]
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    source = offsets[utt] + np.minimum(position, lengths[utt] - 1)
    # Start of every group of `group` positions, within the padded rows.
    seg_utt = np.repeat(np.arange(len(lengths)), targets)
    seg_index = np.arange(len(seg_utt)) - np.repeat(np.cumsum(targets) - targets, targets)
    starts = pad_starts[seg_utt] + group[seg_utt] * seg_index
    return segment_means(data, starts, source), targets


def mean_pool(feats: np.ndarray, rate: float = POOL_RATE) -> np.ndarray:
    """One utterance [T, D] → [ceil(T * rate), D], as the reference's mean_pool.py."""
    feats = np.asarray(feats)
    return pool_block(feats, np.array([len(feats)]), rate)[0]


def _unit_blocks(units_path: str | os.PathLike,
                 blocks: Iterator[Block]) -> Iterator[tuple[Block, np.ndarray]]:
    """Pair each feature block with its utterances' unit ids, checking every line's length."""
    lines = iter_unit_lines(units_path)
    for block in blocks:
        ids = []
        for index, length in enumerate(block.lengths.tolist(), start=block.first):
            row = next(lines, None)
            if row is None:
                raise W2vuError(f"{units_path} ends after {index} lines but the features have "
                                "more utterances; rerun the cluster assignment on these features")
            if len(row) != length:
                raise W2vuError(f"{units_path}:{index + 1}: {len(row)} cluster ids for an "
                                f"utterance of {length} frames; rerun the cluster assignment on "
                                "these features")
            ids.append(row)
        yield block, (np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64))
    if next(lines, None) is not None:
        raise W2vuError(f"{units_path} has more lines than the features have utterances; rerun "
                        "the cluster assignment on these features")


def merge_clusters(features: str | os.PathLike, units_path: str | os.PathLike,
                   out_prefix: str | os.PathLike,
                   block_rows: int = DEFAULT_BLOCK_ROWS) -> tuple[int, int]:
    """Write `{out_prefix}.npy/.lengths`: per utterance, the mean of each cluster run.

    `features` are the PCA features and `units_path` the `.src` from the cluster assignment.
    Returns (utterances, segments).
    """
    feats = open_features(features)
    with FeatureWriter(out_prefix, feats.dim) as writer:
        for block, ids in _unit_blocks(units_path, feats.blocks(block_rows)):
            rows, counts = merge_block(block.data, block.lengths, ids)
            writer.extend(rows, counts)
    log.info("merged %d frames into %d cluster-run segments (%d utterances) -> %s",
             feats.num_frames, writer.frames, writer.utterances, out_prefix)
    return writer.utterances, writer.frames


def mean_pool_features(features: str | os.PathLike, out_prefix: str | os.PathLike,
                       rate: float = POOL_RATE,
                       block_rows: int = DEFAULT_BLOCK_ROWS) -> tuple[int, int]:
    """Write `{out_prefix}.npy/.lengths` pooled to ceil(T * rate); return (utterances, rows)."""
    if not 0 < rate <= 1:
        raise W2vuError(f"mean-pool subsample rate must be in (0, 1], got {rate}")
    feats = open_features(features)
    with FeatureWriter(out_prefix, feats.dim) as writer:
        for block in feats.blocks(block_rows):
            rows, counts = pool_block(block.data, block.lengths, rate)
            writer.extend(rows, counts)
    log.info("mean-pooled %d segments into %d (rate %g, %d utterances) -> %s", feats.num_frames,
             writer.frames, rate, writer.utterances, out_prefix)
    return writer.utterances, writer.frames
