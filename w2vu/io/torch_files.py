"""Reading the model and checkpoint files the trainers write, safely and with a clear error."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from w2vu.errors import W2vuError


def load_torch_file(path: str | os.PathLike, what: str, missing_fix: str, bad_fix: str) -> Any:
    """``torch.load`` on the CPU with ``weights_only=True`` (never unpickles arbitrary code); a
    missing file or one that does not load (torn, foreign, or naming code to run) is a one-line
    W2vuError naming it and the fix."""
    path = Path(path)
    if not path.exists():
        raise W2vuError(f"{path}: {what} not found; {missing_fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise W2vuError(f"{path}: cannot read the {what} ({_reason(err)}); {bad_fix}") from None


def _reason(err: Exception) -> str:
    """The cause in one line. torch's refusal of a pickled callable spans several lines and offers
    ``weights_only=False``, which w2vu never does: name the callable instead."""
    text = str(err)
    if "Weights only load failed" in text:
        named = re.search(r"GLOBAL\s+([\w.]+)", text)
        what = named.group(1) if named else "objects other than tensors and plain values"
        return f"it holds {what}, which is never unpickled"
    return text.strip().split("\n")[0] or type(err).__name__
