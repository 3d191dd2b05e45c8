"""Processes the scale-out tests start and stop: a Dask scheduler and workers, and a
one-node SLURM cluster (munged, slurmctld, slurmd from Debian's packages). A test
helper, not part of the package.

Every process starts in its own session, so it and whatever it spawns (a papermill
kernel, a LocalCluster) form one process group, which is what gets signalled.
Nothing is stopped by name: only the groups this helper started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import in_ci

ROOT = Path(__file__).resolve().parents[1]


def child_environment(**extra: str) -> dict[str, str]:
    """This process's environment with the checkout first on PYTHONPATH, so papermill's
    kernels, Dask workers and SLURM jobs import the ``paradox_utils`` under test, whatever
    copy the virtual environment has installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def wait_until(condition, timeout: float, what: str, interval: float = 0.05):
    """``condition()``'s first truthy value, polled every ``interval`` s for ``timeout`` s;
    TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s.")


class Processes:
    """Processes started for one test, each the leader of its own process group, their
    output in ``folder/<name>.log``. :meth:`stop` ends every group: SIGTERM, then
    SIGKILL after ``grace`` seconds; a fixture calls it in its finaliser, so a failing
    test leaves nothing running."""

    def __init__(self, folder: Path, grace: float = 10.0):
        self.folder, self.grace = Path(folder), grace
        self.folder.mkdir(parents=True, exist_ok=True)
        self.started: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None,
              cwd: str | os.PathLike | None = None) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, env=env or child_environment(), cwd=cwd)
        self.started[name] = process
        return process

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tail(self, name: str, lines: int = 30) -> str:
        return "\n".join(self.log(name).splitlines()[-lines:])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal ``name``'s process group and every descendant of its leader (a papermill
        kernel runs in a session of its own), then reap the leader; SIGKILL follows a
        SIGTERM that has not ended it within ``grace`` seconds."""
        process = self.started[name]
        family = _descendants(process.pid)  # before the signal: orphans lose their parent link
        _signal([process.pid, *family], sig, group=process.pid)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                process.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                _signal([process.pid, *family], signal.SIGKILL, group=process.pid)
                process.wait()
            if sig == signal.SIGTERM:  # what ignored SIGTERM beside the leader
                _signal(family, signal.SIGKILL, group=process.pid)

    def stop(self) -> None:
        """End every process this helper started, the last started first."""
        for name, process in reversed(list(self.started.items())):
            if process.poll() is None:
                self.kill(name, signal.SIGTERM)
            else:  # a leader that has exited may leave members of its group behind
                _signal([], signal.SIGKILL, group=process.pid)


def _signal(pids: list[int], sig: int, group: int | None = None) -> None:
    """Send ``sig`` to process group ``group`` and to each of ``pids``; those gone are skipped."""
    if group is not None:
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid`` now, from /proc (children before grandchildren)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # it ended meanwhile
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


# ----------------------------------------------------------------------------- Dask

def dask_command(which: str) -> list[str]:
    """``dask scheduler`` / ``dask worker`` of this interpreter's environment."""
    return [sys.executable, "-m", f"distributed.cli.dask_{which}"]


class DaskCluster:
    """``dask scheduler`` on 127.0.0.1 at an ephemeral port (read from its scheduler file)
    and ``workers`` single-threaded ``dask worker`` processes without a nanny, so each
    worker is the process this helper started and a SIGKILL removes it for good."""

    def __init__(self, processes: Processes, workers: int = 2, timeout: float = 60):
        self.processes = processes
        scheduler_file = processes.folder / "scheduler.json"
        processes.start("scheduler", [*dask_command("scheduler"), "--host", "127.0.0.1", "--port", "0",
                                      "--no-dashboard", "--scheduler-file", str(scheduler_file)])
        self.address = wait_until(lambda: scheduler_file.exists() and _address(scheduler_file), timeout,
                                  "the Dask scheduler's start")
        self.workers = [f"worker-{i}" for i in range(workers)]
        for name in self.workers:
            processes.start(name, [*dask_command("worker"), self.address, "--name", name, "--nthreads", "1",
                                   "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--memory-limit", "0",
                                   "--local-directory", str(processes.folder / name)])
        from distributed import Client

        self.client = Client(self.address, timeout=timeout)
        self.client.wait_for_workers(workers, timeout=timeout)

    def pid_of(self, worker_address: str) -> int:
        return self.client.scheduler_info()["workers"][worker_address]["pid"]

    def name_running(self, fragment: str) -> str | None:
        """The name of the worker processing a task whose key holds ``fragment``."""
        for address, keys in self.client.processing().items():
            if any(fragment in str(key) for key in keys):
                return self.client.scheduler_info()["workers"][address]["name"]
        return None

    def close(self) -> None:
        self.client.close()


def _address(scheduler_file: Path) -> str | None:
    try:
        return json.loads(scheduler_file.read_text())["address"]
    except (json.JSONDecodeError, KeyError):
        return None  # still being written


# ----------------------------------------------------------------------------- SLURM

SLURM_COMMANDS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel")


