"""wav2vec-U 2.0 MFCC k-means targets (`train.km`), the step the reference forgot (#4615)."""

from __future__ import annotations

import numpy as np
import pytest

from w2vu.errors import W2vuError
from w2vu.features.km_targets import (
    MFCC_DIM,
    REFERENCE_KM_TARGETS,
    km_targets_config,
    learn_km_targets,
)
from w2vu.io.features import iter_unit_lines, write_features
from w2vu.io.manifest import write_manifest

LENGTHS = (150, 0, 1, 230, 95, 2, 180)


def mfcc_like(tmp_path, k: int, seed: int = 0):
    """39-d frames at '100 Hz' from k separated blobs, in runs like phones; returns labels."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, MFCC_DIM)) * 15
    runs = rng.integers(3, 12, size=400)
    labels = np.repeat(rng.integers(0, k, size=len(runs)), runs)[: sum(LENGTHS)]
    labels[:k] = np.arange(k)
    x = (centers[labels] + rng.standard_normal((len(labels), MFCC_DIM))).astype(np.float32)
    write_features(tmp_path / "mfcc" / "train", np.split(x, np.cumsum(LENGTHS)[:-1]))
    write_manifest(tmp_path / "train.tsv", tmp_path, [(f"u{i}.flac", n * 160)
                                                      for i, n in enumerate(LENGTHS)])
    return tmp_path / "mfcc" / "train", labels


def test_reference_settings():
    c = REFERENCE_KM_TARGETS
    assert (c.clusters, c.niter, c.batch_size, c.n_init, c.tol, c.max_no_improvement,
            c.reassignment_ratio, c.seed, c.init) == (64, 100, 10000, 20, 0.0, 100, 0.0, 0,
                                                      "k-means++")
    assert km_targets_config("sklearn", sample_fraction=0.5).backend == "sklearn"


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_km_lines_follow_manifest_and_recover_blobs(tmp_path, backend):
    prefix, labels = mfcc_like(tmp_path, k=6)
    config = km_targets_config(backend, clusters=6)
    utts, frames = learn_km_targets(prefix, tmp_path / "train.km", tmp_path / "km6.npy", config,
                                    manifest=tmp_path / "train.tsv")
    assert (utts, frames) == (len(LENGTHS), sum(LENGTHS))
    rows = list(iter_unit_lines(tmp_path / "train.km"))
    assert [len(r) for r in rows] == list(LENGTHS)
    ids = np.concatenate(rows)
    pairs = set(zip(labels.tolist(), ids.tolist()))
    assert len(pairs) == 6 and len({i for _, i in pairs}) == 6
    assert np.load(tmp_path / "km6.npy").shape == (6, MFCC_DIM)


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_default_k64_deterministic(tmp_path, backend):
    prefix, _ = mfcc_like(tmp_path, k=40, seed=1)
    config = km_targets_config(backend, sample_fraction=0.8, seed=5)
    learn_km_targets(prefix, tmp_path / "a.km", tmp_path / "a.npy", config)
    learn_km_targets(prefix, tmp_path / "b.km", tmp_path / "b.npy", config)
    assert (tmp_path / "a.km").read_text() == (tmp_path / "b.km").read_text()
    ids = np.concatenate(list(iter_unit_lines(tmp_path / "a.km")))
    assert ids.min() >= 0 and ids.max() < 64 and np.load(tmp_path / "a.npy").shape == (64, 39)


def test_manifest_mismatch_is_a_user_error(tmp_path):
    prefix, _ = mfcc_like(tmp_path, k=4)
    write_manifest(tmp_path / "other.tsv", tmp_path, [("a.flac", 16000)])
    with pytest.raises(W2vuError, match=r"lists 7 utterances but .*other\.tsv has 1 rows"):
        learn_km_targets(prefix, tmp_path / "train.km", tmp_path / "c.npy",
                         km_targets_config(clusters=4), manifest=tmp_path / "other.tsv")
    assert not (tmp_path / "train.km").exists()
