"""CTC self-training on pseudo-labels: training with bit-exact resume, and greedy transcription.

Inputs are the fairseq layout: frame features ``{prefix}.npy`` + ``.lengths`` (50 Hz), one line of
space-separated phones per utterance (line-aligned with the features; an empty line is allowed and
means "no label": skipped in training, still transcribed) and ``dict.phn.txt``. Utterances whose
labels cannot fit under CTC (fewer frames than phones plus repeated neighbours) are skipped too,
and the counts are logged.

Batches are length-bucketed: each epoch sorts the training utterances by length with a seeded
jitter of ``length_jitter`` (so buckets differ between epochs), packs them up to ``max_frames``
padded frames (and ``max_batch`` utterances), and shuffles the batch order with a generator seeded
by ``(seed, epoch)``. The loss is the summed CTC loss divided by the number of utterances (the
reference's ``sentence_avg``); Adam with decoupled weight decay, linear warm-up then cosine decay to
``final_lr_scale``, gradient norm clipping.

Outputs in ``out_dir``: ``model.pt`` (the lowest validation PER against the held-out
pseudo-labels, see :func:`validate_model`, or the last update when there is no validation set),
written once training is over, and ``metrics.tsv``. ``checkpoint_last.pt`` (model, optimizer,
update, epoch position, every RNG state, metric rows) and ``checkpoint_best.pt`` (the best model
so far) go to ``checkpoint_dir`` (default ``out_dir``), next to the declared outputs; a run
killed with ``kill -9`` and started again with the same seed ends with the same weights, bit
for bit on CPU, as a run that was never stopped.

The loop is model-agnostic (:func:`fit_ctc`): :func:`train_ctc` gives it the small encoder on
features, ``w2vu.selftrain.ctc_finetune`` the whole SSL backbone on the audio (reference §4.2).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from w2vu.errors import W2vuError
from w2vu.gan.data import NUM_SPECIALS, PhoneDictionary, load_phone_dictionary, pad_features
from w2vu.gan.trainer import (
    capture_rng,
    edit_distance,
    resolve_device,
    restore_rng,
    save_atomically,
    seed_everything,
)
from w2vu.io.atomic import atomic_path
from w2vu.io.features import Features, FeatureWriter, FrameSource, open_features
from w2vu.io.lines import read_text_lines
from w2vu.io.rolling import discard_if_other_run
from w2vu.io.torch_files import load_torch_file
from w2vu.logs import progress
from w2vu.selftrain.ctc_model import (
    BLANK_INDEX,
    CtcEncoder,
    CtcModelConfig,
    CtcModule,
    MaskConfig,
    count_parameters,
    load_ctc_model,
)

log = logging.getLogger(__name__)

CHECKPOINT_LAST = "checkpoint_last.pt"
CHECKPOINT_BEST = "checkpoint_best.pt"  # best so far, beside checkpoint_last.pt
MODEL = "model.pt"
METRICS = "metrics.tsv"
METRIC_COLUMNS = ("update", "epoch", "lr", "train_loss", "valid_loss", "valid_per")
MIN_VALID_UTTERANCES = 20  # below this no validation set is held out of the training data


@dataclass(frozen=True)
class CtcConfig:
    """Training settings. Training stops at ``max_updates`` or after ``max_epochs`` epochs,
    whichever comes first (0 = no limit of that kind; at least one must be set)."""

    model: CtcModelConfig = field(default_factory=CtcModelConfig)
    mask: MaskConfig | None = field(default_factory=MaskConfig)
    max_updates: int = 0
    max_epochs: int = 100  # a few minutes of speech need ~100 epochs to get past blank-only
    max_frames: int = 3_000  # padded frames (batch x longest) per batch
    max_batch: int = 64
    length_jitter: float = 0.1
    lr: float = 3e-3
    warmup_updates: int = 30
    warmup_fraction: float = 0.0  # > 0: warm up over this share of the planned updates instead
    final_lr_scale: float = 0.05
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    weight_decay: float = 0.01
    clip_norm: float = 5.0
    valid_fraction: float = 0.05  # held out when no valid split is given
    validate_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 50
    bf16: bool = False  # autocast on CUDA only

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.max_updates <= 0 and self.max_epochs <= 0:
            raise W2vuError("CTC training needs max_updates or max_epochs > 0; set one of them")
        if self.max_frames < 1 or self.max_batch < 1:
            raise W2vuError("CTC max_frames and max_batch must be >= 1")

    def trajectory(self) -> dict[str, Any]:
        """The settings that shape the weights; a resume must not change them."""
        out = asdict(self)
        for name in ("validate_every", "checkpoint_every", "log_every"):
            out.pop(name)
        out["betas"] = list(self.betas)
        return out


# --------------------------------------------------------------------------- labels


def read_label_lines(path: str | os.PathLike, count: int, source: str | os.PathLike
                     ) -> list[list[str]]:
    """One phone list per line (empty lines kept); the count must match the source's."""
    lines = read_text_lines(path, "labels",
                            "pass a UTF-8 file with one line of phones per utterance")
    if len(lines) != count:
        raise W2vuError(f"{path} has {len(lines)} lines but {source} lists {count} "
                        "utterances; the labels must be line-aligned with it (regenerate them "
                        "from the same split)")
    return [line.split() for line in lines]


