"""The real driver: the kernel subsystems of one job, run on the calling thread inside the
job's root network namespace (the host's, or a simulated host's)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence, Set
from ipaddress import ip_interface, ip_network
from pathlib import Path

from labplan import naming, ops
from labplan.subnets import HostAddress, HostRoute, IPNetwork
from workers.driver import HostRules, Interface, NodeProcess
from workers.kernel import firewall, processes, rtnl
from workers.kernel.cgroups import Cgroups
from workers.kernel.firewall import Firewall
from workers.kernel.links import Links
from workers.kernel.netns import Namespaces
from workers.kernel.processes import NodeStart, Processes
from workers.kernel.qdiscs import Qdiscs

HAS_IPV6 = os.path.isdir("/proc/sys/net/ipv6")


def _lab_link(name: str | None) -> bool:
    return name is not None and name.startswith(naming.PREFIX)


class _Background(threading.Thread):
    """A function run on its own thread, its result or exception taken on join."""

    def __init__(self, work: Callable[[], tuple[int, bool]]) -> None:
        super().__init__(daemon=True)
        self._work = work
        self._result: tuple[int, bool] = (0, False)
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._result = self._work()
        except BaseException as exc:  # handed to the joining thread
            self._error = exc

    def result(self) -> tuple[int, bool]:
        self.join()
        if self._error is not None:
            raise self._error
        return self._result


class KernelDriver:
    def __init__(
        self,
        data_dir: Path,
        lminit: Path,
        root_netns: str | None = None,
        cgroups: Cgroups | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.ns = Namespaces(root_netns)
        self.links = Links(self.ns)
        self.qdiscs = Qdiscs(self.links)
        self.cgroups = cgroups or Cgroups()
        self.processes = Processes(lminit, data_dir)
        self._removals: dict[str, _Background] = {}
        self._host_network: tuple[list[HostRoute], list[HostAddress]] | None = None

    def close(self) -> None:
        self.ns.close()

    def ensure_netns(self, name: str) -> bool:
        return self.ns.ensure(name)

    def remove_netns(self, name: str) -> bool:
        self.links.forget(name)
        return self.ns.remove(name)

    def netns_names(self, prefix: str) -> list[str]:
        return self.ns.names(prefix)

    def interfaces(self, netns: str | None) -> list[Interface]:
        sock = self.ns.rtnl(netns)
        addresses: dict[int, list[str]] = {}
        for addr in sock.addresses():
            addresses.setdefault(addr.index, []).append(f"{addr.address}/{addr.prefixlen}")
        return [
            Interface(link.name, tuple(addresses.get(link.index, ())), link.mac)
            for link in sock.links()
        ]

    def ensure_cgroup(self, rel: str) -> bool:
        return self.cgroups.ensure(rel)

    def set_cgroup_limit(self, rel: str, key: str, value: str) -> None:
        self.cgroups.set_limit(rel, key, value)

    def kill_cgroup(self, rel: str) -> int:
        return self.cgroups.kill(rel)

    def start_removing_cgroup(self, rel: str) -> None:
        # cgroupfs work takes the cgroup lock and link work the RTNL lock: on a thread of
        # its own, the first runs beside the second. Nothing in it depends on this
        # thread's network namespace.
        self._removals[rel] = removal = _Background(lambda: self._remove_cgroup(rel))
        removal.start()

    def finish_removing_cgroup(self, rel: str) -> tuple[int, bool]:
        removal = self._removals.pop(rel, None)
        return removal.result() if removal is not None else (0, False)

    def _remove_cgroup(self, rel: str) -> tuple[int, bool]:
        killed = self.cgroups.kill(rel)
        return killed, self.cgroups.remove(rel)

    def remove_cgroup(self, rel: str) -> bool:
        return self.cgroups.remove(rel)

    def cgroup_children(self) -> list[str]:
        return self.cgroups.children()

    def ensure_bridge(self, op: ops.CreateBridge) -> bool:
        return self.links.ensure_bridge(op.name, op.mtu, op.group, op.alias, op.vlan_filtering)

    def ensure_veth(self, op: ops.CreateVethPair) -> bool:
        return self.links.ensure_veth(
            op.name, op.peer_netns, op.peer_ifname, op.peer_mac, op.mtu, op.group, op.alias
        )

    def ensure_peer_link(self, op: ops.CreatePeerLink) -> bool:
        return self.links.ensure_peer_link(
            op.netns, op.ifname, op.peer_netns, op.peer_ifname, op.mtu
        )

    def ensure_dummy(self, op: ops.CreateDummy) -> bool:
        return self.links.ensure_dummy(op.netns, op.ifname, op.mtu)

    def ensure_tunnel(self, op: ops.CreateTunnel) -> bool:
        return self.links.ensure_tunnel(
            op.netns, op.ifname, op.vni, op.remote, op.port, op.parent, op.mtu
        )

    def set_altname(self, link: str, altname: str) -> None:
        self.links.set_altname(link, altname)

    def attach(self, link: str, bridge: str) -> None:
        self.links.attach(link, bridge)

    def ensure_macvlan(self, op: ops.CreateMacvlan) -> bool:
        return self.links.ensure_macvlan(op.parent, op.netns, op.ifname, op.mode, op.mac, op.mtu)

    def ensure_ipvlan(self, op: ops.CreateIpvlan) -> bool:
        return self.links.ensure_ipvlan(op.parent, op.netns, op.ifname, op.mode, op.mtu)

    def ensure_vlan(self, op: ops.CreateVlan) -> bool:
        return self.links.ensure_vlan(op.parent, op.netns, op.ifname, op.vid, op.mac, op.mtu)

    def set_port_vlans(self, op: ops.SetPortVlans) -> None:
        self.links.set_port_vlans(op.link, op.pvid, op.tagged)

    def add_bridge_vlan(self, bridge: str, vid: int) -> None:
        self.links.add_bridge_vlan(bridge, vid)

    def ensure_vxlan(self, op: ops.CreateVxlan) -> bool:
        return self.links.ensure_vxlan(
            op.name, op.vni, op.port, op.local, op.bridge, op.mtu, op.group, op.alias
        )

    def ensure_fdb(self, vxlan: str, dst: str) -> None:
        self.links.ensure_fdb(vxlan, dst)

    def set_up(self, netns: str | None, ifname: str) -> None:
        self.links.set_up(netns, ifname)

    def set_down(self, netns: str | None, ifname: str) -> None:
        self.links.set_down(netns, ifname)

    def ensure_address(self, netns: str | None, ifname: str, address: str) -> None:
        self.links.ensure_address(netns, ifname, address)

    def ensure_route(self, netns: str, dst: str, via: str) -> None:
        self.links.ensure_route(netns, dst, via)

    def set_sysctl(self, netns: str, key: str, value: str) -> None:
        self.links.set_sysctl(netns, key, value)

    def ensure_volume(self, token: str, volume: str, size: int) -> None:
        self.processes.ensure_volume(token, volume, size)

    def prune_volumes(self, token: str, keep: Set[str]) -> list[str]:
        return self.processes.prune_volumes(token, keep)

    def set_shaping(self, op: ops.SetShaping) -> None:
        self.qdiscs.set_shaping(op)

    def clear_shaping(self, netns: str | None, ifname: str) -> None:
        self.qdiscs.clear(netns, ifname)

    def signal_init(self, process: NodeProcess, signal: int) -> None:
        processes.signal(process, signal)

    def remove_link_group(self, group: int) -> None:
        self.links.remove_group(group)

    def remove_link(
        self, name: str, netns: str | None = None, peer: tuple[str, str] | None = None
    ) -> bool:
        return self.links.remove(name, netns, peer)

    def host_links(self) -> list[tuple[str, str | None]]:
        return [(link.name, link.alias) for link in self.links.host_links()]

    def set_nat(self, token: str, bridge: str, subnet: str) -> None:
        local = self._local_networks(ip_network(subnet).version)
        Firewall(token).set_nat(bridge, subnet, local)

    def _local_networks(self, version: int) -> set[IPNetwork]:
        """The networks of one IP version the host is on: its routes without a gateway
        (but the default route) and its addresses' prefixes, labmgr's own links left out."""
        if self._host_network is None:  # once per job: the host's routes are not the lab's
            self._host_network = self.host_network()
        routes, addresses = self._host_network
        local = {ip_network(r.dst, strict=False) for r in routes if not r.via}
        local |= {ip_interface(a.address).network for a in addresses}
        return {n for n in local if n.version == version and n.prefixlen}

    def guard_bridge(
        self, token: str, bridge: str, gateway: str | None, gateway6: str | None = None
    ) -> None:
        Firewall(token).guard(bridge, gateway, gateway6)

    def isolate(self, token: str, bridge: str, subnet: str) -> None:
        Firewall(token).isolate(bridge, subnet)

    def remove_firewall(self, token: str) -> bool:
        return Firewall(token).remove()

    def firewall_tables(self) -> list[str]:
        return firewall.tables("lm")

    def host_network(self) -> tuple[list[HostRoute], list[HostAddress]]:
        sock = self.ns.rtnl(None)
        names = {link.index: link.name for link in sock.links()}
        families = (socket.AF_INET, socket.AF_INET6) if HAS_IPV6 else (socket.AF_INET,)
        routes = [
            HostRoute(route.dst, names.get(route.oif, ""), route.gateway or "")
            for family in families
            for route in sock.routes(family)
            if route.kind not in rtnl.RTN_NOT_NETWORKS and not _lab_link(names.get(route.oif))
        ]
        addresses = [
            HostAddress(f"{addr.address}/{addr.prefixlen}", names.get(addr.index, ""))
            for family in families
            for addr in sock.addresses(family)
            if not _lab_link(names.get(addr.index))
        ]
        return routes, addresses

    def ip_forward(self, version: int = 4) -> bool:
        return firewall.ip_forward(version)

    def set_ip_forward(self, on: bool, version: int = 4) -> None:
        firewall.set_ip_forward(on, version)

    def links_forwarding6(self) -> dict[str, bool]:
        return firewall.links_forwarding6()

    def set_links_forwarding6(self, links: dict[str, bool]) -> None:
        firewall.set_links_forwarding6(links)

    def set_host_rules(self, rules: HostRules) -> None:
        firewall.set_host_rules(rules)

    def spawn_all(
        self, starts: Sequence[tuple[ops.SpawnNode, int | None]], token: str
    ) -> list[NodeProcess]:
        self.ns.close_sockets()
        resolved = [
            NodeStart(
                op=op,
                netns_path=str(self.ns.path(op.netns)) if op.netns else self.ns.root_path,
                cgroup_procs=self.cgroups.procs_files(op.cgroup),
                uid_base=uid_base,
            )
            for op, uid_base in starts
        ]
        return self.processes.spawn_all(resolved, token)

    def alive(self, process: NodeProcess) -> bool:
        return processes.alive(process)

    def run_in_node(
        self, process: NodeProcess, spawn: ops.SpawnNode, command: Sequence[str], timeout: float
    ) -> tuple[int, str]:
        env = {"HOSTNAME": spawn.hostname, **dict(spawn.environment)}
        procs = self.cgroups.procs_files(spawn.cgroup)
        try:
            done = self.processes.run(process, procs, command, env, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or b"") + (exc.stderr or b"")
            return 124, output.decode(errors="replace") + f"timed out after {timeout:g} s\n"
        return done.returncode, (done.stdout + done.stderr).decode(errors="replace")

    def remove_files(self, token: str) -> bool:
        found = self.processes.remove_run_dir(token)
        logs = self.data_dir / "logs" / token  # where earlier versions kept node logs
        if logs.exists():
            shutil.rmtree(logs, ignore_errors=True)
            found = True
        return found
