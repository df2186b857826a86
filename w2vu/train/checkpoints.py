"""Checkpoint files every trainer writes: atomic saves, and the rolling ``checkpoint_last.pt``
kept next to (not inside) a job's outputs, resumed after an interruption.

Under Snakemake a job reruns with the same folder when its settings change; the rolling
checkpoint then belongs to another run and resuming from it would be wrong, so the workflow's
commands discard it and start over (the library default is to refuse it, which suits a user
calling the trainer by hand). Every read goes through the one safe loader
(:func:`w2vu.io.torch_files.load_torch_file`): nothing is unpickled with code.
"""

from __future__ import annotations

import logging
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
