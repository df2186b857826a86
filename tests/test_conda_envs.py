"""Conda environments: every rule's env provides what its command imports, pinned as pyproject.

tests/test_use_conda.py runs the `--use-conda` route end to end with a stand-in `conda`.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import tomllib
import yaml

from tests.conftest import REPO
from w2vu.cli import build_parser

ENVS = REPO / "envs"
PACKAGE = REPO / "w2vu"
COMMAND = re.compile(r"\bpython -m w2vu\s+([a-z][a-z0-9-]*)")

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
