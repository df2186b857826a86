"""CTC self-training on pseudo-labels, with bit-exact resume (:func:`fit_ctc`).

The loss is the summed CTC loss divided by the number of utterances (the reference's
``sentence_avg``); Adam with decoupled weight decay, linear warm-up then cosine decay to
``final_lr_scale``, gradient norm clipping. Data and batches: ``w2vu.selftrain.ctc.data``.

Outputs in ``out_dir``: ``model.pt`` (the lowest validation PER against the held-out
pseudo-labels, see :func:`validate_model`, or the last update when there is no validation set),
written once training is over, and ``metrics.tsv``. ``checkpoint_last.pt`` (model, optimizer,
update, epoch position, every RNG state, metric rows) and ``checkpoint_best.pt`` (the best model
so far) go to ``checkpoint_dir`` (default ``out_dir``), next to the declared outputs; a run
killed with ``kill -9`` and started again with the same seed ends with the same weights, bit
for bit on CPU, as a run that was never stopped.

The loop is model-agnostic (:func:`fit_ctc`): :func:`train_ctc` gives it the small encoder on
features, ``w2vu.selftrain.ctc.finetune`` the whole SSL backbone on the audio (reference §4.2).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.io.dictionary import PhoneDictionary, load_phone_dictionary
from w2vu.io.features import feature_paths, open_features
from w2vu.selftrain.ctc.data import (
    LabelledSet,
    LabelSource,
    collate,
    split_validation,
)
from w2vu.selftrain.ctc.model import (
    CtcModule,
    count_parameters,
)
from w2vu.selftrain.ctc.steps import (
    CtcConfig,
    build_ctc_model,
    build_optimizer,
    epoch_batches,
    learning_rate,
    train_step,
    validate_model,
)
from w2vu.train.checkpoints import (
    CHECKPOINT_LAST,
    discard_if_other_run,
    input_fingerprint,
    load_rolling,
    save_atomically,
)
from w2vu.train.metrics_table import METRICS, write_metrics
from w2vu.train.runtime import capture_rng, resolve_device, seed_everything

log = logging.getLogger(__name__)

CHECKPOINT_BEST = "checkpoint_best.pt"  # best so far, beside checkpoint_last.pt
MODEL = "model.pt"
METRIC_COLUMNS = ("update", "epoch", "lr", "train_loss", "valid_loss", "valid_per")


# --------------------------------------------------------------------------- checkpoints


@dataclass
class RunState:
    """Where the loop stands; restored from ``checkpoint_last.pt`` with model and optimizer."""

    update: int = 0
    epoch: int = 0
    position: int = 0  # next batch of the epoch's plan
    best: float = math.inf
    rows: list[dict[str, float]] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_count: int = 0


def save_last(path: Path, model: CtcModule, optimizer: torch.optim.Optimizer, state: RunState,
              trajectory: dict[str, Any], generator: torch.Generator) -> None:
    """The rolling checkpoint: everything a bit-exact resume needs."""
    save_atomically({
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "state": {"update": state.update, "epoch": state.epoch, "position": state.position,
                  "best": state.best, "loss_sum": state.loss_sum,
                  "loss_count": state.loss_count},
        "rows": state.rows,
        "rng": capture_rng(generator),
        "trajectory": trajectory,
    }, path)


def load_last(path: Path, model: CtcModule, optimizer: torch.optim.Optimizer,
              trajectory: dict[str, Any], generator: torch.Generator) -> RunState:
    """Restore :func:`save_last`'s checkpoint (``weights_only``: no arbitrary unpickling)."""
    ckpt = load_rolling(path, trajectory, generator)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    s = ckpt["state"]
    return RunState(int(s["update"]), int(s["epoch"]), int(s["position"]), float(s["best"]),
                    list(ckpt["rows"]), float(s["loss_sum"]), int(s["loss_count"]))


# --------------------------------------------------------------------------- training


