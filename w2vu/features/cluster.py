"""wav2vec-U 1.0 k-means and PCA on layer features, with the reference's semantics.

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.io.features import (
    DEFAULT_BLOCK_ROWS,
    Features,
    FeatureWriter,
    open_features,
    write_unit_lines,
)

log = logging.getLogger(__name__)

Backend = Literal["faiss", "sklearn"]
BACKENDS = ("faiss", "sklearn")
Init = Literal["random", "k-means++"]
INITS = ("random", "k-means++")
# faiss's PCAMatrix trains on at most this many frames per input dimension (its max_points_per_d);
# the scikit-learn backend samples the same number, so both bound memory the same way.
PCA_POINTS_PER_DIM = 1000
_SAMPLE_CHUNK = 1 << 16


@dataclass(frozen=True)
class KmeansConfig:
    """k-means settings; the defaults are the reference's CLUS128.

    faiss uses `niter`, `nredo` (restarts, the best objective kept) and `init`. scikit-learn's
    MiniBatchKMeans uses `niter` as `max_iter`, `init`, and the fields from `n_init` on; batch,
    tol, max_no_improvement and reassignment_ratio default to fairseq's `learn_kmeans.py`, while
    `n_init` (initialisations tried) defaults to 3, like `nredo`: learn_kmeans's 20 took 196 s
    instead of 21 s (n_init 1) or 31 s (n_init 3) for K=128 on 200k x 1024 frames.
    """

    n_clusters: int = 128
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


@dataclass(frozen=True)
class PcaFiles:
    """The two arrays of a trained PCA: apply it as `x @ A + b`."""

    A: Path
    b: Path


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise W2vuError(f"unknown clustering backend {backend!r}; use one of {BACKENDS}")


def _import_faiss():
    try:
        import faiss
    except ImportError:
        raise W2vuError("faiss is not installed: pip install faiss-cpu==1.15.1, or choose the "
                        "'sklearn' backend") from None
    return faiss


def _import_sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise W2vuError("scikit-learn is not installed: pip install scikit-learn==1.9.1, or "
                        "choose the 'faiss' backend") from None


@contextmanager
def limited_threads(threads: int | None, backend: str) -> Iterator[None]:
    """Hold faiss's OpenMP, or BLAS/OpenMP for numpy and scikit-learn, to `threads` in the block.

    A rule gets `threads` cores; without a limit faiss and BLAS would take every core.
    """
    if not threads:
        yield
        return
    if backend == "faiss":
        faiss = _import_faiss()
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(threads)
        try:
            yield
        finally:
            faiss.omp_set_num_threads(before)
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # comes with scikit-learn; without it BLAS keeps its own setting
        yield
        return
    with threadpool_limits(limits=threads):
        yield


def _use_gpu(device: str, faiss) -> bool:
    """GPU only when asked for and the installed faiss sees one; otherwise say so and use CPU."""
    if not device.startswith("cuda"):
        return False
    if faiss.get_num_gpus() > 0:
        return True
    log.warning("device %s asked for, but this faiss build sees no GPU; running on CPU", device)
    return False


def sample_frames(feats: Features, fraction: float = 1.0, max_frames: int | None = None,
                  seed: int = 0) -> np.ndarray:
    """A seeded uniform sample of frames, in file order; all frames come back as the map itself.

    The reference samples whole files (`random.sample`), which keeps correlated neighbours;
    frames are sampled here, so that a small fraction still covers every utterance.
    """
    if not 0 < fraction <= 1:
        raise W2vuError(f"sample fraction must be in (0, 1], got {fraction}")
    total = feats.num_frames
    take = total if fraction >= 1 else max(1, int(total * fraction))
    if max_frames is not None:
        take = min(take, max_frames)
    if take >= total:
        return feats.data
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(total, size=take, replace=False))
    out = np.empty((take, feats.dim), dtype=np.float32)
    for start in range(0, take, _SAMPLE_CHUNK):
        out[start: start + _SAMPLE_CHUNK] = feats.data[rows[start: start + _SAMPLE_CHUNK]]
    return out


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
    s = np.concatenate([np.asarray(x[rows[i: i + _SAMPLE_CHUNK]], dtype=np.float32)
                        for i in range(0, size, _SAMPLE_CHUNK)])
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
    faiss = _import_faiss()
    n, dim = x.shape
    x = np.ascontiguousarray(x, dtype=np.float32)  # a memory map passes through uncopied
    gpu = _use_gpu(config.device, faiss)

    def kmeans(nredo: int, seed: int):
        return faiss.Kmeans(dim, config.n_clusters, niter=config.niter, nredo=nredo, seed=seed,
                            spherical=False, max_points_per_centroid=n,  # no subsampling
                            gpu=gpu, verbose=False)

    if config.init == "random":
        best = kmeans(config.nredo, config.seed)
        objective = best.train(x)
    else:  # faiss restarts from the same given seeds, so the restarts are run here
        best, objective = None, np.inf
        for redo in range(config.nredo):
            run = kmeans(1, config.seed + redo)
            obj = run.train(x, init_centroids=kmeans_plusplus(x, config.n_clusters,
                                                              config.seed + redo))
            if obj < objective:
                best, objective = run, obj
    log.info("faiss k-means (%s init): K=%d on %d x %d, %d iterations x %d runs, objective %.6g",
             config.init, config.n_clusters, n, dim, config.niter, config.nredo, objective)
    return np.ascontiguousarray(best.centroids, dtype=np.float32)


def fit_centroids(x: np.ndarray, config: KmeansConfig = KmeansConfig()) -> np.ndarray:
    """k-means centroids [K, D] float32 of the rows of `x` (in memory or memory-mapped)."""
    _check_backend(config.backend)
    if config.init not in INITS:
        raise W2vuError(f"unknown k-means init {config.init!r}; use one of {INITS}")
    n, dim = x.shape
    if n < config.n_clusters:
        raise ValueError(f"{n} frames cannot make {config.n_clusters} clusters")
    with limited_threads(config.threads, config.backend):
        if config.backend == "faiss":
            return _faiss_kmeans(x, config)
        _import_sklearn()
        from sklearn.cluster import MiniBatchKMeans

        kmeans = MiniBatchKMeans(
            n_clusters=config.n_clusters, init=config.init, max_iter=config.niter,
            batch_size=config.batch_size, tol=config.tol,
            max_no_improvement=config.max_no_improvement, n_init=config.n_init,
            reassignment_ratio=config.reassignment_ratio, random_state=config.seed,
            compute_labels=False)
        kmeans.fit(x)
        log.info("scikit-learn MiniBatchKMeans (%s init): K=%d on %d x %d, %d steps",
                 config.init, config.n_clusters, n, dim, kmeans.n_steps_)
        return np.ascontiguousarray(kmeans.cluster_centers_, dtype=np.float32)


def save_array(path: str | os.PathLike, array: np.ndarray) -> Path:
    """np.save atomically (the temporary name keeps `.npy`, so numpy adds no extension)."""
    path = Path(path)
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)
    return path


def load_array(path: str | os.PathLike, what: str) -> np.ndarray:
    """np.load without pickles; a missing file is a user error that says what makes it."""
    path = Path(path)
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise W2vuError(f"{path}: {what} not found; run the step that trains it first") from None
    except (ValueError, OSError, EOFError) as err:
        raise W2vuError(f"{path}: unreadable {what} ({err}); delete it and retrain") from None


def train_kmeans(features: str | os.PathLike, centroids_path: str | os.PathLike,
                 config: KmeansConfig = KmeansConfig()) -> Path:
    """Learn centroids on the train features `{features}.npy` and save them (`centroids.npy`)."""
    feats = open_features(features)
    if feats.num_frames < config.n_clusters:
        raise W2vuError(f"{features}.npy has {feats.num_frames} frames, fewer than the "
                        f"{config.n_clusters} k-means clusters asked for; lower the number of "
                        "clusters or add training audio")
    x = sample_frames(feats, config.sample_fraction, config.max_frames, config.seed)
    if len(x) < config.n_clusters:
        raise W2vuError(f"the k-means sample of {features}.npy has {len(x)} frames, fewer than "
                        f"{config.n_clusters} clusters; raise the sample fraction or max frames")
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
    faiss = _import_faiss()
    index = faiss.IndexFlatL2(centroids.shape[1])
    if _use_gpu(device, faiss):
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index


def assign_clusters(features: str | os.PathLike, centroids_path: str | os.PathLike,
                    out_path: str | os.PathLike, backend: Backend = "faiss",
                    device: str = "cpu", threads: int | None = None,
                    block_rows: int = DEFAULT_BLOCK_ROWS) -> int:
    """Write `{split}.src`: per utterance, the nearest-centroid id of each frame; return lines."""
    _check_backend(backend)
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


def pca_paths(out_dir: str | os.PathLike, dim: int) -> PcaFiles:
    """`{dim}_pca_A.npy` / `{dim}_pca_b.npy` in `out_dir`, named by the requested dimension."""
    out_dir = Path(out_dir)
    return PcaFiles(out_dir / f"{dim}_pca_A.npy", out_dir / f"{dim}_pca_b.npy")


def fit_pca(x: np.ndarray, dim: int, backend: Backend = "faiss",
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(A [D, d], b [d]) float32 with x @ A + b = (x - mean) projected on the top-d components.

    faiss: `PCAMatrix(D, d, eigen_power=0)` as the reference's pca.py (it trains on at most
    1000 * D frames, sampled by itself). scikit-learn: `PCA(svd_solver="covariance_eigh")` on a
    seeded sample of the same size. Signs follow `canonical_signs` for both. Training uses one
    thread: a multi-threaded BLAS sums the covariance in an order that depends on the thread
    count, which changes the low bits of every component and can flip their signs.
    """
    _check_backend(backend)
    n, d_in = x.shape
    if backend == "faiss":
        faiss = _import_faiss()
        pca = faiss.PCAMatrix(d_in, dim, 0.0)
        with limited_threads(1, backend):  # threaded BLAS sums the covariance in another order
            pca.train(np.ascontiguousarray(x, dtype=np.float32))
        a = faiss.vector_to_array(pca.A).reshape(pca.d_out, pca.d_in).T
        b = faiss.vector_to_array(pca.b)
        return canonical_signs(a, b)
    _import_sklearn()
    from sklearn.decomposition import PCA

    cap = PCA_POINTS_PER_DIM * d_in
    if n > cap:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))
        x = np.concatenate([x[rows[i: i + _SAMPLE_CHUNK]] for i in range(0, cap, _SAMPLE_CHUNK)])
    pca = PCA(n_components=dim, svd_solver="covariance_eigh", random_state=seed)
    with limited_threads(1, backend):
        pca.fit(x)
    a = pca.components_.T.astype(np.float64)
    b = -(pca.mean_.astype(np.float64) @ a)
    return canonical_signs(a, b)


