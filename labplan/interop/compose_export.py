"""Labfile labs as compose files: each node a service of its image, each bridge,
macvlan and ipvlan network a network of its driver with its subnets, static addresses as
`ipv4_address`/`ipv6_address`, mounts as volumes; what Compose cannot hold is a note. The
importer (`labplan.interop.compose`) reads an export back as the same lab.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import yaml

from labplan.interop.common import Exported, Note, format_tmpfs_size
from labplan.interop.compose import MTU_OPTION
from labplan.model import Labfile, Network, Node

# Why Compose cannot hold each type of labfile link.
_NO_LINKS = {
    "veth": "Compose has no point-to-point links",
    "dummy": "Compose has no dummy links",
    "host": "Compose has no host links",
    "vxlan": "Compose has no vxlan links",
    "network": "a service joins a network once in Compose",
}


def from_labfile(lab: Labfile) -> Exported:
    """`lab` as a compose file, with notes for what Compose cannot hold."""
    notes: list[Note] = []
    networks = {n.name: n for n in lab.networks}
    services: dict[str, Any] = {}
    for node in lab.nodes:
        services[node.name] = _service(node, networks, notes)
    out: dict[str, Any] = {"name": lab.name, "services": services}
    compose_networks: dict[str, Any] = {}
    for network in lab.networks:
        if network.driver in ("host", "none"):
            continue
        held = {a.ipv4 for n in lab.nodes for a in n.networks if a.network == network.name}
        if (shaped := _network(network, notes, held)) is not None:
            compose_networks[network.name] = shaped
    if compose_networks:
        out["networks"] = compose_networks
    if lab.volumes:
        # Docker's local driver makes a tmpfs volume, as the lab's are.
        out["volumes"] = {
            v.name: {
                "driver_opts": {
                    "type": "tmpfs",
                    "device": "tmpfs",
                    "o": f"size={format_tmpfs_size(v.size)}",
                }
            }
            for v in lab.volumes
        }
    ports = {port.index: port for port in lab.ports}
    for number in range(len(lab.links) + len(ports)):
        kind = ports[number].type if number in ports else "veth"
        notes.append(Note(f"links.{number}", f"not carried over: {_NO_LINKS[kind]}"))
    text = yaml.safe_dump(out, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return Exported(text, tuple(notes))


def _network(network: Network, notes: list[Note], held: set[str | None]) -> dict[str, Any] | None:
    """The network in Compose's words; `held`: its nodes' IPv4 addresses."""
    path = f"networks.{network.name}"
    out: dict[str, Any] = {"driver": network.driver}
    if network.driver in ("macvlan", "ipvlan"):
        if network.parent is None or not network.parent.startswith("host:"):
            notes.append(
                Note(f"{path}.parent", "not carried over: Compose's parent is a host interface")
            )
            return None
        out["driver_opts"] = {"parent": network.parent.removeprefix("host:")}
        if network.mode:
            out["driver_opts"][f"{network.driver}_mode"] = network.mode
    elif network.driver not in ("bridge", "overlay"):
        notes.append(Note(path, f"not carried over: Compose has no {network.driver} network"))
        return None
    config: list[dict[str, str]] = []
    if network.subnet:
        entry = {"subnet": network.subnet}
        if network.driver == "bridge" and network.gateway:
            entry["gateway"] = network.gateway
        elif network.driver == "bridge":
            # Docker's bridge always holds one: an address no node of the lab has.
            free = _free_host(network.subnet, held)
            if free is not None:
                entry["gateway"] = free
                notes.append(
                    Note(
                        f"networks.{network.name}.gateway",
                        f"none in the lab; Docker's bridge always holds one: {free}, which no"
                        " node has",
                    )
                )
        config.append(entry)
    if network.subnet6:
        entry6 = {"subnet": network.subnet6}
        if network.gateway6:
            entry6["gateway"] = network.gateway6
        config.append(entry6)
        out["enable_ipv6"] = True
    if config:
        out["ipam"] = {"config": config}
    if network.internal:
        out["internal"] = True
    if network.shaping:
        notes.append(Note(f"{path}.impairments", "not carried over"))
    if network.vlan_filtering:
        notes.append(Note(f"{path}.vlan_filtering", "not carried over"))
    if network.mtu != 1500:
        out.setdefault("driver_opts", {})[MTU_OPTION] = str(network.mtu)
    return out


def _free_host(subnet: str, held: set[str | None]) -> str | None:
    """The highest host address of `subnet` not in `held`."""
    network = ipaddress.IPv4Network(subnet)
    top = int(network.broadcast_address) - 1
    for number in range(top, max(top - 4096, int(network.network_address)), -1):
        address = str(ipaddress.IPv4Address(number))
        if address not in held:
            return address
    return None


def _service(node: Node, networks: Mapping[str, Network], notes: list[Note]) -> dict[str, Any]:
    path = f"nodes.{node.name}"
    out: dict[str, Any] = {}
    if node.image:
        out["image"] = node.image
    else:
        notes.append(Note(path, "runs the host's tree; Compose needs an image: add one"))
    if node.entrypoint is not None:
        out["entrypoint"] = list(node.entrypoint)
    if node.command:
        out["command"] = list(node.command)
    if node.environment:
        out["environment"] = dict(node.environment)
    if node.workdir not in (None, "/"):
        out["working_dir"] = node.workdir
    if node.user:
        out["user"] = node.user
    if node.hostname != node.name:
        out["hostname"] = node.hostname
    if node.privileged:
        out["privileged"] = True
    if node.limits.memory is not None:
        out["mem_limit"] = node.limits.memory
    if node.limits.cpus is not None:
        out["cpus"] = node.limits.cpus
    if node.limits.pids is not None:
        out["pids_limit"] = node.limits.pids
    for key in ("cpu_weight", "memory_swap", "io_weight"):
        if getattr(node.limits, key) is not None:
            notes.append(Note(f"{path}.limits.{key}", "not carried over"))
    if node.limits.io:
        notes.append(Note(f"{path}.limits.io", "not carried over"))
    joined: dict[str, Any] = {}
    for attachment in node.networks:
        network = networks[attachment.network]
        if network.driver in ("host", "none"):
            out["network_mode"] = network.driver
            continue
        entry: dict[str, str] = {}
        if attachment.ipv4:
            entry["ipv4_address"] = attachment.ipv4
        if attachment.ipv6:
            entry["ipv6_address"] = attachment.ipv6
        if attachment.mac:
            entry["mac_address"] = attachment.mac
        joined[attachment.network] = entry
        apath = f"{path}.networks.{attachment.network}"
        if attachment.impairments:
            notes.append(Note(f"{apath}.impairments", "not carried over"))
        if attachment.vlan is not None or attachment.vlans:
            notes.append(Note(apath, "not carried over: Compose has no VLAN ports"))
    if node.sysctls:
        out["sysctls"] = dict(node.sysctls)
    if node.mounts:
        out["volumes"] = [
            f"{m.volume or m.host}:{m.path}" + (":ro" if m.readonly else "") for m in node.mounts
        ]
    if node.joins is not None:
        out["network_mode"] = f"service:{node.joins}"
    elif joined:
        out["networks"] = joined
    elif "network_mode" not in out:
        out["network_mode"] = "none"  # only loopback, as the node has
    gateways = {networks[a.network].gateway for a in node.networks}
    own = [r for r in node.routes if not (r.dst == "0.0.0.0/0" and r.via in gateways)]
    if own:  # Docker's own default route is the first gateway's, as the labfile's
        notes.append(Note(f"{path}.routes", "not carried over: Compose sets no routes"))
    if node.exec:
        notes.append(Note(f"{path}.exec", "not carried over: run them with docker compose exec"))
    if any(not getattr(node.namespaces, k) for k in ("mnt", "uts", "ipc", "pid", "cgroup")):
        notes.append(Note(f"{path}.namespaces", "not carried over"))
    return out