def encode_labels(lines: Sequence[Sequence[str]], dictionary: PhoneDictionary,
                  path: str | os.PathLike, dictionary_path: str | os.PathLike
                  ) -> list[np.ndarray]:
    """Phone ids per line; a phone outside the dictionary (or a special) is a user error."""
    index = dictionary.index
    out = []
    for number, line in enumerate(lines, start=1):
        ids = [index.get(p, -1) for p in line]
        bad = [p for p, i in zip(line, ids) if i < NUM_SPECIALS]
        if bad:
            raise W2vuError(f"{path}:{number}: {bad[0]!r} is not a phone of {dictionary_path}; "
                            "the labels and the dictionary must come from the same text "
                            "preparation")
        out.append(np.array(ids, dtype=np.int64))
    return out


def ctc_steps(ids: np.ndarray) -> int:
    """Output steps CTC needs for a label sequence: one per phone plus a blank between repeats."""
    return len(ids) + (int(np.count_nonzero(ids[1:] == ids[:-1])) if len(ids) > 1 else 0)


@dataclass(frozen=True)
class LabelledSet:
    """Utterances used for training or validation: indices into ``features`` and their ids."""

    features: FrameSource
    indices: np.ndarray
    targets: dict[int, np.ndarray]

    @property
    def lengths(self) -> np.ndarray:
        return self.features.lengths[self.indices]

    def __len__(self) -> int:
        return len(self.indices)


OutputLengths = Callable[[torch.Tensor], torch.Tensor]
"""Input lengths -> output steps of a CTC model (``model.output_lengths``)."""


def open_labelled(source: FrameSource, source_name: str | os.PathLike,
                  labels: str | os.PathLike, dictionary: PhoneDictionary,
                  dictionary_path: str | os.PathLike, output_lengths: OutputLengths
                  ) -> LabelledSet:
    """A source with its encoded labels, without the empty and CTC-infeasible utterances."""
    ids = encode_labels(read_label_lines(labels, len(source), source_name), dictionary,
                        labels, dictionary_path)
    empty = sum(1 for row in ids if len(row) == 0)
    steps = output_lengths(torch.as_tensor(np.asarray(source.lengths, dtype=np.int64))).tolist()
    fits = [i for i, row in enumerate(ids) if len(row) and steps[i] >= ctc_steps(row)]
    short = len(ids) - empty - len(fits)
    log.info("%s: %d utterances, %d used, %d skipped (empty label), %d skipped (fewer frames "
             "than CTC needs)", labels, len(ids), len(fits), empty, short)
    return LabelledSet(source, np.array(fits, dtype=np.int64), {i: ids[i] for i in fits})


def split_validation(data: LabelledSet, fraction: float, seed: int
                     ) -> tuple[LabelledSet, LabelledSet | None]:
    """Hold out ``fraction`` of the utterances (seeded) when there are enough of them."""
    if fraction <= 0 or len(data) < MIN_VALID_UTTERANCES:
        return data, None
    count = max(1, round(fraction * len(data)))
    order = np.random.default_rng([seed, 7]).permutation(len(data))
    held = np.sort(data.indices[order[:count]])
    kept = np.sort(data.indices[order[count:]])
    subset = lambda ix: LabelledSet(data.features, ix, {int(i): data.targets[int(i)] for i in ix})  # noqa: E731
    return subset(kept), subset(held)


# --------------------------------------------------------------------------- batches


