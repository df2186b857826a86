"""GPU check (issue 13.4): w2vu's heavy steps on one GPU, each against its baseline, in one table.

Why: nothing in w2vu has run on a GPU yet; a lent GPU machine comes for minutes, with its own
python (torch, transformers, numpy) and no network. This script measures, within ``--budget``
seconds (default 450, under the 8 minutes a check may take), with random weights and data:

- **extraction**: x real time of a randomly initialised wav2vec 2.0 of XLS-R size (24 blocks,
  1024-d, layer 14, so 15 blocks run) through ``SslBackbone``: fp32 (the baseline), TF32, and bf16
  autocast (the pipeline's GPU default), with the bf16 features' relative error against fp32;
- **PCA** 1024 -> 512 and **k-means** (K=128) on 200k frames: faiss on the CPU (every core; the
  pipeline's path) against faiss on the GPU (only with a GPU build of faiss) and, for PCA, the
  same covariance + eigendecomposition in torch on the GPU;
- **GAN** updates/s at batch 160, discriminator 384, both variants (``bench/gan.py``'s setup and
  the trainer's ``train_step``): eager (the baseline; the goal is >= 42 updates/s, 150k updates
  in an hour), bf16 autocast, ``torch.compile`` of the generator, and the same in
  ``reduce-overhead`` mode (CUDA graphs). The whole update cannot be one CUDA graph: JOIN's output
  width depends on the argmax, and its random frame choice is drawn on the CPU (as the reference);
  the discriminator cannot be compiled because the gradient penalty needs a double backward,
  which compiled graphs do not support;
- **CTC fine-tuning** steps/s of the same XLS-R-size model with a CTC head (``FinetunedCtc``,
  the reference's 50 s of audio a batch): fp32 against bf16;
- **known-answer gradient**: ``bench/known_answer_gradient.py`` with the reference's critic (384)
  and batch (160): does the generator's gradient point to the answer near it (at most 4 minutes);
- **known-answer**: ``bench/known_answer.py --minutes M --device D`` with the time left, both on
  ``--phone-text`` (the lent machine has no espeak-ng to make the book's).

A check whose package is missing (faiss, a GPU build of faiss, soundfile for fine-tuning) or
that fails prints a row saying so; the table always comes out. Without CUDA (or with
``--cpu-small``) everything runs at toy sizes, so that CI keeps the script working
(tests/test_gpu_check.py). bench/README.md says how to carry the wheels and run it on a lent GPU.

Run: python bench/gpu_check.py [--cpu-small] [--budget 450] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gpu_harness import (  # noqa: E402
    GPU_SIZES,
    SMALL_SIZES,
    Check,
    Row,
    Sizes,
    fmt,
    guarded,
    join_notes,
    print_table,
)

# --------------------------------------------------------------------------- extraction


def xlsr_config(sz: Sizes, **extra: object):  # noqa: ANN201
    """A wav2vec 2.0 config of XLS-R shape (pre-LN, layer-norm CNN) at the given size."""
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(hidden_size=sz.hidden, num_hidden_layers=sz.blocks,
                          num_attention_heads=sz.heads, intermediate_size=4 * sz.hidden,
                          conv_dim=(sz.conv_dim,) * 7, feat_extract_norm="layer",
                          do_stable_layer_norm=True, conv_bias=True, **extra)


def random_waves(sz: Sizes, total_s: float, seed: int) -> list[np.ndarray]:
    """Noise utterances of uniform random length in ``utt_s`` adding up to ``total_s``."""
    rng = np.random.default_rng(seed)
    waves, done = [], 0.0
    while done < total_s:
        seconds = float(rng.uniform(*sz.utt_s))
        waves.append((0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32))
        done += seconds
    return waves


def extraction(check: Check) -> None:
    from transformers import Wav2Vec2Model

    from w2vu.features.backbone import SslBackbone

    sz = check.sizes
    torch.manual_seed(0)
    with torch.device(check.device):
        model = Wav2Vec2Model(xlsr_config(sz))
    waves = random_waves(sz, sz.audio_s, seed=0)
    audio_s = sum(len(w) for w in waves) / 16000
    base = None
    reference: list[np.ndarray] = []
    for setting, bf16, tf32 in (("fp32 (baseline)", False, False), ("tf32", False, True),
                                ("bf16 autocast (pipeline)", True, True)):
        torch.backends.cudnn.allow_tf32 = tf32  # the CNN's convolutions too (torch: on)
        backbone = SslBackbone(model, sz.layer, True, check.device, bf16=bf16, tf32=tf32,
                               max_batch_samples=240 * 16000, source="random XLS-R")
        backbone.extract(waves[:2])  # warm-up: kernels, cuDNN/cuBLAS handles
        check.reset_peak()
        check.sync()
        start = time.perf_counter()
        feats = backbone.extract(waves)
        seconds = time.perf_counter() - start
        note = [f"{audio_s:.0f} s audio, {sz.blocks} blocks, layer {sz.layer}", check.peak()]
        if not reference:
            reference = feats
        else:
            err = math.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(feats, reference))
                            / sum(float(np.sum(b ** 2)) for b in reference))
            note.append(f"rel. error vs fp32 {err:.1e}")
        row = check.add(Row("extraction", setting, audio_s / seconds, "x real time",
                            note=join_notes(*note)), base)
        base = base or row


# --------------------------------------------------------------------------- PCA and k-means


def clustered_frames(sz: Sizes, seed: int) -> np.ndarray:
    """Frames from a Gaussian mixture (structure for k-means to find), float32."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((sz.clusters, sz.feat_dim)).astype(np.float32) * 3
    x = rng.standard_normal((sz.frames, sz.feat_dim), dtype=np.float32)
    x += centres[rng.integers(0, sz.clusters, sz.frames)]
    return x


