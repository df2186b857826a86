"""What a GAN run carries between updates and across an interruption: the running statistics,
the metric rows, the best validation so far, and the rolling ``checkpoint_last.pt`` that holds them
with the model, both optimizers and every RNG state (a resumed run ends bit-exact on CPU)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from w2vu.gan.models import Wav2vecU
from w2vu.io.dictionary import PhoneDictionary
from w2vu.train.checkpoints import load_rolling, save_atomically
from w2vu.train.runtime import capture_rng


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


def model_state(model: Wav2vecU) -> dict[str, torch.Tensor]:
    """State dict on CPU with the reference key names."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


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
              state: RunState, trajectory: dict[str, Any], dictionary: PhoneDictionary,
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
        "trajectory": trajectory,
        "vocabulary": list(dictionary.symbols),
    }, path)


def load_last(path: Path, model: Wav2vecU, optimizers: dict[str, torch.optim.Optimizer],
              trajectory: dict[str, Any], model_rng: torch.Generator) -> RunState:
    """Restore a rolling checkpoint written by :func:`save_last` (no arbitrary unpickling)."""
    ckpt = load_rolling(path, trajectory, model_rng)
    model.load_state_dict(ckpt["model"])
    for name, opt in optimizers.items():
        opt.load_state_dict(ckpt["optimizer"][name])
    acc = Accumulator(dict(ckpt["acc"]["sums"]), dict(ckpt["acc"]["counts"]))
    return RunState(ckpt["update"], ckpt["best"], list(ckpt["rows"]), acc, ckpt["best_model"],
                    dict(ckpt["best_row"]))
