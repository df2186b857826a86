"""Does the GAN learn? PER against updates on known-answer features (w2vu.gan.known_answer).

Why: the real-speech demo cannot separate "the trainer is broken" from "the features are hard".
Here the transcript of the "audio" is known: a real phone text is split in two, one half becomes
features (a fixed random vector per phone plus noise, held for 1-2 frames), the other half is the
unpaired text. The REAL trainer (``w2vu.gan.trainer.train``) runs in chunks of
``--validate-every`` updates (each chunk resumes from ``checkpoint_last.pt``; with ``--minutes`` the
chunks shrink to fit the budget), and after each chunk
the row of its own validation (PER of the run-mean JOIN output against the spoken half's phones)
is printed, so the curve appears while it runs. At the end the real generation step
(``w2vu.gan.generate.generate``, Viterbi) decodes with the checkpoint chosen by the unsupervised
metric and with the last one, and ``w2vu.eval.score`` scores both. Baselines measured in the same
run: the most-frequent-phone hypothesis and the untrained generator (update 0).

Phone text: ``--phone-text`` (any ``lm.phones.filtered.txt``), or by default the bundled book's
sentences through the library's own text steps (``w2vu demo-corpus --minutes 0`` for the unpaired
half of the book, ``normalize``, ``lexicon``, ``phones``), about 2,500 sentences.

Defaults are the realistic case at the reference sizes: every phone kept, 1.5 frames per phone,
batch 160, discriminator 384, 512-d, three seeds.

Run: python bench/known_answer.py [--phones 8] [--frames-per-phone 1.5] [--noise 0.3]
       [--seeds 1 2 3] [--updates 3000 | --minutes 10] [--device cpu|cuda] [--svg curve.svg]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from w2vu.gan.known_answer import (  # noqa: E402
    KnownAnswerPaths,
    KnownAnswerSettings,
    build_known_answer,
)

import machine  # noqa: E402 - a sibling module (bench/ is the script's folder)


def book_phone_text(work: Path, min_phones: int) -> Path:
    """The book's unpaired half as phone text, through the w2vu text commands (own processes)."""
    def w2vu(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "w2vu", *args], check=True, cwd=REPO,
                       capture_output=True, timeout=600)

    w2vu("demo-corpus", "--out-dir", str(work / "wav"), "--out-table", str(work / "audio.tsv"),
         "--out-text", str(work / "book.txt"), "--minutes", "0")
    w2vu("normalize", "--inputs", str(work / "book.txt"), "--out", str(work / "norm.txt"),
         "--casefold")
    w2vu("lexicon", "--text", str(work / "norm.txt"), "--language", "en-us",
         "--out-words", str(work / "words.txt"), "--out-lexicon", str(work / "lexicon.lst"),
         "--min-word-count", "1")
    out = work / "lm.phones.filtered.txt"
    w2vu("phones", "--text", str(work / "norm.txt"), "--lexicon", str(work / "lexicon.lst"),
         "--out-dict", str(work / "dict.phn.txt"), "--out-lexicon", str(work / "lexf.lst"),
         "--out-phone-text", str(out), "--min-phones", str(min_phones))
    return out


def train_config(args: argparse.Namespace, seed: int, max_updates: int):  # noqa: ANN201
    """The trainer's config from the command line; unset values stay the reference's."""
    from w2vu.gan.losses import LossWeights, w2vu2_weights
    from w2vu.gan.trainer import TrainConfig

    weights = LossWeights() if args.variant == 1 else w2vu2_weights()
    overrides = {k: v for k, v in (("gradient_penalty", args.gradient_penalty),
                                   ("code_penalty", args.code_penalty),
                                   ("smoothness", args.smoothness)) if v is not None}
    return TrainConfig(variant=args.variant, max_updates=max_updates,
                       batch_size=args.batch_size, lr_generator=args.lr_generator,
                       lr_discriminator=args.lr_discriminator,
                       weights=replace(weights, **overrides),
                       discriminator_dim=args.discriminator_dim,
                       discriminator_depth=args.discriminator_depth,
                       validate_every=args.validate_every, checkpoint_every=args.validate_every,
                       seed=seed, device=args.device, log_every_s=1e9,
                       eval_batch_size=args.eval_batch_size)


