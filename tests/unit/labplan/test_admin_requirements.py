"""What only an admin may deploy: every power that reaches the host, each named by its
field, all of them at once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from labplan.errors import FieldError
from labplan.labfile import admin_requirements, load, validate
from labplan.model import Namespaces

EXAMPLES = Path(__file__).parents[3] / "examples"


def paths(tree: dict[str, Any]) -> list[str]:
    return [error.path for error in admin_requirements(validate(tree))]


def test_every_power_that_reaches_the_host_is_named_in_document_order(
    tree: dict[str, Any],
) -> None:
    tree["networks"]["hostnet"] = {"driver": "host"}
    tree["networks"]["wan"] = {"driver": "macvlan", "subnet": "10.30.0.0/24", "parent": "host:eth9"}
    tree["nodes"]["db"].update(rootfs="/srv/rootfs", privileged=True, namespaces={"pid": False})
    tree["nodes"]["shared"] = {"networks": {"hostnet": {}}}

    assert admin_requirements(validate(tree)) == [
        FieldError(
            "networks.hostnet.driver",
            "only an admin may use the host network: its nodes share the host's network "
            "namespace, its interfaces and its local services",
        ),
        FieldError("networks.wan.parent", "only an admin may use a host interface as parent"),
        FieldError(
            "nodes.db.rootfs",
            "only an admin may use a directory of the host (/srv/rootfs) as a node's root "
            'filesystem; use rootfs: "host"',
        ),
        FieldError("nodes.db.namespaces.pid", "only an admin may turn the pid namespace off"),
        FieldError("nodes.db.privileged", "only an admin may run a privileged node"),
    ]


@pytest.mark.parametrize("kind", ["mnt", "uts", "ipc", "pid", "cgroup"])
def test_turning_any_namespace_off_is_an_admins_power(tree: dict[str, Any], kind: str) -> None:
    tree["nodes"]["web"].update(privileged=True, namespaces={kind: False, "user": True})
    assert paths(tree) == [f"nodes.web.namespaces.{kind}", "nodes.web.privileged"]


def test_a_privileged_nodes_missing_user_namespace_is_named_once(tree: dict[str, Any]) -> None:
    tree["nodes"]["web"]["privileged"] = True
    assert paths(tree) == ["nodes.web.privileged"]
    tree["nodes"]["web"]["namespaces"] = {"user": False}
    assert paths(tree) == ["nodes.web.privileged"]


def test_a_user_namespace_off_is_named_even_without_privileged() -> None:
    # The validator refuses it; a lab built another way is still checked.
    lab = validate({"labfile": 1, "name": "x", "nodes": {"web": {}}})
    web = replace(lab.nodes[0], namespaces=Namespaces(user=False))
    assert [e.path for e in admin_requirements(replace(lab, nodes=(web,)))] == [
        "nodes.web.namespaces.user"
    ]


def test_a_lab_bridge_as_parent_and_the_host_tree_as_rootfs_are_anyones(
    tree: dict[str, Any],
) -> None:
    tree["networks"]["l2"] = {"driver": "ipvlan", "subnet": "10.40.0.0/24", "parent": "lan"}
    tree["nodes"]["web"]["rootfs"] = "host"
    tree["nodes"]["web"]["networks"]["l2"] = {}
    assert paths(tree) == []


def test_the_campus_example_needs_an_admin_for_its_host_network_only(campus_yaml: str) -> None:
    assert [e.path for e in admin_requirements(load(campus_yaml))] == ["networks.hostnet.driver"]


# What each shipped example needs an admin for; the others need none.
EXAMPLE_NEEDS = {
    "host-network": ["networks.hostnet.driver"],
    # Routing daemons change the node's routes, which a user-namespaced node may not.
    "ospf-triangle": [f"nodes.{r}.privileged" for r in ("r1", "r2", "r3")],
    "ospf-dualstack": [f"nodes.{r}.privileged" for r in ("r1", "r2", "r3")],
    "bgp-dualstack": [f"nodes.{r}.privileged" for r in ("r1", "r2", "r3")],
    # The trunk node makes its own 802.1Q sub-interfaces.
    "vlans": ["nodes.sw.privileged"],
}


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_shipped_examples_need_an_admin_only_for_the_host_network_and_routers(
    example: Path,
) -> None:
    needs = [e.path for e in admin_requirements(load(example.read_text()))]
    assert needs == EXAMPLE_NEEDS.get(example.stem, [])