def bucket_batches(lengths: np.ndarray, max_frames: int, max_batch: int,
                   rng: np.random.Generator | None = None, jitter: float = 0.0
                   ) -> list[np.ndarray]:
    """Positions into ``lengths`` grouped by similar length, each batch at most ``max_frames``
    padded frames and ``max_batch`` items (a longer single item goes alone).

    With ``rng``, lengths are jittered by ±``jitter`` before sorting and the batch order is
    shuffled, so each epoch sees other neighbours in another order.
    """
    keys = lengths.astype(np.float64)
    if rng is not None and jitter > 0:
        keys = keys * (1.0 + jitter * rng.uniform(-1.0, 1.0, len(keys)))
    order = np.argsort(keys, kind="stable")
    batches: list[np.ndarray] = []
    current: list[int] = []
    widest = 0
    for pos in order.tolist():
        width = max(widest, int(lengths[pos]))
        if current and (width * (len(current) + 1) > max_frames or len(current) >= max_batch):
            batches.append(np.array(current, dtype=np.int64))
            current, width = [], int(lengths[pos])
        current.append(pos)
        widest = width
    if current:
        batches.append(np.array(current, dtype=np.int64))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def epoch_batches(data: LabelledSet, config: CtcConfig, seed: int, epoch: int
                  ) -> list[np.ndarray]:
    """Utterance indices per batch of one epoch: a pure function of (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    plan = bucket_batches(data.lengths, config.max_frames, config.max_batch, rng,
                          config.length_jitter)
    return [data.indices[b] for b in plan]


@dataclass(frozen=True)
class CtcBatch:
    """Padded features, padding mask (True on padding) and concatenated CTC targets."""

    features: torch.Tensor
    padding_mask: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    input_lengths: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.input_lengths.numel())

    def to(self, device: torch.device) -> CtcBatch:
        return CtcBatch(self.features.to(device), self.padding_mask.to(device), self.targets,
                        self.target_lengths, self.input_lengths)


def collate(data: LabelledSet, indices: Sequence[int]) -> CtcBatch:
    """One batch of utterances ``indices`` (feature indices) with their targets."""
    x, mask = pad_features(data.features, indices)
    targets = [data.targets[int(i)] for i in indices]
    return CtcBatch(x, mask, torch.from_numpy(np.concatenate(targets)),
                    torch.tensor([len(t) for t in targets], dtype=torch.long),
                    torch.tensor([int(data.features.lengths[i]) for i in indices],
                                 dtype=torch.long))


# --------------------------------------------------------------------------- model and steps


def feature_statistics(features: Features) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over all frames, streamed block by block."""
    total = np.zeros(features.dim, dtype=np.float64)
    squares = np.zeros(features.dim, dtype=np.float64)
    for block in features.blocks():
        rows = block.data.astype(np.float64)
        total += rows.sum(0)
        squares += (rows * rows).sum(0)
    count = max(features.num_frames, 1)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    return torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(std.astype(np.float32))


def build_ctc_model(config: CtcConfig, features: Features, vocab_size: int) -> CtcEncoder:
    """A fresh encoder with the features' normalisation statistics."""
    model = CtcEncoder(config.model, features.dim, vocab_size)
    model.set_normalisation(*feature_statistics(features))
    return model


def build_optimizer(model: CtcModule, config: CtcConfig) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay, as fairseq's Adam); ``foreach=False`` for exact resume."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas,
                             eps=config.eps, weight_decay=config.weight_decay, foreach=False)


