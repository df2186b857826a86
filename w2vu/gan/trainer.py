"""wav2vec-U GAN training loop with unsupervised checkpoint selection (reference §2.5, §2.6, §3.1).

One update = one batch. Odd updates step the discriminator, even ones the generator; both
forward passes run every update, the summed loss is backpropagated into all parameters, the
gradients are divided by the batch size and clipped jointly at 5, and only the active group's
Adam steps (§2.5, §2.6). Every ``validate_every`` updates the model is scored with
``weighted_lm_ppl`` = LM perplexity / vocabulary usage² (§3.1) and the best one is kept.

Resuming: ``checkpoint_last.pt`` holds the model, both optimizers, the update count, every RNG
state and the metric rows. Batches are a function of (seed, update) (see ``data.py``), so a run
killed with ``kill -9`` and started again ends with the same weights, bit for bit on CPU, as a run
that was never stopped.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from w2vu.errors import W2vuError
from w2vu.gan.data import (
    MIN_LENGTH,
    NUM_SPECIALS,
    Batch,
    PhoneDictionary,
    TrainBatches,
    eval_batches,
    open_training_data,
    read_phone_lines,
)
from w2vu.gan.losses import (
    LossWeights,
    divide_gradients_by_sample_size,
    gan_losses,
    is_discriminator_step,
    total_loss,
    w2vu2_weights,
)
from w2vu.gan.models import (
    Discriminator,
    Generator,
    GeneratorConfig,
    Wav2vecU,
    w2vu2_configs,
    w2vu_configs,
)
from w2vu.io.atomic import atomic_path
from w2vu.io.features import Features, open_features
from w2vu.io.rolling import discard_if_other_run
from w2vu.io.torch_files import load_torch_file
from w2vu.text.ngram import ArpaModel
from w2vu.train.adam import Adam

log = logging.getLogger(__name__)

CHECKPOINT_LAST = "checkpoint_last.pt"
CHECKPOINT_BEST = "best.pt"
METRICS = "metrics.tsv"
METRIC_COLUMNS = (
    "update", "d_loss", "g_loss", "grad_pen", "code_ppl", "vocab_usage", "lm_ppl",
    "out_len", "len_ratio", "weighted_lm_ppl", "per",
)

# §2.6: (generator LR, discriminator LR) per variant; weight decay 0 / 1e-4 for both.
REFERENCE_LRS = {1: (4e-4, 5e-4), 2: (5e-5, 3e-4)}
OPTIMIZER = "fairseq-adam"  # w2vu.train.adam: the reference's update rule


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; ``None`` fields take the reference value of the variant (§2.6)."""

    variant: int = 1
    max_updates: int = 150_000
    batch_size: int = 160
    lr_generator: float | None = None
    lr_discriminator: float | None = None
    betas: tuple[float, float] = (0.5, 0.98)
    eps: float = 1e-6
    weight_decay_generator: float = 0.0
    weight_decay_discriminator: float = 1e-4
    clip_norm: float = 5.0
    weights: LossWeights | None = None
    target_dim: int = 64
    discriminator_dim: int | None = None  # 384 in both references; smaller only for tests
    validate_every: int = 1000
    checkpoint_every: int = 1000
    seed: int = 1
    device: str = "auto"
    bf16: bool = False
    log_every_s: float = 5.0
    eval_batch_size: int = 160

    def __post_init__(self) -> None:
        if self.variant not in REFERENCE_LRS:
            raise W2vuError(f"GAN variant must be 1 or 2, got {self.variant}")
        lr_g, lr_d = REFERENCE_LRS[self.variant]
        if self.lr_generator is None:
            object.__setattr__(self, "lr_generator", lr_g)
        if self.lr_discriminator is None:
            object.__setattr__(self, "lr_discriminator", lr_d)
        if self.weights is None:
            weights = LossWeights() if self.variant == 1 else w2vu2_weights()
            object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "betas", tuple(self.betas))

    def trajectory(self) -> dict[str, Any]:
        """The settings that shape the weights; a resume must not change them."""
        keep = ("variant", "batch_size", "lr_generator", "lr_discriminator", "betas", "eps",
                "weight_decay_generator", "weight_decay_discriminator", "clip_norm", "target_dim",
                "discriminator_dim", "seed", "bf16")
        out = {k: getattr(self, k) for k in keep}
        out["betas"] = list(self.betas)
        out["weights"] = asdict(self.weights)
        out["optimizer"] = OPTIMIZER  # checkpoints of the earlier torch AdamW runs are refused
        return out


