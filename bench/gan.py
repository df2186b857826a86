"""GAN update throughput: w2vu.gan.trainer.train_step at the reference sizes (§2.6).

Why: a wav2vec-U sweep is 40-60 runs of 150k updates at batch 160 (§1.6, §2.6); this measures
what one update costs here, so the projected hours per run tell whether a sweep fits on CPU or
needs the GPU. Both variants at the reference dimensions (discriminator 384, V = 44 outputs
including the 4 specials):

- **1.0**: 512-d PCA + mean-pooled features (pooled lengths ~ 60-180 frames, generator k4 s1);
- **2.0**: 1024-d raw layer-14 features at 50 Hz (150-450 frames = 3-9 s by default; LibriSpeech
  averages ~12 s, so raise ``--v2-frames`` for its cost), batch-norm + residual + k9 s3 generator,
  mmi head with 64 k-means targets.

Random features and phone text (seeded). ``train_step`` is the whole update as the reference does
it, eagerly (backward into all parameters, gradients / B, joint clip at 5, one Adam step). Two
modes:

- default: each variant with and without the gradient penalty (λ = 0 as the in-run baseline, to
  show what the penalty's double backward costs), each configuration in a fresh process so its
  peak RSS is its own;
- ``--compare``: before/after of the CPU speed work (issue 13.5), interleaved in one process on
  one model, update pairs (G + D step) taking turns, so that load from other processes hits both
  alike. *before* adds back the discriminator pass over the real text that the reference runs and
  discards in generator steps (w2vu now skips it; same weights); *after* is ``train_step`` as it
  is; *bf16* is ``after`` under bf16 autocast (``gan.bf16``: a speed/accuracy trade, fast on CPUs
  with AMX). It also times validation's generation pass under ``no_grad`` (before) against
  ``inference_mode`` (after).

Where the time goes (torch profiler, 2 threads, batch 160): about 80% of a 1.0 update and 55% of
a 2.0 update are the convolutions (forward, backward and the penalty's double backward; mostly
the discriminator's), 2.0 adds the 1024x1024 residual projection (17%); both are compute-bound
and near the cores' fp32 peak, so the remaining lever on CPU is arithmetic precision (bf16).

Run: python bench/gan.py [--updates 8] [--warmup 2] [--threads 2]
     python bench/gan.py --compare [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import machine  # noqa: E402 - a sibling module (bench/ is the script's folder)

VOCAB = 44  # 40 phones incl. <SIL> + 4 fairseq specials: the paper's "about 90k" generator
BATCH = 160
MAX_UPDATES = 150_000


def _batch(variant: int, seed: int, frames: tuple[int, int], text: tuple[int, int],
           batch_size: int = BATCH):  # noqa: ANN202
    """One random batch shaped like the trainer's (padding True on padding, PAD in labels)."""
    import torch

    from w2vu.gan.data import AUX_PAD, PAD_INDEX, Batch
    from w2vu.io.dictionary import NUM_SPECIALS

    g = torch.Generator().manual_seed(seed)
    dim = 512 if variant == 1 else 1024
    lengths = torch.randint(frames[0], frames[1] + 1, (batch_size,), generator=g)
    width = int(lengths.max())
    feats = torch.randn(batch_size, width, dim, generator=g)
    mask = torch.arange(width)[None, :] >= lengths[:, None]
    feats[mask] = 0.0
    tlen = torch.randint(text[0], text[1] + 1, (batch_size,), generator=g)
    labels = torch.randint(NUM_SPECIALS, VOCAB, (batch_size, int(tlen.max())), generator=g)
    labels[torch.arange(labels.size(1))[None, :] >= tlen[:, None]] = PAD_INDEX
    aux = None
    if variant == 2:
        aux = torch.randint(0, 64, (batch_size, width), generator=g)
        aux[mask] = AUX_PAD
    return Batch(torch.arange(batch_size), feats, mask, labels, aux)


