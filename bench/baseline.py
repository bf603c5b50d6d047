"""The kernel baseline: N nodes on one bridge built with `ip -batch` and `unshare`.

It does the same work a labmgr deployment of the same lab does — a netns per node, a veth
into one bridge with the peer created inside the namespace, an address per node (IPv6
autoconfiguration off, as labmgr's IPv4-only networks have it), links up, a memory + pids
cgroup per node with limits, and a process per node in fresh user, PID, mount, UTS, IPC and
cgroup namespaces joined to the netns — the fastest plain way the standard tools allow, so
labmgr's times can be read as a ratio against it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
IPV6 = Path("/proc/sys/net/ipv6")
PREFIX = "lmbase"  # bench-only names; labmgr's sweep finds them by the "lm" prefix too
GROUP = 0xBA5E
SUBNET = IPv4Network("10.200.0.0/16")


@dataclass
class Baseline:
    n: int
    subnet: IPv4Network = SUBNET

    def _ns(self, i: int) -> str:
        return f"{PREFIX}n{i}"

    @property
    def bridge(self) -> str:
        return f"{PREFIX}br"

    def _cgroups(self, i: int) -> dict[Path, dict[str, str]]:
        """The node's cgroup directories, each with the limit files to write in it."""
        memory, pids = str(256 << 20), "128"
        if (CGROUP_ROOT / "cgroup.controllers").exists():  # cgroup v2
            return {CGROUP_ROOT / PREFIX / f"n{i}": {"memory.max": memory, "pids.max": pids}}
        return {
            CGROUP_ROOT / "memory" / PREFIX / f"n{i}": {"memory.limit_in_bytes": memory},
            CGROUP_ROOT / "pids" / PREFIX / f"n{i}": {"pids.max": pids},
        }

    def setup(self) -> list[subprocess.Popen[bytes]]:
        hosts = list(self.subnet.hosts())
        no_ipv6 = IPV6.exists()  # labmgr's links of IPv4-only networks have no IPv6 autoconf
        lines = [f"link add {self.bridge} group {GROUP} type bridge"]
        lines += [f"link set {self.bridge} addrgenmode none"] if no_ipv6 else []
        lines += [f"link set {self.bridge} up"]
        for i in range(self.n):
            lines.append(f"netns add {self._ns(i)}")
        for i in range(self.n):
            v = f"{PREFIX}v{i}"
            lines.append(f"link add {v} group {GROUP} type veth peer name eth0 netns {self._ns(i)}")
            lines += [f"link set {v} addrgenmode none"] if no_ipv6 else []
            lines.append(f"link set {v} master {self.bridge} up")
        _ip_batch(lines)
        # labmgr's node interfaces have IPv6 off too (labfile v1 networks are IPv4 only):
        # else every link-local DAD and MLD packet the bridge floods is work only the
        # baseline does.
        inside = ["link set eth0 addrgenmode none"] if no_ipv6 else []
        for i in range(self.n):
            _ip_batch(
                [
                    *inside,
                    f"addr add {hosts[i + 1]}/{self.subnet.prefixlen} dev eth0",
                    "link set eth0 up",
                    "link set lo up",
                ],
                netns=self._ns(i),
            )
        procs = []
        for i in range(self.n):
            cgs = self._cgroups(i)
            for cg, limits in cgs.items():
                cg.mkdir(parents=True, exist_ok=True)
                for name, value in limits.items():
                    (cg / name).write_text(value)
            procs.append(
                subprocess.Popen(
                    [
                        "ip", "netns", "exec", self._ns(i),
                        "unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount",
                        "--mount-proc", "--uts", "--ipc", "--cgroup",
                        "sleep", "infinity",
                    ],
                    preexec_fn=_joiner(list(cgs)),
                    stdin=subprocess.DEVNULL,
                )
            )  # fmt: skip
        _wait_running(procs)
        return procs

    def teardown(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
        for p in procs:
            p.wait()
        _ip_batch([f"link del group {GROUP}"] + [f"netns del {self._ns(i)}" for i in range(self.n)])
        for i in range(self.n):
            for cg in self._cgroups(i):
                _rmdir_retry(cg)
        for base in {cg.parent for cg in self._cgroups(0)}:
            _rmdir_retry(base)


def _ip_batch(lines: list[str], netns: str | None = None) -> None:
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    subprocess.run(cmd, input="\n".join(lines) + "\n", text=True, check=True)


def _joiner(cgroups: list[Path]):  # type: ignore[no-untyped-def]
    def join() -> None:
        os.setpgrp()
        for cg in cgroups:
            (cg / "cgroup.procs").write_text(str(os.getpid()))

    return join


def _wait_running(procs: list[subprocess.Popen[bytes]]) -> None:
    """A node counts as running once its process has entered its new PID namespace."""
    own = os.readlink("/proc/self/ns/pid")
    for p in procs:
        while True:
            try:
                kids = Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
                if kids and os.readlink(f"/proc/{kids[0]}/ns/pid") != own:
                    break
            except OSError:
                pass
            if p.poll() is not None:
                raise RuntimeError(f"baseline node process exited with {p.returncode}")
            time.sleep(0.0005)


def _rmdir_retry(path: Path) -> None:
    for _ in range(200):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.005)
    path.rmdir()
