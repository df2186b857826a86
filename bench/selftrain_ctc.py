"""CTC self-training: training throughput with length-bucketed batches against unbucketed ones.

Why: the CTC stage trains on every utterance of the split for many epochs, and utterances range
from one to twenty seconds. Batches of random utterances pad every row to the longest one, so
most of the work goes into padding; w2vu packs utterances of similar length up to a frame budget
(``bucket_batches``). Both runs train the same model (``CtcEncoder``, the default CtcConfig
shape unless changed) with the same number of utterances per batch on average, on the same
synthetic features (log-normal lengths like VAD-trimmed speech, 50 Hz, one phone per ~4 frames).
Throughput counts real (unpadded) frames per second; each run is a fresh process, so its peak
memory is its own (RSS on CPU, ``max_memory_allocated`` on CUDA).

Optionally (``--per-minutes``) it also measures what the stage is for, on a synthesised espeak
corpus of any size (tests/test_ctc.py runs the same at 6 minutes): reference phones corrupted to
~32-35% PER (or another ``--per-label-rate``), CTC trained on them with the default configuration
(no held-out set), PER against the references of the greedy transcripts and of the emissions
decoded with a phone LM (``lm_relabel``).

Run: python bench/selftrain_ctc.py [--utterances 200] [--updates 20] [--dim 512] [--threads 2]
     [--device auto] [--per-minutes 12 [--per-epochs 100] [--per-label-rate 0.35]]
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

# Runs in a fresh interpreter: argv = features prefix, labels, dictionary, mode, json settings.
ONE_RUN = """
import json, resource, sys, time
import numpy as np, torch
from w2vu.io.dictionary import load_phone_dictionary
from w2vu.train.runtime import resolve_device, seed_everything
from w2vu.io.features import open_features
from w2vu.selftrain.ctc.model import CtcModelConfig
from w2vu.selftrain.ctc.data import bucket_batches, collate, open_labelled
from w2vu.selftrain.ctc.steps import CtcConfig, build_ctc_model, build_optimizer, train_step
prefix, labels, dictionary, mode = sys.argv[1:5]
s = json.loads(sys.argv[5])
torch.set_num_threads(s["threads"])
device = resolve_device(s["device"])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
phones = load_phone_dictionary(dictionary)
features = open_features(prefix)
config = CtcConfig(model=CtcModelConfig(**s["model"]), max_frames=s["max_frames"],
                   max_batch=s["max_batch"], bf16=s["bf16"])
gen = seed_everything(1)
model = build_ctc_model(config, features, len(phones)).to(device)
data = open_labelled(features, prefix, labels, phones, dictionary, model.output_lengths)
opt = build_optimizer(model, config)
rng = np.random.default_rng(0)
if mode == "bucketed":
    plan = bucket_batches(data.lengths, config.max_frames, config.max_batch, rng, 0.1)
else:  # random utterances, a fixed count per batch, padded to the longest
    order = rng.permutation(len(data))
    size = s["batch_utterances"]
    plan = [order[i: i + size] for i in range(0, len(order), size)]
batches = [collate(data, data.indices[p]) for p in plan]
def run(count):
    frames = padded = 0
    for i in range(count):
        b = batches[i % len(batches)].to(device)
        train_step(model, opt, b, 1e-4, config, gen)
        frames += int(b.input_lengths.sum()); padded += b.padding_mask.numel()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return frames, padded
run(s["warmup"])
if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
start = time.perf_counter()
frames, padded = run(s["updates"])
seconds = time.perf_counter() - start
peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps({"mode": mode, "frames_per_s": frames / seconds, "seconds": seconds,
                  "updates": s["updates"], "batches": len(plan),
                  "utt_per_batch": len(data) / len(plan), "padding": 1 - frames / padded,
                  "peak_mb": peak, "imports_mb": before / 1024, "device": str(device)}))
"""


def synthetic_split(folder: Path, utterances: int, dim: int, seed: int) -> tuple[Path, Path, Path]:
    """Features with log-normal lengths (median 5 s, 1-20 s at 50 Hz) and random phone labels."""
    import numpy as np

    from w2vu.io.features import write_features

    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(250), 0.6, utterances), 50, 1000).astype(int)
    phones = [f"p{i}" for i in range(40)]
    prefix = folder / "feats"
    write_features(prefix, (rng.normal(0, 1, (n, dim)).astype(np.float32) for n in lengths), dim)
    labels = folder / "labels.txt"
    labels.write_text("".join(" ".join(rng.choice(phones, n // 4)) + "\n" for n in lengths),
                      encoding="utf-8")
    dictionary = folder / "dict.phn.txt"
    dictionary.write_text("".join(f"{p} 1\n" for p in phones) + "<SIL> 0\n", encoding="utf-8")
    return prefix, labels, dictionary


def run_one(paths: tuple[Path, Path, Path], mode: str, settings: dict) -> dict:
    """One timed run in a fresh process."""
    result = subprocess.run([sys.executable, "-c", ONE_RUN, *map(str, paths), mode,
                             json.dumps(settings)], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    if result.returncode:
        raise SystemExit(f"{mode} run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def per_experiment(minutes: float, epochs: int, threads: int, device: str, folder: Path,
                   label_rate: float = 0.35) -> dict:
    """Corrupted espeak references (``label_rate`` of the phones edited) → CTC with the default
    config (``epochs`` > 0 overrides max_epochs) → PER of its greedy transcripts and of its
    emissions decoded with a phone LM of the corpus's unpaired text (``lm_relabel``), in a fresh
    process."""
    code = f"""
