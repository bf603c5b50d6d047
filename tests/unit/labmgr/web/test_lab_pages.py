"""The lab page, the topology and the terminals page."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from labmgr.deployments.lifecycle import deployment_deploy
from labmgr.deployments.services import deployment_result_record
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_import


def test_the_lab_page_shows_the_plan_and_the_actions(client: Client, alice_lab: Lab) -> None:
    client.force_login(alice_lab.owner)
    page = client.get(f"/labs/{alice_lab.pk}/").content.decode()
    assert "This lab has never been deployed." in page
    assert 'data-action="deploy"' in page
    assert "ip link add" in page  # the plan's commands


def test_the_lab_page_shows_what_the_agent_said_about_a_running_node(
    client: Client,
    alice_lab: Lab,
    online_host: Host,
    dispatched: object,
    django_capture_on_commit_callbacks: Any,
) -> None:
    note = "idmapped mount of the host's root filesystem (mount_setattr): EINVAL"
    with django_capture_on_commit_callbacks(execute=True):
        deployment = deployment_deploy(lab=alice_lab, actor=alice_lab.owner)
    nodes = [
        {"name": "web", "pid": 41, "netns": "x", "interfaces": [], "note": note},
        {"name": "client", "pid": 42, "netns": "y", "interfaces": []},  # an older agent
    ]
    deployment_result_record(
        deployment_id=deployment.pk, action="apply", ok=True, error="", nodes=nodes
    )
    client.force_login(alice_lab.owner)

    page = client.get(f"/labs/{alice_lab.pk}/").content.decode()

    web = page[page.index('<li data-node="web">') :]
    web = web[: web.index("</li>")]
    assert '<p class="node-note small muted">idmapped mount of the host&#x27;s root' in web
    client_row = page[page.index('<li data-node="client">') :]
    client_row = client_row[: client_row.index("</li>")]
    assert '<p class="node-note small muted" hidden></p>' in client_row


def test_a_reader_sees_the_lab_without_actions(client: Client, shared_lab: Lab, bob: User) -> None:
    client.force_login(bob)
    page = client.get(f"/labs/{shared_lab.pk}/").content.decode()
    assert "only its owner deploys it" in page
    assert 'data-action="deploy"' not in page


def test_the_topology_lists_nodes_networks_and_links(client: Client, alice_lab: Lab) -> None:
    client.force_login(alice_lab.owner)
    page = client.get(f"/labs/{alice_lab.pk}/topology/").content.decode()
    start = page.index('<script id="graph-data" type="application/json">') + 48
    graph = json.loads(page[start : page.index("</script>", start)])
    assert [n["name"] for n in graph["networks"]] == ["lan"]
    assert {(n["name"], n["state"]) for n in graph["nodes"]} == {
        ("client", "stopped"),
        ("web", "stopped"),
    }
    assert {(link["node"], link["ipv4"]) for link in graph["links"]} == {
        ("web", "10.10.0.10"),
        ("client", "10.10.0.2"),
    }


TRIANGLE = """\
labfile: 2
name: triangle
networks: {lan: {driver: bridge, subnet: 10.10.0.0/24}}
nodes:
  r1: {networks: {lan: {}}}
  r2: {}
  r3: {}
links:
  - endpoints: [r1:eth1, r2:eth1]
    ipv4: [10.0.12.1/30, 10.0.12.2/30]
    ipv6: ["fd00:12::1/64", "fd00:12::2/64"]
    impairments: {delay: 10ms}
  - endpoints: [r2:eth2, r3:eth1]
    mtu: 9000
    impairments: {r3:eth1: {loss: 1%}}
"""


def test_the_topology_draws_links_node_to_node_beside_the_attachments(
    client: Client, alice: User
) -> None:
    lab = lab_import(owner=alice, text=TRIANGLE)
    client.force_login(alice)
    page = client.get(f"/labs/{lab.pk}/topology/").content.decode()
    start = page.index('<script id="graph-data" type="application/json">') + 48
    graph = json.loads(page[start : page.index("</script>", start)])
    # The node-network edges are what they were.
    assert [(link["node"], link["network"], link["ifname"]) for link in graph["links"]] == [
        ("r1", "lan", "eth0")
    ]
    first, second = graph["peer_links"]
    assert first == {
        "id": "plink:0",
        "ends": [
            {
                "node": "r1",
                "ifname": "eth1",
                "ipv4": "10.0.12.1/30",
                "ipv6": "fd00:12::1/64",
                "impairments": {"delay": "10ms"},
            },
            {
                "node": "r2",
                "ifname": "eth1",
                "ipv4": "10.0.12.2/30",
                "ipv6": "fd00:12::2/64",
                "impairments": {"delay": "10ms"},
            },
        ],
        "mtu": 1500,
        "name": "r1:eth1 - r2:eth1",
        "addresses": "10.0.12.1/30 fd00:12::1/64 - 10.0.12.2/30 fd00:12::2/64",
    }
    assert [(e["node"], e["ifname"], e["impairments"]) for e in second["ends"]] == [
        ("r2", "eth2", {}),
        ("r3", "eth1", {"loss": "1%"}),
    ]
    assert (second["mtu"], second["addresses"]) == (9000, "")
    # In words, for whoever does not see the graph.
    assert "r1:eth1 - r2:eth1</button>: 10.0.12.1/30 fd00:12::1/64 - 10.0.12.2/30" in page
    assert "3 nodes, 1 network and 2 point-to-point links" in page


def test_terminals_explain_that_the_lab_must_run(client: Client, alice_lab: Lab) -> None:
    client.force_login(alice_lab.owner)
    page = client.get(f"/labs/{alice_lab.pk}/terminals/").content.decode()
    assert "The lab is not running." in page


def test_a_reader_may_not_open_terminals(client: Client, shared_lab: Lab, bob: User) -> None:
    client.force_login(bob)
    assert client.get(f"/labs/{shared_lab.pk}/terminals/").status_code == 403


def test_deleting_a_lab_returns_to_the_dashboard(client: Client, alice_lab: Lab) -> None:
    client.force_login(alice_lab.owner)
    response = client.post(f"/labs/{alice_lab.pk}/delete")
    assert response["Location"] == "/"
    assert not Lab.objects.filter(pk=alice_lab.pk).exists()


VLANS = """\
labfile: 2
name: vlans
networks:
  lan: {driver: bridge, subnet: 10.10.0.0/24, subnet6: "fd00:10::/64", vlan_filtering: true}
  v100: {driver: vlan, parent: lan, id: 100, subnet: 10.100.0.0/24}
