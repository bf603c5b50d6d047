"""The ORM graph <-> labfile seam: what goes in as a labfile comes out the same."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labmgr.labs import spec
from labmgr.labs.selectors import lab_export
from labmgr.labs.services import lab_create, lab_import
from labplan import fields
from labplan.errors import LabfileError
from labplan.labfile import dump, dumps, load, validate

NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
SIZES = st.sampled_from(["4M", "64M", "256M", "1G", "1536M", "4194304"])


@st.composite
def networks(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    result: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(names):
        driver = draw(st.sampled_from(["bridge", "bridge", "overlay", "host", "none"]))
        network: dict[str, Any] = {"driver": driver}
        if driver in ("bridge", "overlay"):
            network["subnet"] = f"10.{index}.0.0/24"
            network.update(
                draw(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "gateway": st.sampled_from(["none", f"10.{index}.0.254"]),
                            "mtu": st.integers(68, 9000),
                            "shaping": st.fixed_dictionaries(
                                {},
                                optional={
                                    "rate": st.sampled_from(["10mbit", "1gbit", "1500kbit"]),
                                    "delay": st.sampled_from(["20ms", "1s", "250us"]),
                                    "loss": st.sampled_from(["0.5%", "10%"]),
                                },
                            ),
                        },
                    )
                )
            )
        if driver == "bridge" and draw(st.booleans()):
            network["internal"] = draw(st.booleans())
        if driver == "overlay" and draw(st.booleans()):
            network["vni"] = draw(st.integers(1, 16_777_215))
        result[name] = network
    bridges = [n for n, v in result.items() if v["driver"] == "bridge"]
    if bridges and draw(st.booleans()):
        kind = draw(st.sampled_from(["macvlan", "ipvlan"]))
        modes = ["bridge", "private", "vepa"] if kind == "macvlan" else ["l2", "l3", "l3s"]
        result["child"] = {
            "driver": kind,
            "parent": draw(st.sampled_from(bridges)),
            "mode": draw(st.sampled_from(modes)),
            "subnet": "10.200.0.0/24",
        }
    return result


@st.composite
def labfiles(draw: st.DrawFn) -> dict[str, Any]:
    nets = draw(networks())
    addressed = [n for n, v in nets.items() if v["driver"] not in ("host", "none")]
    alone = [n for n, v in nets.items() if v["driver"] in ("host", "none")]
    nodes: dict[str, Any] = {}
    for name in draw(st.lists(NAMES, max_size=6, unique=True)):
        node: dict[str, Any] = {}
        if alone and draw(st.integers(0, 4)) == 0:
            node["networks"] = {draw(st.sampled_from(alone)): {}}
        else:
            chosen = draw(st.lists(st.sampled_from(addressed), unique=True)) if addressed else []
            node["networks"] = {n: {} for n in chosen}
        limits = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "memory": SIZES,
                    "pids": st.integers(1, 4096),
                    "cpus": st.sampled_from([0.25, 0.5, 1, 2]),
                    "cpu_weight": st.integers(1, 10_000),
                },
            )
        )
        if limits:
            node["limits"] = limits
        if draw(st.booleans()):
            node["command"] = draw(
                st.lists(
                    st.text(st.characters(min_codepoint=32), min_size=1, max_size=8), max_size=3
                )
            )
        if draw(st.booleans()):
            node["environment"] = draw(
                st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True), NAMES)
            )
        nodes[name] = node
    return {
        "labfile": 1,
        "name": draw(NAMES),
        "description": draw(st.text(max_size=30)),
        "networks": nets,
        "nodes": nodes,
    }


# The campus example has a host network: it is an admin's lab (root's).
def test_the_campus_example_survives_rows_unchanged(root: User, campus_tree: dict) -> None:
    lab = lab_create(owner=root, labfile_tree=campus_tree)
    assert json.loads(lab_export(lab=lab, fmt="json")) == dump(validate(campus_tree))


def test_an_export_imported_again_gives_the_same_export(root: User, campus_tree: dict) -> None:
    first = lab_create(owner=root, labfile_tree=campus_tree)
    exported = lab_export(lab=first, fmt="yaml")
    second = lab_import(owner=root, text=exported.replace("name: campus", "name: copy"))
    assert lab_export(lab=second, fmt="yaml") == exported.replace("name: campus", "name: copy")


def test_rows_hold_resolved_values(root: User, campus_tree: dict) -> None:
    lab = lab_create(owner=root, labfile_tree=campus_tree)
    backbone = lab.networks.get(name="backbone")
    assert (backbone.driver, backbone.subnet, backbone.gateway, backbone.vni) == (
        "overlay",
        "10.40.0.0/24",
        "10.40.0.1",
        4242,
    )
    hostnet = lab.networks.get(name="hostnet")
    assert (hostnet.subnet, hostnet.gateway, hostnet.mtu, hostnet.internal) == ("", "", None, None)
    web = lab.nodes.get(name="web")
    assert [(a.network.name, a.position, a.ifname) for a in web.attachments.all()] == [
        ("lan", 0, "eth0"),
        ("backbone", 1, "eth1"),
    ]


def test_rows_that_no_longer_validate_raise_a_labfile_error(alice_lab: Any) -> None:
    alice_lab.networks.update(subnet="not a subnet")
    with pytest.raises(LabfileError) as raised:
        spec.lab_to_labfile(alice_lab)
    assert "networks.lan.subnet" in raised.value.as_dict()


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=labfiles())
def test_any_valid_labfile_round_trips_through_rows(tree: dict[str, Any]) -> None:
    try:
        expected = dump(validate(tree))
    except LabfileError:
        # The generator is looser than the rules (e.g. a node alone on a host network);
        # what labplan refuses is not this test's subject.
        return
    with transaction.atomic():
        # An admin: the generator uses every field, host powers included.
        owner = User.objects.create(username="prop", is_staff=True)
        lab = lab_create(owner=owner, labfile_tree=tree)
        assert dump(spec.lab_to_labfile(lab)) == expected
        assert dump(load(dumps(spec.lab_to_labfile(lab), fmt="yaml"))) == expected
        transaction.set_rollback(True)


@pytest.mark.parametrize(
    ("held", "spec_of"),
    [
        (spec._NETWORK_KEYS, fields.NETWORK),
        (spec._NODE_KEYS, fields.NODE),
        (spec._ATTACHMENT_KEYS, fields.ATTACHMENT),
    ],
    ids=["network", "node", "attachment"],
)
def test_the_rows_hold_every_key_the_labfile_defines(held: frozenset[str], spec_of: Any) -> None:
    """A key labplan adds to a network, node or attachment must get a column (or be
    named here on purpose), or the seam would refuse it as unknown on every import."""
    assert held == {f.name for f in spec_of.fields}


@pytest.mark.django_db
def test_a_gateway6_and_a_node_in_anothers_netns_survive_rows(alice: User) -> None:
    tree = {
        "labfile": 2,
        "name": "pod6",
        "networks": {
            "lan": {"subnet": "10.10.0.0/24", "subnet6": "fd00:10::/64", "gateway6": "fd00:10::1"}
        },
        "nodes": {"app": {"networks": {"lan": {}}}, "side": {"network_mode": "container:app"}},
    }
    lab = lab_create(owner=alice, labfile_tree=tree)

    again = spec.lab_to_labfile(lab)
    assert dump(again) == dump(validate(tree))
    assert again.network("lan").gateway6 == "fd00:10::1"
    assert next(n for n in again.nodes if n.name == "side").joins == "app"
