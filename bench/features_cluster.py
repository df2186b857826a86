"""wav2vec-U 1.0 feature chain: faiss vs scikit-learn k-means and PCA; merge/pool throughput.

Why: the reference needs faiss (GPU) for k-means and PCA; w2vu runs faiss-cpu by default and
keeps scikit-learn as a fallback, so this shows what the fallback costs in time, memory and
quality. Cluster-run merging and adjacent pooling are vectorised over blocks of utterances; the
baseline is the reference scripts' loops (merge_clusters.py, mean_pool.py: torch, per utterance
and per run, on the CPU here), run in the same process.

Data: synthetic but structured, seeded: utterances of 50-400 frames made of runs (geometric,
mean 3 frames) around 128 centres that lie in a 64-d subspace of the 1024-d space, plus
correlated and white noise. Written once in the fairseq layout and memory-mapped by every step.

Each step runs in a fresh process, so that its peak RSS is its own (the RSS of an idle process
with the same imports is printed too; pages of the memory-mapped input count as RSS when read).
The 1-minute load average after each step shows whether other work shared the cores.

Run: python bench/features_cluster.py [--frames 200000] [--dim 1024] [--k 128] [--niter 50]
                                      [--pca-dim 512] [--seed 0] [--threads N]
Takes about 2-3 minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from w2vu.features.backends import save_array
from w2vu.features.kmeans import KmeansConfig, assign_clusters, fit_centroids
from w2vu.features.pca import PcaFiles, apply_pca, fit_pca
from w2vu.features.pool import mean_pool_features, merge_clusters
from w2vu.io.features import FeatureWriter, feature_paths, iter_unit_lines, open_features

import machine

LATENT = 64


def make_corpus(prefix: Path, frames: int, dim: int, k: int, seed: int) -> int:
    """Write the synthetic split; return the number of utterances."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((LATENT, dim)).astype(np.float32) / math.sqrt(LATENT)
    centres = (rng.standard_normal((k, LATENT)).astype(np.float32) * 2.0) @ mix
    noise_mix = rng.standard_normal((LATENT, dim)).astype(np.float32) / math.sqrt(LATENT)
    utterances = 0
    with FeatureWriter(prefix, dim) as writer:
        written = 0
        while written < frames:
            length = min(int(rng.integers(50, 401)), frames - written)
            runs = rng.geometric(1 / 3, size=length)
            ids = np.repeat(rng.integers(0, k, size=length), runs)[:length]
            x = centres[ids]
            x += (rng.standard_normal((length, LATENT)).astype(np.float32) * 0.7) @ noise_mix
            x += rng.standard_normal((length, dim)).astype(np.float32) * 0.1
            writer.append(x)
            written += length
            utterances += 1
    return utterances


# --- steps, each run in its own process ---------------------------------------------------

def step_idle(**_: object) -> None:
    import faiss  # noqa: F401
    import sklearn.cluster  # noqa: F401
    import sklearn.decomposition  # noqa: F401


def step_kmeans(prefix: str, out: str, backend: str, k: int, niter: int, nredo: int, seed: int,
                threads: int | None, init: str = "random") -> None:
    config = KmeansConfig(clusters=k, niter=niter, nredo=nredo, n_init=nredo, seed=seed,
                          init=init, backend=backend, threads=threads)
    save_array(out, fit_centroids(open_features(prefix).data, config))


def step_pca(prefix: str, out_dir: str, backend: str, dim: int, threads: int | None) -> None:
    from w2vu.features.backends import limited_threads

    with limited_threads(threads, backend):
        a, b = fit_pca(open_features(prefix).data, dim, backend)
    save_array(Path(out_dir) / "A.npy", a)
    save_array(Path(out_dir) / "b.npy", b)


def step_apply_pca(prefix: str, out_dir: str, out_prefix: str, threads: int | None) -> None:
    apply_pca(prefix, PcaFiles(Path(out_dir) / "A.npy", Path(out_dir) / "b.npy"), out_prefix,
              threads=threads)