def train_ctc(features_prefix: str | os.PathLike, labels_txt: str | os.PathLike,
              dictionary: str | os.PathLike, out_dir: str | os.PathLike,
              config: CtcConfig | None = None, seed: int = 1, device: str = "auto", *,
              valid_features: str | os.PathLike | None = None,
              valid_labels: str | os.PathLike | None = None,
              checkpoint_dir: str | os.PathLike | None = None,
              stop_after: int | None = None, threads: int | None = None,
              restart_on_change: bool = False) -> Path | None:
    """Train (or resume) the small CTC encoder on feature pseudo-labels; see :func:`fit_ctc`.

    Without ``valid_features``/``valid_labels``, ``valid_fraction`` of the labelled utterances
    is held out (seeded) for the validation that picks ``model.pt``.
    """
    config = config or CtcConfig()
    if (valid_features is None) != (valid_labels is None):
        raise W2vuError("pass both valid_features and valid_labels, or neither")
    phones = load_phone_dictionary(dictionary)
    train = open_features(features_prefix)
    valid = None
    if valid_features is not None:
        valid = LabelSource(open_features(valid_features), f"{valid_features}.lengths",
                            valid_labels, feature_paths(valid_features))
        if valid.source.dim != train.dim:
            raise W2vuError(f"{valid_features}.npy has {valid.source.dim}-d features but "
                            f"{features_prefix}.npy {train.dim}-d; use one extraction")
    return fit_ctc(lambda: build_ctc_model(config, train, len(phones)),
                   LabelSource(train, f"{features_prefix}.lengths", labels_txt,
                               feature_paths(features_prefix)), phones,
                   dictionary, out_dir, config, seed, device, valid=valid,
                   checkpoint_dir=checkpoint_dir, stop_after=stop_after, threads=threads,
                   restart_on_change=restart_on_change)


def fit_ctc(build: Callable[[], CtcModule], train: LabelSource, phones: PhoneDictionary,
            dictionary: str | os.PathLike, out_dir: str | os.PathLike, config: CtcConfig,
            seed: int, device: str, *, valid: LabelSource | None = None,
            identity: dict[str, Any] | None = None,
            checkpoint_dir: str | os.PathLike | None = None, stop_after: int | None = None,
            threads: int | None = None, restart_on_change: bool = False) -> Path | None:
    """Train (or resume) the model ``build`` returns (called once the RNGs are seeded); return
    ``out_dir/model.pt``.

    ``identity`` names what the weights start from beyond the settings (e.g. the backbone), so
    that a rolling checkpoint of another start is never resumed. ``stop_after`` ends the run
    once that many updates are done, leaving only ``checkpoint_last.pt`` (returns ``None``): an
    interruption on purpose, for tests and time-sliced jobs.
    """
    if threads:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out
    for folder in (out, ckpt_dir):
        folder.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    generator = seed_everything(seed)
    model = build().to(dev)
    data = train.open(phones, dictionary, model.output_lengths)
    if len(data) == 0:
        raise W2vuError(f"{train.labels}: no utterance has a usable label (all empty or longer "
                        f"than their input allows); check that the labels belong to {train.name}")
    if valid is not None:
        train_set, held = data, valid.open(phones, dictionary, model.output_lengths)
    else:
        train_set, held = split_validation(data, config.valid_fraction, seed)
    if held is None or len(held) == 0:
        log.info("no validation set: model.pt will be the last update")
        held = None

    optimizer = build_optimizer(model, config)
    trajectory = {"config": config.trajectory(), "seed": seed, "vocabulary": list(phones.symbols),
                  "train": [int(v) for v in train_set.indices[:1000]], "size": len(train_set),
                  "frames": int(train_set.lengths.sum()), **(identity or {}),
                  # inputs regenerated upstream keep sizes but not content: never resume on them
                  "data": input_fingerprint(train.inputs() + (valid.inputs() if valid else []))}
    last = ckpt_dir / CHECKPOINT_LAST
    if restart_on_change:
        discard_if_other_run(last, trajectory)
    state = RunState()
    if last.exists():
        state = load_last(last, model, optimizer, trajectory, generator)
        log.info("resuming from %s at update %d (epoch %d)", last, state.update, state.epoch)
    else:
        (ckpt_dir / CHECKPOINT_BEST).unlink(missing_ok=True)  # from some earlier run
    log.info("CTC model: %d trainable parameters on %s; %d train utterances (%d input frames), "
             "%d valid", count_parameters(model), dev, len(train_set),
             int(train_set.lengths.sum()), len(held) if held is not None else 0)

    total = planned_updates(train_set, config, seed)
    finished = _run(model, optimizer, train_set, held, config, seed, state, generator, dev,
                    total, out, last, trajectory, phones, stop_after)
    return out / MODEL if finished else None


