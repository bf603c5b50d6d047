"""containerlab's links of one endpoint, to and from the labfile's: `host` (brief,
`host:IFNAME`, or extended, `type: host`), `dummy`, `vxlan` and `vxlan-stitch` become
labfile links of type host, dummy and vxlan, and `mgmt-net` (brief, `mgmt-net:IFNAME`,
or extended) a link of type network on the management network; an export writes them
back as extended links.

The importer (`labplan.interop.clab`) hands each such link here with the node ends it
checked; addresses its exec commands set are placed as for any link.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labplan.model import Port

COMMON_KEYS = ("type", "endpoint", "mtu", "vars", "labels")
# The keys of each extended type, besides the common ones.
TYPE_KEYS: dict[str, tuple[str, ...]] = {
    "host": ("host-interface",),
    "dummy": (),
    "vxlan": ("remote", "vni", "udp-port"),
    "vxlan-stitch": ("remote", "vni", "udp-port"),
    "mgmt-net": ("host-interface",),
}
# The endpoint "nodes" of brief links of one endpoint, and the type each stands for.
BRIEF_ENDS = {"host": "host", "mgmt-net": "mgmt-net"}
VXLAN_PORT = 4789  # containerlab's default udp-port, and the labfile's
_LABFILE_TYPE = {"vxlan-stitch": "vxlan", "mgmt-net": "network"}


def brief_port(link: Mapping[str, Any]) -> tuple[str, tuple[str, str], int, str] | None:
    """(type, (node, interface), its index, host interface) of a brief link of one
    endpoint (`endpoints: [r1:eth1, host:r1-eth1]`, `[r1:eth1, mgmt-net:r1-eth1]`), else
    None."""
    raw = link.get("endpoints")
    if not isinstance(raw, list) or len(raw) != 2:
        return None
    if not all(isinstance(e, str) and e.count(":") == 1 for e in raw):
        return None
    ends = [tuple(e.split(":")) for e in raw]
    sides = [i for i, (node, _) in enumerate(ends) if node in BRIEF_ENDS]
    if len(sides) != 1:
        return None
    other = 1 - sides[0]
    node, ifname = ends[other]
    return BRIEF_ENDS[ends[sides[0]][0]], (node, ifname), other, ends[sides[0]][1]


def check_keys(link: Mapping[str, Any], kind: str) -> list[tuple[str, str]]:
    """(key, refusal) for each key the extended link of `kind` does not have."""
    known = (*COMMON_KEYS, *TYPE_KEYS[kind])
    return [(str(k), f"{k!r} is not a key of a {kind} link") for k in link if k not in known]


def labfile_link(
    kind: str, endpoint: str, link: Mapping[str, Any], host_if: str | None, mgmt: str | None
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The labfile link of an extended (or brief) link of one endpoint, `mgmt` the
    management network's name, and the refusals of its own keys as (key, message)."""
    refusals: list[tuple[str, str]] = []
    out: dict[str, Any] = {"type": _LABFILE_TYPE.get(kind, kind)}
    out["endpoints"] = [endpoint]
    if kind == "mgmt-net":
        if mgmt is None:
            refusals.append(("type", "there is no management network here to join"))
        out["network"] = mgmt
    if "mtu" in link:
        out["mtu"] = link["mtu"]
    if kind == "host":
        if host_if is not None:
            out["host_ifname"] = host_if
        else:
            refusals.append(("host-interface", "a host link names the host's interface"))
    if kind in ("vxlan", "vxlan-stitch"):
        for key in ("remote", "vni"):
            if key in link:
                out[key] = str(link[key]) if key == "remote" else link[key]
            else:
                refusals.append((key, f"a {kind} link needs its {key}"))
        out["port"] = link.get("udp-port", VXLAN_PORT)
    return out, refusals


def notes(kind: str, link: Mapping[str, Any], host_if: str | None) -> list[tuple[str, str]]:
    """(key, note) of what an imported link of one endpoint changes or drops; `host_if`
    the host side's name the file gives."""
    said = [(key, "not carried over") for key in ("vars", "labels") if key in link]
    if isinstance(end := link.get("endpoint"), Mapping) and "mac" in end:
        said.append(("endpoint.mac", "not carried over: the interface's MAC is the kernel's"))
    if kind == "host":
        said.append(
            (
                "type",
                "a veth into the host's namespace (for admins only); labmgr names its host "
                "side itself, and the host-interface name is an alternative name of it",
            )
        )
    if kind == "vxlan-stitch":
        said.append(
            (
                "type",
                "the VXLAN device is the node's own interface: labmgr makes it inside the "
                "node rather than stitching it to a veth on the host",
            )
        )
    if kind in ("vxlan", "vxlan-stitch"):
        said.append(
            ("remote", "a tunnel out of the host (for admins only), over its route to remote")
        )
    if kind == "mgmt-net":
        said.append(("type", "a link of type network: one more port on the management bridge"))
        if host_if is not None:
            said.append(
                (
                    "host-interface",
                    "not carried over: labmgr names the bridge's side itself (an admin may "
                    "add host_ifname)",
                )
            )
    return said


def clab_link(port: Port, bridge_port: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """The containerlab link of a labfile link of one endpoint, and what of it
    containerlab does not say. A network link is a mgmt-net link without `bridge_port`,
    else a link to the bridge node on its port `bridge_port`."""
    said: list[str] = []
    if port.type == "network" and bridge_port is not None:
        if port.host_ifname is not None:
            said.append("the host_ifname is not carried over: containerlab names the port")
        node_end = f"{port.end.node}:{port.end.ifname}"
        return {"endpoints": [node_end, f"{port.network}:{bridge_port}"]}, said
    link: dict[str, Any] = {
        "type": "mgmt-net" if port.type == "network" else port.type,
        "endpoint": {"node": port.end.node, "interface": port.end.ifname},
    }
    if port.type in ("host", "network"):
        # containerlab names the host side: the labfile's alternative name, else one
        # made of the node's end.
        link["host-interface"] = port.host_ifname or f"{port.end.node}-{port.end.ifname}"[:15]
        if port.host_ifname is None:
            said.append(f"the host side is named {link['host-interface']} in containerlab")
        if port.host_ipv4 or port.host_ipv6:
            said.append("the host side's addresses are not carried over: set them on the host")
    if port.type == "vxlan":
        link |= {"remote": port.remote, "vni": port.vni, "udp-port": port.port}
        if port.parent is not None:
            said.append(
                f"parent {port.parent} is not carried over: containerlab tunnels over the "
                "host's route to remote"
            )
    if port.mtu != 1500:
        link["mtu"] = port.mtu
    return link, said
