"""GAN update throughput on CPU: w2vu.gan.trainer.train_step at the reference sizes (§2.6).

Why: a wav2vec-U sweep is 40-60 runs of 150k updates at batch 160 (§1.6, §2.6); this measures
what one update costs here, so the projected hours per run tell whether a sweep fits on CPU or
needs the GPU. Both variants at the reference dimensions (discriminator 384, V = 44 outputs
including the 4 specials):

- **1.0**: 512-d PCA + mean-pooled features (pooled lengths ~ 60-180 frames, generator k4 s1);
- **2.0**: 1024-d raw layer-14 features at 50 Hz (150-450 frames = 3-9 s by default; LibriSpeech
  averages ~12 s, so raise ``--v2-frames`` for its cost), batch-norm + residual + k9 s3 generator,
  mmi head with 64 k-means targets.

Random features and phone text (seeded). ``train_step`` is the whole update as the reference does
it, eagerly (both discriminator passes every update, backward into all parameters, gradients / B,
joint clip at 5, one Adam step), so it *is* the naive eager loop; as an in-run baseline each variant
is also timed with λ = 0, i.e. without the gradient penalty's double backward, to show what that
costs. Each configuration runs in a fresh process (2 torch threads) so its peak RSS is its own.
On a GPU the launch overhead of these small kernels is where CUDA graphs / torch.compile would
matter. On CPU (profiled, 1.0, before JOIN was vectorised) about 45% of an update was
``join_segment``'s per-utterance indexing, quadratic in the batch size in backward; it is now one
gather/scatter over the whole batch (25x faster on its own at batch 160), and the convolutions
(mostly the discriminator's, three passes in a D step with the penalty's double backward) are
what is left.

Defaults are small (8 timed updates) because an update takes seconds on a 2-core VM.

Run: python bench/gan.py [--updates 8] [--warmup 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

VOCAB = 44  # 40 phones incl. <SIL> + 4 fairseq specials: the paper's "about 90k" generator
BATCH = 160
MAX_UPDATES = 150_000


def _batch(variant: int, seed: int, frames: tuple[int, int], text: tuple[int, int]):  # noqa: ANN202
    """One random batch shaped like the trainer's (padding True on padding, PAD in labels)."""
    import torch

    from w2vu.gan.data import AUX_PAD, PAD_INDEX, Batch
    from w2vu.io.dictionary import NUM_SPECIALS

    g = torch.Generator().manual_seed(seed)
    dim = 512 if variant == 1 else 1024
    lengths = torch.randint(frames[0], frames[1] + 1, (BATCH,), generator=g)
    width = int(lengths.max())
    feats = torch.randn(BATCH, width, dim, generator=g)
    mask = torch.arange(width)[None, :] >= lengths[:, None]
    feats[mask] = 0.0
    tlen = torch.randint(text[0], text[1] + 1, (BATCH,), generator=g)
    labels = torch.randint(NUM_SPECIALS, VOCAB, (BATCH, int(tlen.max())), generator=g)
    labels[torch.arange(labels.size(1))[None, :] >= tlen[:, None]] = PAD_INDEX
    aux = None
    if variant == 2:
        aux = torch.randint(0, 64, (BATCH, width), generator=g)
        aux[mask] = AUX_PAD
    return Batch(torch.arange(BATCH), feats, mask, labels, aux)


def measure(variant: int, gradient_penalty: bool, updates: int, warmup: int, threads: int,
            v2_frames: tuple[int, int]) -> dict[str, float]:
    """Time ``updates`` calls of train_step after ``warmup`` ones (G and D steps alternate)."""
    import resource

    import torch

    from w2vu.gan.trainer import TrainConfig, build_model, build_optimizers, train_step

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = TrainConfig(variant=variant, device="cpu", batch_size=BATCH)
    if not gradient_penalty:
        config = replace(config, weights=replace(config.weights, gradient_penalty=0.0))
    frames = (60, 180) if variant == 1 else v2_frames
    text = (20, 60) if variant == 1 else (max(frames[0] // 6, 5), max(frames[1] // 6, 10))
    batches = [_batch(variant, s, frames, text) for s in range(4)]
    model = build_model(config, VOCAB, batches[0].features.size(-1))
    optimizers = build_optimizers(model, config)
    rng = torch.Generator().manual_seed(1)
    for u in range(warmup):
        train_step(model, optimizers, batches[u % 4], u, config, rng)
    start = time.perf_counter()
    for u in range(warmup, warmup + updates):
        train_step(model, optimizers, batches[u % 4], u, config, rng)
    elapsed = time.perf_counter() - start
    ups = updates / elapsed
    return {"variant": variant, "gradient_penalty": gradient_penalty, "updates": updates,
            "seconds": elapsed, "updates_per_s": ups, "hours_150k": MAX_UPDATES / ups / 3600,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "params": sum(p.numel() for p in model.parameters()),
            "mean_frames": float(sum((~b.padding_mask).sum() for b in batches) / (4 * BATCH))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--v2-frames", type=int, nargs=2, default=(150, 450))
    parser.add_argument("--variants", type=int, nargs="+", default=(1, 2))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # "variant,gp": run one in-process
    args = parser.parse_args()
    if args.one:
        variant, gp = (int(x) for x in args.one.split(","))
        print(json.dumps(measure(variant, bool(gp), args.updates, args.warmup, args.threads,
                                 tuple(args.v2_frames))))
        return
    print(f"batch {BATCH}, V={VOCAB}, discriminator 384, {args.threads} threads, "
          f"{args.warmup} warm-up + {args.updates} timed updates (G/D alternating)")
    print(f"{'variant':>8} {'grad pen':>9} {'frames':>7} {'params':>9} {'upd/s':>7} "
          f"{'h/150k':>8} {'peak RSS MB':>12}")
    for variant in args.variants:
        for gp in (1, 0):
            cmd = [sys.executable, __file__, "--one", f"{variant},{gp}",
                   "--updates", str(args.updates), "--warmup", str(args.warmup),
                   "--threads", str(args.threads), "--v2-frames", *map(str, args.v2_frames)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            label = "yes" if gp else "no (λ=0)"
            print(f"{'1.0' if variant == 1 else '2.0':>8} {label:>9} {r['mean_frames']:7.0f} "
                  f"{r['params']:9d} {r['updates_per_s']:7.2f} {r['hours_150k']:8.1f} "
                  f"{r['peak_rss_mb']:12.0f}", flush=True)
    print("train_step is already the reference's eager update; on a GPU, kernel-launch overhead "
          "is where CUDA graphs / torch.compile would matter.")


if __name__ == "__main__":
    main()
