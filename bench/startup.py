"""Snakemake start-up cost of the Slurm executor plugin: `snakemake -n` with and without a Slurm
configuration whose controller does not answer.

Why: snakemake-executor-plugin-slurm 2.8.0 runs `scontrol show config` while it is imported (its
settings' help text asks for MinJobAge), and Snakemake imports every installed executor plugin at
every start, whatever the executor. Where a slurm.conf names a controller that does not answer,
scontrol waits ~10 s before giving up, so every dry run, no-op rerun and test-suite Snakemake run
pays it. The test suite's one-node cluster used to leave such a slurm.conf behind; it now puts
/etc/slurm back as it found it (tests/slurm_cluster.py), and `make demo` no longer installs the
Slurm client at all.

Two dry runs per target, in the same process: `stale` points SLURM_CONF at a slurm.conf whose
controller (localhost, a closed port) does not run — the state a machine was left in before;
`clean` is this machine's own environment (it must have no unreachable slurm.conf: the script
says what scontrol finds). Targets: a finished run folder (`--workdir`, e.g. the repository after
`make demo`) and a placeholder corpus of `--files` audio files (as bench/dag.py).

Run: python bench/startup.py [--workdir .] [--files 100000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from dag import REPO, DryRun, dry_run, make_placeholders, print_machine, write_config

DEAD_CONTROLLER = "ClusterName=bench\nSlurmctldHost=localhost\nSlurmctldPort=6899\n"


def scontrol_seconds(env: dict[str, str]) -> float | None:
    """How long `scontrol show config` takes in this environment (None: no scontrol)."""
    if not shutil.which("scontrol", path=env.get("PATH")):
        return None
    start = time.perf_counter()
    subprocess.run(["scontrol", "show", "config"], env=env, capture_output=True, timeout=120)
    return time.perf_counter() - start


def best_dry_run(config: Path | None, workdir: Path, env: dict[str, str], repeats: int,
                 log: Path) -> DryRun:
    """The fastest of `repeats` dry runs of one target in one environment."""
    runs = [dry_run(config, workdir, log, env=env) for _ in range(repeats)]
    return min(runs, key=lambda r: r.wall_s)


def parse_args() -> argparse.Namespace:
    """Command-line settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO,
                        help="a finished run folder (default: the repository, after make demo)")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="dry runs per cell; best shown")
    return parser.parse_args()


def main() -> None:
    """Time each target's dry run in both environments; print both and the ratio."""
    args = parse_args()
    print_machine()
    with tempfile.TemporaryDirectory(prefix="w2vu-bench-startup-") as tmp:
        root = Path(tmp)
        stale_conf = root / "slurm.conf"
        stale_conf.write_text(DEAD_CONTROLLER, encoding="utf-8")
        clean = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
        envs = {"stale": {**clean, "SLURM_CONF": str(stale_conf)}, "clean": clean}
        for name, env in envs.items():
            took = scontrol_seconds(env)
            print(f"{name}: scontrol show config takes "
                  + ("(no scontrol on PATH)" if took is None else f"{took:.2f} s"))
        audio, text, config = root / "audio", root / "text.txt", root / "config.yaml"
        make_placeholders(audio, args.files)
        text.write_text("a sentence of unpaired text\n", encoding="utf-8")
        write_config(config, audio, text, args.shards)
        targets = {f"finished run {args.workdir}": (None, args.workdir),
                   f"{args.files} placeholder files": (config, root / "work")}
        print(f"snakemake -n --cores 2, best of {args.repeats} runs")
        print(f"{'target':<46}{'stale s':>9}{'clean s':>9}{'ratio':>8}{'peak RSS MB':>13}")
        for label, (cfg, workdir) in targets.items():
            runs = {name: best_dry_run(cfg, workdir, env, args.repeats, root / "dry-run.log")
                    for name, env in envs.items()}
            stale, fast = runs["stale"], runs["clean"]
            print(f"{label:<46}{stale.wall_s:>9.2f}{fast.wall_s:>9.2f}"
                  f"{stale.wall_s / fast.wall_s:>7.2f}x{fast.rss_mb:>13.0f}")


if __name__ == "__main__":
    main()
