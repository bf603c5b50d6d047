"""Node processes: starting a node's init through `lminit spawn`, checking it is the same
process later, and running commands (or a shell on a pty) inside a running node.

The argument vector is built here from the decoded plan; nothing goes through a shell.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labplan import ops

UID_RANGE = 65536  # uids (and gids) mapped into each node's user namespace
UID_FIRST = 100_000  # first outside uid a node may get; below are the host's own users


class SpawnError(Exception):
    pass


@dataclass(frozen=True)
class NodeProcess:
    """A node's init as the host sees it; `start` (clock ticks since boot) tells a live
    init from a later process that reused its pid."""

    pid: int
    start: int


def uid_base(slot: int) -> int:
    return UID_FIRST + UID_RANGE * slot


def start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Field 22 counts from after the command name, which may hold spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def alive(process: NodeProcess) -> bool:
    return start_time(process.pid) == process.start


def hosts_text(hosts: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{address}\t{name}\n" for address, name in hosts)


class Processes:
    def __init__(self, lminit: Path, data_dir: Path) -> None:
        self.lminit = lminit
        self.data_dir = data_dir

    def node_dir(self, token: str, cgroup: str) -> Path:
        """Files of one node, named after its cgroup ("lm1/n0"): ids, never user text."""
        return self.data_dir / "run" / cgroup

    def log_path(self, cgroup: str) -> Path:
        return self.data_dir / "logs" / f"{cgroup}.log"

    def spawn(
        self,
        op: ops.SpawnNode,
        *,
        token: str,
        netns_path: str,
        cgroup_procs: Sequence[Path],
        uid_base: int | None,
    ) -> NodeProcess:
        directory = self.node_dir(token, op.cgroup)
        scratch = directory / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        hosts, hostname = directory / "hosts", directory / "hostname"
        hosts.write_text(hosts_text(op.hosts))
        hostname.write_text(op.hostname + "\n")
        log = self.log_path(op.cgroup)
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(self.lminit), "spawn", "--netns", netns_path]
        for procs in cgroup_procs:
            argv += ["--cgroup", str(procs)]
        namespaces = [n for n in op.namespaces if n != "user" or uid_base is not None]
        argv += ["--ns", ",".join(namespaces)] if namespaces else []
        if uid_base is not None:
            argv += ["--uid-base", str(uid_base)]
        argv += ["--hostname", op.hostname, "--rootfs", op.rootfs, "--scratch", str(scratch)]
        argv += ["--hosts", str(hosts), "--hostname-file", str(hostname), "--log", str(log)]
        argv += ["--workdir", op.workdir]
        for key, value in op.environment:
            argv += ["--env", f"{key}={value}"]
        argv += ["--", *op.command]
        done = subprocess.run(argv, capture_output=True, check=False, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().removeprefix("lminit: ")
            raise SpawnError(f"node {op.node} did not start: {reason}")
        pid = int(done.stdout.split()[0])
        start = start_time(pid)
        if start is None:
            raise SpawnError(f"node {op.node} exited at once; see {log}")
        return NodeProcess(pid, start)

    def exec_argv(
        self,
        pid: int,
        cgroup_procs: Sequence[Path],
        command: Sequence[str],
        environment: Mapping[str, str],
        workdir: str = "/",
    ) -> list[str]:
        """The argument vector running `command` inside the node whose init is `pid`."""
        argv = [str(self.lminit), "exec", "--pid", str(pid), "--workdir", workdir]
        for procs in cgroup_procs:
            argv += ["--cgroup", str(procs)]
        for key, value in sorted(environment.items()):
            argv += ["--env", f"{key}={value}"]
        return [*argv, "--", *command]

    def run(
        self,
        pid: int,
        cgroup_procs: Sequence[Path],
        command: Sequence[str],
        environment: Mapping[str, str],
        *,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a command in the node and collect its output."""
        argv = self.exec_argv(pid, cgroup_procs, command, environment)
        return subprocess.run(
            argv, capture_output=True, check=False, timeout=timeout, stdin=subprocess.DEVNULL
        )

    def shell(
        self, pid: int, cgroup_procs: Sequence[Path], environment: Mapping[str, str]
    ) -> tuple[int, subprocess.Popen[bytes]]:
        """An interactive shell in the node on a new pty: (pty master fd, process)."""
        master, slave = os.openpty()
        env = {"TERM": "xterm-256color", **environment}
        argv = self.exec_argv(pid, cgroup_procs, ["/bin/sh", "-i"], env)
        proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, close_fds=True
        )
        os.close(slave)
        return master, proc
