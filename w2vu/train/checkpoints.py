"""Checkpoint files every trainer writes: atomic saves, and the rolling ``checkpoint_last.pt``
kept next to (not inside) a job's outputs, resumed after an interruption.

Under Snakemake a job reruns with the same folder when its settings change; the rolling
checkpoint then belongs to another run and resuming from it would be wrong, so the workflow's
commands discard it and start over (the library default is to refuse it, which suits a user
calling the trainer by hand). Every read goes through the one safe loader
(:func:`w2vu.io.torch_files.load_torch_file`): nothing is unpickled with code.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.io.torch_files import load_torch_file
from w2vu.train.runtime import restore_rng

log = logging.getLogger(__name__)

CHECKPOINT_LAST = "checkpoint_last.pt"
START_OVER = "delete it to start over"
# Files up to this size are hashed whole; larger ones (features) by their size and a fixed sample
# of blocks, so that checking a 100 GB feature file costs milliseconds, not minutes.
_WHOLE_BYTES = 64 << 20
_BLOCK_BYTES = 64 << 10
_BLOCKS = 256


def input_fingerprint(paths: Iterable[str | os.PathLike | None]) -> str:
    """A digest of a run's input files, stored in its trajectory so that a rolling checkpoint
    trained on other data (an upstream stage rerun with other settings) is never resumed.

    Why not settings alone: Snakemake reruns a training job when its inputs change, into the same
    folder, so the checkpoint left there has the same settings but learnt from the old inputs.
    Large files are sampled (size, then evenly spaced blocks including the first and last), which
    catches any regenerated feature file in practice; small ones are hashed whole.
    """
    digest = hashlib.sha256()
    for path in paths:
        if path is None:
            continue
        size = os.path.getsize(path)
        digest.update(f"{Path(path).name}\0{size}\0".encode())
        with open(path, "rb") as f:
            if size <= _WHOLE_BYTES:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
                continue
            step = (size - _BLOCK_BYTES) / (_BLOCKS - 1)
            for i in range(_BLOCKS):
                f.seek(int(i * step))
                digest.update(f.read(_BLOCK_BYTES))
    return digest.hexdigest()


def save_atomically(obj: dict[str, Any], path: Path) -> None:
    """torch.save to a temporary sibling, then rename: a crash never leaves a torn checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_rolling(path: Path, trajectory: Any, model_rng: torch.Generator) -> dict[str, Any]:
    """A rolling checkpoint written with ``trajectory`` (the settings that shape the weights),
    with every RNG restored from it; the caller restores its model and optimizers."""
    ckpt = load_torch_file(path, "checkpoint", START_OVER, START_OVER)
    if not isinstance(ckpt, dict) or ckpt.get("trajectory") != trajectory:
        raise W2vuError(f"{path} was written with other training settings or data; {START_OVER}"
                        ", or restore the settings it was written with")
    restore_rng(ckpt["rng"], model_rng)
    return ckpt


def discard_if_other_run(path: Path, trajectory: Any) -> None:
    """Remove the checkpoint at ``path`` when it was written with another ``trajectory``;
    unreadable files are left for :func:`load_rolling` to report."""
    if not path.exists():
        return
    try:
        saved = load_torch_file(path, "checkpoint", START_OVER, START_OVER)
    except W2vuError:
        return
    if not isinstance(saved, dict):
        return
    if saved.get("trajectory") != trajectory:
        log.warning("%s was written with other settings; starting this run over", path)
        path.unlink()