@dataclass(frozen=True)
class TrainPaths:
    """Inputs of one GAN run (the fairseq data/text layout)."""

    features: str | os.PathLike  # train prefix: {prefix}.npy + .lengths
    text: str | os.PathLike  # lm.phones.filtered.txt
    dictionary: str | os.PathLike  # dict.phn.txt
    lm: str | os.PathLike  # phone 4-gram (.arpa, or a kenlm binary when kenlm is importable)
    valid_features: str | os.PathLike | None = None  # defaults to the train features
    valid_phn: str | os.PathLike | None = None  # references for PER, line-aligned with valid
    km: str | os.PathLike | None = None  # 2.0 train .km targets


@dataclass
class Accumulator:
    """Per-sample training statistics summed since the last validation."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + value
        self.counts[name] = self.counts.get(name, 0) + 1

    def mean(self, name: str) -> float:
        return self.sums[name] / self.counts[name] if self.counts.get(name) else math.nan


class PhoneLM(Protocol):
    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float: ...


def load_phone_lm(path: str | os.PathLike) -> PhoneLM:
    """kenlm when importable (as the reference), else the pure-Python ARPA scorer."""
    try:
        import kenlm  # type: ignore[import-not-found]
    except ImportError:
        return ArpaModel(path)
    return kenlm.Model(os.fspath(path))


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(config: TrainConfig, vocab_size: int, input_dim: int) -> Wav2vecU:
    """The w2vu/w2vu2 model with the data's input size; key names are the reference's (§7)."""
    gen_cfg, disc_cfg = w2vu_configs() if config.variant == 1 else w2vu2_configs()
    gen_cfg = GeneratorConfig(**{**gen_cfg.__dict__, "input_dim": input_dim})
    if config.discriminator_dim is not None:
        disc_cfg = replace(disc_cfg, dim=config.discriminator_dim)
    decoder = nn.Linear(input_dim, config.target_dim) if config.variant == 2 else None
    return Wav2vecU(Generator(gen_cfg, vocab_size), Discriminator(disc_cfg, vocab_size), decoder)


def generator_parameters(model: Wav2vecU) -> list[nn.Parameter]:
    """The "generator" group: everything but the discriminator (the 2.0 decoder included)."""
    return [p for n, p in model.named_parameters() if not n.startswith("discriminator.")]


def build_optimizers(model: Wav2vecU, config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """Two of the reference's Adams (eps outside sqrt(v), decoupled weight decay), §2.6."""
    return {
        "generator": Adam(generator_parameters(model), lr=config.lr_generator,
                          betas=config.betas, eps=config.eps,
                          weight_decay=config.weight_decay_generator),
        "discriminator": Adam(list(model.discriminator.parameters()),
                              lr=config.lr_discriminator, betas=config.betas, eps=config.eps,
                              weight_decay=config.weight_decay_discriminator),
    }


# --------------------------------------------------------------------------- RNG state


def capture_rng(model_rng: torch.Generator) -> dict[str, Any]:
    """Every RNG the run touches, in a form ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, state, gauss_py = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "model": model_rng.get_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss},
        "python": {"version": version, "state": list(state), "gauss": gauss_py},
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict[str, Any], model_rng: torch.Generator) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    model_rng.set_state(state["model"])
    np_state = state["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32),
                         np_state["pos"], np_state["has_gauss"], np_state["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- one update


def train_step(
    model: Wav2vecU,
    optimizers: dict[str, torch.optim.Optimizer],
    batch: Batch,
    update: int,
    config: TrainConfig,
    model_rng: torch.Generator,
) -> dict[str, float]:
    """One GAN update; returns the named losses per sample (fairseq logs loss / sample_size)."""
    model.train()
    device = batch.features.device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
        losses = gan_losses(model, batch.features, batch.padding_mask, batch.random_label,
                            update, config.weights, batch.aux_target, model_rng)
        loss = total_loss(losses)
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    divide_gradients_by_sample_size(params, batch.size)
    torch.nn.utils.clip_grad_norm_(params, config.clip_norm)
    group = "discriminator" if is_discriminator_step(update) else "generator"
    optimizers[group].step()
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    out = {name: float(v.detach()) / batch.size for name, v in losses.items()}
    out["loss"] = float(loss.detach()) / batch.size
    if "code_pen" in losses:
        out["code_ppl"] = code_perplexity(losses["code_pen"], batch.size, model.vocab_size,
                                          config.weights.code_penalty)
    return out


def code_perplexity(code_pen: torch.Tensor, batch_size: int, vocab: int, weight: float) -> float:
    """Recover PPL from η·B·(V − PPL)/V, so it need not be computed twice."""
    return vocab - float(code_pen.detach()) / (batch_size * weight) * vocab


def record_update(acc: Accumulator, update: int, stats: dict[str, float]) -> None:
    """Fold one update's statistics into the running means for metrics.tsv."""
    if is_discriminator_step(update):
        acc.add("d_loss", stats["loss"])
        if "grad_pen" in stats:
            acc.add("grad_pen", stats["grad_pen"])
    else:
        acc.add("g_loss", stats["loss"])
        if "code_ppl" in stats:
            acc.add("code_ppl", stats["code_ppl"])


