"""wav2vec-U 1.0 PCA of layer features (the reference's `pca.py` and `apply_pca.py`; see
`kmeans.py` for the reference's commands and the deliberate differences)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

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
    save_array,
)
from w2vu.io.features import (
    DEFAULT_BLOCK_ROWS,
    FeatureWriter,
    open_features,
)

log = logging.getLogger(__name__)

# faiss's PCAMatrix trains on at most this many frames per input dimension (its max_points_per_d);
# the scikit-learn backend samples the same number, so both bound memory the same way.
PCA_POINTS_PER_DIM = 1000


@dataclass(frozen=True)
class PcaFiles:
    """The two arrays of a trained PCA: apply it as `x @ A + b`."""

    A: Path
    b: Path


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
    check_backend(backend)
    n, d_in = x.shape
    if backend == "faiss":
        faiss = import_faiss()
        pca = faiss.PCAMatrix(d_in, dim, 0.0)
        with limited_threads(1, backend):  # threaded BLAS sums the covariance in another order
            pca.train(np.ascontiguousarray(x, dtype=np.float32))
        a = faiss.vector_to_array(pca.A).reshape(pca.d_out, pca.d_in).T
        b = faiss.vector_to_array(pca.b)
        return canonical_signs(a, b)
    import_sklearn()
    from sklearn.decomposition import PCA

    cap = PCA_POINTS_PER_DIM * d_in
    if n > cap:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))
        x = np.concatenate([x[rows[i: i + SAMPLE_CHUNK]] for i in range(0, cap, SAMPLE_CHUNK)])
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
