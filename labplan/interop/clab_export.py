"""Labfile labs as containerlab topologies: every node `kind: linux`, the network every
node joins on eth0 as `mgmt`, the lab's other bridges as `kind: bridge` nodes with a link
per port, links as links, addresses and routes as `exec` commands, mounts as binds; what
containerlab cannot hold is a note. The importer (`labplan.interop.clab`) reads an
export back as the same lab.
"""

from __future__ import annotations

import ipaddress
import shlex
from typing import Any

import yaml

from labplan.bounds import DEFAULT_VOLUME_SIZE
from labplan.interop import clab_ports
from labplan.interop.clab import (
    CLAB_DIR,
    LINUX_KIND,
    MGMT_IFNAME,
    VOLUMES_DIR,
    first_host,
    format_memory,
)
from labplan.interop.common import Exported, Note, labfile_name
from labplan.model import Attachment, Labfile, Mount, Network, Node, Port


def from_labfile(lab: Labfile) -> Exported:
    """`lab` as a containerlab topology, with notes for what containerlab cannot hold."""
    return _Exporter(lab).run()


class _Exporter:
    def __init__(self, lab: Labfile) -> None:
        self.lab = lab
        self.notes: list[Note] = []
        self.networks = {n.name: n for n in lab.networks}
        self.mgmt = self.pick_mgmt()
        self.ifnames = self.port_names()

    def note(self, path: str, message: str) -> None:
        self.notes.append(Note(path, message))

    def pick_mgmt(self) -> Network | None:
        """The bridge network every node with a network namespace joins on eth0, which
        becomes containerlab's management network."""
        own = [n for n in self.lab.nodes if not self.shares_host(n) and n.joins is None]
        for network in self.lab.networks:
            if network.driver != "bridge" or network.vlan_filtering or not own:
                continue
            if all(
                any(a.network == network.name and a.ifname == MGMT_IFNAME for a in n.networks)
                for n in own
            ):
                return network
        return None

    def shares_host(self, node: Node) -> bool:
        return any(self.networks[a.network].driver in ("host", "none") for a in node.networks)

    def run(self) -> Exported:
        out: dict[str, Any] = {"name": self.lab.name}
        if self.mgmt is not None:
            out["mgmt"] = self.mgmt_tree(self.mgmt)
        nodes: dict[str, Any] = {}
        links: list[Any] = []
        bridges = [n for n in self.lab.networks if n is not self.mgmt and n.driver == "bridge"]
        for network in self.lab.networks:
            if self.host_macvlan(network):
                message = "a macvlan link per node in containerlab"
                if (again := self.macvlan_name(network)) != network.name:
                    message += f", which names no networks: it reads back as {again}"
                self.note(f"networks.{network.name}", message)
            elif network.driver not in ("bridge", "host", "none"):
                self.note(
                    f"networks.{network.name}",
                    f"not carried over: containerlab has no {network.driver} network",
                )
        for node in self.lab.nodes:
            nodes[node.name] = self.node_tree(node)
        ports = {port.index: port for port in self.lab.ports}
        veths = iter(self.lab.links)
        for number in range(len(self.lab.links) + len(ports)):
            path = f"links.{number}"
            if number in ports:
                if not self.on_bridge_node(ports[number]):
                    links.append(self.port_link(ports[number], nodes))
                continue
            link = next(veths)
            ends = [f"{end.node}:{end.ifname}" for end in link.ends]
            if link.mtu != 1500:
                links.append(
                    {
                        "type": "veth",
                        "mtu": link.mtu,
                        "endpoints": [{"node": e.node, "interface": e.ifname} for e in link.ends],
                    }
                )
            else:
                links.append({"endpoints": ends})
            if any(end.impairments for end in link.ends):
                self.note(
                    f"{path}.impairments",
                    "not carried over: set them after deploying with containerlab tools netem set",
                )
            for end in link.ends:
                for address in (end.ipv4, end.ipv6):
                    if address:
                        nodes[end.node].setdefault("exec", []).insert(
                            self.address_slot(nodes[end.node]),
                            f"ip address add {address} dev {end.ifname}",
                        )
        links += self.macvlan_links(nodes)
        self.volume_notes()
        for bridge in bridges:
            nodes[bridge.name] = {"kind": "bridge"}
            self.note(
                f"networks.{bridge.name}",
                f"containerlab needs a Linux bridge named {bridge.name!r} on the host before "
                f"it deploys: ip link add {bridge.name} type bridge && "
                f"ip link set {bridge.name} up",
            )
            for number, (node, attachment) in enumerate(self.ports(bridge)):
                port = f"{bridge.name[:10]}p{number}"
                ifname = self.ifnames[(node.name, attachment.network)]
                links.append({"endpoints": [f"{node.name}:{ifname}", f"{bridge.name}:{port}"]})
            # A node's second interfaces on it after its first: the import reads the
            # first link of a node to a bridge as its attachment.
            for network_link in self.lab.ports:
                if network_link.network == bridge.name:
                    links.append(self.port_link(network_link, nodes))
        topology: dict[str, Any] = {"nodes": nodes}
        if links:
            topology["links"] = links
        out["topology"] = topology
        text = yaml.safe_dump(out, sort_keys=False, default_flow_style=False, allow_unicode=True)
        return Exported(text, tuple(self.notes))

    def on_bridge_node(self, port: Port) -> bool:
        """Whether a network link is to a bridge the export writes as a bridge node (any
        but the management network)."""
        return port.network is not None and self.networks[port.network] is not self.mgmt

    def port_link(self, port: Port, nodes: dict[str, Any]) -> dict[str, Any]:
        """The extended link of a labfile link of one endpoint, its node's addresses exec
        commands."""
        bridge_port = None
        if port.network is not None and self.on_bridge_node(port):
            bridge_port = f"{port.network[:10]}l{port.index}"
        link, said = clab_ports.clab_link(port, bridge_port)
        for message in said:
            self.note(f"links.{port.index}", message)
        for address in (port.end.ipv4, port.end.ipv6):
            if address:
                nodes[port.end.node].setdefault("exec", []).insert(
                    self.address_slot(nodes[port.end.node]),
                    f"ip address add {address} dev {port.end.ifname}",
                )
        return link

    def host_macvlan(self, network: Network) -> bool:
        """A macvlan of a host interface: what a containerlab macvlan link makes."""
        return network.driver == "macvlan" and (network.parent or "").startswith("host:")

    def macvlan_name(self, network: Network) -> str:
        """The name the importer gives the network of a macvlan link."""
        mode = "" if network.mode in (None, "bridge") else f"-{network.mode}"
        return labfile_name(f"macvlan-{(network.parent or '').removeprefix('host:')}{mode}")

    def macvlan_links(self, nodes: dict[str, Any]) -> list[dict[str, Any]]:
        """A macvlan link for each node of a macvlan network of a host interface, its
        address an exec command, as containerlab labs set them."""
        links: list[dict[str, Any]] = []
        for network in self.lab.networks:
            if not self.host_macvlan(network):
                continue
            for node, attachment in self.ports(network):
                ifname = self.ifnames[(node.name, network.name)]
                link: dict[str, Any] = {
                    "type": "macvlan",
                    "endpoint": {"node": node.name, "interface": ifname},
                    "host-interface": (network.parent or "").removeprefix("host:"),
                    "mode": network.mode or "bridge",
                }
                if network.mtu != 1500:
                    link["mtu"] = network.mtu
                links.append(link)
                if attachment.ipv4 and network.subnet:
                    prefix = ipaddress.IPv4Network(network.subnet).prefixlen
                    nodes[node.name].setdefault("exec", []).insert(
                        self.address_slot(nodes[node.name]),
                        f"ip address add {attachment.ipv4}/{prefix} dev {ifname}",
                    )
        return links

    def volume_notes(self) -> None:
        for volume in self.lab.volumes:
            folder = f"clab-{self.lab.name}/{VOLUMES_DIR}/{volume.name}"
            self.note(
                f"volumes.{volume.name}",
                f"a folder of the lab's directory in containerlab ({folder}), on disk: "
                f"containerlab checks a bind's folder is there, so make it beside the "
                f"topology before it deploys: mkdir -p {folder}",
            )
            if volume.size != DEFAULT_VOLUME_SIZE:
                self.note(
                    f"volumes.{volume.name}.size",
                    "not carried over: a containerlab bind has no size",
                )

    def address_slot(self, node: dict[str, Any]) -> int:
        """Where the next address command goes: after the addresses, before the rest."""
        commands = node.get("exec", [])
        return sum(1 for c in commands if c.startswith("ip address add "))

    def mgmt_tree(self, network: Network) -> dict[str, Any]:
        mgmt: dict[str, Any] = {"network": network.name, "ipv4-subnet": network.subnet}
        if network.subnet and network.gateway:
            first = first_host(ipaddress.IPv4Network(network.subnet))
            if network.gateway != first:
                mgmt["ipv4-gw"] = network.gateway
        if network.subnet6:
            mgmt["ipv6-subnet"] = network.subnet6
        if network.gateway6:
            mgmt["ipv6-gw"] = network.gateway6
        if network.mtu != 1500:
            mgmt["mtu"] = network.mtu
        if network.internal:
            self.note(
                f"networks.{network.name}.internal",
                "containerlab's management network always reaches out",
            )
        if network.gateway is None:
            self.note(
                f"networks.{network.name}.gateway",
                "containerlab's management network always has a gateway",
            )
        if network.shaping:
            self.note(f"networks.{network.name}.impairments", "not carried over")
        return mgmt

    def port_names(self) -> dict[tuple[str, str], str]:
        """(node, network) -> the interface a bridge port has in containerlab, whose eth0
        is always the management interface: a port on eth0 of another network moves to
        the node's lowest free ethN (noted)."""
        names: dict[tuple[str, str], str] = {}
        for node in self.lab.nodes:
            used = {a.ifname for a in node.networks if a.ifname}
            used |= {e.ifname for link in self.lab.links for e in link.ends if e.node == node.name}
            for attachment in node.networks:
                network = self.networks[attachment.network]
                ifname = attachment.ifname or ""
                if (
                    ifname == MGMT_IFNAME
                    and network is not self.mgmt
                    and (network.driver == "bridge" or self.host_macvlan(network))
                ):
                    ifname = next(f"eth{i}" for i in range(1, 1000) if f"eth{i}" not in used)
                    used.add(ifname)
                    self.note(
                        f"nodes.{node.name}.networks.{network.name}",
                        f"on {ifname} in containerlab, whose eth0 is the management interface",
                    )
                names[(node.name, attachment.network)] = ifname
        return names

    def ports(self, bridge: Network) -> list[tuple[Node, Attachment]]:
        return [(n, a) for n in self.lab.nodes for a in n.networks if a.network == bridge.name]

    def node_tree(self, node: Node) -> dict[str, Any]:
        path = f"nodes.{node.name}"
        out: dict[str, Any] = {"kind": LINUX_KIND}
        if node.image:
            out["image"] = node.image
        else:
            self.note(
                path,
                "runs the host's tree; containerlab needs an image: add one before deploying there",
            )
        if node.entrypoint is not None:
            out["entrypoint"] = shlex.join(node.entrypoint)
        if node.command:
            out["cmd"] = shlex.join(node.command)
        if node.environment:
            out["env"] = dict(node.environment)
        if node.user:
            out["user"] = node.user
        if node.limits.memory is not None:
            out["memory"] = format_memory(node.limits.memory)
        if node.limits.cpus is not None:
            out["cpu"] = node.limits.cpus
        for key in ("cpu_weight", "memory_swap", "pids", "io_weight"):
            if getattr(node.limits, key) is not None:
                self.note(
                    f"{path}.limits.{key}", "not carried over: containerlab has no such limit"
                )
        if node.limits.io:
            self.note(f"{path}.limits.io", "not carried over: containerlab has no io throttles")
        if node.hostname != node.name:
            self.note(f"{path}.hostname", "containerlab names a node's host after the node")
        if node.workdir not in (None, "/"):
            self.note(f"{path}.workdir", "not carried over")
        if node.privileged:
            self.note(f"{path}.privileged", "containerlab runs every linux node privileged")
        exec_lines: list[str] = []
        if node.sysctls:
            out["sysctls"] = dict(node.sysctls)
        if node.joins is not None:
            out["network-mode"] = f"container:{node.joins}"
        if node.mounts:
            out["binds"] = [_bind(mount) for mount in node.mounts]
        for attachment in node.networks:
            network = self.networks[attachment.network]
            apath = f"{path}.networks.{attachment.network}"
            if network.driver in ("host", "none"):
                out["network-mode"] = network.driver
            elif network is self.mgmt:
                if attachment.ipv4:
                    out["mgmt-ipv4"] = attachment.ipv4
                if attachment.ipv6:
                    out["mgmt-ipv6"] = attachment.ipv6
            elif network.driver == "bridge":
                ifname = self.ifnames[(node.name, attachment.network)]
                if attachment.ipv4 and network.subnet:
                    prefix = ipaddress.IPv4Network(network.subnet).prefixlen
                    exec_lines.append(f"ip address add {attachment.ipv4}/{prefix} dev {ifname}")
                if attachment.ipv6 and network.subnet6:
                    prefix = ipaddress.IPv6Network(network.subnet6).prefixlen
                    exec_lines.append(f"ip address add {attachment.ipv6}/{prefix} dev {ifname}")
            if attachment.impairments:
                self.note(f"{apath}.impairments", "not carried over")
            if attachment.vlan is not None or attachment.vlans:
                self.note(apath, "not carried over: containerlab has no VLAN ports")
        default = self.mgmt_default(node)
        for route in node.routes:
            if default is not None and route.dst == "0.0.0.0/0" and route.via == default:
                continue  # containerlab's own default route
            verb = "replace" if route.dst in ("0.0.0.0/0", "::/0") else "add"
            dst = "default" if route.dst in ("0.0.0.0/0", "::/0") else route.dst
            family = "-6 " if ":" in route.via else ""
            exec_lines.append(f"ip {family}route {verb} {dst} via {route.via}")
        exec_lines += [shlex.join(command) for command in node.exec]
        if exec_lines:
            out["exec"] = exec_lines
        return out

    def mgmt_default(self, node: Node) -> str | None:
        if self.mgmt is None or not any(a.network == self.mgmt.name for a in node.networks):
            return None
        return self.mgmt.gateway


def _bind(mount: Mount) -> str:
    """A mount as a containerlab bind: a host path as it is, a volume as a folder of the
    lab's directory, which the importer reads back as that volume."""
    source = mount.host if mount.host is not None else f"{CLAB_DIR}/{VOLUMES_DIR}/{mount.volume}"
    return f"{source}:{mount.path}" + (":ro" if mount.readonly else "")
