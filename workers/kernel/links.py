"""Links, addresses, routes and FDB entries through the job's netlink sockets.

Links meant for a node's namespace are created directly inside it (IFLA_NET_NS_FD):
creating then moving one costs ~50x more. Host-side links carry the deployment's link
group and an ifalias naming it, so teardown is one group delete and a sweep can find
them without any database. The hot path (veths, bridges, addresses, routes) goes through
the lean `rtnl` client; the rare VXLAN and FDB requests through pyroute2.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import ip_interface, ip_network
from typing import Any

from workers.kernel import rtnl
from workers.kernel.netns import Namespaces, write_sysctls

ZERO_MAC = "00:00:00:00:00:00"
# Host-side links are bridge ports and lab bridges of IPv4-only networks: without this
# each would take an IPv6 link-local address and send DAD and MLD packets that the bridge
# floods to every port. Only asked of kernels that have IPv6 at all.
_HOST_LINK_SETTINGS = (rtnl.no_ipv6_autoconf(),) if os.path.isdir("/proc/sys/net/ipv6") else ()


@dataclass(frozen=True)
class LinkInfo:
    name: str
    group: int
    alias: str | None


class Links:
    """Every link operation of one job; `netns=None` is the job's root namespace."""

    def __init__(self, namespaces: Namespaces) -> None:
        self.ns = namespaces
        # ifindex by name, per namespace, for the job: a link is used by several ops in a
        # row (attach, up, address) and the bridge by every veth.
        self._indexes: dict[str | None, dict[str, int]] = {}

    def index(self, netns: str | None, ifname: str) -> int | None:
        known = self._indexes.setdefault(netns, {})
        cached = known.get(ifname)
        if cached is not None:
            return cached
        found = self.ns.rtnl(netns).link_index(ifname)
        if found is not None:
            known[ifname] = found
        return found

    def forget(self, netns: str | None, ifname: str | None = None) -> None:
        """Drop cached indexes of a removed link, or of every link of a namespace."""
        if ifname is None:
            self._indexes.pop(netns, None)
        else:
            self._indexes.get(netns, {}).pop(ifname, None)

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

    def _own(self, name: str, alias: str) -> None:
        # The kernel ignores IFLA_IFALIAS (and IFLA_AF_SPEC) when creating a link: they
        # take a second message.
        self.ns.rtnl(None).set_link(
            name, rtnl.attr(rtnl.IFLA_IFALIAS, alias.encode()), *_HOST_LINK_SETTINGS
        )

    def ensure_bridge(
        self, name: str, mtu: int, group: int, alias: str, vlan_filtering: bool = False
    ) -> bool:
        data = [rtnl.u8(rtnl.IFLA_BR_VLAN_FILTERING, 1)] if vlan_filtering else []
        created = self.ns.rtnl(None).add_link(
            name,
            rtnl.u32(rtnl.IFLA_MTU, mtu),
            rtnl.u32(rtnl.IFLA_GROUP, group),
            rtnl.link_info("bridge", *data),
        )
        if created:
            self._own(name, alias)
            # The host takes no IPv6 from a lab: a node's IPv6 (subnet6) is between nodes,
            # and nothing it sends to the bridge reaches the host's own IPv6 stack, until
            # a gateway6 turns it on for the bridge, behind its guard (ensure_address).
            if _HOST_LINK_SETTINGS:
                write_sysctls({f"net/ipv6/conf/{name}/disable_ipv6": "1"})
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
            created = self.ns.rtnl(None).add_link(
                name,
                rtnl.u32(rtnl.IFLA_MTU, mtu),
                rtnl.u32(rtnl.IFLA_GROUP, group),
                rtnl.link_info("veth", rtnl.veth_peer(peer_ifname, fd, mtu, peer_mac)),
            )
        if created:
            self._own(name, alias)
        return created

    def ensure_peer_link(
        self, netns: str, ifname: str, peer_netns: str, peer_ifname: str, mtu: int
    ) -> bool:
        """A veth pair from `ifname` in `netns` to `peer_ifname` in `peer_netns`, made in
        one request in the first namespace with its peer created in the second."""
        with self._netns_fd(peer_netns) as fd:
            return self.ns.rtnl(netns).add_link(
                ifname,
                rtnl.u32(rtnl.IFLA_MTU, mtu),
                rtnl.link_info("veth", rtnl.veth_peer(peer_ifname, fd, mtu, None)),
            )

    def ensure_dummy(self, netns: str, ifname: str, mtu: int) -> bool:
        """A dummy link inside `netns`, made there."""
        return self.ns.rtnl(netns).add_link(
            ifname, rtnl.u32(rtnl.IFLA_MTU, mtu), rtnl.link_info("dummy")
        )

    def ensure_tunnel(
        self,
        netns: str,
        ifname: str,
        vni: int,
        remote: str,
        port: int,
        parent: str | None,
        mtu: int,
    ) -> bool:
        """A VXLAN device to `remote` inside `netns`, made from the root namespace: its
        socket, and the way to `remote` (out of `parent`, or the host's route), are the
        host's, while the node sees the device alone."""
        if self.index(netns, ifname) is not None:
            return False
        data = [rtnl.u32(rtnl.IFLA_VXLAN_ID, vni), rtnl.vxlan_remote(remote)]
        data.append(rtnl.attr(rtnl.IFLA_VXLAN_PORT, port.to_bytes(2, "big")))
        if parent is not None:
            data.append(rtnl.u32(rtnl.IFLA_VXLAN_LINK, self.need_index(None, parent)))
        with self._netns_fd(netns) as fd:
            return self.ns.rtnl(None).add_link(
                ifname,
                rtnl.u32(rtnl.IFLA_NET_NS_FD, fd),
                rtnl.u32(rtnl.IFLA_MTU, mtu),
                rtnl.link_info("vxlan", *data),
            )

    def set_altname(self, link: str, altname: str) -> None:
        self.ns.rtnl(None).add_altname(self.need_index(None, link), altname)

    def attach(self, link: str, bridge: str) -> None:
        master = self.need_index(None, bridge)
        self.ns.rtnl(None).set_link(link, rtnl.u32(rtnl.IFLA_MASTER, master))

    def ensure_macvlan(
        self, parent: str, netns: str, ifname: str, mode: str, mac: str | None, mtu: int
    ) -> bool:
        extra = [rtnl.attr(rtnl.IFLA_ADDRESS, rtnl.mac(mac))] if mac else []
        mode_attr = rtnl.u32(rtnl.IFLA_MACVLAN_MODE, rtnl.MACVLAN_MODES[mode])
        return self._add_child(
            parent, netns, ifname, mtu, rtnl.link_info("macvlan", mode_attr), *extra
        )

    def ensure_vlan(
        self, parent: str, netns: str, ifname: str, vid: int, mac: str | None, mtu: int
    ) -> bool:
        extra = [rtnl.attr(rtnl.IFLA_ADDRESS, rtnl.mac(mac))] if mac else []
        info = rtnl.link_info("vlan", rtnl.u16(rtnl.IFLA_VLAN_ID, vid))
        return self._add_child(parent, netns, ifname, mtu, info, *extra)

    def set_port_vlans(self, link: str, pvid: int, tagged: tuple[int, ...]) -> None:
        """The port's VLANs: VLAN 1 (the bridge's default pvid) left for another pvid,
        `pvid` untagged, `tagged` tagged. Setting them again changes nothing."""
        port = self.need_index(None, link)
        rtnl_ = self.ns.rtnl(None)
        if pvid != rtnl.DEFAULT_PVID:
            rtnl_.bridge_vlans(port, [(rtnl.DEFAULT_PVID, 0)], delete=True)
        untagged = rtnl.BRIDGE_VLAN_INFO_PVID | rtnl.BRIDGE_VLAN_INFO_UNTAGGED
        rtnl_.bridge_vlans(port, [(pvid, untagged), *((vid, 0) for vid in tagged)])

    def add_bridge_vlan(self, bridge: str, vid: int) -> None:
        """The bridge itself carries `vid` tagged ("bridge vlan add ... self")."""
        rtnl_ = self.ns.rtnl(None)
        rtnl_.bridge_vlans(self.need_index(None, bridge), [(vid, 0)], own=True)

    def ensure_ipvlan(self, parent: str, netns: str, ifname: str, mode: str, mtu: int) -> bool:
        mode_attr = rtnl.attr(rtnl.IFLA_IPVLAN_MODE, rtnl.IPVLAN_MODES[mode].to_bytes(2, "little"))
        return self._add_child(parent, netns, ifname, mtu, rtnl.link_info("ipvlan", mode_attr))

    def _add_child(
        self, parent: str, netns: str, ifname: str, mtu: int, info: bytes, *extra: bytes
    ) -> bool:
        """A child link of a root-namespace `parent`, created inside `netns`."""
        if self.index(netns, ifname) is not None:
            return False
        link = self.need_index(None, parent)
        with self._netns_fd(netns) as fd:
            return self.ns.rtnl(None).add_link(
                ifname,
                rtnl.u32(rtnl.IFLA_LINK, link),
                rtnl.u32(rtnl.IFLA_NET_NS_FD, fd),
                rtnl.u32(rtnl.IFLA_MTU, mtu),
                info,
                *extra,
            )

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
        from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

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
        try:
            self.ns.ipr(None).link("add", ifname=name, **spec)
            created = True
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
            created = False
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
        self.ns.rtnl(netns).set_link(ifname, up=True)

    def set_down(self, netns: str | None, ifname: str) -> None:
        self.ns.rtnl(netns).set_link(ifname, down=True)

    def ensure_address(self, netns: str | None, ifname: str, address: str) -> None:
        interface = ip_interface(address)
        if interface.version == 6:
            self._ipv6_on(netns, ifname)
        self.ns.rtnl(netns).add_address(
            self.need_index(netns, ifname), str(interface.ip), interface.network.prefixlen
        )

    def _ipv6_on(self, netns: str | None, ifname: str) -> None:
        """IPv6 on a node's interface, which came up with it off (NODE_SYSCTLS), or on
        the host's side of a bridge of the lab (a gateway6): without a link-local address
        or duplicate address detection, as the lab plans them."""
        self.ns.rtnl(netns).set_link(ifname, rtnl.no_ipv6_autoconf())
        with self.ns.entered(netns):
            write_sysctls(
                {
                    f"net/ipv6/conf/{ifname}/accept_dad": "0",
                    f"net/ipv6/conf/{ifname}/disable_ipv6": "0",
                }
            )

    def set_sysctl(self, netns: str, key: str, value: str) -> None:
        """A sysctl of the node's network namespace, written from inside it. `key` is
        dotted as sysctl(8) writes it: a "/" in a part is a "." of an interface's name."""
        parts = key.split(".")
        if parts[0] != "net" or any(not p or p.startswith("/") for p in parts):
            raise ValueError(f"{key!r} is not a net.* sysctl")
        path = "/".join(part.replace("/", ".") for part in parts)
        with self.ns.entered(netns):
            write_sysctls({path: value})

    def ensure_route(self, netns: str, dst: str, via: str) -> None:
        network = ip_network(dst)
        self.ns.rtnl(netns).add_route(str(network.network_address), network.prefixlen, via)

    def remove_group(self, group: int) -> None:
        """Delete every root-namespace link of the group in one netlink call."""
        self.forget(None)
        self.ns.rtnl(None).delete_group(group)

    def remove(
        self, name: str, netns: str | None = None, peer: tuple[str, str] | None = None
    ) -> bool:
        """Delete a link and, for a veth, its `peer` (netns, name) with it, at once."""
        if peer is not None:
            self.forget(*peer)
        if netns is not None and not os.path.exists(self.ns.path(netns)):
            return False  # gone with its namespace
        index = self.index(netns, name)
        if index is None:
            return False
        self.forget(netns, name)
        return self.ns.rtnl(netns).delete_link(index)

    def host_links(self) -> list[LinkInfo]:
        return [LinkInfo(link.name, link.group, link.alias) for link in self.ns.rtnl(None).links()]
