"""CTC training data: pseudo-labels line-aligned with features or audio, and length-bucketed
batches.

Inputs are the fairseq layout: frame features ``{prefix}.npy`` + ``.lengths`` (50 Hz), one line of
space-separated phones per utterance (line-aligned with the features; an empty line is allowed and
means "no label": skipped in training, still transcribed) and ``dict.phn.txt``. Utterances whose
labels cannot fit under CTC (fewer frames than phones plus repeated neighbours) are skipped too,
and the counts are logged.

Batches are length-bucketed: each epoch sorts the training utterances by length with a seeded
jitter (so buckets differ between epochs), packs them up to ``max_frames`` padded frames (and
``max_batch`` utterances), and shuffles the batch order with a generator seeded by
``(seed, epoch)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from w2vu.errors import W2vuError
from w2vu.io.dictionary import NUM_SPECIALS, PhoneDictionary
from w2vu.io.features import FrameSource
from w2vu.io.lines import read_text_lines
from w2vu.train.batches import pad_features
from w2vu.train.ctc import ctc_steps

log = logging.getLogger(__name__)

MIN_VALID_UTTERANCES = 20  # below this no validation set is held out of the training data


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
