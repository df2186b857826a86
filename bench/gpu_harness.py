"""The GPU check's harness: problem sizes, the rows, the time budget and the one table.

Why apart from bench/gpu_check.py: the harness (what a row is, how a failing or skipped section
still becomes a row, how the table prints) is one job; the measurements are another.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Sizes:
    """Problem sizes: the reference's on a GPU, toy ones for the CPU smoke run."""

    hidden: int = 1024
    blocks: int = 24
    layer: int = 14
    heads: int = 16
    conv_dim: int = 512
    audio_s: float = 1800.0  # extraction: total seconds of audio
    utt_s: tuple[float, float] = (5.0, 20.0)
    frames: int = 200_000  # PCA / k-means rows
    feat_dim: int = 1024
    pca_dim: int = 512
    clusters: int = 128
    kmeans_iter: int = 20
    gan_batch: int = 160
    gan_disc: int | None = None  # None = 384, the reference
    gan_v2_frames: tuple[int, int] = (150, 450)
    gan_warmup: int = 10
    gan_updates: int = 300
    gan_seconds: float = 8.0
    gan_options: tuple[str, ...] = ("eager", "bf16", "compile-G", "compile-G-cudagraphs")
    ctc_batch_s: float = 50.0  # the reference's 800k samples per batch
    ctc_utts: int = 4
    ctc_steps: int = 10
    ctc_seconds: float = 20.0


GPU_SIZES = Sizes()
SMALL_SIZES = Sizes(hidden=32, blocks=3, layer=1, heads=2, conv_dim=16, audio_s=6.0,
                    utt_s=(1.0, 2.0), frames=4000, feat_dim=64, pca_dim=32, clusters=16,
                    kmeans_iter=5, gan_batch=8, gan_disc=16, gan_v2_frames=(30, 60),
                    gan_warmup=2, gan_updates=2, gan_seconds=5.0, gan_options=("eager", "bf16"),
                    ctc_batch_s=2.0, ctc_utts=2, ctc_steps=1, ctc_seconds=5.0)


@dataclass
class Row:
    """One line of the table: a figure and its ratio to the check's baseline (first row)."""

    check: str
    setting: str
    value: float | None = None
    unit: str = ""
    ratio: float | None = None
    note: str = ""


@dataclass
class Check:
    """The run: device, deadline and the rows so far."""

    device: torch.device
    sizes: Sizes
    deadline: float
    rows: list[Row] = field(default_factory=list)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def add(self, row: Row, baseline: Row | None = None) -> Row:
        if baseline is not None and baseline.value and row.value:
            row.ratio = row.value / baseline.value
        self.rows.append(row)
        print(f"  {row.check}: {row.setting}: {fmt(row.value)} {row.unit} {row.note}",
              flush=True)
        return row

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def peak(self) -> str:
        if self.device.type != "cuda":
            return ""
        return f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"


def join_notes(*parts: str) -> str:
    """A row's note from its non-empty parts."""
    return "; ".join(p for p in parts if p)


def fmt(value: float | None) -> str:
    """Three significant figures, or thousands separators from 100 on; "-" for no figure."""
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def guarded(check: Check, name: str, need_s: float, body: Callable[[Check], None]) -> None:
    """Run one section; a missing package, a failure or too little time becomes a row."""
    if check.left() < need_s:
        check.add(Row(name, "skipped", note=f"time budget: {check.left():.0f} s left, "
                                            f"needs ~{need_s:.0f} s"))
        return
    try:
        body(check)
    except ImportError as err:
        check.add(Row(name, "skipped", note=f"missing package: {err}"))
    except Exception as err:  # noqa: BLE001 - every failure must become a row, not end the table
        traceback.print_exc()
        check.add(Row(name, "failed", note=f"{type(err).__name__}: {str(err)[:120]}"))


def print_table(check: Check, header: str) -> None:
    """The one table: check, setting, figure, ratio to the check's baseline, note."""
    print("\n" + header)
    cols = ("check", "setting", "figure", "speed vs baseline", "note")
    order = {name: i for i, name in reversed(list(enumerate(r.check for r in check.rows)))}
    rows = sorted(check.rows, key=lambda r: order[r.check])  # a check's rows together
    cells = [cols] + [(r.check, r.setting, f"{fmt(r.value)} {r.unit}".strip(),
                       f"{r.ratio:.2f}x" if r.ratio else "-", r.note) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    for c in cells:
        print(" | ".join(c[i].ljust(widths[i]) for i in range(4)) + " | " + c[4])