# --------------------------------------------------------------------------- validation


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def hypothesis_ids(logits: torch.Tensor, padding_mask: torch.Tensor, vocab_size: int,
                   sil_index: int) -> list[list[int]]:
    """§3.1 steps 1-2: argmax of the run-mean JOIN output, runs collapsed, specials/SIL dropped."""
    preds = logits.argmax(-1).cpu()
    mask = padding_mask.cpu()
    out = []
    for row, pad in zip(preds, mask):
        ids = row[~pad].unique_consecutive()
        keep = (ids >= NUM_SPECIALS) & (ids < vocab_size) & (ids != sil_index)
        out.append(ids[keep].tolist())
    return out


@torch.inference_mode()
def generate_ids(model: Wav2vecU, features: Features, device: torch.device,
                 batch_size: int, sil_index: int) -> list[list[int]]:
    """Hypothesis ids for EVERY utterance in order; < 3-frame ones are still decoded.

    Under inference mode (no autograd bookkeeping at all): nothing made here meets a gradient.
    """
    model.eval()
    hyps: list[list[int]] = []
    for batch in eval_batches(features, batch_size):
        batch = batch.to(device)
        out = model.generate(batch.features, batch.padding_mask)
        hyps.extend(hypothesis_ids(out["logits"].float(), out["padding_mask"], model.vocab_size,
                                   sil_index))
    return hyps


def unsupervised_metrics(hyps: list[list[str]], lm: PhoneLM, num_symbols: int,
                         text_len: float) -> dict[str, float]:
    """§3.1: lm_ppl = 10^(−Σscore/(Σlen+N)), vocab usage over num_symbols, weighted_lm_ppl."""
    seen = {p for h in hyps for p in h}
    total_len = sum(len(h) for h in hyps)
    score = sum(lm.score(" ".join(h)) for h in hyps)
    lm_ppl = math.pow(10.0, -score / (total_len + len(hyps))) if hyps else math.inf
    usage = len(seen) / num_symbols
    weighted = lm_ppl / usage**2 if total_len > 0 else math.inf
    out_len = total_len / max(len(hyps), 1)
    return {"lm_ppl": lm_ppl, "vocab_usage": usage, "weighted_lm_ppl": weighted,
            "out_len": out_len, "len_ratio": out_len / text_len if text_len else math.nan}


def phone_error_rate(hyps: Iterable[Sequence[str]], refs: Iterable[Sequence[str]]) -> float:
    """Σ edit distance / Σ reference length."""
    errors = length = 0
    for h, r in zip(hyps, refs):
        errors += edit_distance(h, r)
        length += len(r)
    return errors / length if length else math.nan


class Validator:
    """Scores the model on the valid split; holds what does not change between validations."""

    def __init__(self, features: Features, dictionary: PhoneDictionary, lm: PhoneLM,
                 text_len: float, refs: list[list[str]] | None, batch_size: int) -> None:
        self.features = features
        self.dictionary = dictionary
        self.lm = lm
        self.text_len = text_len
        self.batch_size = batch_size
        self.scored = np.flatnonzero(features.lengths >= MIN_LENGTH)  # the reference's valid set
        self.refs = None if refs is None else [_strip_ref(refs[i], dictionary)
                                               for i in self.scored]
        if refs is not None and len(refs) != len(features):
            raise W2vuError(f"{len(refs)} reference lines for {len(features)} valid utterances")

    def __call__(self, model: Wav2vecU, device: torch.device) -> dict[str, float]:
        ids = generate_ids(model, self.features, device, self.batch_size,
                           self.dictionary.sil_index)
        symbols = self.dictionary.symbols
        hyps = [[symbols[i] for i in ids[j]] for j in self.scored]
        metrics = unsupervised_metrics(hyps, self.lm, self.dictionary.num_symbols, self.text_len)
        metrics["per"] = phone_error_rate(hyps, self.refs) if self.refs is not None else math.nan
        return metrics


def _strip_ref(ref: list[str], dictionary: PhoneDictionary) -> list[str]:
    """References lose specials and ``<SIL>`` like the hypotheses."""
    specials = set(dictionary.symbols[:NUM_SPECIALS]) | {dictionary.symbols[-1]}
    return [p for p in ref if p not in specials]