def resumed_update(checkpoint: Path) -> int:
    """The update a kept ``checkpoint_last.pt`` holds."""
    import torch

    return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["update"])


def metrics_rows(metrics: Path) -> list[dict[str, float]]:
    """A run's metrics.tsv, oldest row first (the checkpoint carries it across resumes)."""
    head, *rows = metrics.read_text(encoding="utf-8").splitlines()
    return [{k: float(v) for k, v in zip(head.split("\t"), row.split("\t"))} for row in rows]


def curve_point(row: dict[str, float], seconds: float | None) -> dict[str, float | None]:
    """One point of a seed's curve from its metrics row (``seconds`` None: an earlier call's)."""
    keep = ("per", "weighted_lm_ppl", "vocab_usage", "d_loss", "g_loss")
    return {"update": int(row["update"]), "seconds": seconds, **{k: row[k] for k in keep}}


def decode_per(checkpoint: Path, data: KnownAnswerPaths, out: Path, split: str) -> float:
    """PER of the real generation step (Viterbi, §3.2) with ``checkpoint`` on the spoken half."""
    from w2vu.eval.score import score_files
    from w2vu.gan.generate import generate

    generate(checkpoint, data.features, data.dictionary, out, split, device="cpu")
    return score_files(out / f"{split}.txt", data.phn, "per").rate


def phone_confusions(hyp: Path, ref: Path) -> dict[str, dict]:
    """Per reference phone of a decode: count, share right, its three most frequent outcomes
    (None: deleted); shows a wrong permutation ("m -> ɪ 77%") that PER alone hides."""
    from w2vu.eval.metrics import confusions
    from w2vu.io.lines import read_token_lines

    table = confusions(read_token_lines(hyp, "decode"), read_token_lines(ref, "references"))
    out = {}
    for phone, became in sorted(((p, c) for p, c in table.items() if p is not None),
                                key=lambda item: -sum(item[1].values())):
        count = sum(became.values())
        out[phone] = {"count": count, "right": became[phone] / count,
                      "top": [[h, n / count] for h, n in became.most_common(3) if h != phone]}
    return out


def confusion_line(table: dict[str, dict]) -> str:
    """One line: how many phones are mostly right, and the largest confusions."""
    right = sum(v["right"] >= 0.5 for v in table.values())
    worst = sorted(((v["top"][0][1] * v["count"], p, v["top"][0]) for p, v in table.items()
                    if v["top"]), reverse=True)[:6]
    named = ", ".join(f"{p}->{h or 'deleted'} {share:.0%}" for _, p, (h, share) in worst)
    return f"{right} of {len(table)} phones right at least half the time; largest: {named}"


def last_as_best(run: Path, data: KnownAnswerPaths, args: argparse.Namespace, seed: int) -> Path:
    """The final weights of ``checkpoint_last.pt`` in best.pt form, for the generation step."""
    import torch

    from w2vu.gan.data import load_phone_dictionary
    from w2vu.gan.trainer import CHECKPOINT_LAST, save_best

    ckpt = torch.load(run / CHECKPOINT_LAST, map_location="cpu", weights_only=True)
    path = run / "last.pt"
    save_best(path, ckpt["model"], int(ckpt["update"]), {}, train_config(args, seed, 0),
              load_phone_dictionary(data.dictionary))
    return path


def start_at_answer(args: argparse.Namespace, data: KnownAnswerPaths, paths, seed: int,
                    run: Path) -> None:  # noqa: ANN001
    """``--start oracle``: a ``checkpoint_last.pt`` at update 0 that the real trainer resumes.

    It is what a fresh run would hold at update 0 (same seed, RNG states, optimisers, input
    fingerprint) except that the generator already maps every class vector to its phone.
    """
    import torch

    from w2vu.gan.known_answer import oracle_generator_weight
    from w2vu.gan.run_state import RunState, model_state, save_last
    from w2vu.gan.trainer import CHECKPOINT_LAST, build_model, build_optimizers, save_best
    from w2vu.io.dictionary import load_phone_dictionary
    from w2vu.train.checkpoints import input_fingerprint
    from w2vu.train.runtime import seed_everything

    config = train_config(args, seed, 0)
    model_rng = seed_everything(config.seed)
    dictionary = load_phone_dictionary(data.dictionary)
    model = build_model(config, len(dictionary), args.dim)
    conv = model.generator.proj[1]
    weight = oracle_generator_weight(data.root, list(dictionary.symbols), conv.kernel_size[0],
                                     args.margin, args.wrong, seed)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight))
    trajectory = {**config.trajectory(), "data": input_fingerprint(paths.files())}
    save_last(run / CHECKPOINT_LAST, model, build_optimizers(model, config), RunState(),
              trajectory, dictionary, model_rng)
    save_best(run / "init.pt", model_state(model), 0, {}, config, dictionary)


