"""Network namespaces and the job's netlink sockets: one socket per namespace, opened
in-process after `setns` (no helper process per namespace; see the README's Speed
section): a lean `Rtnl` for the hot path, a pyroute2 `IPRoute` opened only when a rare
request needs one.

Everything here runs on the calling thread: `setns(CLONE_NEWNET)` moves one thread
only, so an agent runs a job on one thread from start to end. The job's "root"
namespace is the host's own, or for a simulated host, the namespace standing for it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from workers.kernel import syscalls
from workers.kernel.rtnl import Rtnl

if TYPE_CHECKING:
    from pyroute2 import IPRoute  # type: ignore[import-untyped]

RUN_DIR = Path("/run/netns")
THREAD_NETNS = "/proc/thread-self/ns/net"
NODE_SYSCTLS = {
    # Docker's choice: any group may open ICMP echo sockets, so `ping` works for root in a
    # user namespace, which has no CAP_NET_RAW over a netns the agent made.
    "net/ipv4/ping_group_range": "0 2147483647",
    # Like Docker's networks without --ipv6, the node's interfaces (all made after this)
    # have IPv6 off until the plan gives one an IPv6 address (a subnet6 or an IPv6 link):
    # then it is on for that interface, without link-local address or DAD. Otherwise
    # every interface coming up sends link-local DAD and MLD packets that a bridge floods
    # to all its ports: traffic nobody asked for in a capture, and work that grows with
    # the square of the ports.
    "net/ipv6/conf/default/disable_ipv6": "1",
}


def write_sysctls(values: dict[str, str]) -> None:
    """Write sysctls of the current thread's network namespace through a proc instance of
    their own. /proc/sys caches a dentry per name and namespace, and every later lookup of
    that name compares it against the entries of all the other namespaces: written through
    /proc, the writes for the 1,000th namespace cost three times those for the first. A
    fresh instance starts with no entries, so each namespace costs the same. Where the
    kernel (older than 5.2) or a seccomp filter refuses the new mount API, /proc does."""
    try:
        proc: int | None = syscalls.fsmount("proc")
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EPERM):
            raise
        proc = None
    try:
        for key, value in values.items():
            if proc is None:
                fd = os.open(f"/proc/sys/{key}", os.O_WRONLY | os.O_CLOEXEC)
            else:
                fd = os.open(f"sys/{key}", os.O_WRONLY | os.O_CLOEXEC, dir_fd=proc)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
    finally:
        if proc is not None:
            os.close(proc)


class Namespaces:
    """The job's namespaces on the current thread, entered into `root` until closed."""

    def __init__(self, root: str | None = None, run_dir: Path = RUN_DIR) -> None:
        self.run_dir = run_dir
        self._origin = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
        self._root = os.open(root or THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
        syscalls.setns(self._root, syscalls.CLONE_NEWNET)
        self._sockets: dict[str | None, IPRoute] = {}
        self._rtnl: dict[str | None, Rtnl] = {}
        self._run_dir_ready = False

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        for lean in self._rtnl.values():
            lean.close()
        self._rtnl.clear()
        syscalls.setns(self._origin, syscalls.CLONE_NEWNET)
        os.close(self._root)
        os.close(self._origin)

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root_path(self) -> str:
        """A path naming the root namespace, for child processes that must join it."""
        return f"/proc/{os.getpid()}/fd/{self._root}"

    def path(self, name: str) -> Path:
        return self.run_dir / name

    def ipr(self, netns: str | None) -> IPRoute:
        """The job's socket in `netns` (None: the root namespace), opened on first use."""
        sock = self._sockets.get(netns)
        if sock is None:
            # Imported here: pyroute2's package loads ~100 modules (~0.1 s), which only
            # the rare requests that need it should pay, not every command.
            from pyroute2 import IPRoute

            with self.entered(netns):
                sock = self._sockets[netns] = IPRoute()
        return sock

    def close_sockets(self) -> None:
        """Close the job's sockets in its namespaces (not the root's); they open again on
        next use. Before starting processes: a child copies, then closes, every open file
        of the agent, so 1,000 sockets held open would make each start cost more the more
        nodes the job has."""
        for sockets in (self._sockets, self._rtnl):
            for netns in [n for n in sockets if n is not None]:
                sockets.pop(netns).close()

    def rtnl(self, netns: str | None) -> Rtnl:
        """The job's lean rtnetlink socket in `netns` (None: the root namespace)."""
        sock = self._rtnl.get(netns)
        if sock is None:
            with self.entered(netns):
                sock = self._rtnl[netns] = Rtnl()
        return sock

    @contextlib.contextmanager
    def entered(self, netns: str | None) -> Iterator[None]:
        """Run the block on this thread inside `netns` (sockets and /proc/sys/net opened
        there belong to it), then come back to the root namespace."""
        if netns is None:
            yield
            return
        fd = os.open(self.path(netns), os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.setns(fd, syscalls.CLONE_NEWNET)
            try:
                yield
            finally:
                syscalls.setns(self._root, syscalls.CLONE_NEWNET)
        finally:
            os.close(fd)

    def exists(self, name: str) -> bool:
        return os.path.ismount(self.path(name))

    def ensure(self, name: str) -> bool:
        """Create the named namespace unless it exists; True when it was created."""
        if self.exists(name):
            return False
        self._ensure_run_dir()
        path = self.path(name)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a mount point left by a crash between create and mount
        path.touch(mode=0o444, exist_ok=False)
        try:
            syscalls.unshare(syscalls.CLONE_NEWNET)
            try:
                syscalls.mount(THREAD_NETNS, str(path), None, syscalls.MS_BIND, None)
                self._prepare_current(name)
            finally:
                syscalls.setns(self._root, syscalls.CLONE_NEWNET)
        except BaseException:
            self.remove(name)
            raise
        return True

    def _prepare_current(self, name: str) -> None:
        """Open the job's socket in the namespace just made, bring `lo` up, set sysctls."""
        sock = self._rtnl[name] = Rtnl()
        sock.set_link("lo", up=True)
        write_sysctls(NODE_SYSCTLS)

    def remove(self, name: str, attempts: int = 50) -> bool:
        """Delete the named namespace; False when it was already gone.

        Unlinking the mount point fails with EBUSY for a moment after the last process
        in the namespace died, so it is retried briefly.
        """
        for sockets in (self._sockets, self._rtnl):
            sock = sockets.pop(name, None)
            if sock is not None:
                sock.close()
        path = self.path(name)
        if not path.exists():
            return False
        with contextlib.suppress(OSError):
            syscalls.umount2(str(path), syscalls.MNT_DETACH)
        for attempt in range(attempts):
            try:
                path.unlink()
                return True
            except FileNotFoundError:
                return False
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == attempts - 1:
                    raise
                time.sleep(0.01)
        return True

    def names(self, prefix: str) -> list[str]:
        """Namespaces under the run directory whose name starts with `prefix`."""
        if not self.run_dir.is_dir():
            return []
        return sorted(p.name for p in self.run_dir.iterdir() if p.name.startswith(prefix))

    def _ensure_run_dir(self) -> None:
        """Like iproute2: the run directory is a shared mount, so namespaces bound in it
        are seen by every mount namespace that is its peer. Checked once per job: the mount
        table grows with every namespace, so reading it per namespace costs O(n^2)."""
        if self._run_dir_ready:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Not os.path.ismount: a bind mount of a directory of the same filesystem has the
        # same device as its parent, so only the mount table tells.
        mounts = Path("/proc/thread-self/mountinfo").read_text().splitlines()
        if not any(line.split()[4] == str(self.run_dir) for line in mounts):
            syscalls.mount(str(self.run_dir), str(self.run_dir), None, syscalls.MS_BIND, None)
            syscalls.mount(
                "none", str(self.run_dir), None, syscalls.MS_SHARED | syscalls.MS_REC, None
            )
        self._run_dir_ready = True
