"""The one seam between a lab's rows and the labfile.

Rows hold the pieces of the normalised document (`labplan.labfile.dump`), so turning them
back into a tree needs no knowledge of units or defaults: the tree is re-validated by
labplan, which is the only place that knows what a labfile means.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Prefetch

from labmgr.labs.models import Attachment, Lab, Network, Node
from labplan import labfile as labfile_module
from labplan.model import LABFILE_VERSION, Labfile

# Network options held in string columns, "" meaning absent.
_NETWORK_TEXT_OPTIONS = ("subnet", "gateway", "parent", "mode")
# Network options held in nullable columns, NULL meaning absent.
_NETWORK_NULL_OPTIONS = ("internal", "mtu", "shaping", "vni")
_NETWORK_KEYS = frozenset({"driver", *_NETWORK_TEXT_OPTIONS, *_NETWORK_NULL_OPTIONS})
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
    }
)
_ATTACHMENT_KEYS = frozenset({"ipv4", "ifname", "mac"})


def lab_to_tree(lab: Lab) -> dict[str, Any]:
    """The lab's rows as a labfile tree (not yet validated), read fresh in 3 queries."""
    attachments = Attachment.objects.select_related("network").order_by("position")
    nodes = Node.objects.filter(lab=lab).order_by("name")
    return {
        "labfile": LABFILE_VERSION,
        "name": lab.name,
        "description": lab.description,
        "networks": {
            n.name: _network_tree(n) for n in Network.objects.filter(lab=lab).order_by("name")
        },
        "nodes": {
            node.name: _node_tree(node)
            for node in nodes.prefetch_related(Prefetch("attachments", queryset=attachments))
        },
    }


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
    """Create the rows of `labfile`'s networks, nodes and attachments under `lab`.

    The lab must have no networks or nodes yet; callers replace them inside a transaction.
    """
    document = labfile_module.dump(labfile)
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


def _network_tree(network: Network) -> dict[str, Any]:
    tree: dict[str, Any] = {"driver": network.driver}
    for key in _NETWORK_TEXT_OPTIONS:
        if value := getattr(network, key):
            tree[key] = value
    for key in _NETWORK_NULL_OPTIONS:
        if (value := getattr(network, key)) is not None:
            tree[key] = value
    return tree


def _node_tree(node: Node) -> dict[str, Any]:
    # An image node has no rootfs and may leave its command, entrypoint, workdir and user
    # to the image ("" or NULL in the row: absent from the tree).
    tree: dict[str, Any] = {"hostname": node.hostname}
    for key in ("rootfs", "image", "workdir", "user"):
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
    if node.host:
        tree["host"] = node.host
    return tree


def _attachment_tree(attachment: Attachment) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    if attachment.ipv4:
        tree["ipv4"] = attachment.ipv4
    if attachment.ifname:
        tree["ifname"] = attachment.ifname
    if attachment.mac:
        tree["mac"] = attachment.mac
    return tree


def _network_row(lab: Lab, name: str, tree: dict[str, Any]) -> Network:
    _check_keys(f"networks.{name}", tree, _NETWORK_KEYS)
    row = Network(lab=lab, name=name, driver=tree["driver"])
    for key in _NETWORK_TEXT_OPTIONS:
        setattr(row, key, "" if tree.get(key) is None else str(tree[key]))
    for key in _NETWORK_NULL_OPTIONS:
        setattr(row, key, tree.get(key))
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
        environment=dict(tree.get("environment") or {}),
        limits=dict(tree.get("limits") or {}),
        namespaces=dict(tree.get("namespaces") or {}),
        privileged=bool(tree.get("privileged")),
        routes=list(tree.get("routes") or []),
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
        ifname=tree.get("ifname") or "",
        mac=tree.get("mac") or "",
    )


def _check_keys(path: str, tree: dict[str, Any], known: frozenset[str]) -> None:
    # A key labplan's export gained that no column holds would be lost silently.
    if unknown := set(tree) - known:
        raise ValueError(f"{path}: no column holds {sorted(unknown)}")
