"""Rolling training checkpoints kept next to a job's outputs, and when they no longer apply.

A trainer resumes from its ``checkpoint_last.pt`` after an interruption. Under Snakemake a job
reruns with the same folder when its settings change; the checkpoint then belongs to another run
and resuming from it would be wrong, so the workflow's commands discard it and start over (the
library default is to refuse it, which suits a user calling the trainer by hand).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


def discard_if_other_run(path: Path, trajectory: Any) -> None:
    """Remove the checkpoint at ``path`` when it was written with another ``trajectory`` (the
    settings that shape the weights); unreadable files are left for the loader to report."""
    if not path.exists():
        return
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True).get("trajectory")
    except Exception:  # noqa: BLE001 - the trainer's own loader names the problem
        return
    if saved != trajectory:
        log.warning("%s was written with other settings; starting this run over", path)
        path.unlink()
