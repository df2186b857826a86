"""GAN training data: memory-mapped audio features and unpaired phone text (reference §2.1).

Features stay in the fairseq layout (`{prefix}.npy` + `.lengths`) and are read by memory map, so
memory does not grow with the corpus. Utterances shorter than ``MIN_LENGTH`` frames are skipped
for training as in ``ExtractedFeaturesDataset``, but unlike the reference they keep their
indices: generation walks every index in order, so outputs stay line-aligned with the manifest.

Batches are a pure function of ``(seed, update)``: the epoch's order comes from a generator
seeded with ``(seed, epoch)`` and the sampled text from one seeded with ``(seed, update)``. A
resumed run therefore sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from w2vu.errors import W2vuError
from w2vu.gan.models import PAD_INDEX
from w2vu.io.dictionary import PhoneDictionary, load_phone_dictionary
from w2vu.io.features import Features, iter_unit_lines, open_features
from w2vu.io.lines import read_token_lines
from w2vu.train.batches import pad_features

MIN_LENGTH = 3  # ExtractedFeaturesDataset(min_length=3)
DEFAULT_BATCH_SIZE = 160
AUX_PAD = -1  # aux_target padding, ignored by the mmi loss


@dataclass(frozen=True)
class PhoneText:
    """Unpaired phone sentences, ids concatenated with offsets (no ``</s>``, as the reference)."""

    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return self.ids[self.offsets[index]: self.offsets[index + 1]]

    def mean_phones(self, exclude: int | None = None) -> float:
        """Average phones per sentence, optionally not counting one id (``<SIL>``)."""
        kept = self.ids if exclude is None else self.ids[self.ids != exclude]
        return len(kept) / max(len(self), 1)


def load_phone_text(path: str | os.PathLike, dictionary: PhoneDictionary) -> PhoneText:
    """Encode ``lm.phones.filtered.txt``; empty lines carry no sentence and are skipped."""
    chunks: list[np.ndarray] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            phones = line.split()
            if phones:
                chunks.append(dictionary.encode(phones))
    if not chunks:
        raise W2vuError(f"{path}: no phone sentences; rerun the text preparation")
    lengths = np.array([len(c) for c in chunks], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    return PhoneText(np.concatenate(chunks), offsets)


def load_aux_targets(path: str | os.PathLike, count: int) -> list[np.ndarray]:
    """The ``.km`` lines (2.0 MFCC k-means ids), one per feature utterance."""
    rows = list(iter_unit_lines(path))
    if len(rows) != count:
        raise W2vuError(f"{path} has {len(rows)} lines but the features have {count} utterances; "
                        "rerun the k-means target step for these features")
    return rows


@dataclass(frozen=True)
class Batch:
    """One padded batch; ``padding_mask`` is True on padding, as in fairseq."""

    indices: torch.Tensor
    features: torch.Tensor
    padding_mask: torch.Tensor
    random_label: torch.Tensor | None = None
    aux_target: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.indices.numel())

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device``."""
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return Batch(self.indices, self.features.to(device), self.padding_mask.to(device),
                     move(self.random_label), move(self.aux_target))


def pad_sequences(rows: Sequence[np.ndarray], pad: int) -> torch.Tensor:
    """B×L int64 tensor of id rows, right-padded with ``pad`` (at least one column)."""
    width = max(max((len(r) for r in rows), default=0), 1)
    out = torch.full((len(rows), width), pad, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.from_numpy(np.asarray(row, dtype=np.int64))
    return out


def mixed_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across processes (no ``hash()`` randomisation)."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (part + 0x632BE59BD9B4E019 + (value << 6) + (value >> 2))) & (2**64 - 1)
        value = (value * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    return value >> 1


class TrainBatches:
    """Shuffled training batches with sampled real text, indexed by update number.

    ``batch(update)`` is deterministic given ``(seed, update)``; it needs no iterator state, which
    is what makes an exact resume cheap. The last batch of an epoch may be smaller, as fairseq's.
    """

    def __init__(
        self,
        features: Features,
        text: PhoneText,
        batch_size: int = DEFAULT_BATCH_SIZE,
        seed: int = 1,
        aux_targets: list[np.ndarray] | None = None,
        min_length: int = MIN_LENGTH,
    ) -> None:
        self.features = features
        self.text = text
        self.batch_size = batch_size
        self.seed = seed
        self.aux_targets = aux_targets
        self.train_indices = np.flatnonzero(features.lengths >= min_length)
        if len(self.train_indices) == 0:
            raise W2vuError(f"{features.prefix}: no utterance has {min_length} frames or more")
        self.batches_per_epoch = -(-len(self.train_indices) // batch_size)
        self._order_epoch = -1
        self._order = self.train_indices

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The training indices in the order of ``epoch`` (a fresh permutation each epoch)."""
        if epoch != self._order_epoch:
            gen = torch.Generator().manual_seed(mixed_seed(self.seed, epoch, 0))
            perm = torch.randperm(len(self.train_indices), generator=gen).numpy()
            self._order = self.train_indices[perm]
            self._order_epoch = epoch
        return self._order

    def indices_for(self, update: int) -> np.ndarray:
        """Utterance indices of the batch used at ``update``."""
        epoch, position = divmod(update, self.batches_per_epoch)
        start = position * self.batch_size
        return self.epoch_order(epoch)[start: start + self.batch_size]

    def sample_text(self, count: int, update: int) -> torch.Tensor:
        """``count`` uniformly drawn phone sentences, padded with ``<pad>`` (§2.1)."""
        gen = torch.Generator().manual_seed(mixed_seed(self.seed, update, 1))
        picks = torch.randint(len(self.text), (count,), generator=gen).tolist()
        return pad_sequences([self.text[i] for i in picks], PAD_INDEX)

    def batch(self, update: int) -> Batch:
        """The full batch (features, mask, real text, optional aux targets) for ``update``."""
        indices = self.indices_for(update)
        feats, mask = pad_features(self.features, indices)
        aux = None
        if self.aux_targets is not None:
            aux = pad_sequences([self.aux_targets[i] for i in indices], AUX_PAD)
        return Batch(torch.from_numpy(indices.copy()), feats, mask,
                     self.sample_text(len(indices), update), aux)

    def __iter__(self) -> Iterator[Batch]:
        """Endless batches from update 0 (convenience; the trainer calls ``batch`` directly)."""
        update = 0
        while True:
            yield self.batch(update)
            update += 1


def eval_batches(features: Features, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[Batch]:
    """Every utterance in index order, short ones included, for generation and validation."""
    for start in range(0, len(features), batch_size):
        indices = np.arange(start, min(start + batch_size, len(features)))
        feats, mask = pad_features(features, indices)
        yield Batch(torch.from_numpy(indices), feats, mask)


def open_training_data(
    features_prefix: str | os.PathLike,
    text_path: str | os.PathLike,
    dict_path: str | os.PathLike,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 1,
    km_path: str | os.PathLike | None = None,
) -> tuple[TrainBatches, PhoneDictionary]:
    """Open features, dictionary, text and optional ``.km`` targets as one batch source."""
    features = open_features(features_prefix)
    dictionary = load_phone_dictionary(dict_path)
    text = load_phone_text(text_path, dictionary)
    aux = load_aux_targets(km_path, len(features)) if km_path is not None else None
    return TrainBatches(features, text, batch_size, seed, aux), dictionary


def read_phone_lines(path: str | os.PathLike) -> list[list[str]]:
    """Reference transcripts (``.phn``): one list of phones per utterance."""
    return read_token_lines(path, "references", "pass the split's .phn file")
