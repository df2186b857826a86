"""A one-node Slurm cluster on localhost for tests: Debian's slurmctld, slurmd and munge.

The node has one fake GPU (gres `gpu` backed by /dev/null), so jobs can ask for a GPU and get
CUDA_VISIBLE_DEVICES=0 without a device behind it. No accounting database: sacct does not work,
job records come from `squeue --states=all` (finished jobs stay there for MinJobAge, 300 s) and
from `scontrol show job`. The recipe: shared/reference/slurm-single-node.md.

Daemons are started by hand (Debian's policy-rc.d refuses to start services) and stopped by the
PIDs they write. Everything needs root; `install()` apt-installs the packages when missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch",
            "/usr/bin/squeue", "/usr/bin/scontrol", "/usr/bin/sinfo")
ETC = Path("/etc/slurm")
RUN = Path("/run/slurm")
PIDS = {"slurmd": RUN / "slurmd.pid", "slurmctld": RUN / "slurmctld.pid",
        "munged": Path("/run/munge/munged.pid")}
# The node claims at least this much, whatever the machine has (SlurmdParameters=config_overrides):
# nothing is enforced here (no cgroups), the profile's GPU rules ask for 16 GB, and a GPU job and a
# CPU job can run side by side on a 2-core runner (jobs then share the cores, as local jobs do).
MEMORY_MB = 64000
MIN_CPUS = 4
LOGS = {"slurmctld": Path("/var/log/slurm/slurmctld.log"),
        "slurmd": Path("/var/log/slurm/slurmd.log")}


def installed() -> bool:
    return all(Path(b).exists() for b in BINARIES)


def install(timeout: float = 300) -> str | None:
    """Install the Debian packages if they are missing; the reason when that is impossible."""
    if installed():
        return None
    if os.geteuid() != 0:
        return f"not root, and Slurm is not installed (apt-get install {' '.join(PACKAGES)})"
    if not shutil.which("apt-get"):
        return f"no apt-get to install {' '.join(PACKAGES)}"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=120", "-y", "-qq"]
    try:
        done = subprocess.run([*apt, "install", "--no-install-recommends", *PACKAGES], env=env,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:  # stale package lists: update once and retry
            subprocess.run([*apt, "update"], env=env, capture_output=True, timeout=timeout)
            done = subprocess.run([*apt, "install", "--no-install-recommends", *PACKAGES],
                                  env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"apt-get install {' '.join(PACKAGES)} timed out after {timeout:.0f} s"
    if done.returncode != 0 or not installed():
        return f"apt-get install {' '.join(PACKAGES)} failed: {done.stderr[-500:]}"
    return None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Cluster:
    """A running one-node cluster; `stop()` kills exactly the daemons it started."""

    node: str
    cpus: int
    pids: dict[str, int] = field(default_factory=dict)
    # /etc/slurm files as they were before start(): their text, or None where there was none.
    saved_etc: dict[Path, str | None] = field(default_factory=dict)

    def stop(self, timeout: float = 15) -> None:
        """Kill our daemons, then put /etc/slurm back as it was.

        A slurm.conf left behind naming a controller that no longer runs would make every later
        Snakemake start wait ~10 s: the Slurm executor plugin runs `scontrol show config` when it
        is imported, which Snakemake does at every start, and scontrol waits for the controller.
        """
        self._stop_daemons(timeout)
        restore_etc(self.saved_etc)
        self.saved_etc = {}

    def _stop_daemons(self, timeout: float) -> None:
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None or not _running(pid):
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _running(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _running(pid):
                os.kill(pid, signal.SIGKILL)

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as key=value pairs (kept while the job is within MinJobAge)."""
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                             text=True, timeout=30).stdout
        fields = {}
        for token in out.split():
            key, sep, value = token.partition("=")
            if sep:
                fields[key] = value
        return fields

    def jobs(self) -> list[dict[str, str]]:
        """Every job Slurm still remembers, any state, with its `scontrol show job` fields."""
        ids = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i"],
                             capture_output=True, text=True, timeout=30).stdout.split()
        return [self.job(i) for i in ids]


