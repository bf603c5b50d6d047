"""Links, addresses, routes and FDB entries through the job's netlink sockets.

Links meant for a node's namespace are created directly inside it (IFLA_NET_NS_FD):
creating then moving one costs ~50x more. Host-side links carry the deployment's link
group and an ifalias naming it, so teardown is one group delete and a sweep can find
them without any database.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from workers.kernel.netns import Namespaces

ZERO_MAC = "00:00:00:00:00:00"
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}


@dataclass(frozen=True)
class LinkInfo:
    name: str
    group: int
    alias: str | None


class Links:
    """Every link operation of one job; `netns=None` is the job's root namespace."""

    def __init__(self, namespaces: Namespaces) -> None:
        self.ns = namespaces
        # ifindex by (netns, name) for the job: a lookup is a netlink round trip, and a
        # link is used by several ops in a row (attach, up, address).
        self._indexes: dict[tuple[str | None, str], int] = {}

    def index(self, netns: str | None, ifname: str) -> int | None:
        cached = self._indexes.get((netns, ifname))
        if cached is not None:
            return cached
        found = self.ns.ipr(netns).link_lookup(ifname=ifname)
        if not found:
            return None
        self._indexes[(netns, ifname)] = int(found[0])
        return int(found[0])

    def forget(self, netns: str | None, ifname: str | None = None) -> None:
        """Drop cached indexes of a removed link, or of every link of a namespace."""
        for key in [k for k in self._indexes if k[0] == netns and ifname in (None, k[1])]:
            del self._indexes[key]

    def need_index(self, netns: str | None, ifname: str) -> int:
        index = self.index(netns, ifname)
        if index is None:
            where = f"namespace {netns}" if netns else "the host"
            raise LookupError(f"no link {ifname} in {where}")
        return index

    @contextmanager
    def _netns_fd(self, netns: str) -> Iterator[int]:
        fd = os.open(self.ns.path(netns), os.O_RDONLY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)

    def _add(self, netns: str | None, ifname: str, **spec: Any) -> bool:
        """Create a link unless one of that name exists; True when created."""
        try:
            self.ns.ipr(netns).link("add", ifname=ifname, **spec)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
            return False
        return True

    def _own(self, name: str, alias: str) -> None:
        # The kernel ignores IFLA_IFALIAS when creating a link: it takes a second message.
        index = self.need_index(None, name)
        self.ns.ipr(None).link("set", index=index, ifalias=alias)

    def ensure_bridge(self, name: str, mtu: int, group: int, alias: str) -> bool:
        created = self._add(None, name, kind="bridge", mtu=mtu, group=group)
        if created:
            self._own(name, alias)
        return created

    def ensure_veth(
        self,
        name: str,
        peer_netns: str,
        peer_ifname: str,
        peer_mac: str | None,
        mtu: int,
        group: int,
        alias: str,
    ) -> bool:
        """A veth whose host side `name` has a peer created inside `peer_netns`. The host
        side existing means the pair exists: the kernel makes and removes them together."""
        with self._netns_fd(peer_netns) as fd:
            peer: dict[str, Any] = {"ifname": peer_ifname, "net_ns_fd": fd, "mtu": mtu}
            if peer_mac:
                peer["address"] = peer_mac
            created = self._add(None, name, kind="veth", mtu=mtu, group=group, peer=peer)
        if created:
            self._own(name, alias)
        return created

    def attach(self, link: str, bridge: str) -> None:
        master = self.need_index(None, bridge)
        self.ns.ipr(None).link("set", index=self.need_index(None, link), master=master)

    def ensure_macvlan(
        self, parent: str, netns: str, ifname: str, mode: str, mac: str | None, mtu: int
    ) -> bool:
        spec: dict[str, Any] = {"kind": "macvlan", "macvlan_mode": mode, "mtu": mtu}
        if mac:
            spec["address"] = mac
        return self._add_child(parent, netns, ifname, spec)

    def ensure_ipvlan(self, parent: str, netns: str, ifname: str, mode: str, mtu: int) -> bool:
        spec = {"kind": "ipvlan", "ipvlan_mode": IPVLAN_MODES[mode], "mtu": mtu}
        return self._add_child(parent, netns, ifname, spec)

    def _add_child(self, parent: str, netns: str, ifname: str, spec: dict[str, Any]) -> bool:
        """A child link of a root-namespace `parent`, created inside `netns`."""
        if self.index(netns, ifname) is not None:
            return False
        link = self.need_index(None, parent)
        with self._netns_fd(netns) as fd:
            return self._add(None, ifname, link=link, net_ns_fd=fd, **spec)

    def ensure_vxlan(
        self,
        name: str,
        vni: int,
        port: int,
        local: str | None,
        bridge: str,
        mtu: int,
        group: int,
        alias: str,
    ) -> bool:
        # Learning off: peers are the static flood entries, so every host's FDB is known.
        spec: dict[str, Any] = {
            "kind": "vxlan",
            "vxlan_id": vni,
            "vxlan_port": port,
            "vxlan_learning": 0,
            "mtu": mtu,
            "group": group,
        }
        if local:
            spec["vxlan_local"] = local
        created = self._add(None, name, **spec)
        if created:
            self._own(name, alias)
        self.attach(name, bridge)
        return created

    def ensure_fdb(self, vxlan: str, dst: str) -> None:
        """The all-zero flood entry towards a peer host ("bridge fdb append")."""
        index = self.need_index(None, vxlan)
        for entry in self.ns.ipr(None).fdb("dump", ifindex=index):
            if entry.get("NDA_DST") == dst and entry.get("NDA_LLADDR") == ZERO_MAC:
                return
        self.ns.ipr(None).fdb("append", ifindex=index, lladdr=ZERO_MAC, dst=dst)

    def set_up(self, netns: str | None, ifname: str) -> None:
        self.ns.ipr(netns).link("set", index=self.need_index(netns, ifname), state="up")

    def ensure_address(self, netns: str | None, ifname: str, address: str) -> None:
        interface = IPv4Interface(address)
        try:
            self.ns.ipr(netns).addr(
                "add",
                index=self.need_index(netns, ifname),
                address=str(interface.ip),
                prefixlen=interface.network.prefixlen,
            )
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise

    def ensure_route(self, netns: str, dst: str, via: str) -> None:
        network = IPv4Network(dst)
        spec: dict[str, Any] = {"gateway": via}
        if network.prefixlen:
            spec["dst"] = str(network)
        try:
            self.ns.ipr(netns).route("add", **spec)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise

    def remove_group(self, group: int) -> None:
        """Delete every root-namespace link of the group in one netlink call."""
        self.forget(None)
        try:
            self.ns.ipr(None).link("del", group=group)
        except NetlinkError as exc:
            if exc.code not in (errno.ENODEV, errno.ENOENT):
                raise

    def remove(self, name: str) -> bool:
        index = self.index(None, name)
        if index is None:
            return False
        self.forget(None, name)
        try:
            self.ns.ipr(None).link("del", index=index)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise
            return False
        return True

    def host_links(self) -> list[LinkInfo]:
        return [
            LinkInfo(
                name=str(link.get("ifname")),
                group=int(link.get("group") or 0),
                alias=link.get("ifalias"),
            )
            for link in self.ns.ipr(None).get_links()
        ]