# --------------------------------------------------------------------------- checkpoints


def model_state(model: Wav2vecU) -> dict[str, torch.Tensor]:
    """State dict on CPU with the reference key names."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def save_atomically(obj: dict[str, Any], path: Path) -> None:
    """torch.save to a temporary sibling, then rename: a crash never leaves a torn checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def remove_stray_temporaries(folder: Path) -> None:
    """Temporaries of our own checkpoints left by a ``kill -9`` during a write."""
    for name in (CHECKPOINT_LAST, CHECKPOINT_BEST, METRICS):
        for stray in folder.glob(f".{name}.tmp-*"):
            log.info("removing %s left by an interrupted write", stray)
            stray.unlink(missing_ok=True)


def write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    """metrics.tsv rewritten whole from the checkpointed rows, so a resume never duplicates."""
    lines = ["\t".join(METRIC_COLUMNS)]
    for row in rows:
        lines.append("\t".join(_fmt(row[c]) if c != "update" else str(int(row[c]))
                               for c in METRIC_COLUMNS))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if math.isinf(value) else f"{value:.8g}")


@dataclass
class RunState:
    """What ``checkpoint_last.pt`` restores besides model and optimizers."""

    update: int = 0
    best: float = math.inf
    rows: list[dict[str, float]] = field(default_factory=list)
    acc: Accumulator = field(default_factory=Accumulator)
    # The best validation's weights and row: best.pt can be rewritten from them when Snakemake
    # removed it before a rerun (e.g. after max_updates was raised).
    best_model: dict[str, torch.Tensor] | None = None
    best_row: dict[str, float] = field(default_factory=dict)


def save_last(path: Path, model: Wav2vecU, optimizers: dict[str, torch.optim.Optimizer],
              state: RunState, config: TrainConfig, dictionary: PhoneDictionary,
              model_rng: torch.Generator) -> None:
    """The rolling checkpoint: everything needed for a bit-exact resume."""
    save_atomically({
        "model": model_state(model),
        "optimizer": {k: o.state_dict() for k, o in optimizers.items()},
        "update": state.update,
        "best": state.best,
        "best_model": state.best_model,
        "best_row": state.best_row,
        "rows": state.rows,
        "acc": {"sums": state.acc.sums, "counts": state.acc.counts},
        "rng": capture_rng(model_rng),
        "trajectory": config.trajectory(),
        "vocabulary": list(dictionary.symbols),
    }, path)


def load_last(path: Path, model: Wav2vecU, optimizers: dict[str, torch.optim.Optimizer],
              config: TrainConfig, model_rng: torch.Generator) -> RunState:
    """Restore a rolling checkpoint written by :func:`save_last` (no arbitrary unpickling)."""
    ckpt = load_torch_file(path, "checkpoint", "delete it to start over",
                           "delete it to start the run over")
    if ckpt["trajectory"] != config.trajectory():
        raise W2vuError(f"{path} was written with other training settings "
                        f"({ckpt['trajectory']}); delete it to start over")
    model.load_state_dict(ckpt["model"])
    for name, opt in optimizers.items():
        opt.load_state_dict(ckpt["optimizer"][name])
    restore_rng(ckpt["rng"], model_rng)
    acc = Accumulator(dict(ckpt["acc"]["sums"]), dict(ckpt["acc"]["counts"]))
    return RunState(ckpt["update"], ckpt["best"], list(ckpt["rows"]), acc, ckpt["best_model"],
                    dict(ckpt["best_row"]))


def save_best(path: Path, weights: dict[str, torch.Tensor], update: int,
              metrics: dict[str, float], config: TrainConfig, dictionary: PhoneDictionary) -> None:
    """The selected model: reference-keyed weights plus what generation needs to rebuild it."""
    save_atomically({
        "model": weights,
        "update": update,
        "metrics": metrics,
        "variant": config.variant,
        "vocabulary": list(dictionary.symbols),
        "trajectory": config.trajectory(),
    }, path)


# --------------------------------------------------------------------------- the loop


