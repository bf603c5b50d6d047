"""A normalised `Labfile` back to a labfile document, every default shown, keys in the
order of docs/labfile.md (the order of the `labplan.fields` tables).

Re-validating an export gives the same lab: `dump(validate(dump(lab))) == dump(lab)`.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

try:
    from yaml.cyaml import CSafeDumper as _BaseDumper
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]

from labplan.fields import ATTACHMENT, NETWORK, Field
from labplan.model import (
    Attachment,
    Labfile,
    Limits,
    Link,
    Mount,
    Network,
    Node,
    Port,
    Shaping,
)
from labplan.units import format_percent, format_rate, format_size, format_time


def dump(lab: Labfile) -> dict[str, Any]:
    """The normalised document as plain data (dicts, lists, str, int, float, bool)."""
    version = lab.version
    document = {
        "labfile": version,
        "name": lab.name,
        "description": lab.description,
        "networks": {n.name: _network(n, version) for n in lab.networks},
        "nodes": {n.name: _node(n, lab) for n in lab.nodes},
    }
    if version >= 2:
        document["links"] = _links(lab)
    if lab.volumes:
        document["volumes"] = {v.name: {"size": format_size(v.size)} for v in lab.volumes}
    if lab.scenarios:
        document["scenarios"] = {
            s.name: [{"at": format_time(step.at), **step.data} for step in s.steps]
            for s in lab.scenarios
        }
    return document


def dumps(lab: Labfile, fmt: str = "yaml") -> str:
    """The export as YAML (block style, no aliases) or JSON (indent 2)."""
    document = dump(lab)
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.dump(
            document,
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            width=100,
        )
    raise ValueError(f"unknown labfile format {fmt!r}; use yaml or json")


class _Dumper(_BaseDumper):
    """Never writes anchors: equal sub-documents are written out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: _BaseDumper, data: str) -> yaml.ScalarNode:
    # YAML 1.1 readers fold NEL and the Unicode line separators unless they are escaped,
    # which only the double-quoted style does.
    style = '"' if any(c in data for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def _applies(option: Field, driver: str) -> bool:
    return option.drivers is None or driver in option.drivers


def _network(network: Network, version: int) -> dict[str, Any]:
    shaping = shaping_document(network.shaping) if network.shaping is not None else None
    values: dict[str, Any] = {
        "driver": network.driver,
        "subnet": network.subnet,
        "subnet6": network.subnet6,
        "gateway": network.gateway if network.gateway is not None else "none",
        "gateway6": network.gateway6,
        "internal": network.internal,
        "mtu": network.mtu,
        # Labfile 2 names it impairments; a labfile 1 export keeps its own name.
        "impairments": shaping if version >= 2 else None,
        "shaping": shaping if version < 2 else None,
        "parent": network.parent,
        "mode": network.mode,
        "vni": network.vni,
        "vlan_filtering": network.vlan_filtering if version >= 2 else None,
        "id": network.vlan_id,
    }
    return {
        option.name: values[option.name]
        for option in NETWORK.fields
        if _applies(option, network.driver) and values[option.name] is not None
    }


def shaping_document(shaping: Shaping) -> dict[str, Any]:
    values = {
        "rate": None if shaping.rate is None else format_rate(shaping.rate),
        "delay": None if shaping.delay is None else format_time(shaping.delay),
        "jitter": None if shaping.jitter is None else format_time(shaping.jitter),
        "loss": None if shaping.loss is None else format_percent(shaping.loss),
        "duplicate": None if shaping.duplicate is None else format_percent(shaping.duplicate),
        "corrupt": None if shaping.corrupt is None else format_percent(shaping.corrupt),
        "reorder": None if shaping.reorder is None else format_percent(shaping.reorder),
    }
    return {key: value for key, value in values.items() if value is not None}


def _node(node: Node, lab: Labfile) -> dict[str, Any]:
    document: dict[str, Any] = {} if node.host is None else {"host": node.host}
    document["hostname"] = node.hostname
    if node.image is None:
        document.update(rootfs=node.rootfs, command=list(node.command or ()))
        document["workdir"] = node.workdir
    else:
        # What the labfile left to the image stays unsaid.
        document["image"] = node.image
        if node.entrypoint is not None:
            document["entrypoint"] = list(node.entrypoint)
        if node.command is not None:
            document["command"] = list(node.command)
        if node.workdir is not None:
            document["workdir"] = node.workdir
    if node.user is not None:
        document["user"] = node.user
    document.update(
        environment=dict(sorted(node.environment.items())),
        limits=_limits(node.limits),
        namespaces={
            "mnt": node.namespaces.mnt,
            "uts": node.namespaces.uts,
            "ipc": node.namespaces.ipc,
            "pid": node.namespaces.pid,
            "cgroup": node.namespaces.cgroup,
            "user": node.namespaces.user,
        },
        privileged=node.privileged,
        networks={a.network: _attachment(a, lab.network(a.network).driver) for a in node.networks},
        routes=[{"dst": r.dst, "via": r.via} for r in node.routes],
    )
    if node.sysctls:
        document["sysctls"] = dict(node.sysctls)
    if node.mounts:
        document["mounts"] = [_mount(mount) for mount in node.mounts]
    if node.joins is not None:
        document["network_mode"] = f"container:{node.joins}"
    if node.exec:
        document["exec"] = [list(argv) for argv in node.exec]
    return document


def _mount(mount: Mount) -> dict[str, Any]:
    source: dict[str, Any] = (
        {"volume": mount.volume} if mount.volume is not None else {"host": mount.host}
    )
    return {**source, "path": mount.path, "readonly": mount.readonly}


def _limits(limits: Limits) -> dict[str, Any]:
    cpus: Any = limits.cpus
    if cpus is not None and cpus.is_integer():
        cpus = int(cpus)
    values: dict[str, Any] = {
        "cpus": cpus,
        "cpu_weight": limits.cpu_weight,
        "memory": None if limits.memory is None else format_size(limits.memory),
        "memory_swap": None if limits.memory_swap is None else format_size(limits.memory_swap),
        "pids": limits.pids,
        "io_weight": limits.io_weight,
        "io": [_io(t.device, t.rbps, t.wbps, t.riops, t.wiops) for t in limits.io] or None,
    }
    return {key: value for key, value in values.items() if value is not None}


def _io(
    device: str, rbps: int | None, wbps: int | None, riops: int | None, wiops: int | None
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "device": device,
        "rbps": None if rbps is None else format_size(rbps),
        "wbps": None if wbps is None else format_size(wbps),
        "riops": riops,
        "wiops": wiops,
    }
    return {key: value for key, value in values.items() if value is not None}


def _attachment(attachment: Attachment, driver: str) -> dict[str, Any]:
    values = {
        "ipv4": attachment.ipv4,
        "ipv6": attachment.ipv6,
        "ifname": attachment.ifname,
        "mac": attachment.mac,
        "impairments": None
        if attachment.impairments is None
        else shaping_document(attachment.impairments),
        "vlan": attachment.vlan,
        "vlans": list(attachment.vlans) or None,
    }
    return {
        option.name: values[option.name]
        for option in ATTACHMENT.fields
        if _applies(option, driver) and values[option.name] is not None
    }


def _links(lab: Labfile) -> list[dict[str, Any]]:
    """Veth links and links of one endpoint, each back at its place in the labfile."""
    ports = {port.index: port for port in lab.ports}
    veths = iter(lab.links)
    return [
        _port(ports[index]) if index in ports else _link(next(veths))
        for index in range(len(lab.links) + len(lab.ports))
    ]


def _port(port: Port) -> dict[str, Any]:
    document: dict[str, Any] = {"type": port.type, "endpoints": [port.end.endpoint]}
    for family, host in (("ipv4", port.host_ipv4), ("ipv6", port.host_ipv6)):
        if (address := getattr(port.end, family)) is not None:
            document[family] = [address] if host is None else [address, host]
    document["mtu"] = port.mtu
    if port.network is not None:
        document["network"] = port.network
    if port.host_ifname is not None:
        document["host_ifname"] = port.host_ifname
    if port.type == "vxlan":
        document |= {"remote": port.remote, "vni": port.vni, "port": port.port}
        if port.parent is not None:
            document["parent"] = port.parent
    return document


def _link(link: Link) -> dict[str, Any]:
    first, second = link.ends
    document: dict[str, Any] = {"endpoints": [first.endpoint, second.endpoint]}
    for family in ("ipv4", "ipv6"):
        addresses = [getattr(first, family), getattr(second, family)]
        if None not in addresses:
            document[family] = addresses
    document["mtu"] = link.mtu
    if first.impairments == second.impairments:
        if first.impairments is not None:
            document["impairments"] = shaping_document(first.impairments)
    else:
        document["impairments"] = {
            end.endpoint: shaping_document(end.impairments)
            for end in link.ends
            if end.impairments is not None
        }
    return document
