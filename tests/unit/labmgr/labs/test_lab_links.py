"""Labfile 2 through the rows: links, impairments of networks and attachments, through
the services and /api/labs/, and a labfile 1 lab staying labfile 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from labmgr.labs import spec
from labmgr.labs.models import Lab, Link
from labmgr.labs.selectors import lab_export
from labmgr.labs.services import lab_create, lab_import, lab_update
from labplan import fields
from labplan.errors import LabfileError
from labplan.labfile import dump, load

Api = Callable[[User | None], APIClient]

TRIANGLE = """\
labfile: 2
name: triangle
networks:
  lan:
    driver: bridge
    subnet: 10.10.0.0/24
    impairments: {delay: 10ms, duplicate: 1%}
nodes:
  r1:
    networks:
      lan: {impairments: {loss: 1%, corrupt: 0.1%}}
  r2: {networks: {lan: {}}}
  r3: {}
links:
  - endpoints: [r1:eth1, r2:eth1]
    ipv4: [10.0.12.1/30, 10.0.12.2/30]
    ipv6: ["fd00:12::1/64", "fd00:12::2/64"]
    mtu: 9000
    impairments: {delay: 10ms, jitter: 2ms, loss: 1%, rate: 100mbit}
  - endpoints: [r2:eth2, r3:eth1]
    impairments:
      r2:eth2: {delay: 5ms, reorder: 25%}
  - endpoints: [r3:eth2, r1:eth2]
    ipv4: [10.0.13.2/30, 10.0.13.1/30]