import json, time, torch
from dataclasses import replace
from pathlib import Path
torch.set_num_threads({threads})
from devkit.phone_corpus import build_phone_corpus
from devkit.phone_corpus import unpaired_phone_sentences
from w2vu.eval.metrics import phone_error_rate
from w2vu.selftrain.corrupt import corrupt_lines
from w2vu.selftrain.ctc.fit import train_ctc
from w2vu.selftrain.ctc.rounds import lm_relabel
from w2vu.selftrain.ctc.steps import CtcConfig
from w2vu.selftrain.ctc.transcribe import transcribe_ctc
from w2vu.text.graphs import build_graphs
from w2vu.text.ngram import estimate_arpa
folder = Path({str(folder)!r})
corpus = build_phone_corpus(folder / "corpus", {minutes}, seed=0)
refs = corpus.reference_lines()
noisy = corrupt_lines(refs, {label_rate}, seed=1)
labels = folder / "noisy.txt"
labels.write_text("".join(" ".join(r) + "\\n" for r in noisy), encoding="utf-8")
sentences = [s.replace("<SIL>", "").strip() for s in unpaired_phone_sentences(corpus)]
estimate_arpa(sentences, 4, folder / "lm.arpa")
build_graphs(corpus.dictionary, folder / "lm.arpa", folder / "graph")
config = replace(CtcConfig(), valid_fraction=0.0, validate_every=10**6)
if {epochs} > 0:
    config = replace(config, max_epochs={epochs})
run = folder / "run"
start = time.perf_counter()
model = train_ctc(corpus.features, labels, corpus.dictionary, run, config, seed=1,
                  device={device!r}, threads={threads})
seconds = time.perf_counter() - start
hyps = transcribe_ctc(model, corpus.features, corpus.dictionary, run / "transcripts.txt",
                      emissions_prefix=run / "emissions", device={device!r})
decoded = lm_relabel(folder / "graph")(run, model)
lm_hyps = [line.split() for line in decoded.read_text(encoding="utf-8").splitlines()]
print(json.dumps({{"utterances": len(refs), "phones": sum(map(len, refs)),
                  "label_per": phone_error_rate(noisy, refs),
                  "ctc_per": phone_error_rate(hyps, refs),
                  "lm_per": phone_error_rate(lm_hyps, refs), "seconds": seconds}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    if result.returncode:
        raise SystemExit(f"PER experiment failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=200)
    parser.add_argument("--dim", type=int, default=512, help="feature dimension (PCA-512)")
    parser.add_argument("--updates", type=int, default=20, help="timed updates per run")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-frames", type=int, default=12_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--model", default="{}", help='CtcModelConfig changes, JSON')
    parser.add_argument("--per-minutes", type=float, default=0.0,
                        help="also run the corrupted-label PER experiment on this much speech")
    parser.add_argument("--per-label-rate", type=float, default=0.35,
                        help="share of the reference phones edited to make the labels")
    parser.add_argument("--per-epochs", type=int, default=0,
                        help="max_epochs for the PER experiment (0: CtcConfig's default)")
    args = parser.parse_args()

    print(machine.describe())
    with tempfile.TemporaryDirectory(prefix="w2vu-bench-ctc-") as tmp:
        folder = Path(tmp)
        paths = synthetic_split(folder, args.utterances, args.dim, seed=0)
        settings = {"threads": args.threads, "device": args.device, "bf16": args.bf16,
                    "model": json.loads(args.model), "max_frames": args.max_frames,
                    "max_batch": 10_000, "updates": args.updates, "warmup": args.warmup}
        ours = run_one(paths, "bucketed", settings)
        settings["batch_utterances"] = max(1, round(ours["utt_per_batch"]))
        base = run_one(paths, "unbucketed", settings)
        for row in (base, ours):
            print(json.dumps(row))
        print(f"\nCTC training, {args.utterances} utterances of {args.dim}-d features, "
              f"{args.updates} timed updates, device {ours['device']}, {args.threads} threads")
        print(" | ".join(("batching", "utt/batch", "padding", "frames/s", "peak MB")))
        for name, row in (("random (baseline)", base), ("length-bucketed", ours)):
            print(" | ".join((name, f"{row['utt_per_batch']:.1f}", f"{row['padding']:.0%}",
                              f"{row['frames_per_s']:,.0f}", f"{row['peak_mb']:.0f}")))
        print(f"throughput ratio bucketed / baseline: "
              f"{ours['frames_per_s'] / base['frames_per_s']:.2f}x; peak memory ratio "
              f"{ours['peak_mb'] / base['peak_mb']:.2f} (CPU peak includes "
              f"{ours['imports_mb']:.0f} MB of Python and torch)")
        if args.per_minutes > 0:
            per = per_experiment(args.per_minutes, args.per_epochs, args.threads, args.device,
                                 folder, args.per_label_rate)
            print(f"\nself-training on {args.per_minutes:g} min of espeak speech "
                  f"({per['utterances']} utterances, {per['phones']} phones): labels PER "
                  f"{per['label_per']:.3f} -> CTC greedy PER {per['ctc_per']:.3f}, "
                  f"LM-decoded {per['lm_per']:.3f} (training {per['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
