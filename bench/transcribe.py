"""`w2vu transcribe` on a finished run's model against the workflow on a new config, same files.

Why: before the model folder, the only way to get transcripts of new recordings was a config
naming them and a workflow run, which builds every stage again (text, features, k-means, GAN,
decoding graphs, self-training). This times both on the same files, in this one run: the
original files of some splits of a finished run, transcribed with its `results/{lang}/model`
(CPU), and the same files as the audio of a new language whose config is the run's own
(`model.json` keeps it) with the run's unpaired text. Prints wall time, throughput (x real time)
and the peak RSS of the largest process of each, and the ratio.

Run: python bench/transcribe.py --run-dir DIR [--lang demo] [--splits valid test] [--threads 2]
     (DIR: the folder a finished run wrote `results/` in, e.g. after `make demo`)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
# Runs a command and prints the peak RSS (kB) of its largest descendant: each measurement gets a
# fresh launcher, so one figure never includes the other's processes.
LAUNCHER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(code)")


def split_files(run: Path, lang: str, split: str) -> list[str]:
    """The original files of a split that the run kept, in manifest order."""
    sys.path.insert(0, str(REPO))
    from w2vu.audio.inventory import read_shard_list
    from w2vu.io.manifest import read_manifest

    by_key = {e.key: e.path for lst in sorted((run / f"results/{lang}/audio/inventory")
                                              .glob("[0-9]*.tsv"))
              for e in read_shard_list(lst, split)}
    rows = read_manifest(run / f"results/{lang}/manifest/{split}.tsv").rows
    return [by_key[os.path.splitext(rel.split("/", 1)[1])[0]] for rel, _ in rows]


def measured(cmd: list[str], cwd: Path, log: Path) -> tuple[float, float]:
    """Run `cmd` to completion; return (wall seconds, peak RSS in MB)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], cwd=cwd, stdout=out,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd[:4])} ... failed ({done.returncode}); see {log}:\n"
                 f"{done.stderr[-2000:]}")
    return wall, int(done.stderr.strip().splitlines()[-1]) / 1024


def new_config(model: Path, run: Path, lang: str, files: list[str], work: Path) -> Path:
    """The run's config with one new language whose audio is `files`."""
    info = json.loads((model / "model.json").read_text())
    config = info["config"]
    old = config["languages"][lang]
    text = (run / f"results/{lang}/corpus/text.txt" if "demo" in old else None)
    table = work / "files.tsv"
    table.write_text("path\n" + "".join(f"{p}\n" for p in files))
    config["languages"] = {"new": {
        "espeak": old["espeak"], "audio": {"table": str(table)},
        "text": [str(text)] if text else old["text"], "splits": old["splits"]}}
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--lang", default="demo")
    parser.add_argument("--splits", nargs="+", default=["valid", "test"],
                        help="the run's splits whose files are transcribed")
    parser.add_argument("--model", type=Path, help="the model folder (default: the run's "
                        "results/{lang}/model)")
    parser.add_argument("--threads", type=int, default=2, help="transcribe threads = cores "
                        "given to snakemake")
    a = parser.parse_args()
    run = a.run_dir.resolve()
    model = (a.model or run / f"results/{a.lang}/model").resolve()
    files = [f for split in a.splits for f in split_files(run, a.lang, split)]
    import soundfile as sf

    seconds = sum(sf.info(p).duration for p in files)
    with tempfile.TemporaryDirectory(prefix="bench-transcribe-") as tmp:
        work = Path(tmp)
        ours = measured([sys.executable, "-m", "w2vu", "transcribe", "--model",
                         str(model), "--threads", str(a.threads),
                         "--out", str(work / "out.tsv"), *files], work, work / "transcribe.log")
        config = new_config(model, run, a.lang, files, work)
        base = measured([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                         "--directory", str(work), "--configfile", str(config), "--cores",
                         str(a.threads)], work, work / "workflow.log")
    print(f"{len(files)} files of {a.lang} ({'+'.join(a.splits)}), {seconds:.1f} s of audio, "
          f"{a.threads} threads/cores, CPU")
    for name, (wall, rss) in (("workflow, new config", base), ("w2vu transcribe", ours)):
        print(f"  {name:22s} {wall:8.1f} s  {seconds / wall:8.2f}x real time  peak RSS "
              f"{rss:7.0f} MB")
    print(f"  transcribe is {base[0] / ours[0]:.1f}x faster than the workflow; peak memory "
          f"ratio (transcribe / workflow) {ours[1] / base[1]:.2f}")


if __name__ == "__main__":
    main()
