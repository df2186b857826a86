"""Snakemake's `--use-conda` route, run end to end with a stand-in `conda` (venv + links).

conda cannot be installed on these machines, so the stand-in is what exercises `--use-conda`: it
proves Snakemake's plumbing (one env per yaml, activation, the rule running with the env's python
and the repository on PYTHONPATH, reuse on the next run), not conda's solving or its channels.
tests/test_conda_envs.py checks statically that each env provides what its rules import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.workflow_helpers import TINY_GAN

ENVS = REPO / "envs"
CONDA_VERSION = "24.7.1"  # Snakemake 9's MIN_CONDA_VER

# The stand-in `conda`: just what Snakemake 9 calls (deployment/conda.py). `env create` makes a
# venv and links into it, from the tested venv, exactly the yaml's pip pins and their dependency
# closure (nothing is downloaded; a pin the venv does not satisfy fails the creation). Conda-only
# entries (python=3.11, pip, ffmpeg, cxx-compiler, zlib) are ignored.
CONDA = """#!/usr/bin/env bash
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
case "$1 ${2:-}" in
  "--version "*) echo "conda @VERSION@" ;;
  "info --json")
    printf '{"conda_prefix": "%s", "platform": "linux-64", "conda_version": "%s"}\\n' \\
      "$here/conda" "@VERSION@" ;;
  "config --get") echo '{"get": {"channel_priority": "strict"}, "rc_path": null}' ;;
  "clean "*) ;;
  "env create")
    file= prefix=
    while [ $# -gt 0 ]; do
      case "$1" in --file) file=$2; shift ;; --prefix) prefix=$2; shift ;; esac; shift
    done
    "@PYTHON@" -m venv --without-pip "$prefix"
    "@PYTHON@" "$here/link_env.py" "$file" "$prefix"
    echo "$file" >> "$here/created.log" ;;
  *) echo "stand-in conda: unsupported: $*" >&2; exit 1 ;;
esac
"""

ACTIVATE = """# stand-in conda's activate: `source activate ENV`
echo "$1" >> "$(dirname "${BASH_SOURCE[0]}")/../../activated.log"
VIRTUAL_ENV_DISABLE_PROMPT=1 source "$1/bin/activate"
"""

LINK_ENV = '''
"""Link a conda env file's pip pins, and what they require, from the tested venv into a venv."""
import importlib.metadata as md
import os
import sys
import sysconfig
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

env_file, prefix = sys.argv[1:]
spec = yaml.safe_load(open(env_file))
pins = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
installed = {canonicalize_name(d.metadata["Name"]): d for d in md.distributions()}
todo, chosen = [Requirement(p) for p in pins], {}
while todo:
    req = todo.pop()
    name = canonicalize_name(req.name)
    dist = installed.get(name)
    if dist is None or not req.specifier.contains(dist.version, prereleases=True):
        sys.exit(f"stand-in conda: {req} is not installed in the tested venv (offline)")
    if name in chosen:
        continue
    chosen[name] = dist
    for text in dist.requires or []:
        dep = Requirement(text)
        if dep.marker is None or dep.marker.evaluate({"extra": ""}):
            todo.append(dep)
site = Path(prefix) / Path(sysconfig.get_path("purelib")).relative_to(sys.prefix)
for dist in chosen.values():
    for top in sorted({f.parts[0] for f in dist.files or [] if f.parts[0] != ".."}):
        if not (site / top).exists():
            os.symlink(dist.locate_file(top), site / top)