def learning_rate(update: int, total: int, config: CtcConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_updates`` (or ``warmup_fraction`` of ``total``),
    then cosine to ``lr·final_lr_scale``."""
    warmup = (max(1, round(config.warmup_fraction * total)) if config.warmup_fraction > 0
              else max(1, config.warmup_updates))
    if update < warmup:
        return config.lr * (update + 1) / warmup
    span = max(total - warmup, 1)
    progress = min((update - warmup) / span, 1.0)
    scale = config.final_lr_scale + (1 - config.final_lr_scale) * 0.5 * (
        1 + math.cos(math.pi * progress))
    return config.lr * scale


def ctc_loss_sum(model: CtcModule, batch: CtcBatch, mask: MaskConfig | None,
                 generator: torch.Generator | None, bf16: bool) -> torch.Tensor:
    """Summed CTC loss of a batch (blank = ``<s>``; impossible alignments count as zero)."""
    device = batch.features.device
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if bf16 and device.type == "cuda"
                else nullcontext())
    with autocast:
        logits, _ = model(batch.features, batch.padding_mask, mask, generator)
    log_probs = logits.float().log_softmax(-1).transpose(0, 1)
    return F.ctc_loss(log_probs, batch.targets.to(device),
                      model.output_lengths(batch.input_lengths),
                      batch.target_lengths, blank=BLANK_INDEX, reduction="sum",
                      zero_infinity=True)


def train_step(model: CtcModule, optimizer: torch.optim.Optimizer, batch: CtcBatch, lr: float,
               config: CtcConfig, generator: torch.Generator) -> float:
    """One update; returns the CTC loss per utterance (the reference's sentence_avg)."""
    model.train()
    loss = ctc_loss_sum(model, batch, config.mask, generator, config.bf16) / batch.size
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


@torch.no_grad()
def validate_model(model: CtcModule, data: LabelledSet, config: CtcConfig,
                   device: torch.device, sil_index: int) -> tuple[float, float]:
    """Mean CTC loss per utterance and the greedy transcripts' PER against the labels of
    ``data``, without masking or dropout.

    The PER picks ``model.pt``: against noisy pseudo-labels the CTC loss rises as the model
    grows confident (every wrong label costs more), even while its transcripts get better; the
    PER against the same noisy labels falls with the true PER (label errors are not predictable
    from the audio), and needs no references.
    """
    model.eval()
    total = 0.0
    errors = length = 0
    for positions in bucket_batches(data.lengths, config.max_frames, config.max_batch):
        indices = data.indices[positions]
        batch = collate(data, indices).to(device)
        logits, out_mask = model(batch.features, batch.padding_mask)
        log_probs = logits.float().log_softmax(-1)
        total += float(F.ctc_loss(log_probs.transpose(0, 1), batch.targets.to(device),
                                  model.output_lengths(batch.input_lengths),
                                  batch.target_lengths, blank=BLANK_INDEX, reduction="sum",
                                  zero_infinity=True))
        steps = (~out_mask).sum(1).tolist()
        for row, index in enumerate(indices.tolist()):
            hyp = greedy_ids(log_probs[row, : steps[row]].cpu(), sil_index)
            ref = [i for i in data.targets[index].tolist() if i != sil_index]
            errors += edit_distance(hyp, ref)
            length += len(ref)
    return total / max(len(data), 1), errors / length if length else math.nan


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
    ckpt = load_torch_file(path, "checkpoint", "delete it to start over",
                           "delete it to start over")
    if ckpt.get("trajectory") != trajectory:
        raise W2vuError(f"{path} was written with other training settings or data; delete it "
                        "to start over, or restore the settings it was written with")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    restore_rng(ckpt["rng"], generator)
    s = ckpt["state"]
    return RunState(int(s["update"]), int(s["epoch"]), int(s["position"]), float(s["best"]),
                    list(ckpt["rows"]), float(s["loss_sum"]), int(s["loss_count"]))


def write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    """metrics.tsv rewritten whole from the checkpointed rows, so a resume never duplicates."""
    lines = ["\t".join(METRIC_COLUMNS)]
    for row in rows:
        lines.append("\t".join(str(int(row[c])) if c in ("update", "epoch") else f"{row[c]:.6g}"
                               for c in METRIC_COLUMNS))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _remove_stray_temporaries(folder: Path) -> None:
    for name in (CHECKPOINT_LAST, CHECKPOINT_BEST, MODEL, METRICS):
        for stray in folder.glob(f".{name}.tmp-*"):
            stray.unlink(missing_ok=True)


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
                            valid_labels)
        if valid.source.dim != train.dim:
            raise W2vuError(f"{valid_features}.npy has {valid.source.dim}-d features but "
                            f"{features_prefix}.npy {train.dim}-d; use one extraction")
    return fit_ctc(lambda: build_ctc_model(config, train, len(phones)),
                   LabelSource(train, f"{features_prefix}.lengths", labels_txt), phones,
                   dictionary, out_dir, config, seed, device, valid=valid,
                   checkpoint_dir=checkpoint_dir, stop_after=stop_after, threads=threads,
                   restart_on_change=restart_on_change)


@dataclass(frozen=True)
class LabelSource:
    """Inputs (features or audio) named for messages, and their line-aligned label file."""

    source: FrameSource
    name: str | os.PathLike
    labels: str | os.PathLike

    def open(self, phones: PhoneDictionary, dictionary: str | os.PathLike,
             output_lengths: OutputLengths) -> LabelledSet:
        return open_labelled(self.source, self.name, self.labels, phones, dictionary,
                             output_lengths)


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
        _remove_stray_temporaries(folder)
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
                  "frames": int(train_set.lengths.sum()), **(identity or {})}
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
    write_metrics(out / METRICS, state.rows)
    log.info("update %d: train loss %.4f, valid loss %.4f, valid PER vs labels %.4f",
             state.update, train_loss, loss, per)
    if not math.isnan(per) and per < state.best:
        state.best = per
        save_atomically(model.record(phones.symbols, update=state.update,
                                     valid_loss=loss, valid_per=per), ckpt_dir / CHECKPOINT_BEST)


# --------------------------------------------------------------------------- transcription


