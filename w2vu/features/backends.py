"""The k-means and PCA backends (faiss, scikit-learn): loading them, their threads, the frames
they train on, and their arrays on disk."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.io.features import (
    Features,
)

log = logging.getLogger(__name__)

Backend = Literal["faiss", "sklearn"]
BACKENDS = ("faiss", "sklearn")
SAMPLE_CHUNK = 1 << 16


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise W2vuError(f"unknown clustering backend {backend!r}; use one of {BACKENDS}")


def import_faiss():
    try:
        import faiss
    except ImportError:
        raise W2vuError("faiss is not installed: pip install faiss-cpu==1.15.1, or choose the "
                        "'sklearn' backend") from None
    return faiss


def import_sklearn():
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
        faiss = import_faiss()
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


def use_gpu(device: str, faiss) -> bool:
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
    for start in range(0, take, SAMPLE_CHUNK):
        out[start: start + SAMPLE_CHUNK] = feats.data[rows[start: start + SAMPLE_CHUNK]]
    return out


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
