"""The Slurm profile on a real one-node Slurm (Debian's slurmctld, slurmd, munge) on localhost.

A tiny demo config runs locally up to GAN training. A copy of that run folder then reruns the
word LM (a CPU rule) and GAN training (a GPU rule: gan.gpu is true, so it declares gpu=1) through
`snakemake --profile workflow/profiles/slurm`; the two are independent, so one status poll sees
both (the plugin polls slowly: each level of the DAG costs 15 s or more). Slurm's own job
records (`scontrol show job`; there is no accounting database, so no sacct) show which jobs asked
for a GPU; the outputs must equal the local run's byte for byte (the node's GPU is fake, so
training runs on the CPU with device auto). Meanwhile a GPU job that fails, from a tiny Snakefile
through the same profile, must be reported as failed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests import slurm_cluster
from tests.conftest import REPO
from tests.workflow_helpers import TINY_GAN, snakemake

pytestmark = pytest.mark.slow
PROFILE = REPO / "workflow" / "profiles" / "slurm"
CONFIG = {"languages": {"demo": {"espeak": "en-us", "demo": {"minutes": 0.4, "seed": 3},
                                 "splits": {"fractions": {"train": 0.7, "valid": 0.3}}}},
          "audio": {"shards": 1}, "gan": {**TINY_GAN, "gpu": True}}
# The rules the Slurm run redoes: a CPU rule and the GPU rule, independent of each other.
CPU_RULE, GPU_RULE = "word_lm", "gan_train"
COMPARED = ("results/*/text/lm.words.arpa", "results/*/gan/*/*/best.pt",
            "results/*/gan/*/*/metrics.tsv")


@pytest.fixture(scope="module")
def cluster():
    reason = slurm_cluster.install()
    if reason:
        pytest.skip(reason)
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.fail("snakemake-executor-plugin-slurm is not installed in this environment "
                    "(pip install snakemake-executor-plugin-slurm==2.8.0)")
    running = slurm_cluster.start()
    try:
        yield running
    finally:
        running.stop()


def snakemake_on_slurm(workdir: Path, *args: str, timeout: float = 300) -> tuple[int, str]:
    """Run Snakemake with the Slurm profile (on the repository's Snakefile unless `args` name
    another); on timeout stop it with SIGINT, which cancels the Slurm jobs (SIGTERM would wait for
    them), then fail."""
    snakefile = [] if "--snakefile" in args else ["--snakefile", str(REPO / "Snakefile")]
    cmd = [sys.executable, "-m", "snakemake", "--profile", str(PROFILE), *snakefile,
           "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"),
           "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5", *args]
    log = workdir / f"snakemake-slurm-{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            pytest.fail(f"snakemake on Slurm ran over {timeout:.0f} s; stopped it with SIGINT:\n"
                        + log.read_text()[-5000:])
    return proc.returncode, log.read_text()


def jobs_by_rule(cluster: slurm_cluster.Cluster, workdir: Path) -> dict[str, list[dict]]:
    """Slurm's records of the jobs run in `workdir`, by rule (the plugin puts the rule name in
    the job comment: rule_<name>_wildcards_...)."""
    found: dict[str, list[dict]] = {}
    for job in cluster.jobs():
        if job.get("WorkDir") == str(workdir):
            rule = job.get("Comment", "").removeprefix("rule_").split("_wildcards_")[0]
            found.setdefault(rule, []).append(job)
    return found


def digests(workdir: Path) -> dict[str, str]:
    return {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for pattern in COMPARED for p in sorted(workdir.glob(pattern))}


def copy_run(local: Path, to: Path) -> Path:
    """The local run folder with its Snakemake metadata, minus GAN rolling checkpoints (a forced
    rerun should train from scratch, not resume)."""
    shutil.copytree(local, to, symlinks=True,
                    ignore=shutil.ignore_patterns("locks", "incomplete", "slurm_logs"))
    for last in to.glob("results/*/gan/*/*/checkpoint_last.pt"):
        last.unlink()
    return to


# A job that fails on the node, from a tiny Snakefile through the same profile: a GPU rule that
# records what GPU it was given and exits with an error.
FAILING_SNAKEFILE = """\
rule all:
    input: "gpu.done"

rule broken_gpu_step:
    output: "gpu.done"
    log: "gpu.log"
    threads: 1
    resources: gpu=1
    shell: "echo CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-unset}} > {log}; exit 3"