def step_assign(prefix: str, centroids: str, out: str, backend: str,
                threads: int | None) -> None:
    assign_clusters(prefix, centroids, out, backend=backend, threads=threads)


def step_merge_pool(prefix: str, src: str, merged: str, pooled: str,
                    repeats: int) -> tuple[float, float]:
    """Best of `repeats` (merge seconds, pool seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        merge_clusters(prefix, src, merged)
        middle = time.perf_counter()
        mean_pool_features(merged, pooled)
        times.append((middle - start, time.perf_counter() - middle))
    return min(t[0] for t in times), min(t[1] for t in times)


def step_merge_pool_reference(prefix: str, src: str, merged: str, pooled: str,
                              repeats: int) -> tuple[float, float]:
    """Best of `repeats` (merge seconds, pool seconds) of the reference loops."""
    times = [_reference_loops(prefix, src, merged, pooled) for _ in range(repeats)]
    return min(t[0] for t in times), min(t[1] for t in times)


def _reference_loops(prefix: str, src: str, merged: str, pooled: str) -> tuple[float, float]:
    """merge_clusters.py --pooling mean, then mean_pool.py, as the reference loops them."""
    import torch
    import torch.nn.functional as F
    from npy_append_array import NpyAppendArray

    torch.set_num_threads(1)

    def read(prefix_: str):
        npy, lengths = feature_paths(prefix_)
        sizes = [int(line) for line in lengths.read_text().split()]
        return np.load(npy, mmap_mode="r"), sizes

    start = time.perf_counter()
    features, sizes = read(prefix)
    clusters = [row.tolist() for row in iter_unit_lines(src)]
    npaa = NpyAppendArray(merged + ".npy", delete_if_exists=True)
    offset = 0
    with open(merged + ".lengths", "w") as l_f:
        for size, clust in zip(sizes, clusters):
            feats = torch.from_numpy(features[offset: offset + size].copy())
            offset += size
            _, counts = torch.LongTensor(clust).unique_consecutive(return_counts=True)
            curr, out = 0, []
            for c in counts:
                c = c.item()
                out.append(feats[curr: curr + c].mean(dim=0))
                curr += c
            x = torch.stack(out, dim=0).numpy()
            print(len(x), file=l_f)
            npaa.append(x)
    npaa.close()
    middle = time.perf_counter()
    features, sizes = read(merged)
    npaa = NpyAppendArray(pooled + ".npy", delete_if_exists=True)
    fsz, offset = features.shape[-1], 0
    with torch.no_grad(), open(pooled + ".lengths", "w") as lengths_out:
        for length in sizes:
            x = torch.from_numpy(np.array(features[offset: offset + length]))
            offset += length
            target_num = math.ceil(length * 0.5)
            rem = length % target_num
            if rem > 0:
                to_add = target_num - rem
                x = F.pad(x, [0, 0, 0, to_add])
                x[-to_add:] = x[-to_add - 1]
            x = x.view(target_num, -1, fsz).mean(dim=-2)
            print(target_num, file=lengths_out)
            npaa.append(x.numpy())
    npaa.close()
    return middle - start, time.perf_counter() - middle


STEPS = {name[5:]: fn for name, fn in globals().items() if name.startswith("step_")}


def peak_rss() -> int:
    """This process's peak RSS in bytes. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    fork + exec, so a spawned child would report its parent's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(conn, name: str, kwargs: dict) -> None:
    start = time.perf_counter()
    result = STEPS[name](**kwargs)
    elapsed = time.perf_counter() - start
    conn.send((elapsed, peak_rss(), result))