"""


def triangle(**changes: Any) -> dict[str, Any]:
    tree: dict[str, Any] = yaml.safe_load(TRIANGLE)
    tree.update(changes)
    return tree


def test_a_labfile_2_survives_the_rows_unchanged(alice: User) -> None:
    lab = lab_import(owner=alice, text=TRIANGLE)
    exported = json.loads(lab_export(lab=lab, fmt="json"))
    assert exported == dump(load(TRIANGLE))
    assert exported["labfile"] == 2
    assert exported["networks"]["lan"]["impairments"] == {"delay": "10ms", "duplicate": "1%"}
    assert exported["links"][1]["impairments"] == {"r2:eth2": {"delay": "5ms", "reorder": "25%"}}
    # Imported again from its own export, the lab is the same lab.
    again = lab_import(owner=alice, text=lab_export(lab=lab, fmt="yaml").replace("triangle", "t2"))
    assert lab_export(lab=again, fmt="yaml") == lab_export(lab=lab, fmt="yaml").replace(
        "triangle", "t2"
    )


def test_links_are_rows_in_the_labfiles_order(alice: User) -> None:
    lab = lab_import(owner=alice, text=TRIANGLE)
    rows = [
        (
            link.position,
            link.endpoint_a,
            link.ipv4_a,
            link.ipv6_a,
            link.endpoint_b,
            link.ipv4_b,
            link.mtu,
        )
        for link in lab.links.select_related("node_a", "node_b")
    ]
    assert rows == [
        (0, "r1:eth1", "10.0.12.1/30", "fd00:12::1/64", "r2:eth1", "10.0.12.2/30", 9000),
        (1, "r2:eth2", "", "", "r3:eth1", "", 1500),
        (2, "r3:eth2", "10.0.13.2/30", "", "r1:eth2", "10.0.13.1/30", 1500),
    ]
    both, one_way, none = lab.links.all()
    assert (
        both.impairments_a
        == both.impairments_b
        == {
            "rate": "100mbit",
            "delay": "10ms",
            "jitter": "2ms",
            "loss": "1%",
        }
    )
    assert (one_way.impairments_a, one_way.impairments_b) == (
        {"delay": "5ms", "reorder": "25%"},
        None,
    )
    assert (none.impairments_a, none.impairments_b) == (None, None)
    assert lab.version == 2


def test_impairments_of_a_network_and_an_attachment_are_held(alice: User) -> None:
    lab = lab_import(owner=alice, text=TRIANGLE)
    assert lab.networks.get(name="lan").shaping == {"delay": "10ms", "duplicate": "1%"}
    attachments = {a.node.name: a.impairments for a in lab.networks.get().attachments.all()}
    assert attachments == {"r1": {"loss": "1%", "corrupt": "0.1%"}, "r2": None}


def test_a_labfile_1_lab_stays_labfile_1(alice: User, labfile_tree: Callable[..., Any]) -> None:
    tree = labfile_tree("plain")
    tree["networks"]["lan"]["shaping"] = {"rate": "10mbit", "loss": "1%"}
    lab = lab_create(owner=alice, labfile_tree=tree)
    exported = yaml.safe_load(lab_export(lab=lab, fmt="yaml"))
    assert exported["labfile"] == 1
    assert "links" not in exported
    assert exported["networks"]["lan"]["shaping"] == {"rate": "10mbit", "loss": "1%"}
    assert spec.lab_to_tree(lab)["labfile"] == 1


def test_a_lab_that_loses_its_links_goes_back_to_labfile_1(alice: User) -> None:
    lab = lab_import(owner=alice, text=TRIANGLE)
    tree = triangle(links=[])
    tree["networks"]["lan"]["impairments"] = {"delay": "10ms"}
    del tree["nodes"]["r1"]["networks"]["lan"]["impairments"]
    lab_update(lab=lab, labfile_tree=tree)
    lab.refresh_from_db()
    assert (lab.version, Link.objects.filter(lab=lab).count()) == (1, 0)
    exported = yaml.safe_load(lab_export(lab=lab, fmt="yaml"))
    assert exported["labfile"] == 1
    assert exported["networks"]["lan"]["shaping"] == {"delay": "10ms"}


def test_replacing_the_labfile_replaces_the_links(alice: User) -> None:
    lab = lab_import(owner=alice, text=TRIANGLE)
    tree = triangle()
    tree["links"] = [{"endpoints": ["r3:eth9", "r2:eth9"], "mtu": 1400}]
    lab_update(lab=lab, labfile_tree=tree)
    assert [(link.endpoint_a, link.endpoint_b, link.mtu) for link in lab.links.all()] == [
        ("r3:eth9", "r2:eth9", 1400)
    ]


def test_deleting_a_lab_deletes_its_links(alice: User) -> None:
    lab = lab_import(owner=alice, text=TRIANGLE)
    lab.delete()
    assert not Link.objects.exists()


def test_the_link_rows_hold_every_key_a_link_defines() -> None:
    assert {f.name for f in fields.LINK.fields} == spec._LINK_KEYS


def test_the_api_imports_a_labfile_2(api: Api, alice: User) -> None:
    response = api(alice).post("/api/labs/import", TRIANGLE, content_type="application/yaml")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["labfile"]["labfile"] == 2
    assert [link["endpoints"] for link in body["labfile"]["links"]] == [
        ["r1:eth1", "r2:eth1"],
        ["r2:eth2", "r3:eth1"],
        ["r3:eth2", "r1:eth2"],
    ]
    exported = api(alice).get(f"/api/labs/{body['id']}/export/?format=yaml")
    assert exported.status_code == 200
    assert yaml.safe_load(exported.content) == dump(load(TRIANGLE))


def test_the_api_creates_a_lab_from_a_labfile_2_tree(api: Api, alice: User) -> None:
    response = api(alice).post("/api/labs/", {"labfile": triangle()}, format="json")
    assert response.status_code == 201, response.content
    lab = Lab.objects.get(pk=response.json()["id"])
    assert lab.links.count() == 3


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            lambda t: t["links"][0].update(endpoints=["r1:eth1", "nobody:eth1"]),
            "links.0.endpoints.1",
            "nobody",
        ),
        (
            lambda t: t["links"][0].update(ipv4=["10.0.12.1/30", "10.9.9.9/30"]),
            "links.0.ipv4.1",
            "",
        ),
        (
            lambda t: t["links"][1].update(impairments={"r2:eth2": {"delay": "soon"}}),
            "links.1.impairments.r2:eth2.delay",
            "soon",
        ),
        (
            lambda t: t["nodes"]["r1"]["networks"]["lan"]["impairments"].update(loss="120%"),
            "nodes.r1.networks.lan.impairments.loss",
            "",
        ),
        (
            lambda t: t["networks"]["lan"]["impairments"].update(corrupt="lots"),
            "networks.lan.impairments.corrupt",
            "lots",
        ),
        (lambda t: t.update(labfile=1), "links", "labfile 2"),
    ],
    ids=["endpoint", "address", "link-impairment", "attachment", "network", "version"],
)
def test_a_bad_labfile_2_is_a_400_naming_the_field(
    api: Api, alice: User, change: Callable[[dict[str, Any]], None], path: str, words: str
) -> None:
    tree = triangle()
    change(tree)
    response = api(alice).post("/api/labs/", {"labfile": tree}, format="json")
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert path in errors, errors
    assert words in " ".join(errors[path])
    assert not Lab.objects.exists()


DUAL_STACK_VLANS = """\
labfile: 2
name: dual
networks:
  lan: {driver: bridge, subnet: 10.10.0.0/24, subnet6: "fd00:10::/64", vlan_filtering: true}
