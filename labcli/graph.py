"""A lab's topology as text for other tools: Mermaid (GitHub, GitLab and most wikis draw
it in Markdown) and Graphviz dot. Nodes are boxes, networks are rounded, each attachment
is an edge labelled with the node's interface and addresses, each point-to-point link an
edge between its two nodes labelled with both ends."""

from __future__ import annotations

import re
from typing import Any

FORMATS = ("mermaid", "dot")


def _ident(kind: str, name: str) -> str:
    """A name both tools take as an identifier (labfile names are [a-z0-9_-])."""
    return f"{kind}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def edges(labfile: dict[str, Any]) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(node, network, label) of each attachment and (node, node, label) of each link, in
    the labfile's order."""
    attached = []
    for name, node in (labfile.get("nodes") or {}).items():
        for network, spec in ((node or {}).get("networks") or {}).items():
            spec = spec or {}
            words = [spec.get("ifname"), spec.get("ipv4"), spec.get("ipv6")]
            attached.append((name, network, " ".join(str(w) for w in words if w)))
    linked = []
    for link in labfile.get("links") or []:
        ends = [str(e) for e in (link or {}).get("endpoints") or []]
        if len(ends) == 2:
            a, b = (e.partition(":")[0] for e in ends)
            linked.append((a, b, f"{ends[0]} - {ends[1]}"))
    return attached, linked


def mermaid(labfile: dict[str, Any]) -> str:
    lines = ["graph LR"]
    for name in labfile.get("nodes") or {}:
        lines.append(f'  {_ident("node", name)}["{_quoted(name)}"]')
    for name, network in (labfile.get("networks") or {}).items():
        driver = (network or {}).get("driver", "bridge")
        subnet = (network or {}).get("subnet")
        label = f"{name}<br/>{driver}" + (f" {subnet}" if subnet else "")
        lines.append(f'  {_ident("net", name)}(["{_quoted(label)}"])')
    attached, linked = edges(labfile)
    for node, network, label in attached:
        arrow = f'---|"{_quoted(label)}"|' if label else "---"
        lines.append(f"  {_ident('node', node)} {arrow} {_ident('net', network)}")
    for a, b, label in linked:
        lines.append(f'  {_ident("node", a)} ---|"{_quoted(label)}"| {_ident("node", b)}')
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
    attached, linked = edges(labfile)
    for node, network, label in attached:
        lines.append(f'  {_ident("node", node)} -- {_ident("net", network)} [label="{label}"];')
    for a, b, label in linked:
        lines.append(f'  {_ident("node", a)} -- {_ident("node", b)} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(labfile: dict[str, Any], fmt: str) -> str:
    return mermaid(labfile) if fmt == "mermaid" else dot(labfile)