def run_seed(args: argparse.Namespace, data: KnownAnswerPaths, seed: int, work: Path,
             deadline: float) -> dict[str, object]:
    """Train one seed chunk by chunk, printing a row per validation; returns its curve."""
    from w2vu.gan.baseline import random_checkpoint
    from w2vu.gan.trainer import CHECKPOINT_LAST, METRICS, TrainPaths, train

    run = work / f"run-seed{seed}"
    paths = TrainPaths(features=data.features, text=data.text, dictionary=data.dictionary,
                       lm=data.lm, valid_phn=data.phn,
                       km=data.km if args.variant == 2 else None)
    init = run / "init.pt"
    run.mkdir(parents=True, exist_ok=True)
    resumed = 0
    if args.start == "oracle":
        start_at_answer(args, data, paths, seed, run)
    else:
        if (run / CHECKPOINT_LAST).exists():  # a --work-dir kept from an earlier call
            resumed = resumed_update(run / CHECKPOINT_LAST)
            print(f"  seed {seed}: resuming {run / CHECKPOINT_LAST} at update {resumed} "
                  "(remove it to start afresh)", flush=True)
        random_checkpoint(init, data.dictionary, data.features, variant=args.variant, seed=seed,
                          discriminator_dim=args.discriminator_dim)
    per0 = decode_per(init, data, run / "gen-init", "train")
    start = "generator at the answer"
    if args.start == "random":
        start = "untrained generator"
    elif args.wrong:
        start += f", {args.wrong:.0%} of the classes wrong"
    print(f"  seed {seed}  update {0:6d}  {0.0:7.1f} s  PER {per0:.3f}  ({start})", flush=True)
    curve = [{"update": 0, "seconds": 0.0, "per": per0}]
    if resumed:  # the earlier calls' rows, so that the table, JSON and figure show the whole run
        curve += [curve_point(row, None) for row in metrics_rows(run / METRICS)
                  if row["update"] <= resumed]
    start = time.monotonic()
    done = resumed
    rate = None  # updates/s including validation, measured on the run's first chunk
    while done < args.updates and time.monotonic() < deadline:
        step = args.validate_every
        if math.isfinite(deadline):  # keep within --minutes: a short first chunk, then fit
            left = deadline - time.monotonic()
            step = min(step, 10) if rate is None else min(step, max(1, int(0.9 * left * rate)))
        chunk_start = time.monotonic()
        done = min(done + step, args.updates)
        train(train_config(args, seed, done), paths, run)
        if args.keep_checkpoints:  # e.g. the suite's mid-descent fixture (tests/data/)
            shutil.copyfile(run / CHECKPOINT_LAST, run / f"checkpoint_{done}.pt")
        rate = step / max(time.monotonic() - chunk_start, 1e-9)
        row = metrics_rows(run / METRICS)[-1]
        elapsed = time.monotonic() - start
        curve.append(curve_point(row, elapsed))
        print(f"  seed {seed}  update {done:6d}  {elapsed:7.1f} s  PER {row['per']:.3f}  "
              f"wlm_ppl {row['weighted_lm_ppl']:8.2f}  vocab {row['vocab_usage']:.2f}  "
              f"d_loss {row['d_loss']:.3f}  g_loss {row['g_loss']:.3f}  "
              f"{(done - resumed) / elapsed:.2f} upd/s", flush=True)
    best_per = decode_per(run / "best.pt", data, run / "gen-best", "train")
    final_per = decode_per(last_as_best(run, data, args, seed), data, run / "gen-last", "train")
    phones = phone_confusions(run / "gen-last" / "train.txt", data.phn)
    print(f"  seed {seed}  last decode: {confusion_line(phones)}", flush=True)
    return {"seed": seed, "curve": curve, "updates": done - resumed, "resumed_at": resumed,
            "seconds": time.monotonic() - start, "selected_per": best_per,
            "last_per": final_per, "phones": phones}


