"""Validation rules about VLANs: an attachment's `vlan` and `vlans` (the port of a
vlan_filtering bridge), and the ids of the vlan networks on one parent. Used by
`labplan.rules`, on the tree `labplan.structure` converted (INVALID where a value already
failed, which is then skipped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labplan.model import Network
from labplan.structure import INVALID, Checker

DEFAULT_VLAN = 1  # a port's untagged VLAN unless its attachment gives one, as in Linux


def check_vlans(
    checker: Checker, networks: Mapping[str, Network], nodes: Mapping[str, Any]
) -> None:
    """Each vlan network's id once per parent; each attachment's VLANs on a
    vlan_filtering bridge only, its tagged ones listed once and apart from its untagged
    one."""
    _check_ids(checker, networks)
    for name, raw in nodes.items():
        attachments = raw.get("networks", {}) if isinstance(raw, Mapping) else INVALID
        if not isinstance(attachments, Mapping):
            continue
        for network_name, spec in attachments.items():
            network = networks.get(network_name)
            if network is not None and isinstance(spec, Mapping):
                _check_port(checker, f"nodes.{name}.networks.{network_name}", spec, network)


def _check_ids(checker: Checker, networks: Mapping[str, Network]) -> None:
    # The kernel gives a link one 802.1Q sub-interface per id.
    seen: dict[tuple[str, int], str] = {}
    for name in sorted(networks):
        network = networks[name]
        if network.driver != "vlan" or network.parent is None or network.vlan_id is None:
            continue
        other = seen.setdefault((network.parent, network.vlan_id), name)
        if other != name:
            checker.error(
                f"networks.{name}.id",
                f"VLAN {network.vlan_id} on {network.parent} is already network {other}; "
                "give this one another id or attach its nodes to that one",
            )


def _check_port(checker: Checker, path: str, spec: Mapping[str, Any], network: Network) -> None:
    if network.driver != "bridge":
        return  # "not an option of the ... driver", said by the option tables
    given = [key for key in ("vlan", "vlans") if key in spec]
    if given and not network.vlan_filtering:
        for key in given:
            checker.error(
                f"{path}.{key}",
                f"{network.name} is not a vlan_filtering bridge; add vlan_filtering: true to "
                f"networks.{network.name}",
            )
        return
    vlan, tagged = spec.get("vlan", DEFAULT_VLAN), spec.get("vlans", ())
    if vlan is INVALID or tagged is INVALID:
        return
    first: dict[int, int] = {}
    for index, vid in enumerate(tagged):
        if vid is INVALID:
            continue
        if vid == vlan:
            untagged = f"vlan: {vlan}" if "vlan" in spec else "the bridge's default"
            checker.error(
                f"{path}.vlans.{index}",
                f"{vid} is this port's untagged VLAN ({untagged}); vlans lists the VLANs it "
                "carries tagged",
            )
        elif vid in first:
            checker.error(
                f"{path}.vlans.{index}", f"{vid} is already listed ({path}.vlans.{first[vid]})"
            )
        first.setdefault(vid, index)
