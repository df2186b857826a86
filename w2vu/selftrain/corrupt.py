"""Pseudo-labels of a known quality: reference phones corrupted to a target phone error rate.

Self-training must be shown to help independently of how good the GAN is (issue 6): feeding a
stage labels with a known error rate, and checking that its own transcripts are clearly better,
isolates the stage from the GAN. Edits are substitutions, deletions and insertions in equal
shares; the substituted and inserted phones are drawn from the phone inventory of the references.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def corrupt_lines(lines: Sequence[Sequence[str]], target_per: float, seed: int = 0
                  ) -> list[list[str]]:
    """Each phone is edited with probability ``target_per`` (1/3 substituted, 1/3 deleted, 1/3
    followed by an inserted phone), so the expected PER against ``lines`` is ``target_per``."""
    if not 0.0 <= target_per <= 1.0:
        raise ValueError(f"target_per must be in [0, 1], got {target_per}")
    inventory = sorted({p for line in lines for p in line})
    rng = random.Random(seed)
    out: list[list[str]] = []
    for line in lines:
        noisy: list[str] = []
        for phone in line:
            if rng.random() >= target_per:
                noisy.append(phone)
                continue
            edit = rng.randrange(3)
            if edit == 0:
                noisy.append(rng.choice([p for p in inventory if p != phone] or [phone]))
            elif edit == 2:
                noisy += [phone, rng.choice(inventory)]
        out.append(noisy)
    return out
