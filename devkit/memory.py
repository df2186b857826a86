"""Peak memory of a process, for the benchmarks' figures."""

from __future__ import annotations


def peak_rss_kb(pid: int | str = "self") -> int:
    """A process's peak RSS so far (VmHWM; 0 once it has exited or off Linux).

    Not getrusage's ru_maxrss: Linux carries the parent's peak into a spawned child's.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