def canonical_signs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) as float32 with each component's largest-magnitude entry positive.

    An eigenvector's sign is arbitrary, and faiss's comes out differently with another thread
    count; flipping a column of A and the matching entry of b gives the same PCA up to that sign,
    so the fixed convention makes the files (and everything after them) depend only on the data.
    """
    a = np.asarray(a, dtype=np.float32)
    flip = a[np.abs(a).argmax(axis=0), np.arange(a.shape[1])] < 0
    signs = np.where(flip, -1, 1).astype(np.float32)
    return np.ascontiguousarray(a * signs), (np.asarray(b, dtype=np.float32) * signs)


def train_pca(features: str | os.PathLike, out_dir: str | os.PathLike, dim: int = 512,
              backend: Backend = "faiss", threads: int | None = None, seed: int = 0) -> PcaFiles:
    """Train PCA on `{features}.npy` and save `{dim}_pca_A.npy` + `{dim}_pca_b.npy`.

    The output dimension is capped at the feature dimension (MFCC input is 39- or 78-d); the
    files keep the requested `dim` in their names so that workflow outputs do not change.
    """
    feats = open_features(features)
    d_out = min(dim, feats.dim)
    if d_out < dim:
        log.info("PCA dimension %d capped at the feature dimension %d of %s.npy", dim, d_out,
                 features)
    if feats.num_frames < d_out:
        raise W2vuError(f"{features}.npy has {feats.num_frames} frames, fewer than the PCA "
                        f"dimension {d_out}; lower the PCA dimension or add training audio")
    with limited_threads(threads, backend):
        a, b = fit_pca(feats.data, d_out, backend, seed)
    files = pca_paths(out_dir, dim)
    save_array(files.A, a)
    save_array(files.b, b)
    log.info("PCA %d -> %d trained on %s (%d frames, backend %s)", feats.dim, d_out, features,
             feats.num_frames, backend)
    return files


def load_pca(files: PcaFiles) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) from their files, checked to fit together."""
    a = load_array(files.A, "PCA matrix")
    b = load_array(files.b, "PCA bias")
    if a.ndim != 2 or b.shape != (a.shape[1],):
        raise W2vuError(f"{files.A} {a.shape} and {files.b} {b.shape} do not make one PCA "
                        "(A must be [D, d] and b [d]); retrain the PCA")
    return a.astype(np.float32), b.astype(np.float32)


