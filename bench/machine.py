"""The machine a benchmark ran on, printed with its figures.

The core count and the load say how much of the CPU a run had; the processor model matters as
well: the GAN's trajectory, and every figure after it, differs from one processor model to
another (another processor's kernels sum in another order; bench/RESULTS.md).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def processor() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "processor unknown"


def describe() -> str:
    """One line: cores, processor model and the 1-minute load average, taken now."""
    return (f"cpus: {os.cpu_count()} ({processor()}), "
            f"load average (1 min): {os.getloadavg()[0]:.2f}")
