"""CTC fine-tuning of an SSL backbone: training throughput (seconds of audio per second) and peak
memory, w2vu's settings against the baseline of training the convolutional feature encoder too.

Why: the reference fine-tunes with ``feature_grad_mult 0``: the CNN that turns samples into
frames stays as pretrained, so no activations of it are kept for the backward pass. w2vu does the
same (``FinetuneSettings.freeze_feature_encoder``); this measures what that saves, on the same
randomly initialised wav2vec 2.0 model (base-like shape, scaled by ``--hidden``/``--layers``),
the same synthetic audio (log-normal lengths like VAD-trimmed speech) and the same length-bucketed
batches of ``--batch-seconds`` padded audio, masking as the reference. On CUDA, ``--bf16`` adds
bf16 autocast to both. Each run is a fresh process, so its peak memory is its own (RSS on CPU,
``max_memory_allocated`` on CUDA).

Run: python bench/selftrain_finetune.py [--utterances 40] [--updates 6] [--hidden 256]
     [--layers 4] [--batch-seconds 16] [--threads 2] [--device auto] [--bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import machine  # noqa: E402 - a sibling module (bench/ is the script's folder)

# A fresh interpreter: argv = folder, mode ("frozen" | "trained"), json settings.
ONE_RUN = """
import json, resource, sys, time
from pathlib import Path
import numpy as np, torch
from w2vu.io.dictionary import load_phone_dictionary
from w2vu.train.runtime import resolve_device, seed_everything
from w2vu.selftrain.ctc.finetune import (FinetuneSettings, ManifestAudio, build_finetune_model,
    finetune_config)
from w2vu.selftrain.ctc.data import bucket_batches, collate, open_labelled
from w2vu.selftrain.ctc.steps import build_optimizer, train_step
folder, mode, s = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
torch.set_num_threads(s["threads"])
device = resolve_device(s["device"])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
phones = load_phone_dictionary(folder / "dict.phn.txt")
config = finetune_config(max_frames=int(s["batch_seconds"] * 16000), bf16=s["bf16"])
gen = seed_everything(1)
settings = FinetuneSettings(freeze_feature_encoder=(mode == "frozen"))
model = build_finetune_model(folder / "model", len(phones), settings, config.mask).to(device)
audio = ManifestAudio(folder / "train.tsv")
data = open_labelled(audio, folder / "train.tsv", folder / "labels.txt", phones,
                     folder / "dict.phn.txt", model.output_lengths)
opt = build_optimizer(model, config)
plan = bucket_batches(data.lengths, config.max_frames, config.max_batch,
                      np.random.default_rng(0), 0.1)
batches = [collate(data, data.indices[p]) for p in plan]
def run(count):
    samples = 0
    for i in range(count):
        b = batches[i % len(batches)].to(device)
        train_step(model, opt, b, 1e-5, config, gen)
        samples += int(b.input_lengths.sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return samples
run(s["warmup"])
if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
start = time.perf_counter()
samples = run(s["updates"])
seconds = time.perf_counter() - start
peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
print(json.dumps({"mode": mode, "audio_s_per_s": samples / 16000 / seconds, "seconds": seconds,
                  "updates": s["updates"], "batches": len(plan), "trainable": trainable,
                  "peak_mb": peak, "imports_mb": before / 1024, "device": str(device)}))
"""


def synthetic_corpus(folder: Path, utterances: int, hidden: int, layers: int, seed: int) -> None:
    """A random wav2vec 2.0 folder, noise audio (median 4 s, 1-12 s), a manifest and labels."""
    import numpy as np
    import soundfile as sf
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from w2vu.io.manifest import write_manifest

    torch.manual_seed(seed)
    config = Wav2Vec2Config(hidden_size=hidden, num_hidden_layers=layers,
                            num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
                            conv_dim=(hidden,) * 7, feat_extract_norm="layer",
                            do_stable_layer_norm=True, conv_bias=True)
    Wav2Vec2Model(config).save_pretrained(folder / "model")
    rng = np.random.default_rng(seed)
    seconds = np.clip(rng.lognormal(np.log(4.0), 0.5, utterances), 1.0, 12.0)
    phones = [f"p{i}" for i in range(40)]
    rows, labels = [], []
    for i, s in enumerate(seconds):
        wave = (0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32)
        sf.write(folder / f"u{i}.flac", wave, 16000)
        rows.append((f"u{i}.flac", len(wave)))
        labels.append(" ".join(rng.choice(phones, int(s * 10))))
    write_manifest(folder / "train.tsv", folder, rows)
    (folder / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    (folder / "dict.phn.txt").write_text("".join(f"{p} 1\n" for p in phones) + "<SIL> 0\n",
                                         encoding="utf-8")


def run_one(folder: Path, mode: str, settings: dict) -> dict:
    """One timed run in a fresh process."""
    result = subprocess.run([sys.executable, "-c", ONE_RUN, str(folder), mode,
                             json.dumps(settings)], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    if result.returncode:
        raise SystemExit(f"{mode} run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=40)
    parser.add_argument("--updates", type=int, default=6, help="timed updates per run")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=256, help="768 = wav2vec 2.0 base")
    parser.add_argument("--layers", type=int, default=4, help="12 = base, 24 = large")
    parser.add_argument("--batch-seconds", type=float, default=16.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    args = parser.parse_args()

    print(machine.describe())
    with tempfile.TemporaryDirectory(prefix="w2vu-bench-finetune-") as tmp:
        folder = Path(tmp)
        synthetic_corpus(folder, args.utterances, args.hidden, args.layers, seed=0)
        settings = {"threads": args.threads, "device": args.device, "bf16": args.bf16,
                    "batch_seconds": args.batch_seconds, "updates": args.updates,
                    "warmup": args.warmup}
        ours = run_one(folder, "frozen", settings)
        base = run_one(folder, "trained", settings)
        for row in (base, ours):
            print(json.dumps(row))
    print(f"\nCTC fine-tuning, wav2vec 2.0 {args.layers} blocks x {args.hidden}-d, "
          f"{args.batch_seconds:g} s batches, {args.updates} timed updates, device "
          f"{ours['device']}, {args.threads} threads, bf16 {args.bf16}")
    print("feature encoder | trainable params | audio s/s | peak MB")
    for name, row in (("trained (baseline)", base), ("frozen (w2vu, reference)", ours)):
        print(f"{name} | {row['trainable']:,} | {row['audio_s_per_s']:.2f} | "
              f"{row['peak_mb']:.0f}")
    print(f"throughput ratio frozen / baseline: {ours['audio_s_per_s'] / base['audio_s_per_s']:.2f}"
          f"x; peak memory ratio {ours['peak_mb'] / base['peak_mb']:.2f} (CPU peak includes "
          f"{ours['imports_mb']:.0f} MB of Python and torch)")


if __name__ == "__main__":
    main()
