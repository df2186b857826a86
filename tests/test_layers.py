"""The package's shape: every `w2vu` import (lazy ones inside functions included) goes to the same
floor or a lower one, and no group of modules imports itself in a circle.

Floors, top to bottom: the command line; self-training and the finished model; the steps that
decode and judge (decoding, evaluation, report); the steps that learn (GAN, features, the demo and
digits corpora); the steps that read
the inputs (audio, text); the shared kernels (io, the training kernel, error rates, the ARPA
scorer, process pools, the Kaldi and espeak bindings); errors and logging. A module is placed by
the longest prefix listed.
"""

from __future__ import annotations

import ast

from tests.conftest import REPO

FLOORS = {
    "w2vu.__main__": 7,
    "w2vu.cli": 7,
    "w2vu.selftrain": 6,
    "w2vu.model": 6,  # the finished recognizer, assembled from every step
    "w2vu.decode": 5,
    "w2vu.eval": 5,
    "w2vu.report": 5,
    "w2vu.gan": 4,
    "w2vu.features": 4,
    "w2vu.demo": 4,
    "w2vu.digits": 4,
    "w2vu.audio": 3,
    "w2vu.text": 3,
    "w2vu.data": 3,
    "w2vu.io": 2,
    "w2vu.train": 2,
    "w2vu.eval.metrics": 2,  # error rates without model imports: every step scores alike
    "w2vu.text.arpa": 2,  # the phone-LM scorer the GAN, decoding and self-training share
    "w2vu.parallel": 2,
    "w2vu.kaldi_stack": 2,
    "w2vu.espeak": 2,
    "w2vu": 1,
    "w2vu.errors": 0,
    "w2vu.logs": 0,
}


def modules() -> dict[str, ast.Module]:
    """{dotted name: parsed source} of every module of the package."""
    found = {}
    for path in sorted((REPO / "w2vu").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return found


def imports(tree: ast.Module, known: set[str]) -> set[str]:
    """The w2vu modules a module imports anywhere in its body (`from a import b`: `a.b` when that
    is a module, else `a`)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known
                     else node.module for alias in node.names]
        else:
            continue
        out |= {name for name in names if name.split(".")[0] == "w2vu"}
    return out


def floor(module: str) -> int:
    prefixes = [p for p in FLOORS if module == p or module.startswith(p + ".")]
    assert prefixes, f"{module} has no floor: add its package to FLOORS"
    return FLOORS[max(prefixes, key=len)]


def graph() -> dict[str, set[str]]:
    trees = modules()
    known = set(trees)
    return {name: imports(tree, known) - {name} for name, tree in trees.items()}


def upward(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} ({floor(a)}) imports {b} ({floor(b)})"
                  for a, targets in edges.items() for b in targets if floor(b) > floor(a))


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Import circles found by a depth-first walk (each back edge closes one)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_no_upward_import():
    found = upward(graph())
    assert not found, "imports that go up a floor:\n" + "\n".join(found)


def test_no_import_circle():
    found = circles(graph())
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_checks_see_a_circle_and_an_upward_import():
    """The checks themselves: a lazy import is seen, a planted circle and upward import found."""
    tree = ast.parse("def f():\n    from w2vu.cli import main\n")
    assert imports(tree, {"w2vu.cli"}) == {"w2vu.cli"}
    planted = {"w2vu.selftrain.a": {"w2vu.selftrain.b"}, "w2vu.selftrain.b": {"w2vu.selftrain.a"},
               "w2vu.eval.metrics": {"w2vu.gan.trainer"}}
    assert circles(planted) == [["w2vu.selftrain.a", "w2vu.selftrain.b", "w2vu.selftrain.a"]]
    assert upward(planted) == ["w2vu.eval.metrics (2) imports w2vu.gan.trainer (4)"]


def test_bench_scripts_import_what_exists():
    """Every name a bench script imports from w2vu or devkit (lazily or not) exists: the bench
    is run by hand, rarely, so a moved function would otherwise break it silently."""
    import importlib

    missing = []
    for path in sorted((REPO / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.split(".")[0] in ("w2vu", "devkit")):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        missing.append(f"{path.name}:{node.lineno} {node.module}.{alias.name}")
    assert not missing, missing


def _top_imports(folder: str) -> dict[str, set[str]]:
    """{file: first names of every module it imports, lazily or not} for the .py under folder."""
    out = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(REPO))] = names
    return out


def test_helpers_are_shared_through_devkit_not_tests():
    """The package imports no development code; the benchmarks and devkit/ nothing from tests/
    (what both need lives in devkit/)."""
    rules = {"w2vu": {"tests", "bench", "devkit"}, "bench": {"tests"}, "devkit": {"tests", "bench"}}
    wrong = [f"{path} imports {sorted(names & banned)}"
             for folder, banned in rules.items()
             for path, names in _top_imports(folder).items() if names & banned]
    assert not wrong, wrong