def apply_pca(features: str | os.PathLike, files: PcaFiles, out_prefix: str | os.PathLike,
              threads: int | None = None, block_rows: int = DEFAULT_BLOCK_ROWS) -> int:
    """Write `{out_prefix}.npy/.lengths` = x @ A + b, block by block; return the frame count."""
    feats = open_features(features)
    a, b = load_pca(files)
    if a.shape[0] != feats.dim:
        raise W2vuError(f"{files.A}: PCA trained on {a.shape[0]}-d features cannot apply to the "
                        f"{feats.dim}-d {features}.npy; retrain the PCA on these features")
    with limited_threads(threads, "numpy"), FeatureWriter(out_prefix, a.shape[1]) as writer:
        for block in feats.blocks(block_rows):
            y = block.data @ a
            y += b
            writer.extend(y, block.lengths)
    log.info("PCA applied to %d frames of %s -> %s (%d-d)", writer.frames, features, out_prefix,
             a.shape[1])
    return writer.frames


__all__ = [
    "Backend",
    "KmeansConfig",
    "PcaFiles",
    "apply_pca",
    "assign_clusters",
    "fit_centroids",
    "fit_pca",
    "kmeans_plusplus",
    "load_pca",
    "nearest_centroids",
    "pca_paths",
    "sample_frames",
    "train_kmeans",
    "train_pca",
]
