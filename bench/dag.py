"""Dry-run time of the workflow on a large corpus: `snakemake -n` with 100,000 audio files.

Why: building the DAG evaluates the inventory's rerun trigger (`source_fingerprint` in
workflow/rules/common.smk), which stats every file under the language's audio paths, and plans
convert/vad/trim jobs for every shard; the requirement is a dry run under 30 s at 100k files.
The same dry run on 1,000 files is the baseline. The files are placeholders: a dry run never
reads them.

Run: python bench/dag.py [--files 100000] [--baseline-files 1000] [--shards 64] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

import machine

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "Snakefile"
FILES_PER_FOLDER = 100
FOLDERS_PER_SPEAKER = 10
REQUIREMENT_S = 30.0
_TOTAL_JOBS = re.compile(r"^total\s+(\d+)\s*$", re.M)


@dataclass(frozen=True)
class DryRun:
    """One `snakemake -n`: wall seconds, peak RSS in MB and the number of jobs it planned."""

    wall_s: float
    rss_mb: float
    jobs: int


def make_placeholders(root: Path, count: int) -> None:
    """Write `count` tiny .wav files as root/spkNNN/chNN/uttNNNNNN.wav (nested like a corpus)."""
    per_speaker = FILES_PER_FOLDER * FOLDERS_PER_SPEAKER
    for i in range(count):
        folder = root / f"spk{i // per_speaker:03d}" / f"ch{i // FILES_PER_FOLDER % 10:02d}"
        if i % FILES_PER_FOLDER == 0:
            folder.mkdir(parents=True)
        (folder / f"utt{i:06d}.wav").write_bytes(b"RIFF")


def write_config(path: Path, audio_dir: Path, text: Path, shards: int) -> None:
    """A config with one language reading a folder of audio, as a user would write it."""
    config = {
        "languages": {"bench": {"espeak": "en-us", "audio": {"paths": [str(audio_dir)]},
                                "text": [str(text)]}},
        "audio": {"shards": shards},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def dry_run(config: Path | None, workdir: Path, log: Path,
            env: dict[str, str] | None = None) -> DryRun:
    """Time one dry run; its own rusage (os.wait4) gives the exact peak RSS of that process.

    Without `config`, the workflow's own (embedded) config is used."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--snakefile",
           str(SNAKEFILE), "--directory", str(workdir)]
    if config is not None:
        cmd += ["--configfile", str(config)]
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(encoding="utf-8")
    if proc.returncode:
        raise RuntimeError(f"snakemake -n failed ({proc.returncode}):\n{text[-3000:]}")
    jobs = _TOTAL_JOBS.search(text)
    return DryRun(wall, usage.ru_maxrss / 1024, int(jobs.group(1)) if jobs else 0)


def measure_corpus(root: Path, files: int, shards: int, repeats: int) -> DryRun:
    """Make a corpus of `files` placeholders and return its fastest of `repeats` dry runs."""
    audio = root / "audio"
    make_placeholders(audio, files)
    text = root / "text.txt"
    text.write_text("a sentence of unpaired text\n", encoding="utf-8")
    config = root / "config.yaml"
    write_config(config, audio, text, shards)
    runs = [dry_run(config, root / "work", root / f"dry-run-{i}.log") for i in range(repeats)]
    return min(runs, key=lambda r: r.wall_s)


def parse_args() -> argparse.Namespace:
    """Command-line settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--baseline-files", type=int, default=1_000)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="dry runs per corpus; best shown")
    return parser.parse_args()


def main() -> None:
    """Time the dry run on the small and the large corpus; print both and the ratio."""
    args = parse_args()
    print(machine.describe())
    results: dict[int, DryRun] = {}
    for files in (args.baseline_files, args.files):
        with tempfile.TemporaryDirectory(prefix="w2vu-bench-dag-") as tmp:
            results[files] = measure_corpus(Path(tmp), files, args.shards, args.repeats)
    print(f"snakemake -n --cores 2, audio.shards={args.shards}, best of {args.repeats} runs")
    print(f"{'files':>8}{'wall s':>9}{'peak RSS MB':>13}{'jobs':>7}")
    for files, run in results.items():
        print(f"{files:>8}{run.wall_s:>9.2f}{run.rss_mb:>13.0f}{run.jobs:>7}")
    small, large = results[args.baseline_files], results[args.files]
    print(f"ratio {args.files} / {args.baseline_files} files: {large.wall_s / small.wall_s:.2f}x")
    verdict = "met" if large.wall_s < REQUIREMENT_S else "NOT met"
    print(f"requirement < {REQUIREMENT_S:.0f} s at {args.files} files: {verdict}")


if __name__ == "__main__":
    main()
