"""The w2vu command: user errors are one clear line and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

from tests.conftest import REPO
from w2vu.cli import build_parser


def w2vu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "w2vu", *args], capture_output=True, text=True)


def test_user_error_is_one_line_without_traceback(tmp_path):
    done = w2vu("inventory", "--paths", str(tmp_path / "missing dir"), "--extensions", "wav",
                "--out-dir", str(tmp_path / "inv"), "--out-rejects", str(tmp_path / "r.tsv"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_every_step_has_a_subcommand():
    done = w2vu("--help")
    for step in ("demo-corpus", "inventory", "convert", "vad", "trim", "manifest", "labels",
                 "audio-summary"):
        assert step in done.stdout


def test_every_rule_shell_names_a_registered_command():
    """Each rule's `python -m w2vu COMMAND [FIGURE]` in workflow/rules/*.smk is a subcommand of
    the parser (and a report figure of `w2vu report`), so a renamed command cannot strand a rule."""
    parser = build_parser()
    commands = subparsers_of(parser)
    figures = subparsers_of(commands["report"])
    shells = 0
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for line in smk.read_text(encoding="utf-8").splitlines():
            for command, figure in re.findall(r"python -m w2vu\s+([a-z][a-z0-9-]*)\s*([a-z-]*)",
                                              line):
                shells += 1
                assert command in commands, f"{smk.name}: `w2vu {command}` is not registered"
                if command == "report":
                    assert figure in figures, f"{smk.name}: `w2vu report {figure}` is unknown"
    assert shells >= 40, f"only {shells} `python -m w2vu` shell lines found"
    assert "python -m w2vu." not in "".join(
        p.read_text(encoding="utf-8") for p in (REPO / "workflow" / "rules").glob("*.smk")), \
        "rules run the one `w2vu` entry point, not a module's own"


def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices
