"""bench/gpu_check.py keeps working without a GPU: its toy-size CPU run fills every row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHECKS = {"extraction", "PCA", "k-means", "GAN 1.0", "GAN 2.0", "CTC fine-tuning"}


def test_gpu_check_cpu_small(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--cpu-small", "--threads", "1",
         "--json", str(out)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    measured = [r for r in rows if r["setting"] not in ("skipped", "failed")]
    assert {r["check"] for r in measured} == CHECKS, rows
    assert not [r for r in rows if r["setting"] == "failed"], rows
    assert all(r["value"] > 0 for r in measured), rows
    # each check's first row is its baseline; the others carry a ratio to it
    for check in CHECKS - {"PCA", "k-means"}:
        ours = [r for r in measured if r["check"] == check]
        assert len(ours) >= 2 and ours[0]["ratio"] is None, ours
        assert all(r["ratio"] > 0 for r in ours[1:]), ours
    # the table is the last thing printed: header line, then one line per row
    lines = result.stdout.rstrip().splitlines()
    assert lines[-len(rows) - 1].startswith("check "), result.stdout[-2000:]
    assert lines[-len(rows) - 2].startswith("w2vu GPU check"), result.stdout[-2000:]
