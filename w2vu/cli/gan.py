"""GAN commands: train one run, select a run of a sweep, generate transcripts, the untrained
baseline."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from w2vu.cli.commands import (
    Commands,
    LibraryDefault,
    bracketing,
    key_values,
    note_failure,
    threads,
)
from w2vu.errors import W2vuError

log = logging.getLogger("w2vu")
COMMANDS = Commands()
TRAIN = "w2vu.gan.trainer:TrainConfig"


def _variant_features(pairs: list[str]) -> dict[int, str]:
    """``1=prefix 2=prefix``: the features each GAN variant reads."""
    variants, prefixes = key_values(pairs, str)
    try:
        return {int(v): p for v, p in zip(variants, prefixes)}
    except ValueError:
        raise W2vuError(f"--features takes VARIANT=PREFIX (VARIANT 1 or 2), got {pairs}") from None


def _gan_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", type=int, choices=(1, 2),
                   default=LibraryDefault(f"{TRAIN}.variant"),
                   help="wav2vec-U 1.0 or 2.0")
    p.add_argument("--features", required=True, help="train feature prefix")
    p.add_argument("--text", required=True, type=Path, help="lm.phones.filtered.txt")
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--lm", required=True, type=Path, help="phone 4-gram (ARPA) for selection")
    p.add_argument("--valid-features", help="validation feature prefix")
    p.add_argument("--valid-phn", type=Path, help="validation references (.phn), for PER")
    p.add_argument("--km", type=Path, help="2.0: train.km auxiliary targets")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--max-updates", type=int, default=LibraryDefault(f"{TRAIN}.max_updates"))
    p.add_argument("--batch-size", type=int, default=LibraryDefault(f"{TRAIN}.batch_size"))
    p.add_argument("--discriminator-dim", type=int, help="default: the reference's 384")
    p.add_argument("--discriminator-depth", type=int,
                   help="conv layers (default: the reference's 2, one nonlinearity)")
    p.add_argument("--lr-generator", type=float, help="default: the variant's reference value")
    p.add_argument("--lr-discriminator", type=float, help="default: the variant's reference")
    p.add_argument("--validate-every", type=int, default=LibraryDefault(f"{TRAIN}.validate_every"))
    p.add_argument("--code-penalty", type=float, help="default: the variant's reference value")
    p.add_argument("--gradient-penalty", type=float, help="default: the variant's reference")
    p.add_argument("--smoothness", type=float, help="default: the variant's reference value")
    p.add_argument("--seed", type=int, default=LibraryDefault(f"{TRAIN}.seed"))
    p.add_argument("--keep", choices=("best", "last"), default=LibraryDefault(f"{TRAIN}.keep"),
                   help="which validation best.pt holds: the lowest weighted_lm_ppl (the "
                        "reference) or the last")
    p.add_argument("--device", default=LibraryDefault(f"{TRAIN}.device"))
    p.add_argument("--bf16", action="store_true", help="bf16 autocast on GPU")
    threads(p)


@COMMANDS("gan-train", _gan_train_arguments,
          "train one wav2vec-U GAN run (resumes from checkpoint_last.pt in --out-dir)")
def cmd_gan_train(a: argparse.Namespace) -> None:
    import torch

    from w2vu.gan.losses import LossWeights, w2vu2_weights
    from w2vu.gan.select import write_run_info
    from w2vu.gan.trainer import TrainConfig, TrainPaths, train

    torch.set_num_threads(a.threads)
    base = LossWeights() if a.variant == 1 else w2vu2_weights()
    chosen = {"code_penalty": a.code_penalty, "gradient_penalty": a.gradient_penalty,
              "smoothness": a.smoothness}
    weights = replace(base, **{k: v for k, v in chosen.items() if v is not None})
    config = TrainConfig(variant=a.variant, max_updates=a.max_updates, batch_size=a.batch_size,
                         weights=weights, validate_every=a.validate_every,
                         checkpoint_every=a.validate_every, seed=a.seed, device=a.device,
                         bf16=a.bf16, discriminator_dim=a.discriminator_dim,
                         discriminator_depth=a.discriminator_depth,
                         lr_generator=a.lr_generator, lr_discriminator=a.lr_discriminator,
                         keep=a.keep)
    paths = TrainPaths(a.features, a.text, a.dictionary, a.lm, a.valid_features, a.valid_phn,
                       a.km)
    write_run_info(a.out_dir, {"variant": a.variant, "seed": a.seed, "keep": a.keep,
                               **{k: getattr(weights, k) for k in chosen}})
    train(config, paths, a.out_dir, restart_on_change=True)


def _gan_select_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", nargs="+", required=True, help="run folders (metrics.tsv, run.json)")
    p.add_argument("--selection", choices=("reference", "paper"), default="reference",
                   help="reference: lowest weighted_lm_ppl; paper: the paper's three steps")
    p.add_argument("--paper-tolerance", type=float, default=1.2, help="paper method, step 2")
    p.add_argument("--out", required=True, type=Path, help="selected.json")


@COMMANDS("gan-select", _gan_select_arguments,
          "choose one GAN run of a sweep by the unsupervised metric (selected.json)")
def cmd_gan_select(a: argparse.Namespace) -> None:
    from w2vu.gan.select import select_run

    result = select_run(a.runs, a.out, a.selection, a.paper_tolerance)
    chosen = result["selected"]
    log.info("gan-select (%s): %s of %d runs (%d rankable), best update %s, %s",
             a.selection, chosen["run_dir"], result["n_runs"], result["n_valid"],
             chosen["best_update"], chosen["metrics"])


def _generation_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", nargs="+", required=True, metavar="VARIANT=PREFIX",
                   help="features of the split for each GAN variant, e.g. 1=.../valid")
    p.add_argument("--dictionary", required=True, type=Path, help="dict.phn.txt")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--split", required=True)
    p.add_argument("--device", default="auto")
    threads(p)


def _gan_generate_arguments(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--selection", type=Path, help="selected.json: use the chosen run")
    source.add_argument("--checkpoint", type=Path, help="a best.pt")
    _generation_arguments(p)
    p.add_argument("--decode-stride", type=int, help="2.0: generator stride at decoding")
    p.add_argument("--emissions", action="store_true",
                   help="also write frame log-probs ({split}.emissions.npy) for WFST decoding")


def _generate(a: argparse.Namespace, checkpoint: Path, decode_stride: int | None = None,
              emissions: bool = False) -> None:
    """Viterbi transcripts of `a.split` from `checkpoint`, on the features of its variant."""
    import torch

    from w2vu.gan.generate import generate, load_checkpoint

    torch.set_num_threads(a.threads)
    variant = int(load_checkpoint(checkpoint)["variant"])
    features = _variant_features(a.features)
    if variant not in features:
        raise W2vuError(f"{checkpoint} is a wav2vec-U variant {variant} model, but no "
                        f"features were given for it (--features {variant}=PREFIX)")
    hyps = generate(checkpoint, features[variant], a.dictionary, a.out_dir, a.split,
                    decode_stride=decode_stride, write_emissions=emissions, device=a.device)
    log.info("%s: %d utterances of %s decoded with %s", a.command, len(hyps.phones), a.split,
             checkpoint)


@COMMANDS("gan-generate", _gan_generate_arguments,
          "Viterbi transcripts of a split from a GAN checkpoint ({split}.txt, _units.txt)")
def cmd_gan_generate(a: argparse.Namespace) -> None:
    import json

    checkpoint = a.checkpoint
    if a.selection is not None:
        selected = json.loads(a.selection.read_text(encoding="utf-8"))["selected"]
        checkpoint = Path(selected["run_dir"]) / "best.pt"
        log.info("gan-generate: selected run %s", selected["run_dir"])
    _generate(a, checkpoint, a.decode_stride, a.emissions)


def _baseline_random_generator_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path,
                   help="baseline-random-checkpoint's best.pt (or its failure note)")
    _generation_arguments(p)
    note_failure(p)


@COMMANDS("baseline-random-generator", _baseline_random_generator_arguments,
          "baseline: Viterbi transcripts of a split from the random-weights generator")
def cmd_baseline_random_generator(a: argparse.Namespace) -> None:
    # Its checkpoint may be a failure note (--note-failure), which passes on to the transcripts.
    outputs = [a.out_dir / f"{a.split}.txt", a.out_dir / f"{a.split}_units.txt"]
    bracketing(a, "baseline-random-generator", outputs, [a.checkpoint],
               lambda: _generate(a, a.checkpoint))


def _baseline_random_checkpoint_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dictionary", required=True, type=Path)
    p.add_argument("--features", required=True, help="feature prefix (gives the input size)")
    p.add_argument("--variant", type=int, choices=(1, 2), default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, type=Path)
    note_failure(p)


@COMMANDS("baseline-random-checkpoint", _baseline_random_checkpoint_arguments,
          "baseline: a GAN checkpoint with seeded random weights")
def cmd_baseline_random_checkpoint(a: argparse.Namespace) -> None:
    from w2vu.gan.baseline import random_checkpoint

    bracketing(a, "baseline-random-checkpoint", [a.out], [],
               lambda: random_checkpoint(a.out, a.dictionary, a.features, a.variant, a.seed))


def _known_answer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--phone-text", required=True, type=Path,
                   help="phone sentences (an lm.phones.filtered.txt)")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--phones", type=int, default=0,
                   help="fold the inventory into this many phone classes (default 0: keep all)")
    p.add_argument("--fold", choices=("interleave", "blocks"), default="interleave",
                   help="interleave: classes of similar frequency (default); blocks: runs of "
                   "frequency ranks, very unequal classes (easiest)")
    p.add_argument("--frames-per-phone", type=float, default=1.5,
                   help="mean frames per phone (default 1.5: pooled wav2vec-U segments)")
    p.add_argument("--noise", type=float, default=0.5, help="per-frame noise std (default 0.5)")
    p.add_argument("--dim", type=int, default=512, help="feature dimension (default 512)")
    p.add_argument("--audio-fraction", type=float, default=0.5,
                   help="share of the sentences turned into features (default 0.5)")
    p.add_argument("--km-clusters", type=int, default=64,
                   help="clusters of the 2.0 stand-in train.km (default 64; 0: none)")
    p.add_argument("--blind", action="store_true",
                   help="control: one vector for every phone (the features carry no answer)")
    p.add_argument("--seed", type=int, default=0)


@COMMANDS("known-answer", _known_answer_arguments,
          "GAN inputs with a known transcript from a phone text, to check that training learns")
def cmd_known_answer(a: argparse.Namespace) -> None:
    from w2vu.gan.known_answer import KnownAnswerSettings, build_known_answer

    summary = build_known_answer(a.phone_text, a.out_dir, KnownAnswerSettings(
        phones=a.phones, fold=a.fold, frames_per_phone=a.frames_per_phone, noise=a.noise,
        dim=a.dim, audio_fraction=a.audio_fraction, km_clusters=a.km_clusters, blind=a.blind,
        seed=a.seed))
    log.info("known-answer: %d phones (+<SIL>), %d spoken sentences (%d frames), %d text "
             "sentences in %s", summary["phones"], summary["spoken_sentences"],
             summary["frames"], summary["text_sentences"], a.out_dir)