def greedy_ids(log_probs: torch.Tensor, sil_index: int) -> list[int]:
    """Best path of one utterance [T, V]: repeats merged, blanks/specials and ``<SIL>`` dropped."""
    merged = log_probs.argmax(-1).unique_consecutive()
    keep = (merged >= NUM_SPECIALS) & (merged != sil_index)
    return merged[keep].tolist()


TRANSCRIBE_WINDOW = 512  # utterances decoded together (sorted by length inside a window)


def _windows(count: int, size: int) -> Iterator[range]:
    for start in range(0, count, size):
        yield range(start, min(start + size, count))


@torch.no_grad()
def frame_log_probs(model: CtcModule, source: FrameSource, indices: Sequence[int],
                    device: torch.device, max_frames: int) -> dict[int, np.ndarray]:
    """Log-softmax [T_i, V] for the given utterances, batched by length (at most
    ``model.max_batch`` a batch); an utterance too short for one output step gives (0, V)."""
    model.eval()
    out: dict[int, np.ndarray] = {}
    steps_of = model.output_lengths(torch.as_tensor(np.asarray(source.lengths[list(indices)],
                                                               dtype=np.int64))).tolist()
    todo = [i for i, n in zip(indices, steps_of) if n > 0]
    for i, n in zip(indices, steps_of):
        if n <= 0:
            out[i] = np.zeros((0, model.vocab_size), dtype=np.float32)
    lengths = np.asarray(source.lengths[todo] if todo else np.zeros(0), dtype=np.int64)
    for positions in bucket_batches(lengths, max_frames, model.max_batch):
        group = [todo[p] for p in positions.tolist()]
        x, mask = pad_features(source, group)
        logits, out_mask = model(x.to(device), mask.to(device))
        lp = logits.float().log_softmax(-1).cpu().numpy()
        steps = (~out_mask).sum(1).tolist()
        for row, i in enumerate(group):
            out[i] = lp[row, : steps[row]]
    return out


def transcribe_ctc(model_path: str | os.PathLike, source: FrameSource | str | os.PathLike,
                   dictionary: str | os.PathLike, out_txt: str | os.PathLike,
                   emissions_prefix: str | os.PathLike | None = None, device: str = "auto",
                   max_frames: int | None = None, threads: int | None = None
                   ) -> list[list[str]]:
    """Greedy CTC transcripts, one line per utterance (phones, no ``<SIL>``), in input order.

    ``source`` is a feature prefix (the small encoder) or an opened source (e.g. the audio of a
    manifest, for a fine-tuned backbone). With ``emissions_prefix``, the frame log-probabilities
    are also written as ``{prefix}.npy`` + ``.lengths`` with one column per fairseq dictionary
    entry (the 4 specials included), the layout ``w2vu.gan.generate`` writes for the WFST
    decoder. Utterances are processed in windows of consecutive indices, so memory does not
    grow with the split. ``max_frames`` (padded input frames a batch) defaults to the model's.
    """
    if threads:
        torch.set_num_threads(threads)
    model, record = load_ctc_model(model_path)
    phones = load_phone_dictionary(dictionary)
    if tuple(record["vocabulary"]) != phones.symbols:
        raise W2vuError(f"{dictionary}: phone dictionary differs from the one {model_path} was "
                        "trained with; pass the training run's dict.phn.txt")
    name = (source if isinstance(source, (str, os.PathLike))
            else getattr(source, "manifest", "the input"))
    if isinstance(source, (str, os.PathLike)):
        source = open_features(source)
    if len(source) and int(np.sum(source.lengths)) and source.dim != model.input_dim:
        raise W2vuError(f"{name}: {source.dim}-d input, but {model_path} expects "
                        f"{model.input_dim}-d; a model fine-tuned from a backbone transcribes "
                        "audio (a manifest), the small encoder the features it trained on")
    dev = resolve_device(device)
    model.to(dev)
    sil = phones.sil_index
    hyps: list[list[str]] = []
    writer = (FeatureWriter(emissions_prefix, dim=model.vocab_size)
              if emissions_prefix is not None else None)
    with atomic_path(out_txt) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as text, \
            (writer if writer is not None else nullcontext()):
        windows = list(_windows(len(source), TRANSCRIBE_WINDOW))
        for window in progress(windows, len(windows), "transcription windows"):
            lps = frame_log_probs(model, source, list(window), dev,
                                  max_frames or model.inference_frames)
            for i in window:
                lp = lps.pop(i)
                line = [phones.symbols[j] for j in greedy_ids(torch.from_numpy(lp), sil)]
                hyps.append(line)
                text.write(" ".join(line) + "\n")
                if writer is not None:
                    writer.append(lp)
    log.info("transcribed %d utterances of %s into %s", len(hyps), name, out_txt)
    return hyps
