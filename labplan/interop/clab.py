"""containerlab topologies (`*.clab.yml`) to the labfile (`labplan.interop.clab_export`
writes labs back as topologies).

A containerlab lab is Linux containers joined by veth links, each container also on
containerlab's management network (a Docker bridge, eth0 in every node). Imported:

- `mgmt` becomes a bridge network (`clab`, 172.20.20.0/24 unless the file says) that
  every node joins on eth0, with `mgmt-ipv4` / `mgmt-ipv6` as its addresses;
- `topology.defaults`, `kinds` and `groups` are folded into each node, as containerlab
  does (defaults, then the node's kind, then its group, then the node itself);
- `kind: linux` nodes become nodes: `image`, `cmd` and `entrypoint` (split as a shell
  would), `env`, `user`, `memory`, `cpu`, `exec`;
- `kind: bridge` and `ovs-bridge` nodes become bridge networks of the lab, and a link to
  one an attachment of the other end;
- `exec` commands that set addresses and routes (`ip address add 10.0.12.1/30 dev
  eth1`, `ip route add 10.0.0.0/8 via 10.0.12.2`) become the labfile's addresses and
  routes, which labmgr sets before the node starts: an unprivileged node cannot set them
  itself;
- `binds`, merged as containerlab merges them, become mounts: a host path as it is
  (admins only), a folder of the topology's or the lab's directory a volume of the lab;
- `macvlan` links become macvlan networks of the host interface (admins only);
- `host`, `dummy`, `vxlan` and `vxlan-stitch` links become labfile links of one endpoint
  (`labplan.interop.clab_ports`).
What cannot be carried over is refused (`mgmt-net` links, vendor kinds) or noted (ports,
labels...), each naming the field of the source file.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from labplan.errors import LabfileError
from labplan.interop import clab_ports
from labplan.interop.common import LAB_NAME, Imported, Importer, labfile_name

MGMT_NETWORK = "clab"
MGMT_SUBNET = "172.20.20.0/24"
MGMT_IFNAME = "eth0"
BRIDGE_KINDS = ("bridge", "ovs-bridge")
LINUX_KIND = "linux"
# What containerlab replaces in a bind's host path: the lab's directory and the node's.
CLAB_DIR, CLAB_NODE_DIR = "__clabDir__", "__clabNodeDir__"
VOLUMES_DIR = "volumes"  # where an export puts the lab's volumes, in the lab's directory
# Kinds that stand for something other than a container of an image.
REFUSED_KINDS = {
    "host": "the host itself is not a node of a labmgr lab",
    "ext-container": "labmgr runs the lab's own nodes, not containers started elsewhere",
}

TOP_KEYS = ("name", "prefix", "mgmt", "topology", "settings", "debug")
TOPOLOGY_KEYS = ("defaults", "kinds", "groups", "nodes", "links")
MGMT_KEYS = (
    "network",
    "bridge",
    "ipv4-subnet",
    "ipv4-gw",
    "ipv4-range",
    "ipv6-subnet",
    "ipv6-gw",
    "ipv6-range",
    "mtu",
    "external-access",
    "driver-opts",
)
# Keys of a node carried over, and those noted as not carried over (with why).
NODE_KEYS = (
    "kind",
    "group",
    "image",
    "cmd",
    "entrypoint",
    "env",
    "user",
    "memory",
    "cpu",
    "exec",
    "mgmt-ipv4",
    "mgmt-ipv6",
    "network-mode",
    "sysctls",
    "binds",
)
NOTED_NODE_KEYS = {
    "ports": "labmgr publishes no ports on the host; reach the node from a terminal or "
    "another node of the lab",
    "publish": "labmgr publishes no ports",
    "labels": "labels are not kept",
    "cpu-set": "labmgr does not pin nodes to CPUs; cpu limits the share instead",
    "shm-size": "the node's /dev/shm keeps its default size",
    "cap-add": "capabilities are those of the node's user namespace (or privileged: true)",
    "devices": "host devices are not passed into nodes",
    "dns": "the node's resolver is the host's",
    "restart-policy": "labmgr reports a node that stops instead of restarting it",
    "auto-remove": "labmgr removes every node when the lab is destroyed",
    "healthcheck": "health checks are not run",
    "wait-for": "labmgr starts nodes in one step; exec commands run once every node is up",
    "startup-delay": "nodes start together",
    "stages": "nodes start together",
    "aliases": "a node is known by its name in /etc/hosts",
    "image-pull-policy": "labmgr pulls an image it does not hold",
    "runtime": "labmgr makes nodes from namespaces itself",
    "extras": "vendor options are not carried over",
    "certificate": "certificates are not issued",
    "position": "the topology view lays nodes out itself",
    "type": "vendor node types are not carried over",
    "startup-config": "vendor configuration is not carried over",
    "enforce-startup-config": "vendor configuration is not carried over",
    "suppress-startup-config": "vendor configuration is not carried over",
    "license": "vendor licenses are not carried over",
    "components": "vendor line cards are not carried over",
}
# Keys refused: the lab would not be what the file says.
REFUSED_NODE_KEYS = {
    "env-files": "files beside the topology are not read; write the variables under env",
}
LINK_KEYS = ("type", "endpoints", "endpoint", "mtu", "vars", "labels")
MACVLAN_KEYS = ("type", "endpoint", "host-interface", "mode", "mtu", "vars", "labels")
MACVLAN_MODES = ("bridge", "private", "vepa", "passthru")
# The labfile keys of a link of one endpoint, and containerlab's for them.
_PORT_ORIGINS = {
    "endpoints.0": "endpoint",
    "network": "type",
    "host_ifname": "host-interface",
    "remote": "remote",
    "vni": "vni",
    "port": "udp-port",
    "mtu": "mtu",
}

_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_SIZE_FACTORS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_memory(value: object) -> int:
    """Bytes of a containerlab memory size ("1Gb", "512MiB", "1.5g", "1048576"); like
    Docker, every suffix counts in powers of 1024."""
    match = _SIZE.match(str(value).strip()) if isinstance(value, str | int) else None
    if match is None or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size like 512Mb or 1Gb")
    number, suffix = match.groups()
    try:
        amount = Decimal(number) * _SIZE_FACTORS[suffix.lower() if suffix else None]
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        raise ValueError(f"{value!r} is not a size like 512Mb or 1Gb") from None
    return int(amount)


def format_memory(value: int) -> str:
    for suffix, factor in (("Gb", 1 << 30), ("Mb", 1 << 20), ("Kb", 1 << 10)):
        if value >= factor and value % factor == 0:
            return f"{value // factor}{suffix}"
    return str(value)


# -- import ---------------------------------------------------------------------------


@dataclass
class _Iface:
    """An interface of an imported node and the addresses its exec commands set."""

    v4: list[ipaddress.IPv4Interface] = field(default_factory=list)
    v6: list[ipaddress.IPv6Interface] = field(default_factory=list)
    commands: list[tuple[int, list[str], int]] = field(default_factory=list)  # index, argv, family


@dataclass
class _NodeDraft:
    source: str  # the containerlab name
    path: str  # topology.nodes.NAME
    tree: dict[str, Any]
    exec_index: dict[int, list[str]] = field(default_factory=dict)
    routes: list[tuple[int, list[str], dict[str, str]]] = field(default_factory=list)
    ifaces: dict[str, _Iface] = field(default_factory=dict)

    def iface(self, name: str) -> _Iface:
        return self.ifaces.setdefault(name, _Iface())


class _Importer(Importer):
    def __init__(self, tree: Mapping[str, Any]) -> None:
        super().__init__()
        self.tree = tree
        self.nodes: dict[str, _NodeDraft] = {}  # labfile name -> draft
        self.names: dict[str, str] = {}  # containerlab name -> labfile name
        self.bridges: dict[str, str] = {}  # containerlab bridge node -> labfile network
        self.networks: dict[str, dict[str, Any]] = {}
        self.links: list[dict[str, Any]] = []
        # link index -> its two (node, ifname) ends; for a link of one endpoint, its one
        self.link_ends: dict[int, tuple[tuple[str, str], tuple[str, str]]] = {}
        self.port_ends: dict[int, tuple[str, str]] = {}
        self.bridge_ports: dict[str, list[tuple[str, str]]] = {}  # network -> (node, ifname)
        self.macvlan_ports: dict[str, list[tuple[str, str]]] = {}  # the same, of macvlans
        self.macvlan_of: dict[str, tuple[str, str]] = {}  # network -> (host interface, mode)
        self.macvlan_paths: dict[str, str] = {}  # network -> the first link that made it
        self.used: set[tuple[str, str]] = set()  # (containerlab node, ifname) of links
        self.mgmt: str | None = None
        self.mgmt_gateway: str | None = None
        self.sources: set[str] = set()  # the topology's own node names
        self.version = 1

    def run(self) -> Imported:
        for key in self.tree:
            if key not in TOP_KEYS:
                self.error(str(key), f"{key!r} is not a key of a containerlab topology")
        for key in ("prefix", "settings", "debug"):
            if key in self.tree:
                self.note(key, "not carried over: labmgr names what it makes itself")
        name = self.lab_name()
        topology = self.mapping(self.tree.get("topology"), "topology", "topology")
        for key in topology:
            if key not in TOPOLOGY_KEYS:
                self.error(f"topology.{key}", f"{key!r} is not a key of a topology")
        self.read_nodes(topology)
        self.read_mgmt()
        self.read_links(topology.get("links"))
        self.settle_addresses()
        if self.errors:
            raise LabfileError(self.errors)
        out: dict[str, Any] = {"labfile": 1, "name": name}
        out["description"] = "Imported from a containerlab topology"
        if self.networks:
            out["networks"] = self.networks
        out["nodes"] = {label: draft.tree for label, draft in self.nodes.items()}
        for label, draft in self.nodes.items():
            self.node_origins(label, draft.path, draft.tree)
        if self.links:
            out["links"] = self.links
        uses_v2 = self.links or any(
            d.tree.get("exec")
            or d.tree.get("network_mode")
            or d.tree.get("sysctls")
            or _has_ipv6(d.tree)
            for d in self.nodes.values()
        )
        uses_v2 = uses_v2 or any("subnet6" in n for n in self.networks.values())
        if self.volumes:
            out["volumes"] = self.volumes
        uses_v2 = uses_v2 or any("mounts" in d.tree for d in self.nodes.values())
        out["labfile"] = 2 if uses_v2 else 1
        return Imported(out, tuple(self.notes), "containerlab", self.origins)

    def lab_name(self) -> str:
        raw = self.tree.get("name")
        if raw is None:
            self.error("name", "a containerlab topology needs a name")
            return "lab"
        if not isinstance(raw, str | int) or isinstance(raw, bool):
            self.error("name", "the name must be a string")
            return "lab"
        name = labfile_name(str(raw), LAB_NAME)
        if name != str(raw):
            self.note("name", f"{raw!r} is written {name!r}: a lab's name is [a-z][a-z0-9-]")
        return name

    # nodes

    def read_nodes(self, topology: Mapping[str, Any]) -> None:
        defaults = self.mapping(topology.get("defaults"), "topology.defaults", "defaults")
        kinds = self.mapping(topology.get("kinds"), "topology.kinds", "kinds")
        groups = self.mapping(topology.get("groups"), "topology.groups", "groups")
        nodes = self.mapping(topology.get("nodes"), "topology.nodes", "nodes")
        if not nodes and "nodes" not in topology and not self.errors:
            self.error("topology.nodes", "a topology needs nodes")
        self.sources = {str(source) for source in nodes}
        for source, raw in nodes.items():
            path = f"topology.nodes.{source}"
            own = self.mapping(raw, path, "a node")
            group_name = own.get("group")
            group = self.mapping(
                groups.get(group_name) if isinstance(group_name, str) else None,
                f"topology.groups.{group_name}",
                "a group",
            )
            if isinstance(group_name, str) and group_name not in groups:
                self.error(f"{path}.group", f"there is no group {group_name!r} under groups")
            kind = own.get("kind", group.get("kind", defaults.get("kind")))
            layers: list[tuple[str, Mapping[str, Any]]] = [("topology.defaults", defaults)]
            if isinstance(kind, str):
                kpath = f"topology.kinds.{kind}"
                layers.append((kpath, self.mapping(kinds.get(kind), kpath, "a kind")))
            layers += [(f"topology.groups.{group_name}", group), (path, own)]
            merged = _fold([layer for _, layer in layers])
            merged["binds"] = self.merged_binds(layers)
            if not merged["binds"]:
                del merged["binds"]
            self.read_node(str(source), path, merged, kind)

    def merged_binds(
        self, layers: list[tuple[str, Mapping[str, Any]]]
    ) -> list[tuple[str, list[str]]]:
        """A node's binds as containerlab merges them: those of defaults, kind, group and
        node, a later one replacing an earlier one on the same path of the node; each
        (the field that gives it, its parts)."""
        binds: dict[str, tuple[str, list[str]]] = {}
        for where, layer in layers:
            raw = layer.get("binds")
            if raw is None:
                continue
            if not isinstance(raw, list):
                self.error_once(f"{where}.binds", "binds is a list of HOST:NODE[:MODE]")
                continue
            for index, bind in enumerate(raw):
                bpath = f"{where}.binds.{index}"
                parts = bind.split(":") if isinstance(bind, str) else []
                if not 1 <= len(parts) <= 3 or not all(parts):
                    self.error_once(bpath, f"{bind!r} is not HOST:NODE[:MODE]")
                    continue
                target = parts[0] if len(parts) == 1 else parts[1]
                binds.pop(target, None)  # the later one takes the earlier one's place
                binds[target] = (bpath, parts)
        return list(binds.values())

    def read_node(self, source: str, path: str, node: dict[str, Any], kind: object) -> None:
        label = labfile_name(source)
        if label in self.nodes or label in self.bridges.values():
            taken = self.nodes[label].source if label in self.nodes else label
            self.error(path, f"{source!r} and {taken!r} are both written {label!r} in a labfile")
            return
        if label != source:
            self.note(path, f"{source!r} is written {label!r}: a node's name is [a-z][a-z0-9-]")
        self.names[source] = label
        if kind is None:
            kind = LINUX_KIND
            self.note(f"{path}.kind", "no kind given: read as a linux node")
        if kind in BRIDGE_KINDS:
            self.bridges[source] = label
            self.networks[label] = {"driver": "bridge"}
            self.origins[f"networks.{label}"] = path
            self.bridge_ports[label] = []
            self.note(
                path,
                f"the {kind} becomes the lab's own bridge network {label!r}, made and removed "
                "with the lab",
            )
            return
        if kind in REFUSED_KINDS:
            self.error(f"{path}.kind", f"kind {kind}: {REFUSED_KINDS[str(kind)]}")
            return
        if kind != LINUX_KIND:
            self.error(
                f"{path}.kind",
                f"kind {kind!r} is a vendor network system labmgr does not run; labmgr runs "
                "Linux nodes (kind: linux) of any OCI image, such as FRR for routing",
            )
            return
        draft = _NodeDraft(source, path, {})
        self.nodes[label] = draft
        self.read_node_keys(draft, node)

    def read_node_keys(self, draft: _NodeDraft, node: dict[str, Any]) -> None:
        path, out = draft.path, draft.tree
        for key in node:
            if key in REFUSED_NODE_KEYS:
                self.error(f"{path}.{key}", REFUSED_NODE_KEYS[key])
            elif key in NOTED_NODE_KEYS:
                self.note(f"{path}.{key}", f"not carried over: {NOTED_NODE_KEYS[key]}")
            elif key not in NODE_KEYS:
                self.error(f"{path}.{key}", f"{key!r} is not a key of a containerlab node")
        if "image" in node:
            if isinstance(node["image"], str) and node["image"].strip():
                out["image"] = node["image"].strip()
            else:
                self.error(f"{path}.image", "the image must be a reference like alpine:3.20")
        else:
            self.note(path, "no image: the node runs the host's tree (rootfs: host)")
        for key, target in (("cmd", "command"), ("entrypoint", "entrypoint")):
            if key in node:
                words = self.words(node[key], f"{path}.{key}")
                if words is not None:
                    out[target] = words
        if "entrypoint" in out and "image" not in out:
            self.error(f"{path}.entrypoint", "an entrypoint needs an image")
        if "env" in node:
            env = self.mapping(node["env"], f"{path}.env", "env")
            out["environment"] = {str(k): _text(v) for k, v in env.items()}
        if "user" in node and node["user"] is not None:
            out["user"] = str(node["user"])
        limits: dict[str, Any] = {}
        if "memory" in node:
            try:
                limits["memory"] = parse_memory(node["memory"])
            except ValueError as bad:
                self.error(f"{path}.memory", str(bad))
        if "cpu" in node:
            cpu = node["cpu"]
            if isinstance(cpu, int | float | str) and not isinstance(cpu, bool):
                try:
                    limits["cpus"] = float(cpu)
                except ValueError:
                    self.error(f"{path}.cpu", f"{cpu!r} is not a number of CPUs like 1.5")
            else:
                self.error(f"{path}.cpu", "cpu is a number of CPUs like 1.5")
        if limits:
            out["limits"] = limits
        if "sysctls" in node and (kept := self.sysctls(node["sysctls"], f"{path}.sysctls")):
            out["sysctls"] = kept
        self.read_network_mode(draft, node)
        self.read_exec(draft, node.get("exec"))
        self.read_binds(draft, node.get("binds", []))

    def read_binds(self, draft: _NodeDraft, binds: list[tuple[str, list[str]]]) -> None:
        """Binds from a host path become host mounts (admins only); those from the
        topology's folder or the lab's directory, which labmgr does not have, volumes of
        the lab, starting empty."""
        for path, parts in binds:
            source = parts[0] if len(parts) > 1 else None
            target = self.target(parts[-1] if len(parts) == 1 else parts[1], path, draft.tree)
            readonly = False
            for option in parts[2].split(",") if len(parts) == 3 else ():
                if option in ("ro", "rw"):
                    readonly = option == "ro"
                else:
                    self.note_once(path, f"{option}: not carried over")
            if target is None:
                continue
            if source is not None and source.startswith("/"):
                host = self.plain(source, path)
                if host is not None:
                    self.mount(draft.tree, target, host=host, readonly=readonly, origin=path)
                    self.note_once(
                        path, f"{host} is a path of the host: mounting it is for admins only"
                    )
                continue
            if source is not None and source.startswith("~"):
                self.error_once(
                    path,
                    f"{source!r} is in the home folder of whoever runs containerlab: write an "
                    "absolute path of the host (admins only), or a relative one for a volume "
                    "of the lab",
                )
                continue
            name = self.bind_volume(draft, source, path)
            self.mount(draft.tree, target, volume=name, readonly=readonly, origin=path)

    def bind_volume(self, draft: _NodeDraft, source: str | None, path: str) -> str:
        """The lab's volume for a bind of the topology's folder, the lab's directory
        (`__clabDir__/...`, and `__clabDir__/volumes/NAME` as an export writes it), a
        node's (`__clabNodeDir__/...`), or none (an anonymous volume)."""
        if source is None:
            name = self.volume(("anonymous", draft.source, path), f"{draft.source}-volume")
            self.note_once(path, f"an anonymous volume: the lab's volume {name!r}, starting empty")
            return name
        if source.startswith(CLAB_DIR + "/"):
            rest = posixpath.normpath(source.removeprefix(CLAB_DIR + "/"))
            own = rest.removeprefix(VOLUMES_DIR + "/")
            base = own if "/" not in own and own != rest else rest
            name = self.volume(("lab", rest), base)
            where = "the lab's directory"
        elif source.startswith(CLAB_NODE_DIR + "/"):
            rest = posixpath.normpath(source.removeprefix(CLAB_NODE_DIR + "/"))
            name = self.volume(("node", draft.source, rest), f"{draft.source}-{rest}")
            where = "the node's directory"
        else:
            rest = posixpath.normpath(source)
            name = self.volume(("topology", rest), rest)
            where = "the topology's folder"
        self.note_once(
            path,
            f"the lab's volume {name!r}, a tmpfs of the deployment: it starts empty, as a "
            f"folder ({source} is in {where}, which is not uploaded with the topology; copy "
            "files in with an exec command)",
        )
        return name

    def read_network_mode(self, draft: _NodeDraft, node: dict[str, Any]) -> None:
        path, out = draft.path, draft.tree
        mode = node.get("network-mode")
        if mode is None or mode == "bridge":
            out["networks"] = {MGMT_NETWORK: {"ifname": MGMT_IFNAME}}
            mgmt = out["networks"][MGMT_NETWORK]
            for key, family in (("mgmt-ipv4", "ipv4"), ("mgmt-ipv6", "ipv6")):
                if key in node:
                    mgmt[family] = _text(node[key])
            return
        for key in ("mgmt-ipv4", "mgmt-ipv6"):
            if key in node:
                self.note(f"{path}.{key}", f"not carried over: the node's network-mode is {mode}")
        if mode in ("host", "none"):
            out["networks"] = {mode: {}}
            self.networks[mode] = {"driver": mode}
            self.origins.setdefault(f"networks.{mode}", f"{path}.network-mode")
            if mode == "host":
                self.note(f"{path}.network-mode", "a host network is for admins only")
            return
        if isinstance(mode, str) and mode.startswith("container:"):
            target = mode.removeprefix("container:")
            if target not in self.sources:
                self.error(
                    f"{path}.network-mode",
                    f"{target!r} is not a node of this topology: a node joins the network "
                    "namespace of a node of its own lab",
                )
                return
            out.pop("networks", None)
            out["network_mode"] = f"container:{labfile_name(target)}"
            return
        self.error(f"{path}.network-mode", f"{mode!r} is not host, none or container:NAME")

    def words(self, value: object, path: str) -> list[str] | None:
        if isinstance(value, list) and all(isinstance(w, str | int | float) for w in value):
            return [str(w) for w in value]
        if not isinstance(value, str):
            self.error(path, "a command is a string, split as a shell would")
            return None
        try:
            return shlex.split(value)
        except ValueError as bad:
            self.error(path, f"cannot split {value!r} as a shell would: {bad}")
            return None

    def read_exec(self, draft: _NodeDraft, value: object) -> None:
        if value is None:
            return
        if not isinstance(value, list):
            self.error(f"{draft.path}.exec", "exec is a list of commands")
            return
        for index, command in enumerate(value):
            words = self.words(command, f"{draft.path}.exec.{index}")
            if not words:
                continue
            if (address := _address_command(words)) is not None:
                ifname, interface = address
                slot = draft.iface(ifname)
                (slot.v6 if interface.version == 6 else slot.v4).append(interface)  # type: ignore[arg-type]
                slot.commands.append((index, words, interface.version))
            elif (route := _route_command(words)) is not None:
                draft.routes.append((index, words, route))
            else:
                draft.exec_index[index] = words

    # management network

    def read_mgmt(self) -> None:
        mgmt = self.mapping(self.tree.get("mgmt"), "mgmt", "mgmt")
        for key in mgmt:
            if key not in MGMT_KEYS:
                self.error(f"mgmt.{key}", f"{key!r} is not a key of mgmt")
        for key in ("bridge", "ipv4-range", "ipv6-range", "external-access", "driver-opts"):
            if key in mgmt:
                self.note(f"mgmt.{key}", "not carried over: labmgr makes the network's bridge")
        joined = [d for d in self.nodes.values() if MGMT_NETWORK in d.tree.get("networks", {})]
        if not joined:
            return
        name = MGMT_NETWORK
        if "network" in mgmt and str(mgmt["network"]) != MGMT_NETWORK:
            name = labfile_name(str(mgmt["network"]))
        if name in self.networks:
            self.error("mgmt.network", f"{name!r} is also the name of a bridge node")
            return
        network: dict[str, Any] = {"driver": "bridge", "subnet": _text(mgmt.get("ipv4-subnet"))}
        if "ipv4-subnet" not in mgmt:
            network["subnet"] = MGMT_SUBNET
            self.note(
                "mgmt", f"the management network {name!r} is {MGMT_SUBNET}, as in containerlab"
            )
        if "ipv4-gw" in mgmt:
            network["gateway"] = _text(mgmt["ipv4-gw"])
        if "ipv6-subnet" in mgmt:
            network["subnet6"] = _text(mgmt["ipv6-subnet"])
        if "ipv6-gw" in mgmt:
            network["gateway6"] = _text(mgmt["ipv6-gw"])
        if "mtu" in mgmt:
            network["mtu"] = mgmt["mtu"]
        self.networks[name] = network
        self.origins[f"networks.{name}"] = "mgmt"
        self.mgmt = name
        try:
            subnet = ipaddress.IPv4Network(network["subnet"], strict=False)
            self.mgmt_gateway = network.get("gateway") or first_host(subnet)
        except (ValueError, StopIteration):
            self.mgmt_gateway = None  # the labfile's check names the subnet
        if name != MGMT_NETWORK:
            for draft in joined:
                draft.tree["networks"] = {name: draft.tree["networks"].pop(MGMT_NETWORK)}

    # links

    def read_links(self, value: object) -> None:
        if value is None:
            return
        if not isinstance(value, list):
            self.error("topology.links", "links is a list of links")
            return
        for index, raw in enumerate(value):
            path = f"topology.links.{index}"
            link = self.mapping(raw, path, "a link")
            kind = link.get("type", "veth")
            if kind == "macvlan":
                self.read_macvlan(link, path)
                continue
            if kind in clab_ports.TYPE_KEYS:
                self.read_port(link, path, str(kind))
                continue
            if (brief_port := clab_ports.brief_port(link)) is not None:
                port_kind, end, number, host_if = brief_port
                ends = (f"{path}.endpoints.{number}", f"{path}.endpoints.{1 - number}")
                self.add_port(port_kind, end, ends, host_if, link, path)
                continue
            if (brief := _brief_macvlan(link)) is not None:
                end, number, host_if = brief
                self.add_macvlan(end, f"{path}.endpoints.{number}", host_if, "bridge", link, path)
                continue
            for key in link:
                if key not in LINK_KEYS:
                    self.error(f"{path}.{key}", f"{key!r} is not a key of a link")
            for key in ("vars", "labels"):
                if key in link:
                    self.note(f"{path}.{key}", "not carried over")
            if kind != "veth":
                self.error(f"{path}.type", f"{kind!r} is not a link type")
                continue
            pair = self.endpoints(link, path)
            if pair is not None:
                self.add_link(pair, link, path)

    def endpoints(self, link: Mapping[str, Any], path: str) -> list[tuple[str, str, str]] | None:
        raw = link.get("endpoints")
        if not isinstance(raw, list) or len(raw) != 2:
            self.error(f"{path}.endpoints", "a link has two endpoints, like [r1:eth1, r2:eth1]")
            return None
        ends: list[tuple[str, str, str]] = []
        for number, end in enumerate(raw):
            end_path = f"{path}.endpoints.{number}"
            if isinstance(end, Mapping):
                node, ifname = end.get("node"), end.get("interface")
                if "mac" in end:
                    self.note(f"{end_path}.mac", "not carried over: a link's MACs are the kernel's")
            elif isinstance(end, str) and end.count(":") == 1:
                node, ifname = end.split(":")
            else:
                self.error(end_path, f"{end!r} is not NODE:INTERFACE")
                return None
            if not isinstance(node, str) or not isinstance(ifname, str) or not ifname:
                self.error(end_path, "an endpoint names a node and an interface")
                return None
            if node in clab_ports.BRIEF_ENDS:
                self.error(end_path, f"{end!r}: a link to the {node} has one node's end")
                return None
            if node not in self.names:
                self.error(end_path, f"there is no node {node!r} under topology.nodes")
                return None
            ends.append((node, ifname, end_path))
        return ends

    def add_link(
        self, ends: list[tuple[str, str, str]], link: Mapping[str, Any], path: str
    ) -> None:
        bridged = [end for end in ends if end[0] in self.bridges]
        if len(bridged) == 2:
            self.error(f"{path}.endpoints", "a link between two bridges has no labfile form")
            return
        for node, ifname, end_path in ends:
            if node in self.bridges:
                continue
            draft = self.nodes.get(self.names[node])
            if draft is None:
                return  # a refused node, named already
            if ifname == MGMT_IFNAME and self.mgmt_network_of(draft):
                self.error(
                    end_path, "eth0 is the node's management interface; links use eth1 and on"
                )
                return
            if (draft.source, ifname) in self.used:
                self.error(end_path, f"{node}:{ifname} is already an endpoint of another link")
                return
        for node, ifname, _ in ends:
            self.used.add((node, ifname))
        if bridged:
            bridge = self.bridges[bridged[0][0]]
            node, ifname, _ = next(end for end in ends if end[0] not in self.bridges)
            label = self.names[node]
            if bridge in self.nodes[label].tree.get("networks", {}):
                self.add_bridge_port(label, ifname, bridge, link, path)
                return
            self.nodes[label].tree.setdefault("networks", {})[bridge] = {"ifname": ifname}
            self.bridge_ports[bridge].append((label, ifname))
            if "mtu" in link:
                self.note(f"{path}.mtu", f"the bridge network {bridge!r} takes its own mtu")
            return
        (a, a_if, _), (b, b_if, _) = ends
        out: dict[str, Any] = {"endpoints": [f"{self.names[a]}:{a_if}", f"{self.names[b]}:{b_if}"]}
        if "mtu" in link:
            out["mtu"] = link["mtu"]
        self.link_ends[len(self.links)] = ((self.names[a], a_if), (self.names[b], b_if))
        self.links.append(out)

    def add_bridge_port(
        self, label: str, ifname: str, bridge: str, link: Mapping[str, Any], path: str
    ) -> None:
        """A node's second interface on one bridge: a labfile link of type network."""
        number = len(self.links)
        out = {"type": "network", "endpoints": [f"{label}:{ifname}"], "network": bridge}
        if "mtu" in link:
            out["mtu"] = link["mtu"]
        self.links.append(out)
        self.port_ends[number] = (label, ifname)
        self.origins[f"links.{number}.endpoints.0"] = path
        self.note(path, f"{label}'s second interface on {bridge}: a link of type network")

    def mgmt_network_of(self, draft: _NodeDraft) -> bool:
        return any(
            net not in ("host", "none")
            and net not in self.bridge_ports
            and net not in self.macvlan_ports
            for net in draft.tree.get("networks", {})
        )

    def read_macvlan(self, link: Mapping[str, Any], path: str) -> None:
        """`type: macvlan`: a macvlan of a host interface in the node, on that interface."""
        for key in link:
            if key not in MACVLAN_KEYS:
                self.error(f"{path}.{key}", f"{key!r} is not a key of a macvlan link")
        for key in ("vars", "labels"):
            if key in link:
                self.note(f"{path}.{key}", "not carried over")
        end = link.get("endpoint")
        host_if = link.get("host-interface")
        mode = link.get("mode", "bridge")
        if not isinstance(end, Mapping) or not all(
            isinstance(end.get(k), str) and end.get(k) for k in ("node", "interface")
        ):
            self.error(
                f"{path}.endpoint", "a macvlan link's endpoint names a node and an interface"
            )
            return
        if "mac" in end:
            self.note(f"{path}.endpoint.mac", "not carried over: the macvlan's MAC is labmgr's")
        if not isinstance(host_if, str) or not host_if:
            self.error(f"{path}.host-interface", "a macvlan link names the host's interface")
            return
        if mode not in MACVLAN_MODES:
            self.error(f"{path}.mode", f"{mode!r}: a macvlan's mode is {', '.join(MACVLAN_MODES)}")
            return
        node_end = (str(end["node"]), str(end["interface"]))
        self.add_macvlan(node_end, f"{path}.endpoint", host_if, str(mode), link, path)

    def add_macvlan(
        self,
        end: tuple[str, str],
        end_path: str,
        host_if: str,
        mode: str,
        link: Mapping[str, Any],
        path: str,
    ) -> None:
        """The node's end joins a macvlan network of that host interface and mode, one a
        node joins once (a second interface of one node takes a network of its own)."""
        node, ifname = end
        draft = self.free_end(end, end_path)
        if draft is None:
            return
        self.used.add((draft.source, ifname))
        joined = draft.tree.setdefault("networks", {})
        name = next(
            (
                n
                for n, (parent, m) in self.macvlan_of.items()
                if (parent, m) == (host_if, mode) and n not in joined
            ),
            None,
        )
        if name is None:
            stem = labfile_name(f"macvlan-{host_if}" + ("" if mode == "bridge" else f"-{mode}"))
            name, number = stem, 1
            while name in self.networks:
                number += 1
                name = f"{stem[:28]}-{number}"
            self.networks[name] = {"driver": "macvlan", "parent": f"host:{host_if}", "mode": mode}
            self.macvlan_of[name] = (host_if, mode)
            self.macvlan_ports[name] = []
            self.macvlan_paths[name] = path
            self.origins[f"networks.{name}"] = path
        if "mtu" in link and self.networks[name].setdefault("mtu", link["mtu"]) != link["mtu"]:
            self.note(f"{path}.mtu", f"the macvlan network {name!r} takes its first mtu")
        joined[name] = {"ifname": ifname}
        self.macvlan_ports[name].append((self.names[node], ifname))
        self.note(
            path,
            f"the macvlan network {name!r} of the host's {host_if} (parent: host:{host_if}, "
            f"for admins only), on {self.names[node]}'s {ifname}",
        )

    def free_end(self, end: tuple[str, str], end_path: str) -> _NodeDraft | None:
        """The draft of the node whose interface `end` a link of one node takes, or None
        when that end is refused (named at `end_path`) or its node was."""
        node, ifname = end
        if node not in self.names or node in self.bridges:
            self.error(end_path, f"there is no node {node!r} under topology.nodes")
            return None
        draft = self.nodes.get(self.names[node])
        if draft is None:
            return None  # a refused node, named already
        if ifname == MGMT_IFNAME and self.mgmt_network_of(draft):
            self.error(end_path, "eth0 is the node's management interface; links use eth1 and on")
            return None
        if (draft.source, ifname) in self.used:
            self.error(end_path, f"{node}:{ifname} is already an endpoint of another link")
            return None
        return draft

    def read_port(self, link: Mapping[str, Any], path: str, kind: str) -> None:
        """An extended link of one endpoint: host, dummy, vxlan, vxlan-stitch or mgmt-net."""
        for key, message in clab_ports.check_keys(link, kind):
            self.error(f"{path}.{key}", message)
        end = link.get("endpoint")
        if not isinstance(end, Mapping) or not all(
            isinstance(end.get(k), str) and end.get(k) for k in ("node", "interface")
        ):
            self.error(
                f"{path}.endpoint", f"a {kind} link's endpoint names a node and an interface"
            )
            return
        host_if = link.get("host-interface")
        if kind == "host" and (not isinstance(host_if, str) or not host_if):
            self.error(f"{path}.host-interface", "a host link names the host's interface")
            return
        node_end = (str(end["node"]), str(end["interface"]))
        self.add_port(kind, node_end, (f"{path}.endpoint", f"{path}.type"), host_if, link, path)

    def add_port(
        self,
        kind: str,
        end: tuple[str, str],
        paths: tuple[str, str],
        host_if: str | None,
        link: Mapping[str, Any],
        path: str,
    ) -> None:
        """A labfile link of one endpoint, on the node's interface `end`; `paths` are
        the file's for the node's end and for the link's type (the host's end of a brief
        host link)."""
        end_path, type_path = paths
        node, ifname = end
        draft = self.free_end(end, end_path)
        if draft is None:
            return
        label = self.names[node]
        out, refusals = clab_ports.labfile_link(kind, f"{label}:{ifname}", link, host_if, self.mgmt)
        for key, message in refusals:
            self.error(f"{path}.{key}", message)
        if refusals:
            return
        self.used.add((draft.source, ifname))
        for key, message in clab_ports.notes(kind, link, host_if):
            self.note(f"{path}.{key}" if key.split(".")[0] in link else path, message)
        number = len(self.links)
        self.links.append(out)
        self.port_ends[number] = (label, ifname)
        self.origins[f"links.{number}.type"] = type_path
        for key, source in _PORT_ORIGINS.items():
            self.origins[f"links.{number}.{key}"] = (
                end_path if key == "endpoints.0" else f"{path}.{source}"
            )

    # addresses and routes from exec

    def settle_addresses(self) -> None:
        """Move the addresses and routes exec commands set into the labfile where they
        fit; the rest stay exec commands."""
        keep: dict[str, dict[int, list[str]]] = {
            k: dict(d.exec_index) for k, d in self.nodes.items()
        }
        for number, (node, ifname) in self.port_ends.items():
            for family, key in (("v4", "ipv4"), ("v6", "ipv6")):
                if len(addresses := self.iface_of(node, ifname, family)) == 1:
                    self.links[number][key] = [str(addresses[0])]
                    self.consume(node, ifname, family, f"links.{number}.{key}")
        for number, ends in self.link_ends.items():
            for family in ("v4", "v6"):
                pair = [self.iface_of(node, ifname, family) for node, ifname in ends]
                if (
                    all(len(addrs) == 1 for addrs in pair)
                    and pair[0][0].network == pair[1][0].network
                ):
                    key = "ipv4" if family == "v4" else "ipv6"
                    self.links[number][key] = [str(addrs[0]) for addrs in pair]
                    for node, ifname in ends:
                        self.consume(node, ifname, family, f"links.{number}.{key}")
        for bridge, ports in self.bridge_ports.items():
            self.networks[bridge]["gateway"] = "none"
            self.settle_ports(bridge, ports, f"topology.nodes.{_source_of(self, bridge)}")
        for macvlan, ports in self.macvlan_ports.items():
            self.settle_ports(macvlan, ports, self.macvlan_paths[macvlan])
        for label, draft in self.nodes.items():
            for slot in draft.ifaces.values():
                for index, words, _ in slot.commands:
                    keep[label][index] = words
                    self.note(
                        f"{draft.path}.exec.{index}",
                        "kept as a command: an address labmgr cannot place on a link or network "
                        "of the lab; an unprivileged node cannot set it itself",
                    )
            self.settle_routes(draft, keep[label])
            if keep[label]:
                draft.tree["exec"] = [keep[label][i] for i in sorted(keep[label])]

    def iface_of(self, node: str, ifname: str, family: str) -> list[Any]:
        slot = self.nodes[node].ifaces.get(ifname)
        return [] if slot is None else list(slot.v4 if family == "v4" else slot.v6)

    def consume(self, node: str, ifname: str, family: str, where: str) -> None:
        draft = self.nodes[node]
        slot = draft.ifaces[ifname]
        version = 4 if family == "v4" else 6
        for command in [c for c in slot.commands if c[2] == version]:
            index, words, _ = command
            self.note(f"{draft.path}.exec.{index}", f"became {where} ({shlex.join(words)})")
            slot.commands.remove(command)
        if family == "v4":
            slot.v4.clear()
        else:
            slot.v6.clear()

    def settle_ports(self, name: str, ports: list[tuple[str, str]], path: str) -> None:
        """A bridge or macvlan network's subnet: the one its ports' addresses lie in, else
        a free one (noted at `path`)."""
        network = self.networks[name]
        addressed = [(n, i, self.iface_of(n, i, "v4")) for n, i in ports]
        subnets = {a[0].network for _, _, a in addressed if len(a) == 1}
        fits = len(subnets) == 1 and all(len(a) <= 1 for _, _, a in addressed)
        if fits:
            network["subnet"] = str(subnets.pop())
            for node, ifname, addrs in addressed:
                if addrs:
                    self.nodes[node].tree["networks"][name]["ipv4"] = str(addrs[0].ip)
                    self.consume(node, ifname, "v4", f"nodes.{node}.networks.{name}.ipv4")
            return
        network["subnet"] = self.free_subnet()
        if network["driver"] == "macvlan":
            parent = network["parent"].removeprefix("host:")
            self.note(
                path,
                f"a labfile macvlan network has a subnet: {name!r} is {network['subnet']}, "
                f"free in this lab, and its nodes get addresses in it; write the subnet of "
                f"{parent}'s LAN there instead",
            )
            return
        self.note(
            path,
            f"a labfile bridge network has a subnet: {name!r} is {network['subnet']}, with no "
            "gateway; its nodes get addresses in it",
        )

    def free_subnet(self) -> str:
        taken = [
            ipaddress.ip_network(net["subnet"], strict=False)
            for net in self.networks.values()
            if isinstance(net.get("subnet"), str) and _is_network(net["subnet"])
        ]
        for third in range(21, 256):
            candidate = ipaddress.IPv4Network(f"172.20.{third}.0/24")
            if not any(candidate.overlaps(other) for other in taken):
                return str(candidate)
        return "10.255.255.0/24"  # pragma: no cover - 235 bridges in one lab

    def settle_routes(self, draft: _NodeDraft, keep: dict[int, list[str]]) -> None:
        if not draft.routes:
            return
        routes: list[dict[str, str]] = []
        wanted = {r["dst"] for _, _, r in draft.routes}
        on_mgmt = self.mgmt is not None and self.mgmt in draft.tree.get("networks", {})
        if on_mgmt and self.mgmt_gateway and "0.0.0.0/0" not in wanted:
            routes.append({"dst": "0.0.0.0/0", "via": self.mgmt_gateway})
        for index, words, route in draft.routes:
            routes.append(route)
            self.note(
                f"{draft.path}.exec.{index}",
                f"became nodes.{labfile_name(draft.source)}.routes ({shlex.join(words)})",
            )
        draft.tree["routes"] = routes


