"""The ORM graph <-> labfile seam for labfile 2: any lab of point-to-point links (with
addresses and impairments), IPv6 networks and addresses, VLAN filtering bridges with
access and trunk ports and vlan networks comes back from its rows the same."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labmgr.labs import spec
from labmgr.labs.services import lab_create
from labplan.labfile import dump, dumps, load, validate

NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
VLAN_IDS = st.integers(1, 4094)
PERCENT = st.sampled_from(["0.5%", "1%", "25%"])


@st.composite
def impairments(draw: st.DrawFn) -> dict[str, Any]:
    """Impairments of labfile 2, the newer keys included (jitter and reorder with the
    delay they need)."""
    values: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "rate": st.sampled_from(["10mbit", "1gbit"]),
                "loss": PERCENT,
                "duplicate": PERCENT,
                "corrupt": PERCENT,
            },
        )
    )
    if draw(st.booleans()):
        values["delay"] = draw(st.sampled_from(["10ms", "250us"]))
        values.update(
            draw(st.fixed_dictionaries({}, optional={"jitter": st.just("2ms"), "reorder": PERCENT}))
        )
    return values


@st.composite
def networks(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    """Bridges (some dual-stack, some filtering VLANs) and at most one vlan network."""
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    result: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(names):
        network: dict[str, Any] = {"driver": "bridge", "subnet": f"10.{index}.0.0/24"}
        if draw(st.booleans()):
            network["subnet6"] = f"fd00:{index + 1}::/64"
        if draw(st.booleans()):
            network["vlan_filtering"] = True
        if shaped := draw(impairments()):
            network["impairments"] = shaped
        result[name] = network
    if draw(st.booleans()):
        result["tagged"] = {
            "driver": "vlan",
            "parent": draw(st.sampled_from(names)),
            "id": draw(VLAN_IDS),
            "subnet": "10.200.0.0/24",
        }
        if draw(st.booleans()):
            result["tagged"]["subnet6"] = "fd00:200::/64"
    return result


@st.composite
def attachment(draw: st.DrawFn, network: dict[str, Any], node_index: int) -> dict[str, Any]:
    """A node's port: maybe a static IPv6 address, on a filtering bridge maybe an access
    VLAN and a trunk (which lists neither a VLAN twice nor its untagged one)."""
    port: dict[str, Any] = {}
    if "subnet6" in network and draw(st.booleans()):
        port["ipv6"] = network["subnet6"].replace("::/64", f"::{node_index + 100:x}")
    if network.get("vlan_filtering"):
        untagged = draw(st.one_of(st.none(), VLAN_IDS))
        if untagged is not None:
            port["vlan"] = untagged
        trunk = draw(st.lists(VLAN_IDS.filter(lambda v: v != (untagged or 1)), unique=True))
        if trunk:
            port["vlans"] = trunk
    if own := draw(impairments()):
        port["impairments"] = own
    return port


@st.composite
def links(draw: st.DrawFn, nodes: list[str]) -> list[dict[str, Any]]:
    """Point-to-point links between distinct nodes, each on its own interfaces and
    subnets, with addresses, an MTU and impairments both ways or per sending end."""
    found = []
    pairs = st.lists(st.sampled_from(nodes), min_size=2, max_size=2, unique=True)
    for index in range(draw(st.integers(0, 4)) if len(nodes) > 1 else 0):
        a, b = draw(pairs)
        endpoints = [f"{a}:p{index}", f"{b}:p{index}"]
        link: dict[str, Any] = {"endpoints": endpoints}
        if draw(st.booleans()):
            link["ipv4"] = [f"10.{100 + index}.0.1/30", f"10.{100 + index}.0.2/30"]
        if draw(st.booleans()):
            link["ipv6"] = [f"fd00:{1000 + index}::1/64", f"fd00:{1000 + index}::2/64"]
        if draw(st.booleans()):
            link["mtu"] = draw(st.integers(68, 9000))
        if draw(st.booleans()):
            if both := draw(impairments()):
                link["impairments"] = both
        else:
            each = {e: i for e in endpoints if (i := draw(impairments()))}
            if each:
                link["impairments"] = each
        found.append(link)
    return found


@st.composite
def labfiles(draw: st.DrawFn) -> dict[str, Any]:
    nets = draw(networks())
    bridges = [n for n, v in nets.items() if v["driver"] == "bridge"]
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    nodes: dict[str, Any] = {}
    for index, name in enumerate(names):
        chosen = draw(st.lists(st.sampled_from(bridges), unique=True))
        nodes[name] = {"networks": {n: draw(attachment(nets[n], index)) for n in chosen}}
    if "tagged" in nets:
        # The kernel gives a parent one sub-interface per id: one node per vlan network.
        nodes[draw(st.sampled_from(names))]["networks"]["tagged"] = {}
    tree: dict[str, Any] = {"labfile": 2, "name": draw(NAMES), "networks": nets, "nodes": nodes}
    if found := draw(links(names)):
        tree["links"] = found
    return tree


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=labfiles())
def test_any_labfile_2_lab_round_trips_through_rows(tree: dict[str, Any]) -> None:
    # Every generated lab is valid: a refusal here is a generator or a labplan bug.
    # (One that uses nothing of version 2 comes back as labfile 1, as an export says.)
    expected = dump(validate(tree))
    with transaction.atomic():
        owner = User.objects.create(username="prop2", is_staff=True)
        lab = lab_create(owner=owner, labfile_tree=tree)
        assert dump(spec.lab_to_labfile(lab)) == expected
        assert dump(load(dumps(spec.lab_to_labfile(lab), fmt="yaml"))) == expected
        transaction.set_rollback(True)
