"""Conda environments: every rule's env provides what its command imports, pinned as pyproject;
and Snakemake's `--use-conda` route, run end to end with a stand-in `conda` (venv + links).

conda cannot be installed on these machines, so the stand-in is what exercises `--use-conda`: it
proves Snakemake's plumbing (one env per yaml, activation, the rule running with the env's python
and the repository on PYTHONPATH, reuse on the next run), not conda's solving or its channels.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import tomllib
import yaml

from tests.conftest import REPO
from tests.workflow_helpers import TINY_GAN
from w2vu.cli import build_parser

ENVS = REPO / "envs"
PACKAGE = REPO / "w2vu"
COMMAND = re.compile(r"\bpython -m w2vu\s+([a-z][a-z0-9-]*)")
CONDA_VERSION = "24.7.1"  # Snakemake 9's MIN_CONDA_VER

# Loads the workflow (demo config) through Snakemake's API, as `--use-conda` would, and prints
# every rule's conda env, its folder and its shell command.
DUMP_RULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (ConfigSettings, DeploymentMethod, DeploymentSettings,
                                      OutputSettings, ResourceSettings)
snakefile, workdir = Path(sys.argv[1]), Path(sys.argv[2])
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=ConfigSettings(configfiles=[snakefile.parent / "config" / "config.yaml"]),
        deployment_settings=DeploymentSettings(deployment_method={DeploymentMethod.CONDA}),
        snakefile=snakefile, workdir=workdir)._workflow
    rules = {r.name: {"conda": None if r.conda_env is None else str(r.conda_env),
                      "basedir": str(r.basedir), "shell": r.shellcmd} for r in workflow.rules}
sys.stdout.write("\\nRULES " + json.dumps(rules) + "\\n")
"""


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(requirements: list[str]) -> dict[str, str]:
    """{normalized name: version} of `name==version` requirements; anything else is an error."""
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)", requirement.strip())
        assert match, f"not pinned as name==version: {requirement!r}"
        pins[normalize(match.group(1))] = match.group(2)
    return pins


@cache
def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return parse_pins(requirements)


def env_pip_pins(env_file: Path) -> dict[str, str]:
    """The `pip:` list of a conda env file, as {normalized name: version}."""
    spec = yaml.safe_load(env_file.read_text())
    pip = [d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, f"{env_file.name}: expected one `pip:` list"
    return parse_pins(pip[0])


# ------------------------------------------------------------------------------ rules and envs
@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> dict[str, dict]:
    """Every rule of the workflow: conda env (resolved path), shell command."""
    workdir = tmp_path_factory.mktemp("rules")
    done = subprocess.run([sys.executable, "-c", DUMP_RULES, str(REPO / "Snakefile"),
                           str(workdir)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RULES "))
    found = json.loads(line.removeprefix("RULES "))
    for rule in found.values():
        if rule["conda"]:
            rule["env"] = (Path(rule["basedir"]) / rule["conda"]).resolve()
    return found


# ------------------------------------------------------------------- what a command imports
def module_file(name: str) -> Path | None:
    """The source file of a w2vu module (package __init__ or module.py), or None."""
    parts = name.split(".")
    base = REPO.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def has_fallback(node: ast.Try) -> bool:
    """True when the `try:` catches ImportError and can carry on (does not always raise)."""
    for handler in node.handlers:
        caught = ast.unparse(handler.type) if handler.type else "ImportError"
        if re.search(r"\b(ImportError|ModuleNotFoundError)\b", caught) and not any(
                isinstance(n, ast.Raise) for n in handler.body):
            return True
    return False


def imports_in(nodes: list[ast.AST]) -> dict[str, bool]:
    """{absolute module name: True when only imported with a fallback} for every import under
    `nodes` (for `from a import b`: `a`, and `a.b` when that is a module), leaving out
    `if TYPE_CHECKING:` blocks. A fallback import sits in a `try:` whose `except ImportError`
    goes on without it (kenlm -> the pure-Python ARPA scorer)."""
    found: dict[str, bool] = {}

    def add(name: str, fallback: bool) -> None:
        found[name] = found.get(name, True) and fallback

    def visit(node: ast.AST, fallback: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child, fallback)
            return
        if isinstance(node, ast.Try) and has_fallback(node):
            for child in node.body:
                visit(child, True)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, fallback)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, fallback)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports are not followed"
            add(node.module, fallback)
            for alias in node.names:
                if module_file(f"{node.module}.{alias.name}"):
                    add(f"{node.module}.{alias.name}", fallback)
        for child in ast.iter_child_nodes(node):
            visit(child, fallback)

    for node in nodes:
        visit(node, False)
    return found


@cache
def module_tree(name: str) -> ast.Module:
    return ast.parse(module_file(name).read_text(), filename=str(module_file(name)))


def third_party_imports(start: dict[str, bool], entry: str | None = None) -> dict[str, bool]:
    """{top-level third-party module: True when only imported with a fallback} for the modules
    `start`, followed through every w2vu module they import. A module counts whole: an import
    inside any of its functions counts (a superset of one command's path, never a subset).
    `entry` (w2vu.cli) is not followed: `start` already holds what the command takes from it."""
    seen: set[str] = {entry} if entry else set()
    todo = dict(start)
    third: dict[str, bool] = {}
    while todo:
        name, fallback = todo.popitem()
        top = name.split(".")[0]
        if top != "w2vu":
            if top not in sys.stdlib_module_names and top != "__future__":
                third[top] = third.get(top, True) and fallback
            continue
        # importing a.b.c runs a/__init__, a/b/__init__ first
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            parent = ".".join(parts[:i])
            if parent in seen or not module_file(parent):
                continue
            seen.add(parent)
            todo = merged(todo, imports_in(module_tree(parent).body))
    return third


def merged(*found: dict[str, bool]) -> dict[str, bool]:
    """Union of {module: fallback-only} maps: a module is fallback-only if it is in every one."""
    out: dict[str, bool] = {}
    for one in found:
        for module, fallback in one.items():
            out[module] = out.get(module, True) and fallback
    return out


def handler_imports(module: str, handler_name: str) -> dict[str, bool]:
    """Modules a handler in the cli phase module `module` imports: its own (lazy) imports, those
    of the module's helpers it calls, and the module's top-level imports."""
    tree = module_tree(module)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    found, todo, done = imports_in(top_level), [handler_name], set()
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        found = merged(found, imports_in([functions[name]]))
        todo += [n.id for n in ast.walk(functions[name])
                 if isinstance(n, ast.Name) and n.id in functions and n.id != name]
    return merged(found, imports_in(module_tree("w2vu.__main__").body))


@cache
def subcommand_handlers() -> dict[str, tuple[str, str]]:
    """{`w2vu` subcommand: (its cli module, the name of its handler function there)}."""
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if a.choices and isinstance(a.choices, dict)]
    handlers = {name: sub.get_default("handler") for name, sub in subparsers.choices.items()}
    return {name: (h.__module__, h.__name__) for name, h in handlers.items()}


