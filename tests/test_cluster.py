"""k-means, cluster assignment (.src) and PCA of the wav2vec-U 1.0 chain, faiss and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from w2vu.errors import W2vuError
from w2vu.features.backends import sample_frames
from w2vu.features.kmeans import (
    KmeansConfig,
    assign_clusters,
    fit_centroids,
    kmeans_plusplus,
    nearest_centroids,
    train_kmeans,
)
from w2vu.features.pca import PcaFiles, apply_pca, canonical_signs, pca_paths, train_pca
from w2vu.io.features import (
    feature_paths,
    iter_unit_lines,
    open_features,
    read_lengths,
    write_features,
)

BACKENDS = ["faiss", "sklearn"]
K, DIM = 5, 8


def separated_split(tmp_path, seed: int = 0, lengths=(40, 0, 1, 75, 33, 120, 2, 60)):
    """Utterances whose frames come from K far-apart blobs; returns (prefix, true labels)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((K, DIM)) * 20
    labels = rng.integers(0, K, size=sum(lengths))
    labels[:K] = np.arange(K)  # every blob present
    x = (centers[labels] + rng.standard_normal((len(labels), DIM)) * 0.3).astype(np.float32)
    utts = np.split(x, np.cumsum(lengths)[:-1])
    write_features(tmp_path / "train", utts)
    return tmp_path / "train", labels, centers