def _brief_macvlan(link: Mapping[str, Any]) -> tuple[tuple[str, str], int, str] | None:
    """((node, interface), its index, host interface) of a brief macvlan link
    (`endpoints: [r1:eth1, macvlan:enp0s3]`), else None."""
    raw = link.get("endpoints")
    if not isinstance(raw, list) or len(raw) != 2:
        return None
    if not all(isinstance(e, str) and e.count(":") == 1 for e in raw):
        return None
    ends = [tuple(e.split(":")) for e in raw]
    sides = [i for i, (node, _) in enumerate(ends) if node == "macvlan"]
    if len(sides) != 1:
        return None
    other = 1 - sides[0]
    node, ifname = ends[other]
    return (node, ifname), other, ends[sides[0]][1]


def _source_of(importer: _Importer, bridge: str) -> str:
    return next(s for s, label in importer.bridges.items() if label == bridge)


def _fold(layers: list[Mapping[str, Any]]) -> dict[str, Any]:
    """containerlab's inheritance: later layers win; env and labels merge key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if (
                key in ("env", "labels")
                and isinstance(value, Mapping)
                and isinstance(out.get(key), dict)
            ):
                out[key] = {**out[key], **value}
            else:
                out[key] = dict(value) if isinstance(value, Mapping) else value
    return out


def first_host(subnet: ipaddress.IPv4Network) -> str:
    """The address the labfile gives a network's gateway by default."""
    return str(subnet[1] if subnet.num_addresses > 2 else subnet[0])


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _has_ipv6(node: Mapping[str, Any]) -> bool:
    return any(isinstance(a, Mapping) and "ipv6" in a for a in node.get("networks", {}).values())


