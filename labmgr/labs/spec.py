"""The one seam between a lab's rows and the labfile.

Rows hold the pieces of the normalised document (`labplan.labfile.dump`), so turning them
back into a tree needs no knowledge of units or defaults: the tree is re-validated by
labplan, which is the only place that knows what a labfile means.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Prefetch

from labmgr.labs.models import Attachment, Lab, Link, Network, Node
from labplan import labfile as labfile_module
from labplan.link_rules import PORT_KEYS
from labplan.model import Labfile

# Network options held in string columns, "" meaning absent.
_NETWORK_TEXT_OPTIONS = ("subnet", "subnet6", "gateway", "gateway6", "parent", "mode")
# Network options held in nullable columns, NULL meaning absent. A network's impairments
# are one column under either name: labfile 1 says `shaping`, labfile 2 `impairments`.
_NETWORK_NULL_OPTIONS = ("internal", "mtu", "shaping", "vni", "vlan_filtering")
# A vlan network's `id` is the `vlan_id` column.
_NETWORK_KEYS = frozenset(
    {"driver", "impairments", "id", *_NETWORK_TEXT_OPTIONS, *_NETWORK_NULL_OPTIONS}
)
_NODE_KEYS = frozenset(
    {
        "host",
        "hostname",
        "rootfs",
        "image",
        "entrypoint",
        "command",
        "workdir",
        "user",
        "environment",
        "limits",
        "namespaces",
        "privileged",
        "networks",
        "routes",
        "exec",
        "network_mode",
        "sysctls",
        "mounts",
    }
)
_ATTACHMENT_KEYS = frozenset({"ipv4", "ipv6", "ifname", "mac", "vlan", "vlans", "impairments"})
_LINK_KEYS = frozenset({"endpoints", "ipv4", "ipv6", "mtu", "impairments", "type", *PORT_KEYS})


def lab_to_tree(lab: Lab) -> dict[str, Any]:
    """The lab's rows as a labfile tree (not yet validated) of the lab's own version,
    read fresh in 4 queries."""
    attachments = Attachment.objects.select_related("network").order_by("position")
    nodes = Node.objects.filter(lab=lab).order_by("name")
    tree: dict[str, Any] = {
        "labfile": lab.version,
        "name": lab.name,
        "description": lab.description,
        "networks": {
            n.name: _network_tree(n, lab.version)
            for n in Network.objects.filter(lab=lab).order_by("name")
        },
        "nodes": {
            node.name: _node_tree(node)
            for node in nodes.prefetch_related(Prefetch("attachments", queryset=attachments))
        },
    }
    if lab.version >= 2:
        links = Link.objects.filter(lab=lab).select_related("node_a", "node_b")
        tree["links"] = [_link_tree(link) for link in links.order_by("position")]
        if lab.volumes:
            tree["volumes"] = dict(lab.volumes)
        if lab.scenarios:
            tree["scenarios"] = json.loads(lab.scenarios)
    return tree


def lab_to_labfile(lab: Lab) -> Labfile:
    """The lab as a validated labfile; raises LabfileError if its rows no longer validate."""
    return labfile_module.validate(lab_to_tree(lab))


def lab_document(lab: Lab) -> dict[str, Any]:
    """The lab's normalised labfile document, from the cache its services keep."""
    if lab.document:
        document: dict[str, Any] = json.loads(lab.document)
        return document
    return labfile_module.dump(lab_to_labfile(lab))


def lab_refresh_document(lab: Lab) -> None:
    """Rewrite the cached document from the rows; call after any change to them."""
    lab.document = json.dumps(labfile_module.dump(lab_to_labfile(lab)), ensure_ascii=False)
    lab.save(update_fields=["document"])


def labfile_to_rows(*, lab: Lab, labfile: Labfile) -> None:
    """Create the rows of `labfile`'s networks, nodes, attachments and links under `lab`,
    and record its labfile version on the lab.

    The lab must have no networks or nodes yet; callers replace them inside a transaction.
    """
    document = labfile_module.dump(labfile)
    lab.version = int(document["labfile"])
    scenarios = document.get("scenarios")
    lab.scenarios = json.dumps(scenarios, ensure_ascii=False) if scenarios else ""
    lab.volumes = dict(document.get("volumes") or {})
    lab.save(update_fields=["version", "scenarios", "volumes"])
    networks = Network.objects.bulk_create(
        _network_row(lab, name, tree) for name, tree in (document.get("networks") or {}).items()
    )
    network_by_name = {network.name: network for network in networks}
    node_trees = document.get("nodes") or {}
    nodes = Node.objects.bulk_create(
        _node_row(lab, name, tree) for name, tree in node_trees.items()
    )
    Attachment.objects.bulk_create(
        _attachment_row(node, network_by_name[network_name], position, attachment or {})
        for node in nodes
        for position, (network_name, attachment) in enumerate(
            (node_trees[node.name].get("networks") or {}).items()
        )
    )
    node_by_name = {node.name: node for node in nodes}
    Link.objects.bulk_create(
        _link_row(lab, position, tree, node_by_name)
        for position, tree in enumerate(document.get("links") or [])
    )


