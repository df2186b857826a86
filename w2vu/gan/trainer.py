"""wav2vec-U GAN training loop with unsupervised checkpoint selection (reference §2.5, §2.6, §3.1).

One update = one batch. Odd updates step the discriminator, even ones the generator; both
forward passes run every update, the summed loss is backpropagated into all parameters, the
gradients are divided by the batch size and clipped jointly at 5, and only the active group's
Adam steps (§2.5, §2.6). Every ``validate_every`` updates the model is scored with
``weighted_lm_ppl`` = LM perplexity / vocabulary usage² (§3.1). ``best.pt`` holds the kept
checkpoint: the validation with the lowest metric (``keep="best"``, the reference) or the last one
(``keep="last"``: on real MFCC the metric is lowest before the GAN has learnt, see
bench/RESULTS.md).

Resuming: ``checkpoint_last.pt`` (``run_state.py``) holds the model, both optimizers, the update
count, every RNG state and the metric rows. Batches are a function of (seed, update) (see
``data.py``), so a run killed with ``kill -9`` and started again ends with the same weights, bit
for bit on CPU, as a run that was never stopped.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from w2vu.errors import W2vuError
from w2vu.gan.data import Batch, TrainBatches, open_training_data, read_phone_lines
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
from w2vu.gan.run_state import Accumulator, RunState, load_last, model_state, save_last
from w2vu.gan.select import KEEP
from w2vu.gan.validate import Validator
from w2vu.io.dictionary import PhoneDictionary
from w2vu.io.features import feature_paths, open_features
from w2vu.text.arpa import load_phone_lm
from w2vu.train.adam import Adam
from w2vu.train.checkpoints import (
    CHECKPOINT_LAST,
    discard_if_other_run,
    input_fingerprint,
    save_atomically,
)
from w2vu.train.metrics_table import METRICS, write_metrics
from w2vu.train.runtime import resolve_device, seed_everything

log = logging.getLogger(__name__)

CHECKPOINT_BEST = "best.pt"
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
    discriminator_depth: int | None = None  # 2 in both references (one nonlinearity)
    validate_every: int = 1000
    checkpoint_every: int = 1000
    seed: int = 1
    device: str = "auto"
    bf16: bool = False
    log_every_s: float = 5.0
    eval_batch_size: int = 160
    keep: str = "best"  # best.pt: the lowest weighted_lm_ppl (reference) or the last validation

    def __post_init__(self) -> None:
        if self.variant not in REFERENCE_LRS:
            raise W2vuError(f"GAN variant must be 1 or 2, got {self.variant}")
        if self.keep not in KEEP:
            raise W2vuError(f"gan.keep must be one of {', '.join(KEEP)}, got {self.keep!r}")
        lr_g, lr_d = REFERENCE_LRS[self.variant]
        if self.lr_generator is None:
            object.__setattr__(self, "lr_generator", lr_g)
        if self.lr_discriminator is None:
            object.__setattr__(self, "lr_discriminator", lr_d)
        if self.weights is None:
            weights = LossWeights() if self.variant == 1 else w2vu2_weights()
            object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.discriminator_depth is not None and self.discriminator_depth < 1:
            raise W2vuError(f"discriminator_depth must be 1 or more, got "
                            f"{self.discriminator_depth}; set gan.discriminator_depth")

    def trajectory(self) -> dict[str, Any]:
        """The settings that shape the weights; a resume must not change them."""
        keep = ("variant", "batch_size", "lr_generator", "lr_discriminator", "betas", "eps",
                "weight_decay_generator", "weight_decay_discriminator", "clip_norm", "target_dim",
                "discriminator_dim", "seed", "bf16")
        out = {k: getattr(self, k) for k in keep}
        out["betas"] = list(self.betas)
        out["weights"] = asdict(self.weights)
        out["optimizer"] = OPTIMIZER  # checkpoints of the earlier torch AdamW runs are refused
        if self.discriminator_depth is not None:  # absent = the reference's, as before the option
            out["discriminator_depth"] = self.discriminator_depth
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

    def files(self) -> list[str | os.PathLike]:
        """Every input file, for the run's :func:`input_fingerprint`."""
        prefixes = [p for p in (self.features, self.valid_features) if p is not None]
        return [*(f for p in prefixes for f in feature_paths(p)),
                *(f for f in (self.text, self.dictionary, self.lm, self.valid_phn, self.km) if f)]


