"""The surface the executor drives: every kernel action of a job, idempotent `ensure_*`
and `remove_*` that accept "already gone", and the values that cross it (a node's init,
an interface, the host-wide rules). Implemented by the real kernel driver
(`workers.kernel.driver`) and by the in-memory fake of the unit tests
(tests/unit/workers/fake_kernel.py)."""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from typing import Protocol

from labplan import ops
from labplan.subnets import HostAddress, HostRoute


@dataclass(frozen=True)
class NodeProcess:
    """A node's init as the host sees it; `start` (clock ticks since boot) tells a live
    init from a later process that reused its pid. `note`: what its user should know
    about how it started, as lminit said it ("note ..." lines), "" for nothing."""

    pid: int
    start: int
    note: str = field(default="", compare=False)


@dataclass(frozen=True)
class Interface:
    name: str
    addresses: tuple[str, ...]
    mac: str = ""


@dataclass(frozen=True)
class HostRules:
    """What the agent's own host-wide table holds (`workers.hostguard` decides it): VXLAN
    from the peers' underlay addresses only, while there is a VXLAN device, and, while
    labmgr is the one who turned IPv4 (IPv6) forwarding on, nothing forwarded but the
    labs'."""

    vxlan_ports: tuple[int, ...] = ()  # empty: no VXLAN device, no VXLAN rules
    vxlan_peers: tuple[str, ...] = ()  # sorted underlay addresses
    forward_guard: bool = False
    forward_guard6: bool = False

    @property
    def empty(self) -> bool:
        return not self.vxlan_ports and not self.forward_guard and not self.forward_guard6


class Driver(Protocol):
    def close(self) -> None: ...

    # network namespaces
    def ensure_netns(self, name: str) -> bool: ...
    def remove_netns(self, name: str) -> bool: ...
    def netns_names(self, prefix: str) -> list[str]: ...
    def interfaces(self, netns: str | None) -> list[Interface]: ...

    # cgroups
    def ensure_cgroup(self, rel: str) -> bool: ...
    def set_cgroup_limit(self, rel: str, key: str, value: str) -> None: ...
    def kill_cgroup(self, rel: str) -> int: ...
    def start_removing_cgroup(self, rel: str) -> None:
        """Kill the cgroup's processes and remove it (subtree included) while the caller
        goes on with other work; `finish_removing_cgroup` waits for it."""
        ...

    def finish_removing_cgroup(self, rel: str) -> tuple[int, bool]:
        """(processes killed, whether the cgroup existed) of the removal started before."""
        ...

    def remove_cgroup(self, rel: str) -> bool: ...
    def cgroup_children(self) -> list[str]: ...

    # links, addresses, routes
    def ensure_bridge(self, op: ops.CreateBridge) -> bool: ...
    def ensure_veth(self, op: ops.CreateVethPair) -> bool: ...
    def ensure_peer_link(self, op: ops.CreatePeerLink) -> bool: ...
    def ensure_dummy(self, op: ops.CreateDummy) -> bool: ...
    def ensure_tunnel(self, op: ops.CreateTunnel) -> bool: ...
    def set_altname(self, link: str, altname: str) -> None:
        """`altname` an alternative name of the host link `link`; a name another link
        holds is refused."""
        ...

    def attach(self, link: str, bridge: str) -> None: ...
    def ensure_macvlan(self, op: ops.CreateMacvlan) -> bool: ...
    def ensure_ipvlan(self, op: ops.CreateIpvlan) -> bool: ...
    def ensure_vlan(self, op: ops.CreateVlan) -> bool: ...
    def set_port_vlans(self, op: ops.SetPortVlans) -> None:
        """The port in VLAN `pvid` untagged (out of VLAN 1 for another) and in `tagged`
        tagged."""
        ...

    def add_bridge_vlan(self, bridge: str, vid: int) -> None: ...
    def ensure_vxlan(self, op: ops.CreateVxlan) -> bool: ...
    def ensure_fdb(self, vxlan: str, dst: str) -> None: ...
    def set_up(self, netns: str | None, ifname: str) -> None: ...
    def set_down(self, netns: str | None, ifname: str) -> None: ...
    def ensure_address(self, netns: str | None, ifname: str, address: str) -> None: ...
    def ensure_route(self, netns: str, dst: str, via: str) -> None: ...
    def set_shaping(self, op: ops.SetShaping) -> None: ...
    def clear_shaping(self, netns: str | None, ifname: str) -> None:
        """The interface back to the kernel's default queue (no impairments)."""
        ...

    def remove_link_group(self, group: int) -> None: ...
    def remove_link(
        self, name: str, netns: str | None = None, peer: tuple[str, str] | None = None
    ) -> bool:
        """Delete the link `name` of the host (or of `netns`), with the veth `peer`
        (netns, name) it may have; False when it was not there."""
        ...

    def host_links(self) -> list[tuple[str, str | None]]: ...

    def set_sysctl(self, netns: str, key: str, value: str) -> None:
        """A net.* sysctl of a node's network namespace (`key` as sysctl(8) writes it)."""
        ...

    # volumes
    def ensure_volume(self, token: str, volume: str, size: int) -> None:
        """The deployment's volume on this host, `size` bytes at most; kept if there."""
        ...

    def prune_volumes(self, token: str, keep: Set[str]) -> list[str]:
        """Remove the deployment's volumes not in `keep` (a redeploy dropped them)."""
        ...

    # firewall
    def set_nat(self, token: str, bridge: str, subnet: str) -> None:
        """Masquerade `subnet` out of the host, never into another lab, the networks the
        host is on or link-local addresses."""
        ...

    def isolate(self, token: str, bridge: str, subnet: str) -> None: ...
    def guard_bridge(
        self, token: str, bridge: str, gateway: str | None, gateway6: str | None = None
    ) -> None: ...
    def remove_firewall(self, token: str) -> bool: ...
    def firewall_tables(self) -> list[str]: ...

    # the host itself (its root namespace)
    def host_network(self) -> tuple[list[HostRoute], list[HostAddress]]:
        """The host's routes and addresses, without labmgr's own links (lm*)."""
        ...

    def ip_forward(self, version: int = 4) -> bool: ...
    def set_ip_forward(self, on: bool, version: int = 4) -> None: ...
    def links_forwarding6(self) -> dict[str, bool]:
        """Each host link's own IPv6 forwarding switch, labmgr's links left out."""
        ...

    def set_links_forwarding6(self, links: dict[str, bool]) -> None: ...
    def set_host_rules(self, rules: HostRules) -> None:
        """Make the host-wide table say `rules` (none at all when they are empty)."""
        ...

    # node processes
    def spawn_all(
        self, starts: Sequence[tuple[ops.SpawnNode, int | None]], token: str
    ) -> list[NodeProcess]:
        """Start nodes (op, outside uid base) together; their inits in the order given.
        Raises `SpawnError` naming the first node that failed."""
        ...

    def alive(self, process: NodeProcess) -> bool: ...
    def signal_init(self, process: NodeProcess, signal: int) -> None:
        """Send a node's init `signal`, by pidfd (never to a later process of its pid)."""
        ...

    def run_in_node(
        self, process: NodeProcess, spawn: ops.SpawnNode, command: Sequence[str], timeout: float
    ) -> tuple[int, str]:
        """Run `command` inside the started node (its namespaces, cgroup, environment):
        its exit status (124 past `timeout` seconds) and its output, stdout then stderr."""
        ...

    def remove_files(self, token: str) -> bool: ...
