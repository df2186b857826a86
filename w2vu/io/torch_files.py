"""Reading the model and checkpoint files the trainers write, safely and with a clear error."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from w2vu.errors import W2vuError

# Paragraphs of torch's weights-only error that are advice, not the reason; the first one says
# "Re-running with weights_only=False will likely succeed", which is unsafe for untrusted files.
_TORCH_ADVICE = re.compile(r"weights_only|Check the documentation|PyTorch 2\.6|torch\.load")


def load_failure(err: BaseException) -> str:
    """Why torch could not load a file, on one line, without torch's advice to load it unsafely.

    A refused pickle global (code that would run on loading) reads "refused by the safe loader:
    Trying to load unsupported GLOBAL posix.system ..."; any other failure (torn or foreign file)
    keeps torch's own words.
    """
    text = str(err)
    if "Weights only load failed" not in text:
        return " ".join(text.split())
    reasons = [p for p in re.split(r"\n\s*\n", text) if p.strip() and not _TORCH_ADVICE.search(p)]
    return "refused by the safe loader: " + (" ".join(" ".join(reasons).split())
                                             or "it holds objects other than tensors")


def load_torch_file(path: str | os.PathLike, what: str, missing_fix: str, bad_fix: str) -> Any:
    """``torch.load`` on the CPU with ``weights_only=True`` (never unpickles arbitrary code); a
    missing file or one that does not load (torn, foreign, carrying code) is a W2vuError naming
    it and the fix."""
    path = Path(path)
    if not path.exists():
        raise W2vuError(f"{path}: {what} not found; {missing_fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        why = load_failure(err)
        raise W2vuError(f"{path}: cannot read the {what} ({why}); {bad_fix}") from None