def build_model(config: TrainConfig, vocab_size: int, input_dim: int) -> Wav2vecU:
    """The w2vu/w2vu2 model with the data's input size; key names are the reference's (§7)."""
    gen_cfg, disc_cfg = w2vu_configs() if config.variant == 1 else w2vu2_configs()
    gen_cfg = GeneratorConfig(**{**gen_cfg.__dict__, "input_dim": input_dim})
    if config.discriminator_dim is not None:
        disc_cfg = replace(disc_cfg, dim=config.discriminator_dim)
    if config.discriminator_depth is not None:
        disc_cfg = replace(disc_cfg, depth=config.discriminator_depth)
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


# --------------------------------------------------------------------------- one update


def train_step(model: Wav2vecU, optimizers: dict[str, torch.optim.Optimizer], batch: Batch,
               update: int, config: TrainConfig, model_rng: torch.Generator) -> dict[str, float]:
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


# --------------------------------------------------------------------------- checkpoints


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


def train(config: TrainConfig, paths: TrainPaths, out_dir: str | os.PathLike,
          checkpoint_dir: str | os.PathLike | None = None,
          restart_on_change: bool = False) -> dict[str, float]:
    """Train (or resume) one GAN run; returns the metrics row of the kept checkpoint.

    Declared outputs: ``out_dir/best.pt`` and ``out_dir/metrics.tsv``. ``checkpoint_last.pt``
    goes to ``checkpoint_dir`` (default ``out_dir``) and is resumed from when present; one written
    with other settings is refused, or with ``restart_on_change`` discarded (the workflow).
    """
    out = Path(out_dir)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    model_rng = seed_everything(config.seed)

    batches, dictionary = open_training_data(paths.features, paths.text, paths.dictionary,
                                             config.batch_size, config.seed, paths.km)
    validator = _build_validator(paths, batches, dictionary, config)
    model = build_model(config, len(dictionary), batches.features.dim).to(device)
    optimizers = build_optimizers(model, config)
    last_path = ckpt_dir / CHECKPOINT_LAST
    # Settings and data: a checkpoint left by a run on other inputs is not this run's.
    trajectory = {**config.trajectory(), "data": input_fingerprint(paths.files())}
    if restart_on_change:
        discard_if_other_run(last_path, trajectory)
    state = RunState()
    if last_path.exists():
        state = load_last(last_path, model, optimizers, trajectory, model_rng)
        log.info("resuming from %s at update %d", last_path, state.update)
    _run_updates(model, optimizers, batches, validator, config, state, model_rng, device,
                 out, last_path, dictionary, trajectory)
    return write_outputs(out, state, config, dictionary, model)


def kept(state: RunState, model: Wav2vecU,
         config: TrainConfig) -> tuple[dict[str, torch.Tensor] | None, dict[str, float]]:
    """The weights and row ``best.pt`` holds under ``config.keep``.

    ``last``: the model as it stands, which is the one of the last row whenever this is called
    (right after a validation, or at the end of training, which always validates). The best
    validation is tracked either way, so a finished run asked for the other ``keep`` (not part of
    its trajectory) rewrites best.pt from its rolling checkpoint without training again.
    """
    if config.keep == "last":
        return (model_state(model), state.rows[-1]) if state.rows else (None, {})
    return state.best_model, state.best_row


def write_outputs(out: Path, state: RunState, config: TrainConfig,
                  dictionary: PhoneDictionary, model: Wav2vecU) -> dict[str, float]:
    """metrics.tsv and best.pt from the run state, so a finished run restores them too; returns
    the kept row."""
    write_metrics(out / METRICS, METRIC_COLUMNS, state.rows, digits=8)
    weights, row = kept(state, model, config)
    if weights is not None:
        save_best(out / CHECKPOINT_BEST, weights, int(row["update"]), row, config, dictionary)
    return row


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
                 out: Path, last_path: Path, dictionary: PhoneDictionary,
                 trajectory: dict[str, Any]) -> None:
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
            save_last(last_path, model, optimizers, state, trajectory, dictionary, model_rng)


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
    write_outputs(out, state, config, dictionary, model)
