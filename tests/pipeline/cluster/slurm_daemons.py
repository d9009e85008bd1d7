"""A single-node SLURM (munged, slurmctld, slurmd) started for the tests and stopped afterwards.

Everything lives in one temporary folder (its own munge key and socket, slurm.conf, state and spool
folders, logs) on free loopback ports, so nothing is shared with a SLURM the machine may run, and
nothing survives the session. Client commands find this cluster through ``SLURM_CONF``, which
``environment()`` sets (jobs inherit it, so their `srun` and `scontrol` do too).
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.pipeline.helpers import free_port

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "scancel", "sinfo")
COMMON_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def which(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *COMMON_SBIN]))


def missing() -> str | None:
    """Why SLURM cannot start here, or None."""
    absent = [name for name in BINARIES if not which(name)]
    if absent:
        return (f"SLURM is not installed ({', '.join(absent)} not found): `apt-get install --no-install-recommends "
                "slurmctld slurmd slurm-client munge` (.ci/run does it)")
    if os.geteuid() != 0:
        return "SLURM's daemons need root (slurmd starts the jobs' processes as their owner)"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no user 'munge' (the munge package creates it)"
    return None



class SlurmCluster:
    """One controller and one node, this machine, with every CPU it has."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.node = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.processes: list[subprocess.Popen] = []

    def environment(self, base: dict | None = None) -> dict:
        return dict(base if base is not None else os.environ, SLURM_CONF=str(self.conf))

    def start(self) -> None:
        # Its own folder under /tmp: munged runs as user munge, which cannot enter pytest's 0700 folders.
        munge = self.munge = Path(tempfile.mkdtemp(prefix="bottleneck-munge-"))
        munge.chmod(0o755)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        user = pwd.getpwnam("munge")
        os.chown(munge, user.pw_uid, user.pw_gid)
        os.chown(key, user.pw_uid, user.pw_gid)
        key.chmod(0o400)
        self.socket = munge / "munge.socket"
        self._daemon(["runuser", "-u", "munge", "--", which("munged"), "--foreground", f"--socket={self.socket}",
                      f"--key-file={key}", f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
                      f"--seed-file={munge / 'munged.seed'}"], munge / "munged.out")
        self._wait(lambda: self.socket.exists(), "munged", munge / "munged.log")
        for folder in ("state", "spool"):
            (self.root / folder).mkdir()
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        self.conf.write_text("\n".join([
            "ClusterName=bottleneck-test", f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}", "SlurmUser=root", "SlurmdUser=root",
            f"AuthInfo=socket={self.socket}", f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}", f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}", f"SlurmctldLogFile={self.root / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'slurmd.log'}", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU", "SchedulerType=sched/builtin",
            "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none", "MpiDefault=none", "SwitchType=switch/none", "ReturnToService=2",
            "KillWait=5", "MinJobAge=300", "InactiveLimit=0", "MailProg=/bin/true", "SlurmctldDebug=info",
            "SlurmdDebug=info",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={memory} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
        ]) + "\n")
        environment = self.environment()
        self._daemon([which("slurmctld"), "-D", "-i", "-f", str(self.conf)], self.root / "slurmctld.out", environment)
        self._daemon([which("slurmd"), "-D", "-N", self.node, "-f", str(self.conf)], self.root / "slurmd.out", environment)
        self._wait(self.node_idle, "slurmd (node idle)", self.root / "slurmd.log", timeout=60)

    def node_idle(self) -> bool:
        state = subprocess.run([which("sinfo"), "-h", "-N", "-o", "%T"], env=self.environment(),
                               capture_output=True, text=True)
        return state.returncode == 0 and state.stdout.strip() == "idle"

    def _daemon(self, command: list, log: Path, environment: dict | None = None) -> None:
        with log.open("w") as handle:
            self.processes.append(subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                                   env=environment, start_new_session=True))

    def _wait(self, ready, what: str, log: Path, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                text = log.read_text()[-2000:] if log.exists() else "(no log)"
                self.stop()
                raise RuntimeError(f"{what} did not come up: {text}")
            time.sleep(0.3)

    def command(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([which(args[0]), *args[1:]], env=self.environment(), capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0 or not check, result.stderr
        return result

    def job_state(self, job: str) -> str:
        """PENDING, RUNNING, COMPLETED, FAILED, … (MinJobAge keeps finished jobs listed for 5 minutes)."""
        shown = self.command("scontrol", "show", "job", job).stdout
        return shown.split("JobState=", 1)[1].split()[0]

    def wait(self, job: str, timeout: float) -> str:
        """Waits for the job to end (a requeued one is released at once, see release); its final state."""
        deadline = time.monotonic() + timeout
        while (state := self.job_state(job)) in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED"):
            if state == "PENDING":
                self.release(job)
            assert time.monotonic() < deadline, f"job {job} still {state} after {timeout:g} s"
            time.sleep(1)
        return state

    def release(self, job: str) -> None:
        """A requeued job is held back (its begin time set ~2 minutes ahead); SLURM's own way to let it
        start now is to update that time."""
        self.command("scontrol", "update", f"JobId={job}", "StartTime=now", check=False)

    def cancel_all(self) -> None:
        """No job outlives the test that started it: cancel every job, wait for its processes to end."""
        self.command("scancel", "--user=root", check=False)
        deadline = time.monotonic() + 30
        while self.command("squeue", "-h", check=False).stdout.strip() and time.monotonic() < deadline:
            time.sleep(0.5)

    def stop(self) -> None:
        """Jobs first, then slurmd, the controller and munged."""
        if self.processes and all(p.poll() is None for p in self.processes):
            self.cancel_all()
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, 9)
                    process.wait()
        self.processes.clear()
        if getattr(self, "munge", None):
            shutil.rmtree(self.munge, ignore_errors=True)