def _network_tree(network: Network, version: int) -> dict[str, Any]:
    tree: dict[str, Any] = {"driver": network.driver}
    for key in _NETWORK_TEXT_OPTIONS:
        if value := getattr(network, key):
            tree[key] = value
    for key in _NETWORK_NULL_OPTIONS:
        if (value := getattr(network, key)) is not None:
            tree["impairments" if key == "shaping" and version >= 2 else key] = value
    if network.vlan_id is not None:
        tree["id"] = network.vlan_id
    return tree


def _node_tree(node: Node) -> dict[str, Any]:
    # An image node has no rootfs and may leave its command, entrypoint, workdir and user
    # to the image ("" or NULL in the row: absent from the tree).
    tree: dict[str, Any] = {"hostname": node.hostname}
    for key in ("rootfs", "image", "workdir", "user", "network_mode"):
        if value := getattr(node, key):
            tree[key] = value
    for key in ("entrypoint", "command"):
        if (value := getattr(node, key)) is not None:
            tree[key] = list(value)
    tree |= {
        "environment": dict(node.environment),
        "limits": dict(node.limits),
        "namespaces": dict(node.namespaces),
        "privileged": node.privileged,
        "networks": {a.network.name: _attachment_tree(a) for a in node.attachments.all()},
        "routes": list(node.routes),
    }
    if node.exec:
        tree["exec"] = [list(command) for command in node.exec]
    if node.sysctls:
        tree["sysctls"] = dict(node.sysctls)
    if node.mounts:
        tree["mounts"] = [dict(mount) for mount in node.mounts]
    if node.host:
        tree["host"] = node.host
    return tree


def _attachment_tree(attachment: Attachment) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    if attachment.ipv4:
        tree["ipv4"] = attachment.ipv4
    if attachment.ipv6:
        tree["ipv6"] = attachment.ipv6
    if attachment.ifname:
        tree["ifname"] = attachment.ifname
    if attachment.mac:
        tree["mac"] = attachment.mac
    if attachment.vlan is not None:
        tree["vlan"] = attachment.vlan
    if attachment.vlans is not None:
        tree["vlans"] = list(attachment.vlans)
    if attachment.impairments is not None:
        tree["impairments"] = dict(attachment.impairments)
    return tree


def _link_tree(link: Link) -> dict[str, Any]:
    if link.node_b is None:
        return _port_tree(link)
    # The export's own shape: one set of impairments when both ends send alike, else a
    # set per sending end.
    ends = [
        (link.endpoint_a, link.ipv4_a, link.ipv6_a, link.impairments_a),
        (link.endpoint_b, link.ipv4_b, link.ipv6_b, link.impairments_b),
    ]
    tree: dict[str, Any] = {"endpoints": [end[0] for end in ends]}
    for family, column in (("ipv4", 1), ("ipv6", 2)):
        if all(end[column] for end in ends):
            tree[family] = [end[column] for end in ends]
    tree["mtu"] = link.mtu
    if link.impairments_a == link.impairments_b:
        if link.impairments_a is not None:
            tree["impairments"] = dict(link.impairments_a)
    else:
        tree["impairments"] = {end[0]: dict(end[3]) for end in ends if end[3] is not None}
    return tree


def _port_tree(link: Link) -> dict[str, Any]:
    """A link of one endpoint: node A's end, and the host side's addresses of a host link."""
    tree: dict[str, Any] = {"type": link.type, "endpoints": [link.endpoint_a]}
    for family, ends in (
        ("ipv4", (link.ipv4_a, link.ipv4_b)),
        ("ipv6", (link.ipv6_a, link.ipv6_b)),
    ):
        if ends[0]:
            tree[family] = [address for address in ends if address]
    tree["mtu"] = link.mtu
    return tree | dict(link.options)