"""


def test_profile_submits_gpu_rules_with_a_gpu_and_matches_local_run(cluster, tmp_path):
    failing = tmp_path / "failing"
    failing.mkdir()
    (failing / "Snakefile").write_text(FAILING_SNAKEFILE)
    (failing / "config.yaml").write_text("{}\n")
    local = tmp_path / "local"
    local.mkdir()
    (local / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    with ThreadPoolExecutor(1) as pool:  # the failing run waits on Slurm while the local run works
        failed_run = pool.submit(snakemake_on_slurm, failing, "--snakefile",
                                 str(failing / "Snakefile"))
        snakemake(local, "--until", GPU_RULE, CPU_RULE)
        rc, out = failed_run.result()

    # The failure is reported as such, and the failing GPU job did get the (fake) GPU.
    assert rc != 0, out[-5000:]
    assert "Error in rule broken_gpu_step" in out and "status is: 'FAILED'" in out, out[-5000:]
    jobs = jobs_by_rule(cluster, failing)
    assert [j["JobState"] for j in jobs.get("broken_gpu_step", [])] == ["FAILED"], jobs
    assert jobs["broken_gpu_step"][0].get("TresPerJob") == "gres:gpu:1", jobs
    assert (failing / "gpu.log").read_text().strip() == "CUDA_VISIBLE_DEVICES=0"

    expected = digests(local)
    assert any(k.endswith("best.pt") for k in expected), expected
    assert any(k.endswith("lm.words.arpa") for k in expected), expected
    on_slurm = copy_run(local, tmp_path / "slurm")
    rc, out = snakemake_on_slurm(on_slurm, "--forcerun", CPU_RULE, GPU_RULE,
                                 "--until", CPU_RULE, GPU_RULE)
    assert rc == 0, out[-5000:]
    jobs = jobs_by_rule(cluster, on_slurm)
    assert set(jobs) == {CPU_RULE, GPU_RULE}, (jobs, out[-3000:])
    for job in jobs[GPU_RULE]:  # --gpus=1 and --cpus-per-gpu=<threads>
        assert job["JobState"] == "COMPLETED", job
        assert job.get("TresPerJob") == "gres:gpu:1", job
        assert job.get("CpusPerTres") == f"gres:gpu:{job['NumCPUs']}", job
    for job in jobs[CPU_RULE]:  # --cpus-per-task, no GPU
        assert job["JobState"] == "COMPLETED", job
        assert "gpu" not in job.get("TresPerJob", "") + job.get("TRES", ""), job
        assert "CpusPerTres" not in job, job
    # Same bytes as the local run: GAN training ran on the CPU (device auto, no CUDA) although its
    # job was given the fake GPU.
    assert digests(on_slurm) == expected


def test_stopping_the_cluster_puts_etc_slurm_back(tmp_path, monkeypatch):
    """A slurm.conf left behind naming a stopped controller would make every later Snakemake start
    wait for scontrol (the Slurm plugin asks it at import): stop() restores /etc/slurm as found,
    and a test cluster's conf left by an older version of this module counts as not there."""
    monkeypatch.setattr(slurm_cluster, "ETC", tmp_path)
    cluster = slurm_cluster.Cluster(node="n", cpus=1)
    (tmp_path / "slurm.conf").write_text("ClusterName=site\n")
    (tmp_path / "cgroup.conf").write_text("CgroupPlugin=autodetect\n")
    cluster.saved_etc = slurm_cluster.save_etc()
    (tmp_path / "slurm.conf").write_text(slurm_cluster.slurm_conf("n", 1, 1000))
    (tmp_path / "gres.conf").write_text("AutoDetect=off\n")
    (tmp_path / "cgroup.conf").unlink()
    cluster.stop()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cgroup.conf", "slurm.conf"]
    assert (tmp_path / "slurm.conf").read_text() == "ClusterName=site\n"
    assert (tmp_path / "cgroup.conf").read_text() == "CgroupPlugin=autodetect\n"

    (tmp_path / "slurm.conf").write_text(slurm_cluster.slurm_conf("n", 1, 1000))  # stale, ours
    (tmp_path / "gres.conf").write_text("AutoDetect=off\n")
    cluster.saved_etc = slurm_cluster.save_etc()
    cluster.stop()
    assert [p.name for p in tmp_path.iterdir()] == ["cgroup.conf"]