def pca_torch(x: np.ndarray, dim: int, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """faiss PCAMatrix's transform (x - mean) @ top-``dim`` eigenvectors, on ``device``."""
    t = torch.from_numpy(x).to(device)
    mean = t.mean(0)
    centred = t - mean
    cov = (centred.T @ centred).double() / len(t)
    _, vectors = torch.linalg.eigh(cov)
    a = vectors[:, -dim:].flip(1).float()
    return a.cpu().numpy(), (-(mean @ a)).cpu().numpy()


def clustering(check: Check) -> None:
    import faiss

    from w2vu.features.backends import limited_threads
    from w2vu.features.kmeans import KmeansConfig, fit_centroids
    from w2vu.features.pca import fit_pca

    sz = check.sizes
    x = clustered_frames(sz, seed=1)
    cores = os.cpu_count() or 1
    gpu_faiss = check.device.type == "cuda" and faiss.get_num_gpus() > 0
    what = f"{sz.frames:,} x {sz.feat_dim} -> {sz.pca_dim}"
    with limited_threads(cores, "faiss"):
        start = time.perf_counter()
        a, _ = fit_pca(x, sz.pca_dim, backend="faiss")
        base = check.add(Row("PCA", f"faiss CPU, {cores} threads (baseline)",
                             time.perf_counter() - start, "s", note=what))
    pca_torch(x[:1000], sz.pca_dim, check.device)  # warm-up: cuSOLVER handle
    check.sync()
    start = time.perf_counter()
    a_torch, _ = pca_torch(x, sz.pca_dim, check.device)
    seconds = time.perf_counter() - start
    agree = float(np.linalg.norm(a.T @ a_torch) ** 2 / sz.pca_dim)  # 1 = same subspace
    row = check.add(Row("PCA", f"torch {check.device.type.upper()} covariance + eigh", seconds,
                        "s", note=f"subspace overlap with faiss {agree:.3f}; not wired into "
                                  "the pipeline"))
    row.ratio = base.value / seconds
    config = KmeansConfig(clusters=sz.clusters, niter=sz.kmeans_iter, nredo=1, threads=cores)
    y = np.ascontiguousarray(x[:, : sz.pca_dim])
    what = f"K={sz.clusters}, {sz.kmeans_iter} iterations, {sz.frames:,} x {sz.pca_dim}"
    start = time.perf_counter()
    fit_centroids(y, config)
    base = check.add(Row("k-means", f"faiss CPU, {cores} threads (baseline)",
                         time.perf_counter() - start, "s", note=what))
    if not gpu_faiss:
        if check.device.type == "cuda":
            check.add(Row("k-means", "faiss GPU", note="skipped: this faiss has no GPU build "
                          "(faiss-gpu-cu12 needs CUDA 12 cuBLAS, ~0.5 GB, over the carry budget)"))
        return
    config = KmeansConfig(clusters=sz.clusters, niter=sz.kmeans_iter, nredo=1,
                          device="cuda", threads=cores)
    start = time.perf_counter()
    fit_centroids(y, config)
    row = check.add(Row("k-means", "faiss GPU", time.perf_counter() - start, "s", note=what))
    row.ratio = base.value / row.value


# --------------------------------------------------------------------------- GAN


def gan_option(check: Check, variant: int, option: str) -> Row:
    """Updates/s of one variant with one option (fresh model, warm-up outside the timing)."""
    import gan

    sz = check.sizes
    s = gan.build(variant, str(check.device), sz.gan_batch, sz.gan_disc,
                  v2_frames=sz.gan_v2_frames)
    bf16 = option == "bf16"
    if option.startswith("compile-G"):
        mode = "reduce-overhead" if option.endswith("cudagraphs") else "default"
        s.model.generator.compile(dynamic=True, mode=mode)
    check.reset_peak()
    gan.run_updates(s, 0, sz.gan_warmup, bf16)
    done, seconds = 0, 0.0
    while done < sz.gan_updates and seconds < sz.gan_seconds:
        seconds += gan.run_updates(s, sz.gan_warmup + done, 2, bf16)
        done += 2
    return Row(f"GAN {'1.0' if variant == 1 else '2.0'}", option, done / seconds, "updates/s",
               note=join_notes(f"batch {sz.gan_batch}, {done} updates", check.peak()))


def gan_rates(check: Check, options: tuple[str, ...], bases: dict[int, Row]) -> None:
    """``options`` of both variants; eager (run first) is each variant's baseline in ``bases``."""
    for variant in (1, 2):
        for option in options:

            def one(c: Check, variant: int = variant, option: str = option) -> None:
                row = gan_option(c, variant, option)
                if option == "eager":
                    row.setting = "eager (baseline)"
                    row.note = join_notes(row.note, "goal >= 42 " + ("met" if row.value >= 42
                                                                else "not met"))
                c.add(row, bases.get(variant))
                if option == "eager":
                    bases[variant] = row

            guarded(check, f"GAN {'1.0' if variant == 1 else '2.0'}",
                    20.0 if option == "eager" else 60.0, one)


# --------------------------------------------------------------------------- CTC fine-tuning


def ctc_finetuning(check: Check) -> None:
    from transformers import Wav2Vec2Model

    from w2vu.selftrain.ctc.data import CtcBatch
    from w2vu.selftrain.ctc.finetune import FinetuneSettings, build_finetune_model, finetune_config
    from w2vu.selftrain.ctc.steps import build_optimizer, train_step

    sz = check.sizes
    vocab = 44
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="w2vu-gpu-check-") as tmp:
        Wav2Vec2Model(xlsr_config(sz)).save_pretrained(tmp)
        Path(tmp, "preprocessor_config.json").write_text('{"do_normalize": true}\n')
        config = finetune_config()
        model = build_finetune_model(tmp, vocab, FinetuneSettings(), config.mask)
    model = model.to(check.device)
    samples = int(sz.ctc_batch_s * 16000 / sz.ctc_utts)
    rng = np.random.default_rng(2)
    waves = torch.from_numpy(0.1 * rng.standard_normal((sz.ctc_utts, samples, 1),
                                                       dtype=np.float32))
    lengths = torch.full((sz.ctc_utts,), samples, dtype=torch.long)
    frames = int(model.output_lengths(lengths)[0])
    target_len = max(frames // 4, 1)
    targets = torch.from_numpy(rng.integers(4, vocab, sz.ctc_utts * target_len))
    batch = CtcBatch(waves, torch.zeros(sz.ctc_utts, samples, dtype=torch.bool), targets,
                     torch.full((sz.ctc_utts,), target_len, dtype=torch.long),
                     lengths).to(check.device)
    generator = torch.Generator().manual_seed(1)
    base = None
    for setting, bf16 in (("fp32 (baseline)", False), ("bf16 autocast", True)):
        config = finetune_config(bf16=bf16)
        optimizer = build_optimizer(model, config)
        train_step(model, optimizer, batch, 1e-5, config, generator)  # warm-up
        check.reset_peak()
        check.sync()
        done, start = 0, time.perf_counter()
        while done < sz.ctc_steps and time.perf_counter() - start < sz.ctc_seconds:
            train_step(model, optimizer, batch, 1e-5, config, generator)
            done += 1
        check.sync()
        seconds = time.perf_counter() - start
        row = check.add(Row("CTC fine-tuning", setting, done / seconds, "steps/s",
                            note=join_notes(
                                f"{sz.blocks} blocks, {sz.ctc_batch_s:g} s audio a step "
                                f"({fmt(sz.ctc_batch_s * done / seconds)} s audio/s)",
                                check.peak())), base)
        base = base or row


# --------------------------------------------------------------------------- known answer


def run_script(check: Check, name: str, setting: str, cmd: list[str], seconds: float,
               out_file: Path | None) -> None:
    """Run a bench script as its own process within ``seconds``; its last line becomes the row."""
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=seconds)
    except subprocess.TimeoutExpired:
        check.add(Row(name, "failed", note=f"ran past {seconds:.0f} s"))
        return
    text = out.stdout + out.stderr
    if out_file is not None:
        out_file.write_text(text, encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else "(no output)"
    check.add(Row(name, setting, time.perf_counter() - start, "s",
                  note=f"exit {out.returncode}; last line: {last[:150]}"))


def known_answer_gradient(check: Check, out_dir: Path | None, phone_text: Path | None) -> None:
    """The gradient ranks near the answer with the reference's critic and batch (bench/README)."""
    seconds = min(240.0, check.left() - 120)
    cmd = [sys.executable, str(REPO / "bench" / "known_answer_gradient.py"),
           "--discriminator-dim", "384", "--batch-size", "160", "--warm", "0", "1000", "3000",
           "--device", check.device.type]
    if phone_text is not None:  # else the book through the text steps (needs espeak-ng)
        cmd += ["--phone-text", str(phone_text.resolve())]
    out_file = out_dir / "known_answer_gradient.txt" if out_dir is not None else None
    run_script(check, "known-answer gradient", f"critic 384, batch 160 on {check.device.type}",
               cmd, seconds, out_file)


def known_answer(check: Check, out_dir: Path | None, phone_text: Path | None) -> None:
    minutes = (check.left() - 30) / 60
    if minutes < 1:
        check.add(Row("known-answer", "skipped", note=f"time budget: {check.left():.0f} s left"))
        return
    cmd = [sys.executable, str(REPO / "bench" / "known_answer.py"), "--minutes",
           f"{minutes:.1f}", "--device", check.device.type]
    if phone_text is not None:
        cmd += ["--phone-text", str(phone_text.resolve())]
    if out_dir is not None:
        cmd += ["--json", str((out_dir / "known_answer.json").resolve()),
                "--svg", str((out_dir / "known_answer.svg").resolve())]
    out_file = out_dir / "known_answer.txt" if out_dir is not None else None
    run_script(check, "known-answer", f"{minutes:.1f} min on {check.device.type}", cmd,
               minutes * 60 + 60, out_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-small", action="store_true",
                        help="toy sizes on the CPU (automatic without CUDA)")
    parser.add_argument("--budget", type=float, default=450.0,
                        help="seconds for everything, known-answer included (default 450)")
    parser.add_argument("--json", type=Path, help="also write the rows here as JSON")
    parser.add_argument("--phone-text", type=Path,
                        help="lm.phones.filtered.txt for the known-answer run (bench/README.md)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: every core)")
    args = parser.parse_args()
    started = time.monotonic()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    small = args.cpu_small or not torch.cuda.is_available()
    device = torch.device("cpu" if small else "cuda")
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    check = Check(device, SMALL_SIZES if small else GPU_SIZES, started + args.budget)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    header = (f"w2vu GPU check, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {name}, "
              f"torch {torch.__version__}, {'cpu-small (toy sizes)' if small else 'full sizes'}"
              f", budget {args.budget:.0f} s")
    print(header, flush=True)
    guarded(check, "extraction", 30.0, extraction)
    guarded(check, "PCA / k-means", 30.0, clustering)
    # the plain rates and fine-tuning first, then what compiles (slow to start) with time left
    plain = tuple(o for o in check.sizes.gan_options if not o.startswith("compile"))
    bases: dict[int, Row] = {}
    guarded(check, "GAN", 30.0, lambda c: gan_rates(c, plain, bases))
    guarded(check, "CTC fine-tuning", 40.0, ctc_finetuning)
    compiled = tuple(o for o in check.sizes.gan_options if o.startswith("compile"))
    if compiled:
        guarded(check, "GAN", 60.0, lambda c: gan_rates(c, compiled, bases))
    out_dir = args.json.parent if args.json else None
    if small:
        check.add(Row("known-answer", "skipped", note="not run at toy sizes "
                      "(run bench/known_answer.py itself)"))
    else:
        guarded(check, "known-answer gradient", 180.0,
                lambda c: known_answer_gradient(c, out_dir, args.phone_text))
        guarded(check, "known-answer", 90.0,
                lambda c: known_answer(c, out_dir, args.phone_text))
    header += f"; took {time.monotonic() - started:.0f} s"
    print_table(check, header)
    if args.json:
        args.json.write_text(json.dumps({"header": header, "rows": [asdict(r) for r in
                                                                    check.rows]}, indent=1)
                             + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
