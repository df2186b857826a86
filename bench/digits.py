"""Real speech that learns on a CPU: the whole pipeline on config/digits.yaml, every stage's error.

Why: the demo's GAN learns little in a CPU smoke run, so nothing there shows that the pipeline
turns unlabelled speech into a recognizer. The digits language (FSDD recordings joined into digit
strings, unpaired text of other strings, test speakers never trained on) is small enough for a
2-core CPU. This runs Snakemake on it in a work folder and prints, per split, each stage's PER
(WER for the WFST decoder) next to the baselines measured in the same run: the most frequent
phone of the unpaired text (the ratio column divides by it), the audio-blind constant sentence
(the digits grammar makes the strings predictable: a recognizer must beat it to show that it
reads the audio; its word version is the bar for the WFST decoder's WER) and the supervised
linear probe (the ceiling the features allow). The goals (issue 13): GAN PER at most half the
baseline's, self-training lower still, WFST WER below 30%.

Run: python bench/digits.py [--workdir DIR] [--cores 2] [--fsdd PATH] [--set gan.max_updates=N]
     python bench/digits.py --workdir DIR --report-only      # the table of a finished run
Without --workdir the run goes to a temporary folder that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import machine

REPO = Path(__file__).resolve().parent.parent
STAGES = ("baseline_frequent_phone", "baseline_constant_sentence", "baseline_random_generator",
          "gan_viterbi", "gan_wfst_phones", "hmm", "ctc_iter1", "ctc_iter2", "selftrained",
          "baseline_constant_words", "gan_wfst", "hmm_words", "probe_w2vu1")
BASELINE, PROBE = "baseline_frequent_phone", "probe_w2vu1"


def default_fsdd() -> Path:
    """FSDD beside the clone (../shared/data/fsdd), or under $W2VU_SHARED_DATA."""
    shared = Path(os.environ.get("W2VU_SHARED_DATA", REPO.parent / "shared" / "data"))
    return shared / "fsdd"


def write_config(workdir: Path, fsdd: Path, overrides: list[str]) -> Path:
    """config/digits.yaml with the FSDD folder made absolute and KEY=VALUE overrides applied."""
    config = yaml.safe_load((REPO / "config" / "digits.yaml").read_text(encoding="utf-8"))
    for language in config["languages"].values():
        language["digits"]["fsdd"] = str(fsdd.resolve())
    for item in overrides:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    path = workdir / "digits.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_pipeline(workdir: Path, config: Path, cores: int) -> float:
    """Snakemake on the config in workdir; returns wall seconds (the log goes to workdir)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(config), "--cores", str(cores)]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    start = time.perf_counter()
    with open(workdir / "snakemake.log", "w", encoding="utf-8") as log:
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if done.returncode:
        sys.exit(f"snakemake failed ({done.returncode}); see {workdir / 'snakemake.log'}")
    return time.perf_counter() - start


def read_scores(scores: Path) -> dict[tuple[str, str], tuple[str, float]]:
    """(stage, split) -> (metric, rate) from scores.tsv."""
    with open(scores, encoding="utf-8", newline="") as f:
        return {(r["stage"], r["split"]): (r["metric"], float(r["rate"]))
                for r in csv.DictReader(f, delimiter="\t")}


def print_table(scores: dict[tuple[str, str], tuple[str, float]], splits: list[str]) -> None:
    """One row per stage: rate per split, and the test rate over the baseline's test PER."""
    print("stage".ljust(27) + "metric" + "".join(s.rjust(8) for s in splits)
          + "  test/baseline")
    base = scores.get((BASELINE, "test"), ("per", float("nan")))[1]
    for stage in STAGES:
        rows = [scores.get((stage, s)) for s in splits]
        if not any(rows):
            continue
        metric = next(r[0] for r in rows if r)
        rates = "".join((f"{r[1]:.3f}" if r else "-").rjust(8) for r in rows)
        test = scores.get((stage, "test"))
        ratio = f"{test[1] / base:.2f}" if test and metric == "per" and base else "-"
        print(f"{stage:27}{metric:6}{rates}  {ratio:>13}")
    gan = scores.get(("gan_viterbi", "test"), ("", float("nan")))[1]
    final = scores.get(("selftrained", "test"), ("", float("nan")))[1]
    wer = scores.get(("gan_wfst", "test"), ("", float("nan")))[1]
    probe = scores.get((PROBE, "test"), ("", float("nan")))[1]
    print(f"goals on test: GAN PER <= baseline/2 ({gan:.3f} vs {base / 2:.3f}): "
          f"{'met' if gan <= base / 2 else 'not met'}; self-training below the GAN "
          f"({final:.3f}, by {gan - final:.3f}): {'met' if final < gan else 'not met'}; "
          "WFST WER < 0.30 "
          f"({wer:.3f}): {'met' if wer < 0.30 else 'not met'}; probe (ceiling) {probe:.3f}")
    blind = scores.get(("baseline_constant_sentence", "test"))
    if blind is None:
        print("audio-blind baseline: not in this run's scores.tsv (made before the baseline was)")
        return
    print(f"audio-blind baseline (one sentence for every utterance) {blind[1]:.3f} on test: the "
          f"GAN {'is' if gan < blind[1] else 'is not'} below it, the final transcripts "
          f"{'are' if final < blind[1] else 'are not'}")
    words = scores.get(("baseline_constant_words", "test"))
    if words is not None:
        print(f"audio-blind words: WER {words[1]:.3f} on test; the WFST decode "
              f"{'is' if wer < words[1] else 'is not'} below it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="keep the run here (default: temporary)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--fsdd", type=Path, default=default_fsdd())
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. gan.max_updates=500")
    parser.add_argument("--report-only", action="store_true",
                        help="print the table of the run already in --workdir")
    args = parser.parse_args()
    if args.report_only and not args.workdir:
        parser.error("--report-only needs --workdir")
    if not (args.fsdd / "transcripts.tsv").is_file():
        sys.exit(f"{args.fsdd / 'transcripts.tsv'} not found: pass --fsdd (the FSDD folder)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="w2vu-digits-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(machine.describe())
    try:
        if not args.report_only:
            config = write_config(workdir, args.fsdd, args.set)
            wall = run_pipeline(workdir, config, args.cores)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"pipeline: {wall / 60:.1f} min wall, --cores {args.cores}, "
                  f"peak RSS of one job {peak:.0f} MB")
        language = next(iter(yaml.safe_load(
            (REPO / "config" / "digits.yaml").read_text(encoding="utf-8"))["languages"]))
        scores = read_scores(workdir / "results" / language / "scores.tsv")
        print_table(scores, sorted({split for _, split in scores},
                                   key=["train", "valid", "test"].index))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
