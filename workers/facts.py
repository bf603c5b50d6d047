"""Host facts: what this kernel can do (link kinds, qdiscs, cgroup mode and controllers,
user namespaces, nftables), probed by trying, the configured VXLAN underlay address, and
the check that refuses a plan needing something missing before anything is created."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labplan import features, ops
from workers import config
from workers.kernel import cgroups, syscalls

if TYPE_CHECKING:
    from pyroute2 import IPRoute  # type: ignore[import-untyped]

LINK_KINDS = ("veth", "bridge", "macvlan", "ipvlan", "vxlan", "vlan", "dummy")
QDISCS = ("tbf", "htb", "netem")
PROBE = "lmprobe"  # throwaway names carry the prefix so a sweep would find leftovers


@dataclass(frozen=True)
class Facts:
    kernel: str
    cgroup_mode: str  # "v2" | "v1" | "hybrid"
    cgroup_controllers: tuple[str, ...]
    link_kinds: tuple[str, ...]
    qdiscs: tuple[str, ...]
    user_namespaces: bool
    nftables: bool
    iptables: bool
    # The address the other hosts reach this one at for VXLAN (LABMGR_AGENT_UNDERLAY);
    # from configuration only, never guessed from an interface.
    underlay: str | None = None
    # skopeo and umoci are installed: the host can pull and unpack images.
    image_tools: bool = False
    # Bridges with 802.1Q-aware ports (CONFIG_BRIDGE_VLAN_FILTERING).
    bridge_vlan_filtering: bool = False
    # A tmpfs can be idmapped (Linux 6.3): what volumes shared by nodes need.
    idmapped_tmpfs: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Facts:
        return cls(
            kernel=str(data["kernel"]),
            cgroup_mode=str(data["cgroup_mode"]),
            cgroup_controllers=tuple(data["cgroup_controllers"]),
            link_kinds=tuple(data["link_kinds"]),
            qdiscs=tuple(data["qdiscs"]),
            user_namespaces=bool(data["user_namespaces"]),
            nftables=bool(data["nftables"]),
            iptables=bool(data["iptables"]),
            underlay=str(data["underlay"]) if data.get("underlay") else None,
            image_tools=bool(data.get("image_tools")),
            bridge_vlan_filtering=bool(data.get("bridge_vlan_filtering")),
            idmapped_tmpfs=bool(data.get("idmapped_tmpfs")),
        )


def probe() -> Facts:
    """Probe this host. Link kinds and qdiscs are tried for real inside a throwaway
    network namespace of this thread, which disappears with the probe."""
    layout = cgroups.detect_layout()
    kinds, qdiscs, vlan_filtering = _probe_links()
    return Facts(
        kernel=platform.release(),
        cgroup_mode=layout.mode,
        cgroup_controllers=layout.controllers,
        link_kinds=kinds,
        qdiscs=qdiscs,
        user_namespaces=_probe_user_namespaces(),
        nftables=_command_works(["nft", "list", "tables"]),
        iptables=shutil.which("iptables") is not None,
        underlay=config.underlay(),
        image_tools=all(shutil.which(tool) for tool in ("skopeo", "umoci")),
        bridge_vlan_filtering=vlan_filtering,
        idmapped_tmpfs=_probe_idmapped_tmpfs(),
    )


def _probe_links() -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    # pyroute2's package imports all of its ~100 modules (~0.1 s): only a probe pays that.
    from pyroute2 import IPRoute

    origin = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.unshare(syscalls.CLONE_NEWNET)
        with IPRoute() as ipr:
            return _try_kinds(ipr), _try_qdiscs(ipr), _try_vlan_filtering(ipr)
    finally:
        syscalls.setns(origin, syscalls.CLONE_NEWNET)
        os.close(origin)


def _try_kinds(ipr: IPRoute) -> tuple[str, ...]:
    from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

    ipr.link("add", ifname=f"{PROBE}p", kind="veth", peer=f"{PROBE}q")
    parent = ipr.link_lookup(ifname=f"{PROBE}p")[0]
    works = ["veth"]
    attempts: dict[str, dict[str, Any]] = {
        "bridge": {"kind": "bridge"},
        "macvlan": {"kind": "macvlan", "link": parent, "macvlan_mode": "bridge"},
        "ipvlan": {"kind": "ipvlan", "link": parent, "ipvlan_mode": 0},
        "vxlan": {"kind": "vxlan", "vxlan_id": 42, "vxlan_port": 4789},
        "vlan": {"kind": "vlan", "link": parent, "vlan_id": 42},
        "dummy": {"kind": "dummy"},
    }
    for kind, spec in attempts.items():
        try:
            ipr.link("add", ifname=f"{PROBE}{kind[0]}", **spec)
            ipr.link("del", ifname=f"{PROBE}{kind[0]}")
            works.append(kind)
        except NetlinkError:
            pass
    return tuple(k for k in LINK_KINDS if k in works)


def _try_vlan_filtering(ipr: IPRoute) -> bool:
    """A kernel without bridge VLAN filtering refuses a bridge asking for it."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        ipr.link("add", ifname=f"{PROBE}f", kind="bridge", br_vlan_filtering=1)
        ipr.link("del", ifname=f"{PROBE}f")
    except NetlinkError:
        return False
    return True


def _try_qdiscs(ipr: IPRoute) -> tuple[str, ...]:
    from pyroute2.netlink.exceptions import NetlinkError

    index = ipr.link_lookup(ifname=f"{PROBE}p")[0]
    attempts: dict[str, dict[str, Any]] = {
        "tbf": {"rate": 125000, "burst": 16384, "latency": 50000},
        "htb": {"default": 0},
        "netem": {"delay": 1000},
    }
    works = []
    for name, spec in attempts.items():
        try:
            ipr.tc("add", name, index=index, handle="1:", **spec)
            ipr.tc("del", index=index, root=True)
            works.append(name)
        except NetlinkError:
            pass
    return tuple(works)


def _probe_user_namespaces() -> bool:
    limit = Path("/proc/sys/user/max_user_namespaces")
    with contextlib.suppress(OSError, ValueError):
        if int(limit.read_text()) == 0:
            return False
    return _command_works(["unshare", "--user", "true"])


def _probe_idmapped_tmpfs() -> bool:
    """Whether a detached tmpfs takes an idmapping, tried for real with the user namespace
    of a child that maps root (unshare(1)), gone with the probe."""
    if shutil.which("unshare") is None:
        return False
    try:
        mount_fd = syscalls.fsmount("tmpfs")
    except OSError:
        return False
    child = subprocess.Popen(
        ["unshare", "--user", "--map-root-user", "sleep", "10"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        uid_map = Path(f"/proc/{child.pid}/uid_map")
        for _ in range(200):  # until unshare(1) has mapped its root alone, at most ~2 s
            with contextlib.suppress(OSError):
                if uid_map.read_text().split() == ["0", "0", "1"]:
                    break
            time.sleep(0.01)
        userns = os.open(f"/proc/{child.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.idmap_mount(mount_fd, userns)
        finally:
            os.close(userns)
        return True
    except OSError:
        return False
    finally:
        os.close(mount_fd)
        child.kill()
        child.wait()


def _command_works(argv: list[str]) -> bool:
    if shutil.which(argv[0]) is None:
        return False
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def check_plan(facts: Facts, plan: ops.HostPlan) -> list[str]:
    """The features `plan` needs that this host lacks, by name ("ipvlan", "netem",
    "cgroup controller io", ...); empty when the plan can be applied."""
    return features.missing(facts.to_dict(), plan)
