"""The w2vu command: user errors are one clear line and exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys


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