def seed_everything(seed: int) -> torch.Generator:
    """Seed the global RNGs (dropout uses torch's) and return the JOIN/penalty generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    return torch.Generator().manual_seed(seed + 1)


def train(config: TrainConfig, paths: TrainPaths, out_dir: str | os.PathLike,
          checkpoint_dir: str | os.PathLike | None = None,
          restart_on_change: bool = False) -> dict[str, float]:
    """Train (or resume) one GAN run; returns the best validation metrics.

    Declared outputs: ``out_dir/best.pt`` and ``out_dir/metrics.tsv``. ``checkpoint_last.pt``
    goes to ``checkpoint_dir`` (default ``out_dir``) and is resumed from when present; one written
    with other settings is refused, or with ``restart_on_change`` discarded (the workflow).
    """
    out = Path(out_dir)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    remove_stray_temporaries(out)
    remove_stray_temporaries(ckpt_dir)
    device = resolve_device(config.device)
    model_rng = seed_everything(config.seed)

    batches, dictionary = open_training_data(paths.features, paths.text, paths.dictionary,
                                             config.batch_size, config.seed, paths.km)
    validator = _build_validator(paths, batches, dictionary, config)
    model = build_model(config, len(dictionary), batches.features.dim).to(device)
    optimizers = build_optimizers(model, config)
    last_path = ckpt_dir / CHECKPOINT_LAST
    if restart_on_change:
        discard_if_other_run(last_path, config.trajectory())
    state = RunState()
    if last_path.exists():
        state = load_last(last_path, model, optimizers, config, model_rng)
        log.info("resuming from %s at update %d", last_path, state.update)
    _run_updates(model, optimizers, batches, validator, config, state, model_rng, device,
                 out, last_path, dictionary)
    write_outputs(out, state, config, dictionary)
    return state.best_row


def write_outputs(out: Path, state: RunState, config: TrainConfig,
                  dictionary: PhoneDictionary) -> None:
    """metrics.tsv and best.pt from the run state, so a finished run restores them too."""
    write_metrics(out / METRICS, state.rows)
    if state.best_model is not None:
        save_best(out / CHECKPOINT_BEST, state.best_model, int(state.best_row["update"]),
                  state.best_row, config, dictionary)


def _build_validator(paths: TrainPaths, batches: TrainBatches, dictionary: PhoneDictionary,
                     config: TrainConfig) -> Validator:
    features = (open_features(paths.valid_features) if paths.valid_features is not None
                else batches.features)
    refs = read_phone_lines(paths.valid_phn) if paths.valid_phn is not None else None
    text_len = batches.text.mean_phones(exclude=dictionary.sil_index)
    return Validator(features, dictionary, load_phone_lm(paths.lm), text_len, refs,
                     config.eval_batch_size)


def _run_updates(model: Wav2vecU, optimizers: dict[str, torch.optim.Optimizer],
                 batches: TrainBatches, validator: Validator, config: TrainConfig,
                 state: RunState, model_rng: torch.Generator, device: torch.device,
                 out: Path, last_path: Path, dictionary: PhoneDictionary) -> None:
    """Updates from ``state.update`` to ``max_updates`` with validation and checkpoints."""
    last_log = time.monotonic()
    while state.update < config.max_updates:
        update = state.update
        stats = train_step(model, optimizers, batches.batch(update).to(device), update, config,
                           model_rng)
        record_update(state.acc, update, stats)
        state.update += 1
        done = state.update >= config.max_updates
        if time.monotonic() - last_log >= config.log_every_s:
            log.info("update %d/%d loss %.4f", state.update, config.max_updates, stats["loss"])
            last_log = time.monotonic()
        if state.update % config.validate_every == 0 or done:
            _validate(model, validator, config, state, device, out, dictionary)
        if state.update % config.checkpoint_every == 0 or done:
            save_last(last_path, model, optimizers, state, config, dictionary, model_rng)


def _validate(model: Wav2vecU, validator: Validator, config: TrainConfig, state: RunState,
              device: torch.device, out: Path, dictionary: PhoneDictionary) -> None:
    """Score, append a metrics row, keep best.pt; training RNGs are left untouched."""
    if state.rows and state.rows[-1]["update"] == state.update:
        return  # already validated at this update before an interruption
    saved = torch.get_rng_state()
    metrics = validator(model, device)
    torch.set_rng_state(saved)
    row = {"update": float(state.update)}
    for name in ("d_loss", "g_loss", "grad_pen", "code_ppl"):
        row[name] = state.acc.mean(name)
    row.update(metrics)
    state.rows.append(row)
    state.acc = Accumulator()
    log.info("update %d: weighted_lm_ppl %.4g lm_ppl %.4g vocab %.3f per %.4g",
             state.update, row["weighted_lm_ppl"], row["lm_ppl"], row["vocab_usage"], row["per"])
    if row["weighted_lm_ppl"] < state.best or state.best_model is None:
        state.best = min(state.best, row["weighted_lm_ppl"])
        state.best_model = model_state(model)
        state.best_row = row
    write_outputs(out, state, config, dictionary)