# Each python start in the env records, at exit, its prefix, command and where w2vu came from.
(site / "sitecustomize.py").write_text(f"""
import atexit, json, sys
def _record():
    w2vu = sys.modules.get("w2vu")
    with open({str(Path(__file__).parent / "python.log")!r}, "a") as f:
        f.write(json.dumps({{"prefix": sys.prefix, "argv": sys.orig_argv,
                            "w2vu": getattr(w2vu, "__file__", None)}}) + "\\\\n")
atexit.register(_record)
""")
print("linked", len(chosen), "distributions:", " ".join(sorted(chosen)))
'''


def install_stand_in_conda(root: Path) -> Path:
    """The stand-in under `root`; returns the folder to put first on PATH."""
    bin_dir, conda_bin = root / "bin", root / "conda" / "bin"
    conda_bin.mkdir(parents=True)
    bin_dir.mkdir()
    script = CONDA.replace("@VERSION@", CONDA_VERSION).replace("@PYTHON@", sys.executable)
    (bin_dir / "conda").write_text(script)
    (bin_dir / "conda").chmod(0o755)
    (conda_bin / "activate").write_text(ACTIVATE)
    (root / "link_env.py").write_text(LINK_ENV)
    return bin_dir


def write_tiny_project(workdir: Path) -> None:
    """Two short recordings and unpaired text: enough for the inventory and the text stages."""
    import numpy as np
    import soundfile as sf

    from tests.conftest import PHRASES

    (workdir / "audio").mkdir(parents=True)
    for i in range(2):
        tone = 0.1 * np.sin(np.arange(16000) * 0.05 * (i + 1))
        sf.write(workdir / "audio" / f"u{i}.wav", tone.astype("float32"), 16000)
    (workdir / "text.txt").write_text("\n".join(PHRASES * 2) + "\n")
    config = {"languages": {"tiny": {"espeak": "en-us", "audio": {"paths": ["audio"]},
                                     "text": ["text.txt"],
                                     "splits": {"fractions": {"train": 0.5, "valid": 0.5}}}},
              "audio": {"shards": 1}, "text": {"min_phones": 1}, "gan": TINY_GAN}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


# One rule of envs/audio.yaml (inventory) and four of envs/text.yaml.
TARGETS = {"results/tiny/audio/inventory/rejects.tsv": "audio.yaml",
           "results/tiny/text/phones/lm.phones.filtered.txt": "text.yaml",
           "results/tiny/text/lm.words.arpa": "text.yaml"}
RULE_COMMANDS = {"inventory", "normalize", "lexicon", "phones", "word-lm"}


def use_conda(workdir: Path, path_first: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{path_first}{os.pathsep}{env.get('PATH', '')}", PYTHONNOUSERSITE="1")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
           "--cores", "2", "--use-conda", *TARGETS]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_use_conda_runs_rules_in_their_envs_with_a_stand_in_conda(tmp_path):
    stand_in, workdir = tmp_path / "standin", tmp_path / "project"
    path_first = install_stand_in_conda(stand_in)
    write_tiny_project(workdir)

    use_conda(workdir, path_first)
    for target in TARGETS:
        assert (workdir / target).stat().st_size > 0, target
    arpa = (workdir / "results/tiny/text/lm.words.arpa").read_text()
    assert "\\data\\" in arpa and "\\end\\" in arpa
    assert "fox" in (workdir / "results/tiny/text/words.txt").read_text()

    # One env per yaml used, each made from (Snakemake's copy of) that yaml, in its conda folder.
    created = (stand_in / "created.log").read_text().split()
    sources = {f.read_text(): f.name for f in ENVS.glob("*.yaml")}
    assert sorted(sources.get(Path(c).read_text()) for c in created) == sorted(
        set(TARGETS.values())), created
    envs = sorted(p for p in (workdir / ".snakemake" / "conda").iterdir() if p.is_dir())
    assert len(envs) == 2, envs
    for env in envs:  # each holds its yaml's packages only: neither lists torch
        site = next(env.glob("lib/python*/site-packages"))
        assert (site / "numpy").exists() and not (site / "torch").exists(), env

    # Every w2vu command ran with the python of one of those envs and w2vu from the repository.
    runs = [json.loads(line) for line in (stand_in / "python.log").read_text().splitlines()]
    commands = {r["argv"][3] if r["argv"][1:3] == ["-m", "w2vu"] else None: r for r in runs}
    assert RULE_COMMANDS <= set(commands), runs
    for command in RULE_COMMANDS:
        run = commands[command]
        assert Path(run["prefix"]).resolve() in [e.resolve() for e in envs], run
        assert Path(run["w2vu"]).resolve().is_relative_to(REPO / "w2vu"), run
    by_env = {Path(commands[c]["prefix"]).name for c in RULE_COMMANDS - {"inventory"}}
    assert len(by_env) == 1 and Path(commands["inventory"]["prefix"]).name not in by_env

    # A second run (outputs removed) reuses both envs: nothing is created again.
    activations = len((stand_in / "activated.log").read_text().split())
    for target in TARGETS:
        (workdir / target).unlink()
    use_conda(workdir, path_first)
    assert (stand_in / "created.log").read_text().split() == created
    assert len((stand_in / "activated.log").read_text().split()) > activations
    assert sorted(p for p in (workdir / ".snakemake" / "conda").iterdir() if p.is_dir()) == envs