nodes:
  r1: {networks: {lan: {ipv4: 10.10.0.11, ipv6: "fd00:10::11", vlan: 10}}}
  sw: {privileged: true, networks: {lan: {vlans: [10, 20]}}}
  both: {privileged: true, networks: {lan: {vlan: 30, vlans: [10, 20]}}}
  h1: {networks: {v100: {}}}
"""


def test_the_topology_gives_each_port_its_ipv6_address_and_vlans(
    client: Client, root: User
) -> None:
    lab = lab_import(owner=root, text=VLANS)
    client.force_login(root)
    page = client.get(f"/labs/{lab.pk}/topology/").content.decode()
    start = page.index('<script id="graph-data" type="application/json">') + 48
    graph = json.loads(page[start : page.index("</script>", start)])
    ports = {link["node"]: (link["ipv4"], link["ipv6"], link["vlans"]) for link in graph["links"]}
    assert ports == {
        "r1": ("10.10.0.11", "fd00:10::11", "vlan 10"),
        "sw": (ports["sw"][0], ports["sw"][1], "trunk 10,20"),
        "both": (ports["both"][0], ports["both"][1], "vlan 30, trunk 10,20"),
        "h1": (ports["h1"][0], "", ""),
    }
    # The other nodes' IPv6 addresses are the lowest free from the second one on.
    assert {ports["both"][1], ports["sw"][1]} == {"fd00:10::2", "fd00:10::3"}
    lan, v100 = graph["networks"]
    assert (lan["subnet6"], lan["vlan_filtering"]) == ("fd00:10::/64", True)
    assert (v100["driver"], v100["vlan_id"], v100["vlan_filtering"]) == ("vlan", 100, False)


EDGES = """\
labfile: 2
name: edges
networks: {lan: {subnet: 10.10.0.0/24}}
nodes:
  r1: {networks: {lan: {}}}
links:
  - {type: dummy, endpoints: [r1:lo1], ipv4: [10.255.0.1/32]}
  - {type: host, endpoints: [r1:eth1], ipv4: [10.81.0.2/30, 10.81.0.1/30], host_ifname: r1-eth1}
  - {type: vxlan, endpoints: [r1:vx0], remote: 192.0.2.7, vni: 4242}
  - {type: network, endpoints: [r1:eth2], network: lan, ipv4: [10.10.0.9/24]}
"""


def test_the_topology_lists_a_nodes_links_of_one_endpoint_with_what_is_beyond_them(
    client: Client, root: User
) -> None:
    lab = lab_import(owner=root, text=EDGES)
    client.force_login(root)
    page = client.get(f"/labs/{lab.pk}/topology/").content.decode()
    start = page.index('<script id="graph-data" type="application/json">') + 48
    graph = json.loads(page[start : page.index("</script>", start)])

    # No edge to draw, and no network they would point at: each is its node's.
    assert graph["peer_links"] == [] and [e["ifname"] for e in graph["links"]] == ["eth0"]
    (node,) = graph["nodes"]
    assert [(o["ifname"], o["far"], o["addresses"]) for o in node["outside"]] == [
        ("lo1", "a dummy interface", "10.255.0.1/32"),
        ("eth1", "the host, as r1-eth1", "10.81.0.2/30"),
        ("vx0", "VXLAN 4242 to 192.0.2.7:4789", ""),
        ("eth2", "one more port on lan", "10.10.0.9/24"),
    ]
    assert "<li>link r1:eth1 - the host, as r1-eth1: 10.81.0.2/30</li>" in page
    assert "<li>link r1:vx0 - VXLAN 4242 to 192.0.2.7:4789</li>" in page


def test_the_editor_offers_vlans_only_where_labplan_takes_them(client: Client, alice: User) -> None:
    client.force_login(alice)
    page = client.get("/labs/new/").content.decode()
    start = page.index('<script id="attachment-options" type="application/json">') + 56
    taken = json.loads(page[start : page.index("</script>", start)])
    assert taken["bridge"] == ["ipv4", "ipv6", "ifname", "mac", "impairments", "vlan", "vlans"]
    assert taken["vlan"] == ["ipv4", "ipv6", "ifname", "impairments"]
    assert "host" not in taken and "none" not in taken


def test_the_topology_says_each_nodes_addresses_and_vlans_in_words(
    client: Client, root: User
) -> None:
    lab = lab_import(owner=root, text=VLANS)
    client.force_login(root)
    page = client.get(f"/labs/{lab.pk}/topology/").content.decode()
    assert "r1</button> (stopped): lan 10.10.0.11 fd00:10::11 vlan 10</li>" in page
    assert "sw</button> (stopped): lan 10.10.0." in page and "trunk 10,20</li>" in page
    assert ">lan</button>: bridge 10.10.0.0/24 fd00:10::/64, VLAN filtering</li>" in page
    assert ">v100</button>: vlan 100 10.100.0.0/24</li>" in page
