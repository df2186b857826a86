"""wav2vec-U 1.0 k-means and cluster assignment on layer features, with the reference's semantics
(PCA: `pca.py`).

Reference (fairseq `examples/wav2vec/unsupervised/scripts/`):

* `wav2vec_cluster_faiss.py -f CLUS128`: `faiss.Kmeans(d, 128, niter=50, nredo=3,
  max_points_per_centroid=N)` on all train frames, L2 → `CLUS128/centroids.npy`;
* `wav2vec_apply_cluster_faiss.py`: nearest centroid with `IndexFlatL2` → `{split}.src`;
* `pca.py --dim 512`: `faiss.PCAMatrix(D, 512, eigen_power=0)` → `512_pca_A.npy` ([D, d], the
  transpose of faiss's A) and `512_pca_b.npy`, so that applying it is `x @ A + b`;
* `apply_pca.py` → `{split}.npy/.lengths` of PCA features.

Deliberate differences: k-means reads the extracted features (the reference re-extracts them
without the waveform normalisation, see the reference notes §1.2), runs on the CPU unless a GPU
build of faiss is present and asked for, and may train on a seeded fraction of the frames.
scikit-learn (MiniBatchKMeans, PCA) is available as a backend for machines without faiss.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from w2vu.errors import W2vuError
from w2vu.features.backends import (
    SAMPLE_CHUNK,
    Backend,
    check_backend,
    import_faiss,
    import_sklearn,
    limited_threads,
    load_array,
    sample_frames,
    save_array,
    use_gpu,
)
from w2vu.io.features import (
    DEFAULT_BLOCK_ROWS,
    open_features,
    write_unit_lines,
)

log = logging.getLogger(__name__)

Init = Literal["random", "k-means++"]
INITS = ("random", "k-means++")


@dataclass(frozen=True)
class KmeansConfig:
    """k-means settings; the defaults are the reference's CLUS128.

    faiss uses `niter`, `nredo` (restarts, the best objective kept) and `init`. scikit-learn's
    MiniBatchKMeans uses `niter` as `max_iter`, `init`, and the fields from `n_init` on; batch,
    tol, max_no_improvement and reassignment_ratio default to fairseq's `learn_kmeans.py`, while
    `n_init` (initialisations tried) defaults to 3, like `nredo`: learn_kmeans's 20 took 196 s
    instead of 21 s (n_init 1) or 31 s (n_init 3) for K=128 on 200k x 1024 frames.
    """

    clusters: int = 128
    niter: int = 50
    nredo: int = 3
    sample_fraction: float = 1.0  # of the train frames; 1.0 = all (the reference)
    max_frames: int | None = None  # optional cap on the sample, to bound memory on large corpora
    seed: int = 1234  # faiss's own default seed
    # "random" = K random frames (faiss, the reference); "k-means++" = greedy D^2 seeding on a
    # sample (scikit-learn's default; for faiss computed here and passed as initial centroids).
    init: Init = "random"
    backend: Backend = "faiss"
    device: str = "cpu"  # "cuda" uses faiss's GPUs when the installed faiss has any
    threads: int | None = None
    n_init: int = 3
    batch_size: int = 10000
    tol: float = 0.0
    max_no_improvement: int | None = 100
    reassignment_ratio: float = 0.0


def kmeans_plusplus(x: np.ndarray, k: int, seed: int = 0,
                    sample_size: int | None = None) -> np.ndarray:
    """k-means++ seeds [k, D] from a sample of `x` (default 256 frames per centroid).

    Greedy, as scikit-learn does it: at each step 2 + ln(k) candidates are drawn with
    probability proportional to the squared distance to the nearest seed so far, and the one
    that lowers the total most is kept. Random seeds often land two in one well-separated
    cluster, which Lloyd iterations cannot undo.
    """
    rng = np.random.default_rng(seed)
    n = len(x)
    size = min(n, sample_size or 256 * k)
    if size < k:
        raise ValueError(f"{size} frames cannot seed {k} clusters")
    rows = np.sort(rng.choice(n, size=size, replace=False)) if size < n else np.arange(n)
    s = np.concatenate([np.asarray(x[rows[i: i + SAMPLE_CHUNK]], dtype=np.float32)
                        for i in range(0, size, SAMPLE_CHUNK)])
    norms = np.einsum("ij,ij->i", s, s)

    def sq_dist(picks: np.ndarray) -> np.ndarray:
        d = norms[:, None] - 2 * (s @ s[picks].T) + norms[picks][None]
        return np.maximum(d, 0, out=d)

    seeds = [int(rng.integers(size))]
    closest = sq_dist(np.array(seeds))[:, 0].astype(np.float64)
    trials = 2 + int(np.log(k))
    for _ in range(1, k):
        total = closest.sum()
        if total > 0:
            picks = np.searchsorted(np.cumsum(closest), rng.random(trials) * total)
            picks = np.minimum(picks, size - 1)
        else:  # fewer distinct frames than clusters: any frame will do
            picks = rng.integers(size, size=trials)
        candidate = np.minimum(closest[:, None], sq_dist(picks))
        best = int(candidate.sum(axis=0).argmin())
        seeds.append(int(picks[best]))
        closest = candidate[:, best]
    return s[seeds]


def _faiss_kmeans(x: np.ndarray, config: KmeansConfig) -> np.ndarray:
    faiss = import_faiss()
    n, dim = x.shape
    x = np.ascontiguousarray(x, dtype=np.float32)  # a memory map passes through uncopied
    gpu = use_gpu(config.device, faiss)

    def kmeans(nredo: int, seed: int):
        return faiss.Kmeans(dim, config.clusters, niter=config.niter, nredo=nredo, seed=seed,
                            spherical=False, max_points_per_centroid=n,  # no subsampling
                            gpu=gpu, verbose=False)

    if config.init == "random":
        best = kmeans(config.nredo, config.seed)
        objective = best.train(x)
    else:  # faiss restarts from the same given seeds, so the restarts are run here
        best, objective = None, np.inf
        for redo in range(config.nredo):
            run = kmeans(1, config.seed + redo)
            obj = run.train(x, init_centroids=kmeans_plusplus(x, config.clusters,
                                                              config.seed + redo))
            if obj < objective:
                best, objective = run, obj
    log.info("faiss k-means (%s init): K=%d on %d x %d, %d iterations x %d runs, objective %.6g",
             config.init, config.clusters, n, dim, config.niter, config.nredo, objective)
    return np.ascontiguousarray(best.centroids, dtype=np.float32)


def fit_centroids(x: np.ndarray, config: KmeansConfig = KmeansConfig()) -> np.ndarray:
    """k-means centroids [K, D] float32 of the rows of `x` (in memory or memory-mapped)."""
    check_backend(config.backend)
    if config.init not in INITS:
        raise W2vuError(f"unknown k-means init {config.init!r}; use one of {INITS}")
    n, dim = x.shape
    if n < config.clusters:
        raise ValueError(f"{n} frames cannot make {config.clusters} clusters")
    with limited_threads(config.threads, config.backend):
        if config.backend == "faiss":
            return _faiss_kmeans(x, config)
        import_sklearn()
        from sklearn.cluster import MiniBatchKMeans

        kmeans = MiniBatchKMeans(
            n_clusters=config.clusters, init=config.init, max_iter=config.niter,
            batch_size=config.batch_size, tol=config.tol,
            max_no_improvement=config.max_no_improvement, n_init=config.n_init,
            reassignment_ratio=config.reassignment_ratio, random_state=config.seed,
            compute_labels=False)
        kmeans.fit(x)
        log.info("scikit-learn MiniBatchKMeans (%s init): K=%d on %d x %d, %d steps",
                 config.init, config.clusters, n, dim, kmeans.n_steps_)
        return np.ascontiguousarray(kmeans.cluster_centers_, dtype=np.float32)


def train_kmeans(features: str | os.PathLike, centroids_path: str | os.PathLike,
                 config: KmeansConfig = KmeansConfig()) -> Path:
    """Learn centroids on the train features `{features}.npy` and save them (`centroids.npy`)."""
    feats = open_features(features)
    if feats.num_frames < config.clusters:
        raise W2vuError(f"{features}.npy has {feats.num_frames} frames, fewer than the "
                        f"{config.clusters} k-means clusters asked for; lower the number of "
                        "clusters or add training audio")
    x = sample_frames(feats, config.sample_fraction, config.max_frames, config.seed)
    if len(x) < config.clusters:
        raise W2vuError(f"the k-means sample of {features}.npy has {len(x)} frames, fewer than "
                        f"{config.clusters} clusters; raise the sample fraction or max frames")
    log.info("k-means on %d of %d frames (%d-d) of %s, backend %s", len(x), feats.num_frames,
             feats.dim, features, config.backend)
    return save_array(centroids_path, fit_centroids(x, config))


def nearest_centroids(x: np.ndarray, centroids: np.ndarray, index=None) -> np.ndarray:
    """Index of the nearest centroid (L2) per row; `index` is a faiss index holding them."""
    if len(x) == 0:
        return np.zeros(0, dtype=np.int64)
    if index is not None:
        _, ids = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
        return ids[:, 0].astype(np.int64)
    # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; the first term does not change the argmin.
    scores = x @ (-2.0 * centroids.T).astype(np.float32)
    scores += np.einsum("kd,kd->k", centroids, centroids)
    return scores.argmin(axis=1).astype(np.int64)


def _flat_index(centroids: np.ndarray, device: str):
    faiss = import_faiss()
    index = faiss.IndexFlatL2(centroids.shape[1])
    if use_gpu(device, faiss):
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index


def assign_clusters(features: str | os.PathLike, centroids_path: str | os.PathLike,
                    out_path: str | os.PathLike, backend: Backend = "faiss",
                    device: str = "cpu", threads: int | None = None,
                    block_rows: int = DEFAULT_BLOCK_ROWS) -> int:
    """Write `{split}.src`: per utterance, the nearest-centroid id of each frame; return lines."""
    check_backend(backend)
    feats = open_features(features)
    centroids = load_array(centroids_path, "k-means centroids")
    if centroids.ndim != 2 or centroids.shape[1] != feats.dim:
        raise W2vuError(f"{centroids_path}: centroids of shape {centroids.shape} do not fit the "
                        f"{feats.dim}-d features {features}.npy; retrain k-means on them")
    centroids = centroids.astype(np.float32)

    def rows() -> Iterator[np.ndarray]:
        index = _flat_index(centroids, device) if backend == "faiss" else None
        for block in feats.blocks(block_rows):
            ids = nearest_centroids(block.data, centroids, index)
            yield from np.split(ids, block.offsets[1:-1])

    with limited_threads(threads, backend):
        count = write_unit_lines(out_path, rows())
    log.info("assigned %d frames of %d utterances to %d clusters -> %s", feats.num_frames, count,
             len(centroids), out_path)
    return count
