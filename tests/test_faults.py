"""Faults a long workflow meets: `kill -9` mid-job, then a rerun; a full disk under an output."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import psutil
import pytest
import torch
import yaml

from tests import workflow_helpers
from tests.workflow_helpers import CORPUS, snakemake, write_config, write_corpus

pytestmark = pytest.mark.slow
# More updates than TINY_GAN, so that the job is still training when a checkpoint appears.
GAN = {"max_updates": 20, "validate_every": 5, "batch_size": 4}
LANGUAGE = {"audio": {"paths": [CORPUS]}, "text": ["text.txt"],
            "splits": {"fractions": {"train": 0.7, "valid": 0.3}}}
FEATURES = "results/tiny/features/layer/train"
RUN = "results/tiny/gan/w2vu1/cpref_gpref_smref_seed1"


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The command line `tests.workflow_helpers.snakemake` runs, captured rather than copied."""
    with mock.patch.object(workflow_helpers.subprocess, "run") as run:
        snakemake(workdir, *args, check=False)
    return run.call_args.args[0]


def kill_when(workdir: Path, target: str, ready: Callable[[], bool],
              timeout: float = 900) -> str:
    """Start Snakemake towards `target` in its own process group, SIGKILL the whole group (the
    scheduler and its jobs) as soon as `ready()`; returns what Snakemake printed until then."""
    log = workdir / "killed-run.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen(snakemake_command(workdir, target), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not ready():
                if proc.poll() is not None:
                    pytest.fail(f"Snakemake ended (rc {proc.returncode}) before the job to "
                                f"interrupt was caught:\n{log.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no job to interrupt after {timeout} s:\n{log.read_text()}")
                time.sleep(0.02)
        finally:
            try:
                jobs = psutil.Process(proc.pid).children(recursive=True)
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, psutil.NoSuchProcess):
                jobs = []
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _, alive = psutil.wait_procs(jobs, timeout=30)
    assert not alive, f"jobs outlived the kill: {alive}"
    return log.read_text()


def rerun(workdir: Path, target: str) -> subprocess.CompletedProcess:
    """The same command again, after `--unlock`: a killed Snakemake leaves its lock behind
    ("Directory cannot be locked"), and removing it is the documented way on. The default
    profile's rerun-incomplete then reruns the job that was killed."""
    snakemake(workdir, "--unlock")
    return snakemake(workdir, target)


def fresh_copy(corpus: Path, workdir: Path) -> Path:
    """The corpus and config of the module's workdir, in a new workdir without results."""
    workdir.mkdir()
    for name in (CORPUS, "text.txt", "config.yaml"):
        src = corpus / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, workdir / name)
    return workdir


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, synth) -> Path:
    workdir = write_corpus(tmp_path_factory.mktemp("corpus"), synth)
    write_config(workdir, LANGUAGE, {"shards": 1})
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    (workdir / "config.yaml").write_text(yaml.safe_dump({**config, "gan": GAN}))
    return workdir


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """An uninterrupted run to the GAN's best.pt (features on the way)."""
    workdir = fresh_copy(corpus, tmp_path_factory.mktemp("reference") / "run")
    snakemake(workdir, f"{RUN}/best.pt")
    return workdir


def assert_same_features(workdir: Path, reference: Path) -> None:
    for ext in (".npy", ".lengths"):
        ours, theirs = workdir / (FEATURES + ext), reference / (FEATURES + ext)
        assert ours.read_bytes() == theirs.read_bytes(), ext
    np.testing.assert_array_equal(np.load(workdir / f"{FEATURES}.npy"),
                                  np.load(reference / f"{FEATURES}.npy"))


def test_kill_during_extraction_then_rerun_gives_the_same_features(corpus, reference, tmp_path):
    workdir = fresh_copy(corpus, tmp_path / "run")
    logs = workdir / "logs/tiny/extract/layer/train"
    shards = workdir / "results/tiny/features/layer/shards/train"

    def extracting() -> bool:
        """An extract job has read its manifest (its log says so) or is writing a shard."""
        started = any("extract: rows" in p.read_text(errors="replace")
                      for p in logs.glob("*.log")) if logs.is_dir() else False
        return started or (shards.is_dir() and any(shards.glob(".*.tmp-*")))

    kill_when(workdir, f"{FEATURES}.npy", extracting)
    assert not (workdir / f"{FEATURES}.npy").exists(), "the kill came after extraction"

    done = rerun(workdir, f"{FEATURES}.npy")
    assert "rule extract:" in done.stdout + done.stderr
    assert_same_features(workdir, reference)


def test_kill_during_gan_training_then_rerun_resumes_exactly(corpus, reference, tmp_path):
    workdir = fresh_copy(corpus, tmp_path / "run")
    last = workdir / RUN / "checkpoint_last.pt"
    kill_when(workdir, f"{RUN}/best.pt", last.exists)
    before = torch.load(last, map_location="cpu", weights_only=True)["update"]
    assert 0 < before < GAN["max_updates"], before

    rerun(workdir, f"{RUN}/best.pt")
    log = (workdir / "logs/tiny/gan_train/w2vu1/cpref_gpref_smref_seed1.log").read_text()
    assert f"resuming from {RUN}/checkpoint_last.pt at update {before}" in log, log
    ours = torch.load(workdir / RUN / "best.pt", map_location="cpu", weights_only=True)
    theirs = torch.load(reference / RUN / "best.pt", map_location="cpu", weights_only=True)
    assert ours["update"] == theirs["update"]
    assert ours["model"].keys() == theirs["model"].keys()
    for key, value in theirs["model"].items():
        assert torch.equal(ours["model"][key], value), key
    metrics = [d / RUN / "metrics.tsv" for d in (workdir, reference)]
    assert metrics[0].read_text() == metrics[1].read_text()
    assert_same_features(workdir, reference)


def fill(folder: Path) -> None:
    """Write into `folder` until its filesystem is full."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(bytes(4096))
        except OSError as e:
            assert e.errno == errno.ENOSPC, e


def test_full_disk_under_an_output_fails_clearly_and_a_rerun_recovers(corpus, reference,
                                                                        tmp_path):
    """The features folder is a full filesystem: the run fails with an error naming what could
    not be written, leaves nothing under a declared name, and a rerun after freeing space
    completes with the uninterrupted run's features."""
    workdir = fresh_copy(corpus, tmp_path / "run")
    full = workdir / "results/tiny/features"
    full.mkdir(parents=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({mount.stderr.strip()}); "
                    "needs root or CAP_SYS_ADMIN")
    try:
        fill(full)
        done = snakemake(workdir, f"{FEATURES}.npy", check=False)
        written = sorted(p.relative_to(full).as_posix() for p in full.rglob("*")
                         if p.is_file() and p.name != "filler")
    finally:
        subprocess.run(["umount", str(full)], check=True)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert written == [], f"left on the full disk: {written}"
    assert not (workdir / f"{FEATURES}.npy").exists()

    snakemake(workdir, f"{FEATURES}.npy")
    assert_same_features(workdir, reference)
    # One line says what failed and where, e.g. "extract: cannot write results/tiny/features/
    # layer/shards/train/000.npy: [Errno 28] No space left on device", not only a traceback.
    clear = [line for line in output.splitlines()
             if "No space left on device" in line and "results/tiny/features/" in line]
    assert clear, f"no error line naming the full path and the cause:\n{output}"