def write_svg(path: Path, results: list[dict], baseline: float, title: str) -> None:
    """PER against updates, one line per seed, the baseline dashed (plain SVG, no plotting lib)."""
    width, height, pad = 640, 400, 50
    max_update = max((r["curve"][-1]["update"] for r in results), default=1) or 1
    top = max([1.0, baseline] + [p["per"] for r in results for p in r["curve"]
                                 if math.isfinite(p["per"])])

    def xy(update: float, per: float) -> tuple[float, float]:
        return (pad + (width - 2 * pad) * update / max_update,
                height - pad - (height - 2 * pad) * min(per, top) / top)

    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="20" text-anchor="middle">{title}</text>',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
             'stroke="black"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>',
             f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle">updates '
             f'(0 to {max_update})</text>',
             f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" '
             f'text-anchor="middle">PER (0 to {top:.2f})</text>']
    for frac in (0.0, 0.2, 0.5, 1.0):
        if frac <= top:
            _, y = xy(0, frac)
            parts.append(f'<text x="{pad - 6}" y="{y + 4}" text-anchor="end">{frac:.1f}</text>')
    x0, yb = xy(0, baseline)
    x1, _ = xy(max_update, baseline)
    parts.append(f'<line x1="{x0}" y1="{yb}" x2="{x1}" y2="{yb}" stroke="gray" '
                 'stroke-dasharray="6 4"/>')
    parts.append(f'<text x="{x1}" y="{yb - 4}" text-anchor="end" fill="gray">most frequent '
                 f'phone {baseline:.3f}</text>')
    for i, r in enumerate(results):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(p["update"], p["per"])
                                                          for p in r["curve"]))
        colour = colours[i % len(colours)]
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                     'stroke-width="2"/>')
        label = r.get("label", f'seed {r["seed"]}')  # inside the frame: long labels fit
        parts.append(f'<text x="{width - pad - 4}" y="{pad + 14 * (i + 1)}" text-anchor="end" '
                     f'fill="{colour}">{label}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--phone-text", type=Path, help="lm.phones.filtered.txt (default: the book)")
    p.add_argument("--min-phones", type=int, default=10, help="book text: phone count cut-off")
    p.add_argument("--phones", type=int, default=0, help="fold into this many phone classes "
                   "(default 0: keep all)")
    p.add_argument("--fold", choices=("interleave", "blocks"), default="interleave")
    p.add_argument("--frames-per-phone", type=float, default=1.5)
    p.add_argument("--noise", type=float, default=0.3)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--audio-fraction", type=float, default=0.5)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--blind", action="store_true", help="control: every phone the same vector")
    p.add_argument("--variant", type=int, choices=(1, 2), default=1)
    p.add_argument("--start", choices=("random", "oracle"), default="random",
                   help="oracle: the generator starts at the known answer (variant 1), to see "
                   "whether training keeps it")
    p.add_argument("--margin", type=float, default=20.0,
                   help="--start oracle: logit margin of the right phone")
    p.add_argument("--wrong", type=float, default=0.0,
                   help="--start oracle: share of phone classes mapped wrongly (in a cycle), "
                   "to see whether training repairs them")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--updates", type=int, default=3000, help="per seed")
    p.add_argument("--minutes", type=float, help="wall-clock budget for all seeds together")
    p.add_argument("--validate-every", type=int, default=250)
    p.add_argument("--batch-size", type=int, default=160)
    p.add_argument("--discriminator-dim", type=int, default=384)
    p.add_argument("--discriminator-depth", type=int, help="default: the reference's 2")
    p.add_argument("--lr-generator", type=float)
    p.add_argument("--lr-discriminator", type=float)
    p.add_argument("--gradient-penalty", type=float)
    p.add_argument("--code-penalty", type=float)
    p.add_argument("--smoothness", type=float)
    p.add_argument("--eval-batch-size", type=int, default=160)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--svg", type=Path, help="write the curve as an SVG figure here")
    p.add_argument("--json", type=Path, help="write every figure as JSON here")
    p.add_argument("--work-dir", type=Path, help="keep the data and runs here")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="copy checkpoint_last.pt to checkpoint_<update>.pt after every chunk")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(machine.describe())
    if args.start == "oracle" and args.variant != 1:
        raise SystemExit("--start oracle needs --variant 1 (2.0's batch norm and residual "
                         "have no closed-form answer)")
    import torch

    from w2vu.eval.score import most_frequent_phone_baseline

    torch.set_num_threads(args.threads)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="w2vu-known-answer-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        phone_text = args.phone_text or book_phone_text(work / "text", args.min_phones)
        settings = KnownAnswerSettings(phones=args.phones, fold=args.fold,
                                       frames_per_phone=args.frames_per_phone,
                                       noise=args.noise, dim=args.dim,
                                       audio_fraction=args.audio_fraction,
                                       km_clusters=64 if args.variant == 2 else 0,
                                       blind=args.blind, seed=args.data_seed)
        summary = build_known_answer(phone_text, work / "data", settings)
        data = KnownAnswerPaths(work / "data")
        baseline = most_frequent_phone_baseline(data.text, data.phn, work / "baseline.txt").rate
        print(f"known-answer set: {summary['phones']} phones (+<SIL>) from "
              f"{summary['source_phones']}, {summary['spoken_sentences']} spoken sentences "
              f"({summary['frames']} frames, {summary['reference_phones']} phones), "
              f"{summary['text_sentences']} text sentences; noise {args.noise}, "
              f"{args.frames_per_phone} frames/phone, nearest-vector frame accuracy "
              f"{summary['nearest_vector_frame_accuracy']:.3f}", flush=True)
        print(f"trainer: variant {args.variant}, batch {args.batch_size}, discriminator "
              f"{args.discriminator_dim}, lr {train_config(args, 0, 0).lr_generator:g}/"
              f"{train_config(args, 0, 0).lr_discriminator:g}, "
              f"{train_config(args, 0, 0).weights}, device {args.device}, "
              f"{args.threads} threads", flush=True)
        print(f"baseline (most frequent phone): PER {baseline:.3f}", flush=True)
        budget = (args.minutes * 60 if args.minutes else math.inf)
        results = []
        for i, seed in enumerate(args.seeds):
            left = budget - (time.monotonic() - began)
            deadline = time.monotonic() + left / (len(args.seeds) - i)
            results.append(run_seed(args, data, seed, work, deadline))
        print("\nseed  updates  seconds  upd/s  PER(selected)  PER(last)  best valid PER  "
              "last/baseline")
        for r in results:
            best = min(p["per"] for p in r["curve"])
            print(f"{r['seed']:4d}  {r['updates']:7d}  {r['seconds']:7.0f}  "
                  f"{r['updates'] / r['seconds']:5.2f}  {r['selected_per']:13.3f}  "
                  f"{r['last_per']:9.3f}  {best:14.3f}  {r['last_per'] / baseline:13.2f}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        best = min(results, key=lambda r: r["last_per"])
        updates = sum(r["updates"] for r in results)
        seconds = sum(r["seconds"] for r in results)
        print(f"known-answer: best final PER {best['last_per']:.3f} (seed {best['seed']}, "
              f"{best['updates']} updates; at update 0 {best['curve'][0]['per']:.3f}) against "
              f"baseline {baseline:.3f} "
              f"(ratio {best['last_per'] / baseline:.2f}); {updates} updates at "
              f"{updates / max(seconds, 1e-9):.2f} upd/s on {args.device}; peak RSS {peak:.0f} "
              f"MiB; wall {time.monotonic() - began:.0f} s", flush=True)
        if args.svg:
            write_svg(args.svg, results, baseline,
                      f"known-answer GAN, {summary['phones']} phones, noise {args.noise}, "
                      f"{args.frames_per_phone} frames/phone")
        if args.json:
            args.json.write_text(json.dumps({"summary": summary, "baseline": baseline,
                                             "args": {k: str(v) for k, v in vars(args).items()},
                                             "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
