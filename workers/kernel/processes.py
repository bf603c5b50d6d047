"""Node processes: starting nodes' inits through `lminit spawn`, checking each is the same
process later, and running commands (or a shell on a pty) inside a running node, named by
its init's pid and start time so that a process reusing the pid is never entered.

Nodes start in parallel, a window of `lminit spawn` at a time, all from the small mount
namespace `lminit mntns` holds (so a start costs the same with 10 or 1,000 nodes up).
A deployment's files (hosts, hostname, logs) live on a tmpfs of its own under
`<data>/run/<token>`, and its nodes' private writable layers (`rootfs: host`) on a
second tmpfs mounted below it, `<data>/run/<token>/layers/<node>`, so that a node filling
its layer cannot starve the others' logs: creating them costs no disk journal, and
teardown is one unmount of both. The argument vector is built here from the decoded plan;
nothing goes through a shell.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections import deque
from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path

from labplan import ops
from workers.driver import NodeProcess
from workers.kernel import syscalls

UID_RANGE = 65536  # uids (and gids) mapped into each node's user namespace
# Nodes' outside uids come from systemd's range for containers (0x80000-0x6FFFFFFF), above
# what useradd gives host users' rootless containers in /etc/subuid (100000 upward), so a
# node's root never owns a host user's files.
UID_FIRST = 0x80000
UID_LAST = 0x6FFFFFFF
# Spawns in flight at once: enough to keep every CPU busy while others wait on the kernel.
WINDOW = 4 * (os.cpu_count() or 1)
RUN_TMPFS = "size=256m,mode=0755"  # hosts files and node logs of one deployment
# Nodes' writable layers: bounded by each node's memory limit (tmpfs pages are charged to
# the writer's cgroup) and by half the host's memory for the whole deployment.
LAYERS_TMPFS = "size=50%,mode=0700"
NOTE = "note "  # how lminit spawn prefixes what a user should know about a started node
# A fixed script (no user text): the shell leads a session of its own in the node and
# takes the pty as its terminal; `lminit exec` runs it as a child, never a group leader,
# so setsid(1) does not fork and the exit status is the shell's.
SHELL_WITH_TTY = "command -v setsid >/dev/null && exec setsid --ctty /bin/sh -i; exec /bin/sh -i"


class SpawnError(Exception):
    def __init__(self, node: str, reason: str) -> None:
        self.node = node
        super().__init__(f"node {node} did not start: {reason}")


@dataclass(frozen=True)
class NodeStart:
    """What starting one node needs beyond its op, resolved by the driver."""

    op: ops.SpawnNode
    netns_path: str
    cgroup_procs: Sequence[Path]
    uid_base: int | None


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


def signal(process: NodeProcess, sig: int) -> None:
    """Send `sig` to the node's init through a pidfd opened while its start time still
    matched, so a later process reusing the pid is never signalled; a gone init is
    left alone."""
    import signal as signals

    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return
    try:
        if alive(process):
            signals.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def hosts_text(hosts: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{address}\t{name}\n" for address, name in hosts)


class Processes:
    def __init__(self, lminit: Path, data_dir: Path) -> None:
        self.lminit = lminit
        self.data_dir = data_dir
        # /etc/hosts texts by the plan's tuple of lines (kept alive here): the nodes of a
        # lab usually share one, which is formatted once and never hashed whole.
        self._hosts_text: dict[int, tuple[tuple[tuple[str, str], ...], str]] = {}

    def run_dir(self, token: str) -> Path:
        return self.data_dir / "run" / token

    def node_dir(self, token: str, cgroup: str) -> Path:
        """Files of one node, named after its cgroup ("lm1/n0"): ids, never user text."""
        return self.data_dir / "run" / cgroup

    def log_path(self, cgroup: str) -> Path:
        return self.data_dir / "run" / f"{cgroup}.log"

    def layers_dir(self, token: str) -> Path:
        return self.run_dir(token) / "layers"

    def layer_dir(self, token: str, cgroup: str) -> Path:
        """A node's writable layer (`upper`, `work`), named after its cgroup's last part."""
        return self.layers_dir(token) / Path(cgroup).name

    def ensure_run_dir(self, token: str) -> Path:
        """The deployment's tmpfs and its layers tmpfs, each mounted unless it is (a
        re-apply keeps their files)."""
        directory = self.run_dir(token)
        directory.mkdir(parents=True, exist_ok=True)
        if not os.path.ismount(directory):
            syscalls.mount("lmrun", str(directory), "tmpfs", 0, RUN_TMPFS)
        layers = self.layers_dir(token)
        layers.mkdir(exist_ok=True)
        if not os.path.ismount(layers):
            syscalls.mount("lmlayers", str(layers), "tmpfs", 0, LAYERS_TMPFS)
        return directory

    def volume_dir(self, token: str, volume: str) -> Path:
        return self.run_dir(token) / "volumes" / volume

    def ensure_volume(self, token: str, volume: str, size: int) -> None:
        """The volume's tmpfs below the deployment's (so teardown's lazy unmount takes it),
        owned by root (each node sees it as its own root's, through an idmapped mount),
        mounted unless it is, else resized: a redeploy keeps its files."""
        directory = self.volume_dir(token, volume)
        self.ensure_run_dir(token)
        directory.parent.mkdir(mode=0o700, exist_ok=True)
        directory.mkdir(exist_ok=True)
        options = f"size={size},mode=0755"
        if os.path.ismount(directory):
            syscalls.mount("lmvol", str(directory), "tmpfs", syscalls.MS_REMOUNT, options)
        else:
            syscalls.mount("lmvol", str(directory), "tmpfs", 0, options)

    def prune_volumes(self, token: str, keep: Set[str]) -> list[str]:
        """Unmount and remove the deployment's volumes not in `keep`; their names."""
        parent = self.run_dir(token) / "volumes"
        gone = (
            sorted(p.name for p in parent.iterdir() if p.name not in keep)
            if parent.is_dir()
            else []
        )
        for name in gone:
            directory = parent / name
            while os.path.ismount(directory):
                syscalls.umount2(str(directory), syscalls.MNT_DETACH)
            with contextlib.suppress(FileNotFoundError):
                directory.rmdir()
        return gone

    def remove_run_dir(self, token: str) -> bool:
        """Unmount the deployment's tmpfs (a lazy unmount takes the layers tmpfs below it
        too) and remove its mount point; False if gone."""
        directory = self.run_dir(token)
        if not directory.exists():
            return False
        while os.path.ismount(directory):
            syscalls.umount2(str(directory), syscalls.MNT_DETACH)
        with contextlib.suppress(FileNotFoundError):
            directory.rmdir()
        return True

    def spawn_all(self, starts: Sequence[NodeStart], token: str) -> list[NodeProcess]:
        """Start every node, `WINDOW` at a time; their inits in the order given. On a
        failure the others still finish starting (teardown finds them by cgroup) and the
        first failure in the given order is raised."""
        self.ensure_run_dir(token)
        results: dict[int, NodeProcess] = {}
        failures: dict[int, SpawnError] = {}
        with self._small_mount_namespace() as mntns:
            running: deque[tuple[int, NodeStart, subprocess.Popen[bytes]]] = deque()
            for position, start in enumerate(starts):
                argv = self._spawn_argv(start, token, mntns)
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                running.append((position, start, proc))
                if len(running) >= WINDOW:
                    self._collect(*running.popleft(), results, failures)
            while running:
                self._collect(*running.popleft(), results, failures)
        if failures:
            raise failures[min(failures)]
        return [results[position] for position in range(len(starts))]

    @contextlib.contextmanager
    def _small_mount_namespace(self) -> Iterator[str]:
        """The path of a mount namespace without /run/netns, held by `lminit mntns`."""
        holder = subprocess.Popen(
            [str(self.lminit), "mntns"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert holder.stdin is not None and holder.stdout is not None
        try:
            if holder.stdout.readline() != b"ready\n":
                raise SpawnError("(all)", "lminit could not make a mount namespace")
            yield f"/proc/{holder.pid}/ns/mnt"
        finally:
            holder.stdin.close()
            holder.stdout.close()
            holder.wait()

    def _collect(
        self,
        position: int,
        start: NodeStart,
        proc: subprocess.Popen[bytes],
        results: dict[int, NodeProcess],
        failures: dict[int, SpawnError],
    ) -> None:
        out, err = proc.communicate()
        node = start.op.node
        if proc.returncode != 0:
            reason = err.decode(errors="replace").strip().removeprefix("lminit: ")
            failures[position] = SpawnError(node, reason)
            return
        first, *rest = out.decode(errors="replace").splitlines()
        pid = int(first)
        started = start_time(pid)
        if started is None:
            failures[position] = SpawnError(node, "it exited at once; see its log")
            return
        notes = [line.removeprefix(NOTE) for line in rest if line.startswith(NOTE)]
        results[position] = NodeProcess(pid, started, "; ".join(notes))

    def _spawn_argv(self, start: NodeStart, token: str, mntns: str) -> list[str]:
        """Write the node's files and build its `lminit spawn` command."""
        op = start.op
        if op.rootfs is None:
            raise SpawnError(op.node, "its image was not resolved to a tree")
        directory = self.node_dir(token, op.cgroup)
        directory.mkdir(parents=True, exist_ok=True)
        scratch = self.layer_dir(token, op.cgroup)
        scratch.mkdir(exist_ok=True)
        hosts, hostname = directory / "hosts", directory / "hostname"
        hosts.write_text(self._hosts(op.hosts))
        hostname.write_text(op.hostname + "\n")
        argv = [str(self.lminit), "spawn", "--netns", start.netns_path, "--mntns", mntns]
        for procs in start.cgroup_procs:
            argv += ["--cgroup", str(procs)]
        namespaces = [n for n in op.namespaces if n != "user" or start.uid_base is not None]
        argv += ["--ns", ",".join(namespaces)] if namespaces else []
        if start.uid_base is not None:
            argv += ["--uid-base", str(start.uid_base)]
        # A node of an image comes resolved (workers.executor.resolved_spawn): its rootfs
        # is the image's unpacked tree, its user numeric.
        root = ["--image", op.rootfs] if op.image is not None else ["--rootfs", op.rootfs]
        argv += ["--hostname", op.hostname, *root, "--scratch", str(scratch)]
        argv += ["--hosts", str(hosts), "--hostname-file", str(hostname)]
        argv += ["--log", str(self.log_path(op.cgroup)), "--workdir", op.workdir or "/"]
        if op.user is not None and op.user != "0:0":
            argv += ["--user", op.user]
        for key, value in op.environment:
            argv += ["--env", f"{key}={value}"]
        for kind, source, target, mode in op.mounts:
            # lminit binds a volume idmapped to the node's uids, a host path as it is.
            origin = str(self.volume_dir(token, source)) if kind == "volume" else source
            argv += ["--mount", f"{kind[0]}:{mode}:{origin}:{target}"]
        return [*argv, "--", *(op.command or ())]

    def _hosts(self, hosts: tuple[tuple[str, str], ...]) -> str:
        known = self._hosts_text.get(id(hosts))
        if known is None or known[0] is not hosts:
            known = self._hosts_text[id(hosts)] = (hosts, hosts_text(hosts))
        return known[1]

    def exec_argv(
        self,
        init: NodeProcess,
        cgroup_procs: Sequence[Path],
        command: Sequence[str],
        environment: Mapping[str, str],
        workdir: str = "/",
    ) -> list[str]:
        """The argument vector running `command` inside the node whose init is `init`;
        lminit refuses (exit 127) if that init is gone, whoever has its pid now."""
        argv = [str(self.lminit), "exec", "--pid", str(init.pid), "--start", str(init.start)]
        argv += ["--workdir", workdir]
        for procs in cgroup_procs:
            argv += ["--cgroup", str(procs)]
        for key, value in sorted(environment.items()):
            argv += ["--env", f"{key}={value}"]
        return [*argv, "--", *command]

    def run(
        self,
        init: NodeProcess,
        cgroup_procs: Sequence[Path],
        command: Sequence[str],
        environment: Mapping[str, str],
        *,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a command in the node and collect its output."""
        argv = self.exec_argv(init, cgroup_procs, command, environment)
        return subprocess.run(
            argv, capture_output=True, check=False, timeout=timeout, stdin=subprocess.DEVNULL
        )

    def shell(
        self,
        init: NodeProcess,
        cgroup_procs: Sequence[Path],
        environment: Mapping[str, str],
        *,
        controlling_tty: bool = False,
    ) -> tuple[int, subprocess.Popen[bytes]]:
        """An interactive shell in the node on a new pty: (pty master fd, process).

        With `controlling_tty` the pty becomes the controlling terminal of a session
        the shell leads inside the node (its pid namespace must see the terminal's
        process groups), so it has job control and ^C or ^Z reach the foreground
        command; a root tree without setsid(1) gets the plain shell."""
        master, slave = os.openpty()
        env = {"TERM": "xterm-256color", **environment}
        command = ["/bin/sh", "-c", SHELL_WITH_TTY] if controlling_tty else ["/bin/sh", "-i"]
        argv = self.exec_argv(init, cgroup_procs, command, env)
        proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, close_fds=True
        )
        os.close(slave)
        return master, proc