def command_imports(shell: str) -> tuple[str, dict[str, bool]]:
    """(what the shell command runs, {third-party top-level module it pulls in: fallback-only})."""
    match = COMMAND.search(shell)
    assert match, f"no `python -m w2vu ...` in {shell!r}"
    subcommand = match.group(1)
    handlers = subcommand_handlers()
    assert subcommand in handlers, f"`w2vu {subcommand}` is not a subcommand of w2vu/cli/"
    return f"w2vu {subcommand}", third_party_imports(handler_imports(*handlers[subcommand]),
                                                        entry="w2vu.cli")


@cache
def module_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def test_every_rule_with_a_command_has_a_conda_env_file(rules):
    commands = {name: r for name, r in rules.items() if r["shell"]}
    assert len(commands) >= 40, sorted(commands)
    missing = [name for name, r in commands.items() if not r["conda"]]
    assert not missing, f"rules without `conda:`: {missing}"
    absent = {name: str(r["env"]) for name, r in commands.items() if not r["env"].is_file()}
    assert not absent, f"conda env files not found: {absent}"
    assert {r["env"].parent for r in commands.values()} == {ENVS}


def test_every_env_provides_the_modules_its_rules_import(rules):
    """For each rule: the third-party modules its `w2vu` command imports (statically, through
    the handler and every w2vu module reached) map to distributions pinned in the rule's env.
    Imports with a tested fallback (kenlm, threadpoolctl, espeakng-loader) may be left out; they
    are printed."""
    problems, fallbacks, checked = [], set(), 0
    for name, rule in sorted(rules.items()):
        if not rule["shell"]:
            continue
        command, modules = command_imports(rule["shell"])
        pins = env_pip_pins(rule["env"])
        for module, fallback in sorted(modules.items()):
            checked += 1
            dists = sorted(set(module_distributions().get(module, [])))
            if not dists:
                problems.append(f"{name} ({command}): module {module!r} maps to no installed "
                                "distribution")
            elif not any(normalize(d) in pins for d in dists):
                wanted = " or ".join(f"{d}=={pyproject_pins().get(normalize(d), '?')}"
                                     for d in dists)
                if fallback:
                    fallbacks.add(f"envs/{rule['env'].name} has no {wanted} ({module!r}): "
                                  f"{command} uses its fallback")
                else:
                    problems.append(f"{name} ({command}): imports {module!r}, but "
                                    f"envs/{rule['env'].name} does not list {wanted}")
    assert checked > 100
    print("\n".join(sorted(fallbacks)))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("env_file", sorted(ENVS.glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_match_pyproject(env_file):
    """The envs pin exactly the versions the venv (and the tests) run with."""
    declared, tested = env_pip_pins(env_file), pyproject_pins()
    drift = {name: (version, tested.get(name)) for name, version in declared.items()
             if tested.get(name) != version}
    assert not drift, f"{env_file.name}: (env pin, pyproject pin) differ: {drift}"


# --------------------------------------------------------------- --use-conda, end to end
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
