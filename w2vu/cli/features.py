"""Feature commands: backbone layer features, k-means, PCA, pooling, 2.0 targets."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from w2vu.cli.commands import Commands, LibraryDefault, threads

log = logging.getLogger("w2vu")
COMMANDS = Commands()
KMEANS = "w2vu.features.kmeans:KmeansConfig"
BATCHES = "w2vu.features.extract:BatchSettings"


def backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("faiss", "sklearn"),
                   default=LibraryDefault(f"{KMEANS}.backend"))


def kmeans_backend(p: argparse.ArgumentParser) -> None:
    backend(p)
    p.add_argument("--device", default=LibraryDefault(f"{KMEANS}.device"),
                   help="cpu, or cuda for faiss on GPU")
    threads(p)


def _backbone(a: argparse.Namespace):
    """The backbone named on the command line: `mfcc`, a HF folder or a fairseq checkpoint."""
    if a.backbone == "mfcc":
        from w2vu.features.mfcc import MfccBackbone

        return MfccBackbone(stack=a.mfcc_stack, cmvn=a.mfcc_cmvn)
    from w2vu.features.backbone import load_backbone

    normalize = {"auto": None, "yes": True, "no": False}[a.normalize]
    return load_backbone(a.backbone, a.layer, a.device, normalize=normalize, bf16=a.bf16,
                         tf32=a.tf32)


def _kmeans_config(a: argparse.Namespace):
    from w2vu.features.kmeans import KmeansConfig

    return KmeansConfig(clusters=a.clusters, niter=a.niter, nredo=a.nredo,
                        sample_fraction=a.sample_fraction, seed=a.seed, init=a.init,
                        backend=a.backend, device=a.device, threads=a.threads)


def _extract_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--backbone", required=True,
                   help="mfcc, a Hugging Face model folder, or a fairseq wav2vec 2.0 .pt")
    p.add_argument("--layer", type=int, default=14, help="fairseq layer index (0-based)")
    p.add_argument("--normalize", choices=("auto", "yes", "no"), default="auto",
                   help="waveform normalisation: as the model says, or forced")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 autocast on GPU")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                   help="TF32 matmuls on GPU")
    p.add_argument("--mfcc-stack", type=int, default=2, choices=(1, 2),
                   help="MFCC frames stacked: 1 = 100 Hz 39-d, 2 = 50 Hz 78-d")
    p.add_argument("--mfcc-cmvn", action="store_true",
                   help="MFCC: zero mean, unit variance per utterance and dimension")
    p.add_argument("--batch-seconds", type=float,
                   default=LibraryDefault(f"{BATCHES}.batch_seconds"),
                   help="padded audio per batch; 0 = auto (1 utterance on CPU, 120 s on GPU)")
    p.add_argument("--window", type=int, default=LibraryDefault(f"{BATCHES}.window"),
                   help="utterances sorted per window")
    p.add_argument("--max-chunk-seconds", type=float,
                   default=LibraryDefault(f"{BATCHES}.max_chunk_seconds"),
                   help="longer utterances go through the model in chunks")
    p.add_argument("--out-prefix", required=True, help="writes PREFIX.npy and PREFIX.lengths")
    threads(p)


@COMMANDS("extract", _extract_arguments, "layer features of one shard of a split manifest")
def cmd_extract(a: argparse.Namespace) -> None:
    import torch

    from w2vu.features.extract import BatchSettings, extract_shard

    torch.set_num_threads(a.threads)
    extract_shard(a.manifest, a.shard, a.shards, _backbone(a), a.out_prefix,
                  BatchSettings(a.batch_seconds, a.window, a.max_chunk_seconds))


def _gather_features_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--parts", nargs="+", required=True, help="feature prefixes, in order")
    p.add_argument("--out-prefix", required=True)


@COMMANDS("gather-features", _gather_features_arguments, "concatenate feature shards in order")
def cmd_gather_features(a: argparse.Namespace) -> None:
    from w2vu.io.features import concatenate_features

    utterances, frames = concatenate_features(a.parts, a.out_prefix)
    log.info("gather-features: %d utterances, %d frames in %s", utterances, frames, a.out_prefix)


def _kmeans_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, help="feature prefix (PREFIX.npy/.lengths)")
    p.add_argument("--out", required=True, type=Path, help="centroids.npy")
    for name in ("clusters", "niter", "nredo"):
        p.add_argument(f"--{name}", type=int, default=LibraryDefault(f"{KMEANS}.{name}"))
    p.add_argument("--sample-fraction", type=float,
                   default=LibraryDefault(f"{KMEANS}.sample_fraction"))
    p.add_argument("--seed", type=int, default=LibraryDefault(f"{KMEANS}.seed"))
    p.add_argument("--init", choices=("random", "k-means++"),
                   default=LibraryDefault(f"{KMEANS}.init"),
                   help="random: the reference (faiss); k-means++: better on clustered data")
    kmeans_backend(p)


@COMMANDS("kmeans", _kmeans_arguments, "k-means centroids of train features (faiss)")
def cmd_kmeans(a: argparse.Namespace) -> None:
    from w2vu.features.kmeans import train_kmeans

    train_kmeans(a.features, a.out, _kmeans_config(a))


def _assign_clusters_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True)
    p.add_argument("--centroids", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    kmeans_backend(p)


@COMMANDS("assign-clusters", _assign_clusters_arguments, "nearest centroid per frame (.src)")
def cmd_assign_clusters(a: argparse.Namespace) -> None:
    from w2vu.features.kmeans import assign_clusters

    assign_clusters(a.features, a.centroids, a.out, backend=a.backend, device=a.device,
                    threads=a.threads)


def _pca_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--dim", type=int, default=512)
    backend(p)
    threads(p)


@COMMANDS("pca", _pca_arguments, "learn PCA (x @ A + b) on train features")
def cmd_pca(a: argparse.Namespace) -> None:
    from w2vu.features.pca import train_pca

    train_pca(a.features, a.out_dir, a.dim, backend=a.backend, threads=a.threads)


def _apply_pca_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True)
    p.add_argument("--pca-dir", required=True, type=Path)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--out-prefix", required=True)
    threads(p)


@COMMANDS("apply-pca", _apply_pca_arguments, "apply a learnt PCA to a split's features")
def cmd_apply_pca(a: argparse.Namespace) -> None:
    from w2vu.features.pca import apply_pca, pca_paths

    apply_pca(a.features, pca_paths(a.pca_dir, a.dim), a.out_prefix, threads=a.threads)


def _merge_clusters_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True)
    p.add_argument("--units", required=True, type=Path, help="the split's .src")
    p.add_argument("--out-prefix", required=True)


@COMMANDS("merge-clusters", _merge_clusters_arguments, "mean of each run of equal cluster ids")
def cmd_merge_clusters(a: argparse.Namespace) -> None:
    from w2vu.features.pool import merge_clusters

    merge_clusters(a.features, a.units, a.out_prefix)


def _mean_pool_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True)
    p.add_argument("--out-prefix", required=True)
    p.add_argument("--rate", type=float, default=LibraryDefault("w2vu.features.pool:POOL_RATE"),
                   help="segments out per segment in: ceil(T * rate), groups of about 1/rate "
                        "averaged (default %(default)s, the reference's)")


@COMMANDS("mean-pool", _mean_pool_arguments,
          "mean of groups of adjacent segments (pairs at the reference's rate; last repeated)")
def cmd_mean_pool(a: argparse.Namespace) -> None:
    from w2vu.features.pool import mean_pool_features

    mean_pool_features(a.features, a.out_prefix, a.rate)


def _km_targets_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mfcc", required=True, help="MFCC feature prefix (39-d, 100 Hz)")
    p.add_argument("--manifest", type=Path, help="check that the lines match this manifest")
    p.add_argument("--out", required=True, type=Path, help="train.km")
    p.add_argument("--centroids", required=True, type=Path)
    p.add_argument("--clusters", type=int, default=64)
    p.add_argument("--sample-fraction", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    backend(p)
    threads(p)


@COMMANDS("km-targets", _km_targets_arguments, "wav2vec-U 2.0 MFCC k-means targets (.km)")
def cmd_km_targets(a: argparse.Namespace) -> None:
    from w2vu.features.km_targets import km_targets_config, learn_km_targets

    config = km_targets_config(a.backend, a.clusters, a.sample_fraction, a.seed, a.threads)
    learn_km_targets(a.mfcc, a.out, a.centroids, config, manifest=a.manifest)


def _convert_checkpoint_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)


@COMMANDS("convert-checkpoint", _convert_checkpoint_arguments,
          "write a Hugging Face folder from a fairseq wav2vec 2.0 checkpoint")
def cmd_convert_checkpoint(a: argparse.Namespace) -> None:
    from w2vu.features.checkpoint import convert_checkpoint

    convert_checkpoint(a.checkpoint, a.out_dir)
