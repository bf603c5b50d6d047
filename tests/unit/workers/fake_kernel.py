"""An in-memory kernel behind the Driver surface (workers.driver), for the unit tests of
the executor and the agent, without root. mypy checks it against the `Driver` protocol.

It keeps the objects a real kernel would (namespaces, links with group and alias,
cgroups with limits, firewall tables, node processes) and enforces the same rules the
executor relies on: a veth needs its peer's namespace, an address needs its link,
deleting a namespace deletes the links in it, deleting a veth end deletes its peer. Like
the real `Cgroups`, a plan's node cgroup ("lm1/n0") is found inside the reservation's
cgroup that holds its deployment ("r5/lm1/n0"), and a reservation's cgroup is removed
only when no lab is left in it.
`fail_at` makes the n-th driver call raise, to test rollback; `CrashingDriver` stands for
the agent being killed at the n-th call, to test recovery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, field

from labplan import ops
from labplan.subnets import HostAddress, HostRoute
from workers.driver import Driver, HostRules, Interface, NodeProcess
from workers.facts import Facts
from workers.kernel.cgroups import is_reservation_cgroup
from workers.kernel.processes import SpawnError

# A host with every feature a plan may need: nothing is refused for want of one.
ALL_FACTS = Facts(
    kernel="6.18",
    cgroup_mode="v2",
    cgroup_controllers=("cpu", "io", "memory", "pids"),
    link_kinds=("veth", "bridge", "macvlan", "ipvlan", "vxlan", "vlan"),
    qdiscs=("tbf", "htb", "netem"),
    user_namespaces=True,
    nftables=True,
    iptables=True,
    bridge_vlan_filtering=True,
)


class FakeKernelError(Exception):
    pass


@dataclass
class FakeLink:
    netns: str | None
    name: str
    kind: str
    group: int = 0
    alias: str | None = None
    master: str | None = None
    up: bool = False
    peer: tuple[str | None, str] | None = None
    addresses: list[str] = field(default_factory=list)
    vlan_filtering: bool = False
    # On a vlan_filtering bridge: a port's untagged VLAN and the tagged ones, the bridge's
    # own tagged ones.
    pvid: int | None = None
    tagged: set[int] = field(default_factory=set)
    altnames: set[str] = field(default_factory=set)


@dataclass
class FakeKernel:
    """The shared state: one kernel, many driver sessions (one per job)."""

    netns: set[str] = field(default_factory=set)
    links: dict[tuple[str | None, str], FakeLink] = field(default_factory=dict)
    routes: set[tuple[str, str, str]] = field(default_factory=set)
    cgroups: dict[str, dict[str, str]] = field(default_factory=dict)
    tables: dict[str, list[str]] = field(default_factory=dict)
    processes: dict[int, tuple[str, int | None]] = field(default_factory=dict)  # pid -> cgroup
    files: set[str] = field(default_factory=set)
    fdb: set[tuple[str, str]] = field(default_factory=set)
    calls: int = 0
    fail_at: int | None = None
    next_pid: int = 1000
    # What a node's start says its user should know, by node name (lminit's notes).
    spawn_notes: dict[str, str] = field(default_factory=dict)
    # The host's own network, its forwarding switch and labmgr's host-wide table.
    host_routes: list[HostRoute] = field(default_factory=list)
    host_addresses: list[HostAddress] = field(default_factory=list)
    ip_forward: bool = False
    ip6_forward: bool = False
    sysctls: dict[tuple[str, str], str] = field(default_factory=dict)  # (netns, key) -> value
    volumes: dict[tuple[str, str], int] = field(default_factory=dict)  # (token, name) -> size
    shaping: dict[tuple[str | None, str], ops.SetShaping] = field(default_factory=dict)
    # The host's own links' IPv6 forwarding switches (the kernel sets them all with `all`).
    links_forwarding6: dict[str, bool] = field(default_factory=lambda: {"eth0": False, "lo": False})
    host_rules: HostRules = field(default_factory=HostRules)
    # Commands run in nodes, (node, command) in order; what a command answers, by its words.
    execs: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    exec_answers: dict[tuple[str, ...], tuple[int, str]] = field(default_factory=dict)

    def driver(self) -> FakeDriver:
        return FakeDriver(self)

    def objects(self) -> list[str]:
        """Everything left, as readable names: empty when the kernel is clean."""
        return sorted(
            [f"netns {n}" for n in self.netns]
            + [f"link {ns or 'host'}:{name}" for ns, name in self.links]
            + [f"cgroup {c}" for c in self.cgroups]
            + [f"table {t}" for t in self.tables]
            + [f"process {p}" for p in self.processes]
            + [f"files {f}" for f in self.files]
            + ([] if self.host_rules.empty else ["table labmgr"])
        )


class FakeDriver:
    def __init__(self, kernel: FakeKernel) -> None:
        self.k = kernel
        self._removals: dict[str, tuple[int, bool]] = {}

    def _call(self) -> None:
        self.k.calls += 1
        if self.k.fail_at is not None and self.k.calls == self.k.fail_at:
            raise FakeKernelError(f"injected failure at call {self.k.calls}")

    def close(self) -> None:
        pass

    def ensure_netns(self, name: str) -> bool:
        self._call()
        created = name not in self.k.netns
        self.k.netns.add(name)
        if created:
            self.k.links[(name, "lo")] = FakeLink(name, "lo", "loopback", up=True)
        return created

    def remove_netns(self, name: str) -> bool:
        if name not in self.k.netns:
            return False
        self.k.netns.discard(name)
        for key in [k for k in self.k.links if k[0] == name]:
            self._delete_link(key)
        self.k.routes = {r for r in self.k.routes if r[0] != name}
        return True

    def netns_names(self, prefix: str) -> list[str]:
        return sorted(n for n in self.k.netns if n.startswith(prefix))

    def interfaces(self, netns: str | None) -> list[Interface]:
        return [
            Interface(link.name, tuple(link.addresses))
            for (ns, _), link in sorted(self.k.links.items(), key=lambda i: i[0][1])
            if ns == netns
        ]

    def _resolve(self, rel: str) -> str:
        token, _, _ = rel.partition("/")
        if is_reservation_cgroup(token) or token in self.k.cgroups:
            return rel
        for cgroup in sorted(self.k.cgroups):
            holder, _, name = cgroup.partition("/")
            if is_reservation_cgroup(holder) and name == token:
                return f"{holder}/{rel}"
        return rel

    def ensure_cgroup(self, rel: str) -> bool:
        self._call()
        rel = self._resolve(rel)
        created = rel not in self.k.cgroups
        self.k.cgroups.setdefault(rel, {})
        return created

    def set_cgroup_limit(self, rel: str, key: str, value: str) -> None:
        self._call()
        rel = self._resolve(rel)
        if rel not in self.k.cgroups:
            raise FakeKernelError(f"no cgroup {rel}")
        self.k.cgroups[rel][key] = value

    def kill_cgroup(self, rel: str) -> int:
        rel = self._resolve(rel)
        doomed = [
            pid
            for pid, (cg, _) in self.k.processes.items()
            if cg == rel or cg.startswith(rel + "/")
        ]
        for pid in doomed:
            del self.k.processes[pid]
        return len(doomed)

    def start_removing_cgroup(self, rel: str) -> None:
        self._removals[rel] = (self.kill_cgroup(rel), self.remove_cgroup(rel))

    def finish_removing_cgroup(self, rel: str) -> tuple[int, bool]:
        return self._removals.pop(rel, (0, False))

    def remove_cgroup(self, rel: str) -> bool:
        rel = self._resolve(rel)
        doomed = [c for c in self.k.cgroups if c == rel or c.startswith(rel + "/")]
        if is_reservation_cgroup(rel) and len(doomed) > 1:
            return False  # a lab is left in it
        if any(cg in doomed for cg, _ in self.k.processes.values()):
            raise FakeKernelError(f"cgroup {rel} is busy")
        for c in doomed:
            del self.k.cgroups[c]
        return bool(doomed)

    def cgroup_children(self) -> list[str]:
        names = {c.split("/")[0] for c in self.k.cgroups}
        names |= {"/".join(c.split("/")[:2]) for c in self.k.cgroups if c.count("/") >= 1}
        return sorted(n for n in names if "/" not in n or is_reservation_cgroup(n.split("/")[0]))

    def _add_link(self, link: FakeLink) -> bool:
        self._call()
        if link.netns is not None and link.netns not in self.k.netns:
            raise FakeKernelError(f"no netns {link.netns}")
        key = (link.netns, link.name)
        if key in self.k.links:
            return False
        self.k.links[key] = link
        return True

    def _need(self, netns: str | None, name: str) -> FakeLink:
        link = self.k.links.get((netns, name))
        if link is None:
            raise FakeKernelError(f"no link {name} in {netns or 'host'}")
        return link

    def _delete_link(self, key: tuple[str | None, str]) -> None:
        link = self.k.links.pop(key, None)
        if link is not None and link.peer is not None:
            self.k.links.pop(link.peer, None)

    def ensure_bridge(self, op: ops.CreateBridge) -> bool:
        return self._add_link(
            FakeLink(None, op.name, "bridge", op.group, op.alias, vlan_filtering=op.vlan_filtering)
        )

    def ensure_veth(self, op: ops.CreateVethPair) -> bool:
        if (None, op.name) in self.k.links:
            return False
        host = FakeLink(
            None, op.name, "veth", op.group, op.alias, peer=(op.peer_netns, op.peer_ifname)
        )
        peer = FakeLink(op.peer_netns, op.peer_ifname, "veth", peer=(None, op.name))
        if op.peer_netns not in self.k.netns:
            raise FakeKernelError(f"no netns {op.peer_netns}")
        self._add_link(host)
        self.k.links[(op.peer_netns, op.peer_ifname)] = peer
        return True

    def attach(self, link: str, bridge: str) -> None:
        self._call()
        self._need(None, bridge)
        self._need(None, link).master = bridge

    def ensure_macvlan(self, op: ops.CreateMacvlan) -> bool:
        self._need(None, op.parent)
        return self._add_link(FakeLink(op.netns, op.ifname, f"macvlan {op.mode}"))

    def ensure_dummy(self, op: ops.CreateDummy) -> bool:
        return self._add_link(FakeLink(op.netns, op.ifname, "dummy"))

    def ensure_tunnel(self, op: ops.CreateTunnel) -> bool:
        if op.parent is not None:
            self._need(None, op.parent)
        return self._add_link(FakeLink(op.netns, op.ifname, f"vxlan {op.vni} {op.remote}"))

    def set_altname(self, link: str, altname: str) -> None:
        self._call()
        named = self._need(None, link)
        for other in self.k.links.values():
            taken = other.netns is None and altname in (other.name, *other.altnames)
            if taken and other is not named:
                raise FakeKernelError(f"{altname} is already the name of another link")
        named.altnames.add(altname)

    def ensure_vlan(self, op: ops.CreateVlan) -> bool:
        self._need(None, op.parent)
        return self._add_link(FakeLink(op.netns, op.ifname, f"vlan {op.vid}"))

    def set_port_vlans(self, op: ops.SetPortVlans) -> None:
        self._call()
        port = self._need(None, op.link)
        if port.master is None or not self._need(None, port.master).vlan_filtering:
            raise FakeKernelError(f"{op.link} is no port of a vlan_filtering bridge")
        port.pvid = op.pvid
        port.tagged.update(op.tagged)

    def add_bridge_vlan(self, bridge: str, vid: int) -> None:
        self._call()
        link = self._need(None, bridge)
        if not link.vlan_filtering:
            raise FakeKernelError(f"{bridge} is not a vlan_filtering bridge")
        link.tagged.add(vid)

    def ensure_ipvlan(self, op: ops.CreateIpvlan) -> bool:
        self._need(None, op.parent)
        return self._add_link(FakeLink(op.netns, op.ifname, f"ipvlan {op.mode}"))

    def ensure_vxlan(self, op: ops.CreateVxlan) -> bool:
        created = self._add_link(FakeLink(None, op.name, "vxlan", op.group, op.alias))
        self.attach(op.name, op.bridge)
        return created

    def ensure_fdb(self, vxlan: str, dst: str) -> None:
        self._call()
        self._need(None, vxlan)
        self.k.fdb.add((vxlan, dst))

    def set_up(self, netns: str | None, ifname: str) -> None:
        self._call()
        self._need(netns, ifname).up = True

    def set_down(self, netns: str | None, ifname: str) -> None:
        self._call()
        self._need(netns, ifname).up = False

    def ensure_peer_link(self, op: ops.CreatePeerLink) -> bool:
        self._call()
        if (op.netns, op.ifname) in self.k.links:
            return False
        for netns in (op.netns, op.peer_netns):
            if netns not in self.k.netns:
                raise FakeKernelError(f"no netns {netns}")
        first = FakeLink(op.netns, op.ifname, "veth", peer=(op.peer_netns, op.peer_ifname))
        second = FakeLink(op.peer_netns, op.peer_ifname, "veth", peer=(op.netns, op.ifname))
        self.k.links[(op.netns, op.ifname)] = first
        self.k.links[(op.peer_netns, op.peer_ifname)] = second
        return True

    def ensure_address(self, netns: str | None, ifname: str, address: str) -> None:
        self._call()
        link = self._need(netns, ifname)
        if address not in link.addresses:
            link.addresses.append(address)

    def ensure_route(self, netns: str, dst: str, via: str) -> None:
        self._call()
        if netns not in self.k.netns:
            raise FakeKernelError(f"no netns {netns}")
        self.k.routes.add((netns, dst, via))

    def set_shaping(self, op: ops.SetShaping) -> None:
        self._call()
        self._need(op.netns, op.ifname)
        self.k.shaping[(op.netns, op.ifname)] = op

    def clear_shaping(self, netns: str | None, ifname: str) -> None:
        self._call()
        self.k.shaping.pop((netns, ifname), None)

    def ensure_volume(self, token: str, volume: str, size: int) -> None:
        self._call()
        self.k.volumes[(token, volume)] = size

    def prune_volumes(self, token: str, keep: Set[str]) -> list[str]:
        gone = sorted(v for t, v in self.k.volumes if t == token and v not in keep)
        for volume in gone:
            del self.k.volumes[(token, volume)]
        return gone

    def set_sysctl(self, netns: str, key: str, value: str) -> None:
        self._call()
        if netns not in self.k.netns:
            raise FakeKernelError(f"no netns {netns}")
        self.k.sysctls[(netns, key)] = value

    def remove_link_group(self, group: int) -> None:
        for key in [k for k, link in self.k.links.items() if k[0] is None and link.group == group]:
            self._delete_link(key)

    def remove_link(
        self, name: str, netns: str | None = None, peer: tuple[str, str] | None = None
    ) -> bool:
        if (netns, name) not in self.k.links:
            return False
        self._delete_link((netns, name))
        return True

    def host_links(self) -> list[tuple[str, str | None]]:
        return [(name, link.alias) for (ns, name), link in self.k.links.items() if ns is None]

    def set_nat(self, token: str, bridge: str, subnet: str) -> None:
        self._call()
        self.k.tables.setdefault(token, []).append(f"nat {bridge} {subnet}")

    def isolate(self, token: str, bridge: str, subnet: str) -> None:
        self._call()
        self.k.tables.setdefault(token, []).append(f"isolate {bridge} {subnet}")

    def remove_firewall(self, token: str) -> bool:
        return self.k.tables.pop(token, None) is not None

    def guard_bridge(
        self, token: str, bridge: str, gateway: str | None, gateway6: str | None = None
    ) -> None:
        self._call()
        six = f" {gateway6}" if gateway6 else ""
        self.k.tables.setdefault(token, []).append(f"guard {bridge} {gateway}{six}")

    def firewall_tables(self) -> list[str]:
        return sorted(self.k.tables)

    def host_network(self) -> tuple[list[HostRoute], list[HostAddress]]:
        return list(self.k.host_routes), list(self.k.host_addresses)

    def ip_forward(self, version: int = 4) -> bool:
        return self.k.ip_forward if version == 4 else self.k.ip6_forward

    def set_ip_forward(self, on: bool, version: int = 4) -> None:
        if version == 4:
            self.k.ip_forward = on
        else:
            self.k.ip6_forward = on
            self.k.links_forwarding6 = {name: on for name in self.k.links_forwarding6}

    def links_forwarding6(self) -> dict[str, bool]:
        return dict(self.k.links_forwarding6)

    def set_links_forwarding6(self, links: dict[str, bool]) -> None:
        for name, on in links.items():
            if name in self.k.links_forwarding6:
                self.k.links_forwarding6[name] = on

    def set_host_rules(self, rules: HostRules) -> None:
        self.k.host_rules = rules

    def spawn_all(
        self, starts: Sequence[tuple[ops.SpawnNode, int | None]], token: str
    ) -> list[NodeProcess]:
        return [self._spawn(op, token, uid_base) for op, uid_base in starts]

    def _spawn(self, op: ops.SpawnNode, token: str, uid_base: int | None) -> NodeProcess:
        self._call()
        cgroup = self._resolve(op.cgroup)
        if cgroup not in self.k.cgroups:
            raise SpawnError(op.node, f"no cgroup {op.cgroup}")
        if op.netns is not None and op.netns not in self.k.netns:
            raise SpawnError(op.node, f"no netns {op.netns}")
        self.k.next_pid += 1
        self.k.processes[self.k.next_pid] = (cgroup, uid_base)
        self.k.files.add(token)
        note = self.k.spawn_notes.get(op.node, "")
        return NodeProcess(self.k.next_pid, self.k.next_pid * 10, note)

    def alive(self, process: NodeProcess) -> bool:
        return process.pid in self.k.processes

    def signal_init(self, process: NodeProcess, signal: int) -> None:
        self._call()
        self.k.processes.pop(process.pid, None)  # every fake init stops when asked

    def run_in_node(
        self, process: NodeProcess, spawn: ops.SpawnNode, command: Sequence[str], timeout: float
    ) -> tuple[int, str]:
        self._call()
        if process.pid not in self.k.processes:
            return 127, f"node {spawn.node} is not running\n"
        self.k.execs.append((spawn.node, tuple(command)))
        return self.k.exec_answers.get(tuple(command), (0, ""))

    def remove_files(self, token: str) -> bool:
        if token in self.k.files:
            self.k.files.discard(token)
            return True
        return False


class Crash(BaseException):
    """Stands for the agent being killed: not an Exception, so nothing rolls back."""


class CrashingDriver(FakeDriver):
    def __init__(self, kernel: FakeKernel, crash_at: int) -> None:
        super().__init__(kernel)
        self.crash_at = crash_at

    def _call(self) -> None:
        if self.k.calls + 1 == self.crash_at:
            self.k.calls += 1
            raise Crash()
        super()._call()


# Where mypy holds the fake to the protocol: every method the executor may call, typed alike.
_AS_DRIVER: Callable[[FakeKernel], Driver] = FakeDriver