def measure(name: str, **kwargs: object) -> tuple[float, int, object]:
    """(seconds, peak RSS bytes, result) of one step in a fresh process."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, name, kwargs))
    proc.start()
    child.close()
    out = parent.recv()
    proc.join()
    return out


# --- quality figures (not timed) ----------------------------------------------------------

def mean_sq_distance(prefix: Path, centroids: np.ndarray) -> float:
    """k-means objective per frame: mean squared distance to the nearest centroid."""
    total, count = 0.0, 0
    c2 = (centroids.astype(np.float64) ** 2).sum(1)
    for block in open_features(prefix).blocks():
        x = np.asarray(block.data, dtype=np.float64)
        d = (x ** 2).sum(1)[:, None] - 2 * x @ centroids.T.astype(np.float64) + c2
        total += float(d.min(axis=1).sum())
        count += len(x)
    return total / count


def subspace_cosine(a1: np.ndarray, a2: np.ndarray) -> float:
    """Smallest cosine of the principal angles between two PCA subspaces (1 = identical)."""
    q1, _ = np.linalg.qr(a1.astype(np.float64))
    q2, _ = np.linalg.qr(a2.astype(np.float64))
    return float(np.linalg.svd(q1.T @ q2, compute_uv=False).min())


def _max_diff(ours, theirs) -> float | None:
    """Largest absolute difference of two feature sets with equal lengths (None otherwise)."""
    if not np.array_equal(ours.lengths, theirs.lengths):
        return None
    return float(np.abs(ours.data - theirs.data).max()) if ours.num_frames else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--k", type=int, default=128)
    parser.add_argument("--niter", type=int, default=50)
    parser.add_argument("--nredo", type=int, default=1,
                        help="faiss runs (sklearn n_init); the reference uses 3")
    parser.add_argument("--pca-dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    mib = 1 << 20
    print(machine.describe())

    with tempfile.TemporaryDirectory(prefix="w2vu-bench-") as tmp_name:
        tmp = Path(tmp_name)
        prefix = tmp / "train"
        start = time.perf_counter()
        utterances = make_corpus(prefix, args.frames, args.dim, args.k, args.seed)
        print(f"corpus: {args.frames} x {args.dim} float32 ({args.frames * args.dim * 4 / mib:.0f}"
              f" MiB), {utterances} utterances, written in {time.perf_counter() - start:.1f} s")
        idle = measure("idle")[1]
        print(f"idle process RSS (python + numpy + faiss + sklearn imported; the reference "
              f"loops also import torch): "
              f"{idle / mib:.0f} MiB\n")

        rows: list[tuple[str, str, float, int, float]] = []

        def run(label: str, settings: str, name: str, **kw: object) -> float:
            seconds, rss, _ = measure(name, **kw)
            rows.append((label, settings, seconds, rss, os.getloadavg()[0]))
            print(f"  {label}: {seconds:.1f} s, peak RSS {rss / mib:.0f} MiB", flush=True)
            return seconds

        common = {"prefix": str(prefix), "threads": args.threads}
        km = {"k": args.k, "niter": args.niter, "nredo": args.nredo, "seed": args.seed}
        t_kf = run("k-means faiss", f"K={args.k} niter={args.niter} nredo={args.nredo} all frames",
                   "kmeans", out=str(tmp / "cf.npy"), backend="faiss", **km, **common)
        t_kp = run("k-means faiss k-means++", "same, k-means++ seeds (w2vu option)", "kmeans",
                   out=str(tmp / "cp.npy"), backend="faiss", init="k-means++", **km, **common)
        t_ks = run("k-means sklearn", f"MiniBatch K={args.k} max_iter={args.niter} "
                   f"n_init={args.nredo} batch 10000", "kmeans", out=str(tmp / "cs.npy"),
                   backend="sklearn", init="k-means++", **km, **common)
        obj_f, obj_p, obj_s = (mean_sq_distance(prefix, np.load(tmp / name))
                               for name in ("cf.npy", "cp.npy", "cs.npy"))
        t_af = run("assign faiss IndexFlatL2", "-> .src", "assign",
                   centroids=str(tmp / "cf.npy"), out=str(tmp / "train.src"), backend="faiss",
                   **common)
        t_an = run("assign numpy", "-> .src", "assign", centroids=str(tmp / "cf.npy"),
                   out=str(tmp / "numpy.src"), backend="sklearn", **common)
        same = (tmp / "train.src").read_text() == (tmp / "numpy.src").read_text()
        (tmp / "pf").mkdir()
        (tmp / "ps").mkdir()
        pca = {"dim": args.pca_dim}
        t_pf = run("PCA train faiss", f"PCAMatrix {args.dim}->{args.pca_dim} eigen_power 0",
                   "pca", out_dir=str(tmp / "pf"), backend="faiss", **pca, **common)
        t_ps = run("PCA train sklearn", "PCA covariance_eigh", "pca", out_dir=str(tmp / "ps"),
                   backend="sklearn", **pca, **common)
        cos = subspace_cosine(np.load(tmp / "pf" / "A.npy"), np.load(tmp / "ps" / "A.npy"))
        run("PCA apply (numpy, streamed)", "x @ A + b", "apply_pca", out_dir=str(tmp / "pf"),
            out_prefix=str(tmp / "pca" / "train"), **common)

        pca_prefix = str(tmp / "pca" / "train")
        seconds, rss, (t_m, t_p) = measure(
            "merge_pool", prefix=pca_prefix, src=str(tmp / "train.src"),
            merged=str(tmp / "m" / "train"), pooled=str(tmp / "p" / "train"), repeats=3)
        (tmp / "mr").mkdir()
        (tmp / "pr").mkdir()
        seconds_r, rss_r, (t_mr, t_pr) = measure(
            "merge_pool_reference", prefix=pca_prefix, src=str(tmp / "train.src"),
            merged=str(tmp / "mr" / "train"), pooled=str(tmp / "pr" / "train"), repeats=3)
        merged = open_features(tmp / "m" / "train")
        pooled = open_features(tmp / "p" / "train")
        agree = [_max_diff(ours, open_features(tmp / ref / "train"))
                 for ours, ref in ((merged, "mr"), (pooled, "pr"))]
        n_frames, n_segments = args.frames, merged.num_frames
        load = os.getloadavg()[0]
        rows += [("merge (ours, best of 3)", f"{n_frames} frames -> {n_segments} runs", t_m, rss,
                  load),
                 ("mean-pool (ours, best of 3)", f"{n_segments} -> {pooled.num_frames}", t_p, rss,
                  load),
                 ("merge (reference loop)", "torch, per run, best of 3", t_mr, rss_r, load),
                 ("mean-pool (reference loop)", "torch, per utterance, best of 3", t_pr, rss_r,
                  load)]

    print()
    print(f"| {'step':<28} | {'settings':<48} | {'time s':>7} | {'peak RSS MiB':>12} | "
          f"{'load 1m':>7} |")
    print(f"|{'-' * 30}|{'-' * 50}|{'-' * 9}|{'-' * 14}|{'-' * 9}|")
    for label, settings, secs, rss, load in rows:
        print(f"| {label:<28} | {settings:<48} | {secs:7.2f} | {rss / mib:12.0f} | {load:7.2f} |")
    print()
    print(f"k-means  sklearn/faiss time ratio: {t_ks / t_kf:.2f} (faiss k-means++/random "
          f"{t_kp / t_kf:.2f}); mean squared distance per frame: faiss {obj_f:.1f}, faiss "
          f"k-means++ {obj_p:.1f}, sklearn {obj_s:.1f} (sklearn/faiss {obj_s / obj_f:.3f})")
    print(f"assign   numpy/faiss time ratio: {t_an / t_af:.2f}; identical .src: {same}")
    print(f"PCA      sklearn/faiss train time ratio: {t_ps / t_pf:.2f}; subspace agreement "
          f"(min principal-angle cosine): {cos:.6f}")
    print(f"merge    {n_frames / t_m:,.0f} frames/s (ours) vs {n_frames / t_mr:,.0f} frames/s "
          f"(reference loop): {t_mr / t_m:.1f}x")
    print(f"pool     {n_segments / t_p:,.0f} segments/s (ours) vs {n_segments / t_pr:,.0f} "
          f"segments/s (reference loop): {t_pr / t_p:.1f}x")
    print(f"same as the reference loops (None would mean other lengths): merged max |diff| "
          f"{agree[0]}, pooled max |diff| {agree[1]}")


if __name__ == "__main__":
    main()
