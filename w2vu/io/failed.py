"""Failure notes: the outputs of a bracketing stage that could not run, so the run goes on.

The supervised probe and the baselines only bracket the GAN's error rate. When one of them cannot
run on the user's data (a `W2vuError`), each of its outputs is written as a one-line note holding
the reason, the steps that read it pass the note on, and `scores.tsv` lists the stage as failed
with the reason instead of the whole table being lost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from w2vu.errors import W2vuError
from w2vu.io.atomic import write_text

log = logging.getLogger(__name__)
MARK = "w2vu-failed: "


def failure_reason(path: str | os.PathLike) -> str | None:
    """The reason written in a failure note, or None for an ordinary output."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if not head.startswith(MARK.encode()):
        return None
    return head[len(MARK):].decode("utf-8", "replace").splitlines()[0]


def write_failure_notes(outputs: Sequence[str | os.PathLike], reason: str) -> None:
    """Write every output as a failure note (one line: the mark and the reason)."""
    line = " ".join(reason.split())
    for path in outputs:
        write_text(path, f"{MARK}{line}\n")


def run_or_note(stage: str, outputs: Sequence[str | os.PathLike],
                inputs: Sequence[str | os.PathLike], run: Callable[[], object]) -> None:
    """Run a bracketing stage; an input that is a failure note, or a `W2vuError` on the way,
    becomes failure notes on its outputs (logged), so that scoring reports it and goes on."""
    for path in inputs:
        reason = failure_reason(path)
        if reason is not None:
            log.warning("%s: not run, its input %s failed: %s", stage, path, reason)
            write_failure_notes(outputs, reason)
            return
    try:
        run()
    except W2vuError as e:
        log.warning("%s failed: %s; noted in its outputs, the run goes on", stage, e)
        write_failure_notes(outputs, f"{stage}: {e}")