def slurm_conf(node: str, cpus: int, memory_mb: int) -> str:
    return f"""\
ClusterName=w2vutest
SlurmctldHost={node}
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile={PIDS["slurmctld"]}
SlurmdPidFile={PIDS["slurmd"]}
SlurmctldLogFile={LOGS["slurmctld"]}
SlurmdLogFile={LOGS["slurmd"]}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
GresTypes=gpu
NodeName={node} CPUs={cpus} RealMemory={memory_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


ETC_FILES = ("slurm.conf", "gres.conf", "cgroup.conf")


def save_etc() -> dict[Path, str | None]:
    """The /etc/slurm files start() replaces, as they are now (None: absent).

    A slurm.conf of this test cluster (ClusterName=w2vutest) left by an earlier version of this
    module that did not restore it counts as absent, so that stop() removes it.
    """
    saved: dict[Path, str | None] = {}
    for name in ETC_FILES:
        try:
            saved[ETC / name] = (ETC / name).read_text()
        except FileNotFoundError:
            saved[ETC / name] = None
    if "ClusterName=w2vutest" in (saved[ETC / "slurm.conf"] or ""):  # with its gres.conf
        saved[ETC / "slurm.conf"] = saved[ETC / "gres.conf"] = None
    return saved


def restore_etc(saved: dict[Path, str | None]) -> None:
    for path, text in saved.items():
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)


def _check_output(cmd: list[str], timeout: float = 30) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout


def start(timeout: float = 60) -> Cluster:
    """Write the configuration, start munged, slurmctld and slurmd, wait for an idle node.

    Refuses to start when Slurm daemons are already running (they would not be ours to stop).
    """
    for name, path in PIDS.items():
        pid = _read_pid(path)
        if pid is not None and _running(pid):
            raise RuntimeError(f"{name} already runs (pid {pid}); not touching it")
    node = socket.gethostname().split(".")[0]
    cluster = Cluster(node=node, cpus=max(os.cpu_count() or 1, MIN_CPUS), saved_etc=save_etc())
    ETC.mkdir(parents=True, exist_ok=True)
    (ETC / "slurm.conf").write_text(slurm_conf(node, cluster.cpus, MEMORY_MB))
    (ETC / "gres.conf").write_text(f"AutoDetect=off\nNodeName={node} Name=gpu File=/dev/null\n")
    (ETC / "cgroup.conf").unlink(missing_ok=True)  # none: slurmd picks what works (pitfall 1)
    for folder, owner in (("/var/spool/slurmctld", "slurm"), ("/var/spool/slurmd", "root"),
                          ("/var/log/slurm", "slurm"), (str(RUN), "slurm"),
                          ("/run/munge", "munge")):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, owner, owner)
    try:
        subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=True,
                       capture_output=True, timeout=30)
        cluster.pids["munged"] = _wait_pid("munged", timeout)
        for daemon in ("slurmctld", "slurmd"):
            # slurmctld -c: start without the jobs of an earlier cluster in StateSaveLocation
            flags = ["-c"] if daemon == "slurmctld" else []
            subprocess.run([f"/usr/sbin/{daemon}", *flags], check=True, capture_output=True,
                           timeout=30)
            cluster.pids[daemon] = _wait_pid(daemon, timeout)
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = _check_output(["sinfo", "-h", "-o", "%t"]).strip()
            if state == "idle":
                return cluster
            if state.startswith(("drain", "inval")):
                subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"],
                               capture_output=True, timeout=30)
            time.sleep(0.3)
        raise RuntimeError(f"node not idle after {timeout:.0f} s (state {state!r}):\n"
                           + tail(LOGS["slurmd"]) + tail(LOGS["slurmctld"]))
    except BaseException:
        cluster.stop()
        raise


def _wait_pid(name: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = _read_pid(PIDS[name])
        if pid is not None and _running(pid):
            return pid
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not start: " + tail(LOGS.get(name, Path("/nonexistent"))))


def tail(path: Path, lines: int = 30) -> str:
    try:
        return f"--- {path}\n" + "\n".join(path.read_text().splitlines()[-lines:]) + "\n"
    except OSError:
        return ""
