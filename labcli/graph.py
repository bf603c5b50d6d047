"""A lab's topology as text for other tools: Mermaid (GitHub, GitLab and most wikis draw
it in Markdown) and Graphviz dot. Nodes are boxes, networks are rounded, each attachment
is an edge labelled with the node's interface and addresses, each point-to-point link an
edge between its two nodes labelled with both ends. A link of one endpoint is an edge to
its bridge network (type network) or to a vertex of its own saying what is beyond it:
the host, a VXLAN remote, a dummy."""

from __future__ import annotations

import re
from typing import Any

FORMATS = ("mermaid", "dot")


def _ident(kind: str, name: str) -> str:
    """A name both tools take as an identifier (labfile names are [a-z0-9_-])."""
    return f"{kind}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


Edge = tuple[str, str, str]


def edges(labfile: dict[str, Any]) -> tuple[list[Edge], list[Edge], list[Edge]]:
    """(node, network, label) of each attachment and network link, (node, node, label) of
    each point-to-point link, and (node, far side, label) of each other link of one
    endpoint, in the labfile's order."""
    attached = []
    for name, node in (labfile.get("nodes") or {}).items():
        for network, spec in ((node or {}).get("networks") or {}).items():
            spec = spec or {}
            words = [spec.get("ifname"), spec.get("ipv4"), spec.get("ipv6")]
            attached.append((name, network, " ".join(str(w) for w in words if w)))
    linked, outside = [], []
    for link in labfile.get("links") or []:
        link = link or {}
        ends = [str(e) for e in link.get("endpoints") or []]
        kind = link.get("type", "veth")
        if kind == "veth" and len(ends) == 2:
            a, b = (e.partition(":")[0] for e in ends)
            linked.append((a, b, f"{ends[0]} - {ends[1]}"))
        elif kind != "veth" and len(ends) == 1:
            node, _, ifname = ends[0].partition(":")
            addresses = [*(link.get("ipv4") or [])[:1], *(link.get("ipv6") or [])[:1]]
            label = " ".join([ifname, *map(str, addresses)])
            if kind == "network":
                attached.append((node, str(link.get("network")), label))
            else:
                outside.append((node, _far(link), label))
    return attached, linked, outside


def _far(link: dict[str, Any]) -> str:
    if link.get("type") == "host":
        return "host"
    if link.get("type") == "vxlan":
        return f"VXLAN {link.get('vni')} to {link.get('remote')}"
    return str(link.get("type"))


def mermaid(labfile: dict[str, Any]) -> str:
    lines = ["graph LR"]
    for name in labfile.get("nodes") or {}:
        lines.append(f'  {_ident("node", name)}["{_quoted(name)}"]')
    for name, network in (labfile.get("networks") or {}).items():
        driver = (network or {}).get("driver", "bridge")
        subnet = (network or {}).get("subnet")
        label = f"{name}<br/>{driver}" + (f" {subnet}" if subnet else "")
        lines.append(f'  {_ident("net", name)}(["{_quoted(label)}"])')
    attached, linked, outside = edges(labfile)
    for node, network, label in attached:
        arrow = f'---|"{_quoted(label)}"|' if label else "---"
        lines.append(f"  {_ident('node', node)} {arrow} {_ident('net', network)}")
    for a, b, label in linked:
        lines.append(f'  {_ident("node", a)} ---|"{_quoted(label)}"| {_ident("node", b)}')
    for number, (node, far, label) in enumerate(outside):
        lines.append(f'  far_{number}{{{{"{_quoted(far)}"}}}}')
        lines.append(f'  {_ident("node", node)} ---|"{_quoted(label)}"| far_{number}')
    return "\n".join(lines) + "\n"


def dot(labfile: dict[str, Any]) -> str:
    name = str(labfile.get("name", "lab"))
    lines = [f'graph "{_quoted(name)}" {{', "  rankdir=LR;"]
    for node in labfile.get("nodes") or {}:
        lines.append(f'  {_ident("node", node)} [label="{_quoted(node)}", shape=box];')
    for net, network in (labfile.get("networks") or {}).items():
        driver = (network or {}).get("driver", "bridge")
        subnet = (network or {}).get("subnet")
        label = f"{net}\\n{driver}" + (f" {subnet}" if subnet else "")
        lines.append(f'  {_ident("net", net)} [label="{label}", shape=ellipse];')
    attached, linked, outside = edges(labfile)
    for node, network, label in attached:
        lines.append(f'  {_ident("node", node)} -- {_ident("net", network)} [label="{label}"];')
    for a, b, label in linked:
        lines.append(f'  {_ident("node", a)} -- {_ident("node", b)} [label="{label}"];')
    for number, (node, far, label) in enumerate(outside):
        lines.append(f'  far_{number} [label="{_quoted(far)}", shape=hexagon];')
        lines.append(f'  {_ident("node", node)} -- far_{number} [label="{_quoted(label)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(labfile: dict[str, Any], fmt: str) -> str:
    return mermaid(labfile) if fmt == "mermaid" else dot(labfile)