def require_slurm() -> None:
    """Skip the calling test where SLURM cannot run here (not installed, not root); fail
    instead under CI=true, where ``make test`` installs it and the test must run."""
    missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
    reason = None
    if missing:
        reason = (f"SLURM is not installed (no {', '.join(missing)}; `make test` installs Debian's slurmctld, "
                  "slurmd, munge and slurm-client as root)")
    elif os.geteuid() != 0:
        reason = "the SLURM test runs munged, slurmctld and slurmd as root, and this is not root"
    if reason:
        if in_ci():
            pytest.fail(f"{reason}; CI=true: the SLURM test must run", pytrace=False)
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalSlurm:
    """A one-node SLURM cluster: this machine, its real CPUs and memory (``slurmd -C``),
    one default partition ``debug``, controller and node on 127.0.0.1 at free ports, its
    own munge key and socket, no accounting (finished jobs go to a text job-completion
    log instead). State lives in a temporary folder removed by :meth:`stop`; the logs go
    to ``processes.folder``. Commands need :attr:`env` (``SLURM_CONF``)."""

    PARTITION = "debug"

    def __init__(self, processes: Processes, timeout: float = 60):
        self.processes = processes
        # a short path: munged's socket path must fit a sockaddr_un (108 bytes)
        self.state = Path(tempfile.mkdtemp(prefix="paradox-slurm-"))
        self.state.chmod(0o755)  # munged wants its socket reachable by every user
        self.logs = processes.folder
        self.conf = self.state / "slurm.conf"
        self.env = child_environment(SLURM_CONF=str(self.conf))
        self.jobcomp = self.logs / "jobcomp.log"
        node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
        self.node = node.split()[0].removeprefix("NodeName=")
        self._configure(node)
        munge = self.state / "munge"
        munge.mkdir(mode=0o700)
        (munge / "munge.key").write_bytes(os.urandom(1024))
        (munge / "munge.key").chmod(0o400)
        daemon_env = child_environment(SLURM_CONF=str(self.conf))
        processes.start("munged", ["munged", "--foreground", "--force", f"--socket={self.state / 'munge.socket'}",
                                   f"--key-file={munge / 'munge.key'}", f"--pid-file={self.state / 'munged.pid'}",
                                   f"--seed-file={munge / 'munged.seed'}",
                                   f"--log-file={self.logs / 'munged.file.log'}"], env=daemon_env)
        wait_until(lambda: (self.state / "munge.socket").exists(), timeout, "munged's start")
        processes.start("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)], env=daemon_env)
        processes.start("slurmd", ["slurmd", "-D", "-N", self.node, "-f", str(self.conf)], env=daemon_env)
        try:
            wait_until(lambda: self.node_state() == "idle", timeout, f"node {self.node} becoming idle", 0.5)
        except TimeoutError as error:
            raise RuntimeError(f"{error}\nslurmctld:\n{processes.tail('slurmctld')}\n"
                               f"slurmd:\n{processes.tail('slurmd')}") from None

    def _configure(self, node: str) -> None:
        spool = self.state / "spool"
        spool.mkdir()
        lines = [
            "ClusterName=paradoxtest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            "SlurmUser=root", "SlurmdUser=root",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={self.state / 'munge.socket'}",
            f"StateSaveLocation={self.state}", f"SlurmdSpoolDir={spool}",
            f"SlurmctldPidFile={self.state / 'slurmctld.pid'}", f"SlurmdPidFile={self.state / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.logs / 'slurmctld.file.log'}", f"SlurmdLogFile={self.logs / 'slurmd.file.log'}",
            # no cgroups: job processes are tracked through their parents, tasks are not confined
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/builtin", "ReturnToService=2", "MailProg=/bin/true",
            "KillWait=5",  # a cancelled job's processes get SIGKILL 5 s after SIGTERM
            "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/filetxt", f"JobCompLoc={self.jobcomp}",
            f"{node} NodeAddr=127.0.0.1 State=UNKNOWN",
            f"PartitionName={self.PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")

    def run(self, *command: str) -> str:
        return subprocess.run(command, capture_output=True, text=True, check=True, env=self.env,
                              timeout=30).stdout

    def node_state(self) -> str:
        try:
            return self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T").strip()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return ""  # the controller is not answering yet

    def queue(self) -> dict[int, tuple[str, str]]:
        """Jobs pending or running: id -> (name, state)."""
        rows = [line.split() for line in self.run("squeue", "-h", "-o", "%i %j %T").splitlines()]
        return {int(job): (name, state) for job, name, state in rows}

    def finished(self) -> dict[int, dict[str, str]]:
        """Jobs that ended, from the job-completion log: id -> its fields (JobState, Name, ...)."""
        jobs = {}
        text = self.jobcomp.read_text() if self.jobcomp.exists() else ""
        for line in text.splitlines():
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            jobs[int(fields["JobId"])] = fields
        return jobs

    def stop(self, timeout: float = 30) -> None:
        """Cancel every job of this cluster (all of them are this test's), wait for the
        queue to empty, then stop the daemons and remove the state folder."""
        try:
            if jobs := self.queue():
                self.run("scancel", *map(str, jobs))
                wait_until(lambda: not self.queue(), timeout, "the cancelled jobs' end", 0.5)
        finally:
            for name in ("slurmd", "slurmctld", "munged"):
                if name in self.processes.started:
                    self.processes.kill(name, signal.SIGTERM)
            shutil.rmtree(self.state, ignore_errors=True)