def _ip_words(words: list[str]) -> tuple[int | None, list[str]] | None:
    """(family, the rest) of an `ip` command, or None for another program."""
    if not words or words[0] not in ("ip", "/sbin/ip", "/usr/sbin/ip", "/bin/ip"):
        return None
    rest, family = words[1:], None
    while rest and rest[0] in ("-4", "-6"):
        family = int(rest.pop(0)[1])
    return family, rest


def _address_command(
    words: list[str],
) -> tuple[str, ipaddress.IPv4Interface | ipaddress.IPv6Interface] | None:
    """(interface, address) of `ip [-4|-6] address add ADDR/PREFIX dev IF`, else None."""
    parsed = _ip_words(words)
    if parsed is None:
        return None
    _, rest = parsed
    if (
        len(rest) != 5
        or rest[0] not in ("a", "addr", "address")
        or rest[1] != "add"
        or rest[3] != "dev"
    ):
        return None
    try:
        interface = ipaddress.ip_interface(rest[2])
    except ValueError:
        return None
    if "/" not in rest[2]:
        return None
    return rest[4], interface


def _route_command(words: list[str]) -> dict[str, str] | None:
    """{dst, via} of `ip [-4|-6] route add|replace DST via GW [dev IF]`, else None."""
    parsed = _ip_words(words)
    if parsed is None:
        return None
    family, rest = parsed
    if (
        len(rest) not in (5, 7)
        or rest[0] not in ("r", "ro", "route")
        or rest[1] not in ("add", "replace")
    ):
        return None
    if rest[3] != "via" or (len(rest) == 7 and rest[5] != "dev"):
        return None
    try:
        via = ipaddress.ip_address(rest[4])
        dst = (
            ipaddress.ip_network("::/0" if via.version == 6 else "0.0.0.0/0")
            if rest[2] == "default"
            else ipaddress.ip_network(rest[2], strict=True)
        )
    except ValueError:
        return None
    if dst.version != via.version or (family is not None and family != via.version):
        return None
    return {"dst": str(dst), "via": str(via)}


def to_labfile(tree: Mapping[str, Any]) -> Imported:
    """The labfile tree of a containerlab topology, with notes; LabfileError naming the
    topology's own fields for what has no labfile form."""
    return _Importer(tree).run()