def _network_row(lab: Lab, name: str, tree: dict[str, Any]) -> Network:
    _check_keys(f"networks.{name}", tree, _NETWORK_KEYS)
    row = Network(lab=lab, name=name, driver=tree["driver"])
    for key in _NETWORK_TEXT_OPTIONS:
        setattr(row, key, "" if tree.get(key) is None else str(tree[key]))
    for key in _NETWORK_NULL_OPTIONS:
        setattr(row, key, tree.get(key))
    if "impairments" in tree:
        row.shaping = tree["impairments"]
    row.vlan_id = tree.get("id")
    return row


def _node_row(lab: Lab, name: str, tree: dict[str, Any]) -> Node:
    _check_keys(f"nodes.{name}", tree, _NODE_KEYS)
    return Node(
        lab=lab,
        name=name,
        hostname=tree["hostname"],
        host=tree.get("host") or "",
        rootfs=tree.get("rootfs") or "",
        image=tree.get("image") or "",
        entrypoint=_list_or_none(tree.get("entrypoint")),
        command=_list_or_none(tree.get("command")),
        workdir=tree.get("workdir") or "",
        user=tree.get("user") or "",
        network_mode=tree.get("network_mode") or "",
        sysctls=dict(tree.get("sysctls") or {}),
        mounts=list(tree.get("mounts") or []),
        environment=dict(tree.get("environment") or {}),
        limits=dict(tree.get("limits") or {}),
        namespaces=dict(tree.get("namespaces") or {}),
        privileged=bool(tree.get("privileged")),
        routes=list(tree.get("routes") or []),
        exec=[list(command) for command in tree.get("exec") or []],
    )


def _list_or_none(value: Any) -> list[Any] | None:
    return None if value is None else list(value)


def _attachment_row(
    node: Node, network: Network, position: int, tree: dict[str, Any]
) -> Attachment:
    _check_keys(f"nodes.{node.name}.networks.{network.name}", tree, _ATTACHMENT_KEYS)
    return Attachment(
        node=node,
        network=network,
        position=position,
        ipv4=tree.get("ipv4") or None,
        ipv6=tree.get("ipv6") or "",
        ifname=tree.get("ifname") or "",
        mac=tree.get("mac") or "",
        vlan=tree.get("vlan"),
        vlans=_list_or_none(tree.get("vlans")),
        impairments=tree.get("impairments"),
    )


def _link_row(lab: Lab, position: int, tree: dict[str, Any], nodes: dict[str, Node]) -> Link:
    _check_keys(f"links.{position}", tree, _LINK_KEYS)
    if tree.get("type", "veth") != "veth":
        return _port_row(lab, position, tree, nodes)
    (node_a, ifname_a), (node_b, ifname_b) = (e.split(":", 1) for e in tree["endpoints"])
    ipv4 = tree.get("ipv4") or ["", ""]
    ipv6 = tree.get("ipv6") or ["", ""]
    impairments = tree.get("impairments")
    if impairments is None or any(":" in key for key in impairments):
        by_end = impairments or {}
        sent = [by_end.get(endpoint) for endpoint in tree["endpoints"]]
    else:
        sent = [impairments, impairments]
    return Link(
        lab=lab,
        position=position,
        node_a=nodes[node_a],
        ifname_a=ifname_a,
        ipv4_a=ipv4[0],
        ipv6_a=ipv6[0],
        impairments_a=sent[0],
        node_b=nodes[node_b],
        ifname_b=ifname_b,
        ipv4_b=ipv4[1],
        ipv6_b=ipv6[1],
        impairments_b=sent[1],
        mtu=tree["mtu"],
    )


def _port_row(lab: Lab, position: int, tree: dict[str, Any], nodes: dict[str, Node]) -> Link:
    node, ifname = tree["endpoints"][0].split(":", 1)
    ipv4 = [*(tree.get("ipv4") or []), "", ""]
    ipv6 = [*(tree.get("ipv6") or []), "", ""]
    return Link(
        lab=lab,
        position=position,
        type=tree["type"],
        node_a=nodes[node],
        ifname_a=ifname,
        ipv4_a=ipv4[0],
        ipv6_a=ipv6[0],
        ipv4_b=ipv4[1],
        ipv6_b=ipv6[1],
        mtu=tree["mtu"],
        options={key: tree[key] for key in PORT_KEYS if key in tree},
    )


def _check_keys(path: str, tree: dict[str, Any], known: frozenset[str]) -> None:
    # A key labplan's export gained that no column holds would be lost silently.
    if unknown := set(tree) - known:
        raise ValueError(f"{path}: no column holds {sorted(unknown)}")
