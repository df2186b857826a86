"""Feature extraction on the CPU: the reference's way against w2vu's, and memory vs corpus size.

A base-size random wav2vec 2.0 (12 blocks, 768 wide; the large models' layer-norm layout, so that
padded batches are exact) saved as a Hugging Face folder. Variants, all fp32 on the CPU:

* reference: one utterance at a time through the whole model (`output_hidden_states`), keeping
  hidden_states[L+1], as fairseq's wav2vec_extract_features.py runs every block it loads;
* w2vu on the CPU (its default there): one utterance at a time, the model truncated to L+1 blocks;
* w2vu with 30 s and 120 s padded batches (the GPU default is 120 s), truncated.

Then `extract_shard` runs in a fresh process on a manifest of N and of 3N utterances, and its
peak RSS is printed: it must not grow with the corpus. Clustering is benchmarked in
bench/features_cluster.py.

    python bench/features.py [--utterances 24] [--layer 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model

from w2vu.features.backbone import load_backbone
from w2vu.features.extract import BatchSettings, window_features
from w2vu.io.manifest import write_manifest

PEAK_RSS = """
import sys, resource
from w2vu.features.backbone import load_backbone
from w2vu.features.extract import BatchSettings, window_features
from w2vu.features.extract import extract_shard
import torch
torch.set_num_threads(int(sys.argv[4]))
extract_shard(sys.argv[1], 0, 1, load_backbone(sys.argv[2], int(sys.argv[3]), "cpu"), sys.argv[5])
status = open("/proc/self/status").read()
print(int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM"))) // 1024)
"""


def base_model(folder: Path) -> Path:
    """A random base-size model with layer-norm feature extractor and pre-LN blocks."""
    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                            intermediate_size=3072, feat_extract_norm="layer",
                            do_stable_layer_norm=True, conv_bias=True)
    Wav2Vec2Model(config).eval().save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        '{"do_normalize": true, "feature_size": 1, "padding_side": "right", '
        '"padding_value": 0.0, "return_attention_mask": true, "sampling_rate": 16000}')
    return folder


def waves(count: int, seed: int = 0) -> list[np.ndarray]:
    """Noise-like utterances of 2 to 12 s (the model is random; only the shapes matter)."""
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.1, int(16000 * rng.uniform(2, 12))).astype(np.float32)
            for _ in range(count)]


def reference_extract(model: Wav2Vec2Model, layer: int, batch: list[np.ndarray]) -> None:
    """One utterance at a time through every block, keeping hidden_states[L+1]."""
    with torch.inference_mode():
        for wave in batch:
            x = torch.from_numpy((wave - wave.mean()) / np.sqrt(wave.var() + 1e-5))[None]
            model(x, output_hidden_states=True).hidden_states[layer + 1]


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def peak_rss_mb(folder: Path, layer: int, utterances: list[np.ndarray], work: Path,
                threads: int) -> int:
    """Peak RSS of `extract_shard` in a fresh process over a manifest of these utterances."""
    root = work / f"audio{len(utterances)}"
    root.mkdir()
    for i, wave in enumerate(utterances):
        sf.write(root / f"u{i}.flac", wave, 16000, subtype="PCM_16")
    write_manifest(root / "m.tsv", root, [(f"u{i}.flac", len(w)) for i, w in enumerate(utterances)])
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, str(root / "m.tsv"), str(folder),
                           str(layer), str(threads), str(root / "feats")],
                          capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=24)
    parser.add_argument("--layer", type=int, default=7, help="fairseq layer (L+1 blocks run)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch = waves(args.utterances)
    audio_s = sum(len(w) for w in batch) / 16000
    with tempfile.TemporaryDirectory(prefix="w2vu-bench-features-") as tmp:
        folder = base_model(Path(tmp) / "base")
        full = Wav2Vec2Model.from_pretrained(folder).eval()
        truncated = load_backbone(folder, args.layer, "cpu")
        rows = {"reference (1 at a time, full)": timed(
            lambda: reference_extract(full, args.layer, batch))}
        for seconds in (0, 30, 120):
            name = "w2vu CPU default (1 at a time)" if not seconds else f"w2vu {seconds} s batches"
            settings = BatchSettings(batch_seconds=seconds)
            rows[name] = timed(lambda s=settings: window_features(truncated, batch, s))
        small = peak_rss_mb(folder, args.layer, waves(args.utterances, 1), Path(tmp),
                            args.threads)
        large = peak_rss_mb(folder, args.layer, waves(3 * args.utterances, 2), Path(tmp),
                            args.threads)
    print(f"{args.utterances} utterances, {audio_s:.0f} s of audio; base-size model, layer "
          f"{args.layer} ({args.layer + 1} of 12 blocks); {args.threads} CPU threads, fp32")
    print(f"{'variant':<32}{'seconds':>9}{'x real time':>13}{'vs reference':>14}")
    reference = rows["reference (1 at a time, full)"]
    for name, seconds in rows.items():
        print(f"{name:<32}{seconds:>9.2f}{audio_s / seconds:>13.1f}{reference / seconds:>13.2f}x")
    print(f"extract_shard peak RSS: {small} MB for {args.utterances} utterances, {large} MB for "
          f"{3 * args.utterances} (ratio {large / small:.2f}; flat means it streams)")


if __name__ == "__main__":
    main()