def planned_updates(data: LabelledSet, config: CtcConfig, seed: int) -> int:
    """Updates the LR schedule spans: max_updates, or max_epochs × the first epoch's batches."""
    by_epochs = config.max_epochs * len(epoch_batches(data, config, seed, 0))
    if config.max_updates > 0 and config.max_epochs > 0:
        return min(config.max_updates, by_epochs)
    return config.max_updates if config.max_updates > 0 else by_epochs


def _run(model: CtcModule, optimizer: torch.optim.Optimizer, data: LabelledSet,
         valid: LabelledSet | None, config: CtcConfig, seed: int, state: RunState,
         generator: torch.Generator, device: torch.device, total: int, out: Path, last: Path,
         trajectory: dict[str, Any], phones: PhoneDictionary, stop_after: int | None) -> bool:
    """Updates until the budget is spent (True) or ``stop_after`` is reached (False)."""
    started, frames = time.monotonic(), 0

    def done() -> bool:
        return (state.update >= total or
                (config.max_epochs > 0 and state.epoch >= config.max_epochs))

    while not done():
        plan = epoch_batches(data, config, seed, state.epoch)
        while state.position < len(plan) and state.update < total:
            if stop_after is not None and state.update >= stop_after:
                save_last(last, model, optimizer, state, trajectory, generator)
                return False
            indices = plan[state.position]
            batch = collate(data, indices).to(device)
            lr = learning_rate(state.update, total, config)
            loss = train_step(model, optimizer, batch, lr, config, generator)
            state.update += 1
            state.position += 1
            state.loss_sum += loss
            state.loss_count += 1
            frames += int(batch.input_lengths.sum())
            if state.update % config.log_every == 0:
                rate = frames / max(time.monotonic() - started, 1e-9)
                log.info("update %d/%d epoch %d loss %.4f lr %.3g (%.0f frames/s)", state.update,
                         total, state.epoch + 1, loss, lr, rate)
            if state.update % config.validate_every == 0 and state.update < total:
                _validate(model, valid, config, state, device, out, last.parent, phones, lr)
            if state.update % config.checkpoint_every == 0:
                save_last(last, model, optimizer, state, trajectory, generator)
        if state.position >= len(plan):
            state.epoch += 1
            state.position = 0
    _validate(model, valid, config, state, device, out, last.parent, phones,
              learning_rate(max(state.update - 1, 0), total, config))
    save_last(last, model, optimizer, state, trajectory, generator)
    best = last.parent / CHECKPOINT_BEST
    if valid is None or not best.exists():
        save_atomically(model.record(phones.symbols, update=state.update,
                                     valid_loss=math.nan, valid_per=math.nan), out / MODEL)
    else:
        with atomic_path(out / MODEL) as tmp:
            shutil.copyfile(best, tmp)
    return True


def _validate(model: CtcModule, valid: LabelledSet | None, config: CtcConfig, state: RunState,
              device: torch.device, out: Path, ckpt_dir: Path, phones: PhoneDictionary,
              lr: float) -> None:
    """Append a metrics row and keep the best model in ``checkpoint_best.pt`` (not a declared
    output, so an interrupted run never leaves a model.pt behind); RNGs are left untouched."""
    if state.rows and state.rows[-1]["update"] == state.update:
        return  # validated at this update before an interruption
    saved = torch.get_rng_state()
    loss, per = (validate_model(model, valid, config, device, phones.sil_index)
                 if valid is not None else (math.nan, math.nan))
    torch.set_rng_state(saved)
    train_loss = state.loss_sum / state.loss_count if state.loss_count else math.nan
    state.loss_sum, state.loss_count = 0.0, 0
    state.rows.append({"update": state.update, "epoch": state.epoch, "lr": lr,
                       "train_loss": train_loss, "valid_loss": loss, "valid_per": per})
    write_metrics(out / METRICS, METRIC_COLUMNS, state.rows, digits=6,
                  counts=("update", "epoch"))
    log.info("update %d: train loss %.4f, valid loss %.4f, valid PER vs labels %.4f",
             state.update, train_loss, loss, per)
    if not math.isnan(per) and per < state.best:
        state.best = per
        save_atomically(model.record(phones.symbols, update=state.update,
                                     valid_loss=loss, valid_per=per), ckpt_dir / CHECKPOINT_BEST)
