"""Logging for the CLI: progress lines readable in a rule's log file, and a periodic status line
on the console Snakemake runs in."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")
log = logging.getLogger("w2vu")


# The workflow's shell prefix keeps the console Snakemake prints to open as this file descriptor
# before a rule sends stderr to its log file; long jobs put a status line there now and then.
CONSOLE_FD = "W2VU_CONSOLE_FD"
CONSOLE_EVERY = "W2VU_CONSOLE_EVERY"  # seconds between status lines (default 60; 0: every line)


def setup_logging(verbose: bool = False, command: str = "") -> None:
    """Send w2vu's log to stderr with timestamps (rules redirect stderr into their log file), and
    a periodic status line to the console when the workflow left one open (`console_status`)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    status = console_status(command)
    if status is not None:
        logging.getLogger().addHandler(status)


class ConsoleStatus(logging.Handler):
    """At most one line every `every_s` seconds: the newest INFO line (a job's progress), with
    the job's command and log file, so that long jobs show where they are in Snakemake's console
    while their log file keeps every line."""

    def __init__(self, stream: TextIO, label: str, every_s: float) -> None:
        super().__init__(logging.INFO)
        self.stream, self.label, self.every_s = stream, label, every_s
        self.last = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            return
        self.last = now
        try:
            line = record.getMessage().splitlines()[0] if record.getMessage() else ""
            self.stream.write(f"{time.strftime('%H:%M:%S')} {self.label}: {line}\n")
            self.stream.flush()
        except (OSError, ValueError):  # the console went away: the log file still has it all
            self.every_s = float("inf")


def console_status(command: str) -> ConsoleStatus | None:
    """The status handler for `command`, when `W2VU_CONSOLE_FD` names an open descriptor other
    than stderr itself (a job whose stderr is the console needs no copy)."""
    try:
        fd = int(os.environ[CONSOLE_FD])
        every_s = float(os.environ.get(CONSOLE_EVERY, "60"))
        console, err = os.fstat(fd), os.fstat(sys.stderr.fileno())
    except (KeyError, ValueError, OSError):
        return None
    if (console.st_dev, console.st_ino) == (err.st_dev, err.st_ino):
        return None
    label = f"w2vu {command}".strip()
    log_file = _stderr_file()
    if log_file:
        label += f" [{log_file}]"
    return ConsoleStatus(os.fdopen(os.dup(fd), "w", encoding="utf-8", errors="replace"), label,
                         every_s)


def _stderr_file() -> str:
    """The file stderr writes to (the rule's log), relative to the working directory if under
    it; '' when unknown (not Linux) or not a regular file."""
    try:
        target = os.readlink(f"/proc/self/fd/{sys.stderr.fileno()}")
    except (OSError, ValueError):
        return ""
    if not os.path.isfile(target):
        return ""
    relative = os.path.relpath(target)
    return target if relative.startswith("..") else relative


def progress(items: Iterable[T], total: int, what: str, every_s: float = 10.0) -> Iterator[T]:
    """Yield `items`, logging 'what: done/total (pct, rate)' at most every `every_s` seconds.

    Plain log lines rather than a redrawn bar, so that a rule's log file stays readable.
    """
    start = last = time.monotonic()
    done = 0
    for done, item in enumerate(items, start=1):
        yield item
        now = time.monotonic()
        if now - last >= every_s and done < total:
            last = now
            log.info("%s: %d/%d (%.0f%%, %.1f/s)", what, done, total, 100 * done / max(total, 1),
                     done / (now - start))
    elapsed = time.monotonic() - start
    log.info("%s: %d/%d done in %.1f s", what, done, total, elapsed)