def quick(backend: str, **kw) -> KmeansConfig:
    """faiss starts from K random frames (no k-means++): on a few well-separated blobs one run
    merges two of them most of the time, so it takes several restarts, keeping the best."""
    return KmeansConfig(clusters=K, niter=20, nredo=20, backend=backend, seed=3, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_recovers_separated_clusters_deterministically(tmp_path, backend):
    prefix, labels, centers = separated_split(tmp_path)
    path = train_kmeans(prefix, tmp_path / "CLUS5" / "centroids.npy", quick(backend))
    assert path == tmp_path / "CLUS5" / "centroids.npy"
    found = np.load(path)
    assert found.shape == (K, DIM) and found.dtype == np.float32
    # Each true centre has its own learned centroid, within the noise.
    match = np.linalg.norm(centers[:, None] - found[None], axis=-1).argmin(axis=1)
    assert sorted(match.tolist()) == list(range(K))
    np.testing.assert_allclose(found[match], centers, atol=0.2)
    again = np.load(train_kmeans(prefix, tmp_path / "again.npy", quick(backend)))
    np.testing.assert_array_equal(found, again)


def test_kmeans_plusplus_seeding_needs_no_restarts(tmp_path):
    prefix, labels, centers = separated_split(tmp_path)
    x = open_features(prefix).data
    seeds = kmeans_plusplus(x, K, seed=1)
    assert seeds.shape == (K, DIM)
    assert all((np.abs(x - s).sum(axis=1) == 0).any() for s in seeds)  # seeds are frames
    nearest_blob = np.linalg.norm(seeds[:, None] - centers[None], axis=-1).argmin(axis=1)
    assert sorted(nearest_blob.tolist()) == list(range(K))  # one seed per blob
    np.testing.assert_array_equal(seeds, kmeans_plusplus(x, K, seed=1))
    for backend in BACKENDS:
        config = KmeansConfig(clusters=K, niter=20, nredo=1, n_init=1, init="k-means++",
                              backend=backend, seed=1)
        found = fit_centroids(x, config)
        match = np.linalg.norm(centers[:, None] - found[None], axis=-1).argmin(axis=1)
        assert sorted(match.tolist()) == list(range(K)), backend
    with pytest.raises(W2vuError, match="unknown k-means init"):
        fit_centroids(x, KmeansConfig(clusters=K, init="kmeans||"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_src_lines_align_with_lengths(tmp_path, backend):
    prefix, labels, _ = separated_split(tmp_path)
    centroids = train_kmeans(prefix, tmp_path / "c.npy", quick(backend))
    lines = assign_clusters(prefix, centroids, tmp_path / "train.src", backend=backend,
                            block_rows=50)
    lengths = read_lengths(feature_paths(prefix)[1])
    rows = list(iter_unit_lines(tmp_path / "train.src"))
    assert lines == len(rows) == len(lengths)
    assert [len(r) for r in rows] == lengths.tolist()
    assert (tmp_path / "train.src").read_text().splitlines()[1] == ""  # T = 0
    ids = np.concatenate(rows)
    # A bijection between true blobs and cluster ids.
    pairs = set(zip(labels.tolist(), ids.tolist()))
    assert len(pairs) == K and len({i for _, i in pairs}) == K


def test_faiss_and_numpy_assignment_agree():
    import faiss

    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 16)).astype(np.float32)
    c = rng.standard_normal((12, 16)).astype(np.float32)
    index = faiss.IndexFlatL2(16)
    index.add(c)
    brute = np.linalg.norm(x[:, None].astype(np.float64) - c[None], axis=-1).argmin(axis=1)
    np.testing.assert_array_equal(nearest_centroids(x, c), brute)
    np.testing.assert_array_equal(nearest_centroids(x, c, index), brute)


def test_sample_fraction_is_seeded_and_bounded(tmp_path):
    prefix, _, _ = separated_split(tmp_path)
    feats = open_features(prefix)
    assert sample_frames(feats) is feats.data  # all frames: the map itself, no copy
    a = sample_frames(feats, 0.25, seed=5)
    b = sample_frames(feats, 0.25, seed=5)
    assert len(a) == int(feats.num_frames * 0.25)
    np.testing.assert_array_equal(a, b)
    assert len(sample_frames(feats, 1.0, max_frames=30)) == 30
    config = quick("faiss", sample_fraction=0.5)
    assert np.load(train_kmeans(prefix, tmp_path / "half.npy", config)).shape == (K, DIM)
    with pytest.raises(W2vuError, match="sample fraction"):
        sample_frames(feats, 0.0)


def test_kmeans_user_errors(tmp_path):
    write_features(tmp_path / "tiny", [np.zeros((3, 4), np.float32)])
    with pytest.raises(W2vuError, match="fewer than the 128 k-means clusters"):
        train_kmeans(tmp_path / "tiny", tmp_path / "c.npy")
    np.save(tmp_path / "c.npy", np.zeros((2, 5), np.float32))
    with pytest.raises(W2vuError, match="do not fit the 4-d features"):
        assign_clusters(tmp_path / "tiny", tmp_path / "c.npy", tmp_path / "tiny.src")
    with pytest.raises(W2vuError, match="unknown clustering backend"):
        fit_centroids(np.zeros((10, 2), np.float32), KmeansConfig(clusters=2, backend="x"))
    assert not (tmp_path / "tiny.src").exists()


def anisotropic_split(tmp_path, n: int = 3000, dim: int = 12):
    """Correlated Gaussian frames with distinct variances, mean far from 0."""
    rng = np.random.default_rng(7)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    scales = np.geomspace(10, 0.1, dim)
    x = (rng.standard_normal((n, dim)) * scales) @ basis.T + rng.standard_normal(dim) * 5
    x = x.astype(np.float32)
    write_features(tmp_path / "train", np.split(x, [0, 100, 100, 1700]))
    return tmp_path / "train", x


@pytest.mark.parametrize("backend", BACKENDS)
def test_pca_is_projection_on_top_components(tmp_path, backend):
    prefix, x = anisotropic_split(tmp_path)
    files = train_pca(prefix, tmp_path / "pca", dim=5, backend=backend)
    assert files == pca_paths(tmp_path / "pca", 5)
    assert files.A.name == "5_pca_A.npy" and files.b.name == "5_pca_b.npy"
    a, b = np.load(files.A), np.load(files.b)
    assert a.shape == (12, 5) and b.shape == (5,)
    x64 = x.astype(np.float64)
    centred = x64 - x64.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    want = centred @ vt[:5].T
    got = x64 @ a + b
    signs = np.sign((got * want).sum(axis=0))
    np.testing.assert_allclose(got * signs, want, atol=2e-3 * np.abs(want).max())
    np.testing.assert_allclose(np.abs(a.T @ vt[:5].T), np.eye(5), atol=1e-3)

    frames = apply_pca(prefix, files, tmp_path / "precompute_pca5" / "train", block_rows=700)
    out = np.load(feature_paths(tmp_path / "precompute_pca5" / "train")[0], mmap_mode="r")
    assert frames == len(x) == out.shape[0]
    assert out.shape[1] == 5 and out.dtype == np.float32
    assert read_lengths(feature_paths(tmp_path / "precompute_pca5" / "train")[1]).tolist() == [
        0, 100, 0, 1600, 1300]
    np.testing.assert_allclose(out, x @ a + b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pca_dimension_capped_at_feature_dimension(tmp_path, backend, caplog):
    prefix, x = anisotropic_split(tmp_path)
    with caplog.at_level("INFO"):
        files = train_pca(prefix, tmp_path / "pca", dim=512, backend=backend)
    assert "capped at the feature dimension 12" in caplog.text
    assert files.A.name == "512_pca_A.npy"
    a, b = np.load(files.A), np.load(files.b)
    assert a.shape == (12, 12)
    # A full-rank PCA is a rotation: distances are kept.
    y = x @ a + b
    np.testing.assert_allclose(np.linalg.norm(y[1:] - y[:-1], axis=1),
                               np.linalg.norm(x[1:] - x[:-1], axis=1), rtol=1e-3, atol=1e-3)


def test_pca_signs_are_canonical(tmp_path):
    """Eigenvector signs are arbitrary (faiss's change with the thread count): each component's
    largest-magnitude entry is made positive, with b flipped alongside, so the PCA is a function
    of the data alone, whatever the backend."""
    prefix, x = anisotropic_split(tmp_path)
    got = {}
    for backend in BACKENDS:
        files = train_pca(prefix, tmp_path / backend, dim=5, backend=backend)
        a, b = np.load(files.A), np.load(files.b)
        assert (a[np.abs(a).argmax(axis=0), np.arange(5)] > 0).all()
        got[backend] = (a, b)
    (fa, fb), (sa, sb) = got["faiss"], got["sklearn"]
    np.testing.assert_allclose(fa, sa, atol=1e-3)
    np.testing.assert_allclose(x @ fa + fb, x @ sa + sb, atol=1e-2)

    flips = np.array([-1, 1, -1, -1, 1], np.float32)
    flipped = canonical_signs(fa * flips, fb * flips)
    assert flipped[0].tobytes() == fa.tobytes() and flipped[1].tobytes() == fb.tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
def test_pca_bytes_do_not_depend_on_the_thread_count(tmp_path, backend):
    """On these frames a 2-thread faiss PCAMatrix sums the covariance in another order than a
    1-thread one: low bits differ and components flip sign unless training is single-threaded."""
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((39, 39)))
    x = (rng.standard_normal((3000, 39)) * np.geomspace(30, 0.01, 39)) @ basis.T
    write_features(tmp_path / "train", [(x + rng.standard_normal(39) * 50).astype(np.float32)])
    prefix = tmp_path / "train"
    files = [train_pca(prefix, tmp_path / f"pca{t}", dim=39, backend=backend, threads=t)
             for t in (1, 2)]
    assert files[0].A.read_bytes() == files[1].A.read_bytes()
    assert files[0].b.read_bytes() == files[1].b.read_bytes()


def test_pca_user_errors(tmp_path):
    write_features(tmp_path / "few", [np.ones((3, 8), np.float32)])
    with pytest.raises(W2vuError, match="fewer than the PCA dimension 8"):
        train_pca(tmp_path / "few", tmp_path / "pca", dim=16)
    prefix, _ = anisotropic_split(tmp_path)
    files = train_pca(prefix, tmp_path / "pca", dim=4)
    write_features(tmp_path / "other", [np.ones((3, 6), np.float32)])
    with pytest.raises(W2vuError, match="cannot apply to the 6-d"):
        apply_pca(tmp_path / "other", files, tmp_path / "out")
    with pytest.raises(W2vuError, match="PCA matrix not found"):
        apply_pca(prefix, PcaFiles(tmp_path / "nope_A.npy", files.b), tmp_path / "out")


def test_sklearn_path_works_without_faiss(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    prefix, labels, _ = separated_split(tmp_path)
    with pytest.raises(W2vuError, match="faiss is not installed.*'sklearn' backend"):
        train_kmeans(prefix, tmp_path / "c.npy", quick("faiss"))
    centroids = train_kmeans(prefix, tmp_path / "c.npy", quick("sklearn"))
    assert assign_clusters(prefix, centroids, tmp_path / "t.src", backend="sklearn") == 8
    files = train_pca(prefix, tmp_path / "pca", dim=4, backend="sklearn")
    assert apply_pca(prefix, files, tmp_path / "out") == len(labels)