def shapes(variant: int, v2_frames: tuple[int, int] = (150, 450)
           ) -> tuple[tuple[int, int], tuple[int, int]]:
    """(frame range, text range) of a variant's batches: pooled 1.0 or raw 50 Hz 2.0 input."""
    frames = (60, 180) if variant == 1 else v2_frames
    text = (20, 60) if variant == 1 else (max(frames[0] // 6, 5), max(frames[1] // 6, 10))
    return frames, text


@dataclass
class Setup:
    """A model, its optimizers and four batches on one device, ready to step."""

    model: Any
    optimizers: dict
    config: Any
    batches: list
    rng: Any
    device: Any


def build(variant: int, device: str = "cpu", batch_size: int = BATCH,
          discriminator_dim: int | None = None, gradient_penalty: bool = True,
          v2_frames: tuple[int, int] = (150, 450)) -> Setup:
    """The trainer's model and optimizers (seeded) with random batches at the reference shapes."""
    import torch

    from w2vu.gan.trainer import TrainConfig, build_model, build_optimizers

    torch.manual_seed(0)
    config = TrainConfig(variant=variant, device=device, batch_size=batch_size,
                         discriminator_dim=discriminator_dim)
    if not gradient_penalty:
        config = replace(config, weights=replace(config.weights, gradient_penalty=0.0))
    frames, text = shapes(variant, v2_frames)
    dev = torch.device(device)
    batches = [_batch(variant, s, frames, text, batch_size).to(dev) for s in range(4)]
    model = build_model(config, VOCAB, batches[0].features.size(-1)).to(dev)
    return Setup(model, build_optimizers(model, config), config, batches,
                 torch.Generator().manual_seed(1), dev)


def run_updates(s: Setup, first: int, count: int, bf16: bool = False,
                reference_passes: bool = False) -> float:
    """Seconds for updates ``first`` .. ``first + count - 1`` (device synchronised).

    ``reference_passes`` adds, in generator steps, the real-text discriminator pass that the
    reference computes and discards (what w2vu's update did before it skipped it).
    """
    import torch

    from w2vu.gan.losses import is_discriminator_step
    from w2vu.gan.models import PAD_INDEX, one_hot_tokens
    from w2vu.gan.trainer import train_step

    config = replace(s.config, bf16=bf16) if bf16 != s.config.bf16 else s.config
    sync = torch.cuda.synchronize if s.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for u in range(first, first + count):
        batch = s.batches[u % len(s.batches)]
        train_step(s.model, s.optimizers, batch, u, config, s.rng)
        if reference_passes and not is_discriminator_step(u):
            with torch.autocast(s.device.type, dtype=torch.bfloat16, enabled=bf16):
                token_x = one_hot_tokens(batch.random_label, s.model.vocab_size, torch.float32)
                s.model.discriminator(token_x, batch.random_label == PAD_INDEX)
    sync()
    return time.perf_counter() - start


def measure(variant: int, gradient_penalty: bool, updates: int, warmup: int, threads: int,
            v2_frames: tuple[int, int]) -> dict[str, float]:
    """Time ``updates`` calls of train_step after ``warmup`` ones (G and D steps alternate)."""
    import resource

    import torch

    torch.set_num_threads(threads)
    s = build(variant, gradient_penalty=gradient_penalty, v2_frames=v2_frames)
    run_updates(s, 0, warmup)
    elapsed = run_updates(s, warmup, updates)
    ups = updates / elapsed
    return {"variant": variant, "gradient_penalty": gradient_penalty, "updates": updates,
            "seconds": elapsed, "updates_per_s": ups, "hours_150k": MAX_UPDATES / ups / 3600,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "params": sum(p.numel() for p in s.model.parameters()),
            "mean_frames": float(sum((~b.padding_mask).sum() for b in s.batches)
                                 / (len(s.batches) * BATCH))}


def validation_seconds(s: Setup, utterances: int, rounds: int) -> list[float]:
    """Generation over ``utterances`` (the validator's pass): no_grad (before) against
    inference_mode (after), interleaved; wall and CPU seconds of each (before, after)."""
    import numpy as np
    import torch

    from w2vu.gan.validate import generate_ids
    from w2vu.io.features import Features

    first = s.batches[0]
    lengths = (~first.padding_mask).sum(1).cpu().numpy().astype(np.int64)
    rows = [first.features[i, : lengths[i]].cpu().numpy() for i in range(len(lengths))]
    reps = -(-utterances // len(rows))
    data = np.concatenate(rows * reps)[: int(np.tile(lengths, reps)[:utterances].sum())]
    lens = np.tile(lengths, reps)[:utterances]
    feats = Features("bench", data, lens, np.concatenate([[0], np.cumsum(lens)]))
    times = [0.0] * 4
    for _ in range(rounds):
        for arm in (0, 1):
            start, cpu = time.perf_counter(), time.process_time()
            if arm == 0:
                with torch.no_grad():
                    generate_ids.__wrapped__(s.model, feats, s.device, BATCH, VOCAB - 1)
            else:
                generate_ids(s.model, feats, s.device, BATCH, VOCAB - 1)
            times[arm] += time.perf_counter() - start
            times[2 + arm] += time.process_time() - cpu
    return times


def compare(variants: list[int], rounds: int, threads: int, v2_frames: tuple[int, int]) -> None:
    """Before/after (and bf16) of the update, interleaved in this process; prints a table."""
    import resource

    import torch

    torch.set_num_threads(threads)
    arms = (("before", False, True), ("after", False, False), ("after+bf16", True, False))
    print(f"batch {BATCH}, V={VOCAB}, discriminator 384, {threads} threads, {rounds} rounds of "
          "one G+D update pair per arm, arms interleaved in one process")
    print("wall-clock updates/s, and the process's CPU seconds per update (all its threads),\n"
          "which load from other processes changes less than the wall clock")
    print(f"{'variant':>8} {'arm':>11} {'upd/s':>7} {'vs before':>9} {'h/150k':>8} "
          f"{'CPU s/upd':>11} {'vs before':>9}")
    for variant in variants:
        s = build(variant, v2_frames=v2_frames)
        used = min(len(s.batches), 2 * rounds)
        run_updates(s, 0, used)  # warm-up: every batch shape used, fp32 and bf16
        run_updates(s, 0, used, bf16=True)
        wall = dict.fromkeys((a for a, _, _ in arms), 0.0)
        cpu = dict(wall)
        for r in range(rounds):  # in a round every arm runs the same two batches (G, D step)
            for arm, bf16, ref in arms:
                start = time.process_time()
                wall[arm] += run_updates(s, (2 * r) % len(s.batches), 2, bf16, ref)
                cpu[arm] += time.process_time() - start
        for arm, _, _ in arms:
            ups = 2 * rounds / wall[arm]
            print(f"{'1.0' if variant == 1 else '2.0':>8} {arm:>11} {ups:7.3f} "
                  f"{wall['before'] / wall[arm]:8.2f}x {MAX_UPDATES / ups / 3600:8.1f} "
                  f"{cpu[arm] / (2 * rounds):11.2f} {cpu['before'] / cpu[arm]:8.2f}x",
                  flush=True)
        before, after, cpu_before, cpu_after = validation_seconds(s, 4 * BATCH, rounds)
        print(f"{'':>8} validation generation, {4 * BATCH} utterances: no_grad {before:.2f} s "
              f"(CPU {cpu_before:.2f} s), inference_mode {after:.2f} s (CPU {cpu_after:.2f} s):"
              f" {before / after:.2f}x wall, {cpu_before / cpu_after:.2f}x CPU", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--v2-frames", type=int, nargs=2, default=(150, 450))
    parser.add_argument("--variants", type=int, nargs="+", default=(1, 2))
    parser.add_argument("--compare", action="store_true",
                        help="before/after of the CPU speed work, interleaved in one process")
    parser.add_argument("--rounds", type=int, default=3, help="--compare: update pairs per arm")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # "variant,gp": run one in-process
    args = parser.parse_args()
    if not args.one:  # --one's stdout is the parent's JSON
        print(machine.describe())
    if args.compare:
        compare(list(args.variants), args.rounds, args.threads, tuple(args.v2_frames))
        return
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
    print("On a GPU: bench/gpu_check.py (eager against torch.compile and bf16).")


if __name__ == "__main__":
    main()