nodes:
  r1: {networks: {lan: {ipv4: 10.10.0.11, ipv6: "fd00:10::11", vlan: 10}}}
  sw: {networks: {lan: {vlans: [10, 20]}}}
"""


def test_ipv6_and_vlans_of_labfile_2_survive_the_rows(alice: User) -> None:
    lab = lab_import(owner=alice, text=DUAL_STACK_VLANS)
    assert json.loads(lab_export(lab=lab, fmt="json")) == dump(load(DUAL_STACK_VLANS))
    lan = lab.networks.get()
    assert (lan.subnet6, lan.vlan_filtering) == ("fd00:10::/64", True)
    ports = {a.node.name: (a.ipv6, a.vlan, a.vlans) for a in lan.attachments.all()}
    assert ports == {"r1": ("fd00:10::11", 10, None), "sw": ("fd00:10::2", None, [10, 20])}


EDGES = """\
labfile: 2
name: edges
networks:
  lan: {driver: bridge, subnet: 10.10.0.0/24}
nodes:
  r1: {networks: {lan: {}}}
  r2: {networks: {lan: {}}}
links:
  - endpoints: [r1:eth1, r2:eth1]
    ipv4: [10.0.12.1/30, 10.0.12.2/30]
  - {type: dummy, endpoints: [r1:lo1], ipv4: [10.255.0.1/32]}
  - type: host
    endpoints: [r1:eth9]
    ipv4: [10.0.99.2/30, 10.0.99.1/30]
    host_ifname: r1-eth9
  - {type: vxlan, endpoints: [r2:vx0], remote: 198.51.100.7, vni: 100, port: 4790}
  - {type: network, endpoints: [r2:eth2], network: lan, ipv4: [10.10.0.50/24]}
"""


def test_links_of_one_endpoint_survive_the_rows_in_their_places(root: User) -> None:
    lab = lab_import(owner=root, text=EDGES)

    rows = list(Link.objects.filter(lab=lab).order_by("position"))
    assert [(row.type, row.node_b_id is None) for row in rows] == [
        ("veth", False),
        ("dummy", True),
        ("host", True),
        ("vxlan", True),
        ("network", True),
    ]
    assert rows[4].options == {"network": "lan"}
    exported = json.loads(lab_export(lab=lab, fmt="json"))
    assert exported == dump(load(EDGES))
    assert exported["links"][2]["ipv4"] == ["10.0.99.2/30", "10.0.99.1/30"]


def test_a_user_may_keep_a_network_link_but_not_a_host_link(alice: User) -> None:
    mine = yaml.safe_load(EDGES) | {"name": "mine"}
    mine["links"] = [link for link in mine["links"] if link.get("type") not in ("host", "vxlan")]
    kept = lab_import(owner=alice, text=yaml.safe_dump(mine))
    assert [row.type for row in Link.objects.filter(lab=kept).order_by("position")] == [
        "veth",
        "dummy",
        "network",
    ]

    with pytest.raises(LabfileError) as refused:
        lab_import(owner=alice, text=EDGES)
    assert [e.path for e in refused.value.errors] == ["links.2.type", "links.3.type"]
