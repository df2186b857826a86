"""Long jobs show progress in the console Snakemake runs in, although a rule sends their stderr
to its log file: the workflow keeps the console open as descriptor 3 (W2VU_CONSOLE_FD)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

JOB = "{python} -m w2vu normalize --inputs t.txt --out o.txt > 'job log.txt' 2>&1"


@pytest.mark.parametrize("env,shown", [({"W2VU_CONSOLE_FD": "3", "W2VU_CONSOLE_EVERY": "0"}, 2),
                                       ({"W2VU_CONSOLE_FD": "3"}, 0),
                                       ({}, 0)])
def test_status_lines_reach_the_console_and_the_log_keeps_everything(tmp_path, env, shown):
    (tmp_path / "t.txt").write_text("hello world\n")
    # as the workflow's shell prefix does: keep the console as fd 3, then the rule's redirect
    command = "exec 3>&2; " + JOB.format(python=sys.executable)
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO), **env})
    assert done.returncode == 0, done.stderr
    console = done.stderr.splitlines()
    log = (tmp_path / "job log.txt").read_text().splitlines()
    assert len(console) == shown, done.stderr  # the default: one line a minute at most
    assert all(" w2vu normalize [job log.txt]: normalize: " in line for line in console)
    assert len(log) >= 2 and all(" INFO w2vu.text.normalize: normalize: " in line for line in log)
