"""The connectivity check through the API, with the dispatch seam patched: the exec jobs
it sends, the matrix it answers, what is expected of each driver, and who may run it."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from labmgr.deployments import dispatch
from labmgr.deployments.connectivity import expected_reachable
from labmgr.deployments.models import Deployment
from labmgr.deployments.services import deployment_result_record
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_create
from labplan import labfile
from labplan.messages import ExecAnswer
from tests.unit.labmgr.conftest import Dispatched

Api = Callable[[User | None], APIClient]

TWO_BRIDGES: dict[str, Any] = {
    "labfile": 1,
    "name": "two-bridges",
    "networks": {
        "red": {"driver": "bridge", "subnet": "10.1.0.0/24"},
        "blue": {"driver": "bridge", "subnet": "10.2.0.0/24"},
    },
    "nodes": {
        "red1": {"networks": {"red": {}}},
        "red2": {"networks": {"red": {}}},
        "blue1": {"networks": {"blue": {}}},
    },
}


@pytest.fixture
def run(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    def call(client: APIClient, method: str, url: str, data: Any = None) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return getattr(client, method)(url, data, format="json")

    return call


class FakeNetwork:
    """Answers the exec jobs of the check like nodes whose pings reach `reachable(src,
    address)`; records each job's (node, argv)."""

    def __init__(self, reachable: Callable[[str, str], bool]) -> None:
        self.reachable = reachable
        self.jobs: list[tuple[str, list[str]]] = []

    def exec_(self, *, host: str, node: str, argv: list[str], **_: Any) -> ExecAnswer:
        self.jobs.append((node, argv))
        addresses = argv[4:]
        lines = [f"{a} {0 if self.reachable(node, a) else 1}" for a in addresses]
        return {"exit": 0, "stdout": "\n".join(lines) + "\n", "stderr": ""}


def same_subnet(lab: dict[str, Any]) -> Callable[[str, str], bool]:
    """Reachable when the source has an address in the target's subnet: plain bridges."""
    subnets = {name: net["subnet"] for name, net in lab["networks"].items()}

    def reachable(src: str, address: str) -> bool:
        return any(
            ipaddress.ip_address(address) in ipaddress.ip_network(subnets[network])
            for network in lab["nodes"][src]["networks"]
        )

    return reachable


def running(lab: Lab, user: User, run: Any, api: Api) -> Deployment:
    body = run(api(user), "post", f"/api/labs/{lab.pk}/deploy").json()
    deployment_result_record(deployment_id=body["id"], action="apply", ok=True, error="", nodes=[])
    return Deployment.objects.get(pk=body["id"])


def check(api: Api, user: User | None, run: Any, deployment: Deployment) -> Any:
    return run(api(user), "post", f"/api/deployments/{deployment.pk}/connectivity")


def fake(monkeypatch: pytest.MonkeyPatch, reachable: Callable[[str, str], bool]) -> FakeNetwork:
    network = FakeNetwork(reachable)
    monkeypatch.setattr(dispatch, "exec_", network.exec_)
    return network


def test_it_reports_same_bridge_pairs_reachable_and_cross_bridge_pairs_unreachable_as_expected(
    api: Api,
    alice: User,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployment = running(lab_create(owner=alice, labfile_tree=TWO_BRIDGES), alice, run, api)
    fake(monkeypatch, same_subnet(TWO_BRIDGES))
    response = check(api, alice, run, deployment)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["nodes"] == ["blue1", "red1", "red2"]
    rows = {
        (p["src"], p["dst"], p["address"], p["network"], p["reachable"], p["expected"])
        for p in body["probes"]
    }
    assert rows == {
        ("blue1", "red1", "10.1.0.2", "red", False, False),
        ("blue1", "red2", "10.1.0.3", "red", False, False),
        ("red1", "blue1", "10.2.0.2", "blue", False, False),
        ("red1", "red2", "10.1.0.3", "red", True, True),
        ("red2", "blue1", "10.2.0.2", "blue", False, False),
        ("red2", "red1", "10.1.0.2", "red", True, True),
    }


def test_it_pings_every_address_of_the_others_in_one_exec_per_node(
    api: Api,
    alice: User,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployment = running(lab_create(owner=alice, labfile_tree=TWO_BRIDGES), alice, run, api)
    network = fake(monkeypatch, same_subnet(TWO_BRIDGES))
    check(api, alice, run, deployment)
    assert [(node, argv[:2], argv[4:]) for node, argv in network.jobs] == [
        ("blue1", ["sh", "-c"], ["10.1.0.2", "10.1.0.3"]),
        ("red1", ["sh", "-c"], ["10.1.0.3", "10.2.0.2"]),
        ("red2", ["sh", "-c"], ["10.1.0.2", "10.2.0.2"]),
    ]
    assert 'ping -c1 -W1 "$addr"' in network.jobs[0][1][2]


def test_a_router_that_forwards_between_bridges_shows_as_reachable_against_expectation(
    api: Api,
    alice: User,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployment = running(lab_create(owner=alice, labfile_tree=TWO_BRIDGES), alice, run, api)
    fake(monkeypatch, lambda src, address: True)
    probes = check(api, alice, run, deployment).json()["probes"]
    surprises = [(p["src"], p["dst"]) for p in probes if p["reachable"] != p["expected"]]
    assert surprises == [("blue1", "red1"), ("blue1", "red2"), ("red1", "blue1"), ("red2", "blue1")]


def test_a_node_without_ping_makes_the_check_fail_with_its_name(
    api: Api,
    alice: User,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployment = running(lab_create(owner=alice, labfile_tree=TWO_BRIDGES), alice, run, api)

    def no_ping(**kwargs: Any) -> ExecAnswer:
        lines = [f"{a} 127" for a in kwargs["argv"][4:]]
        return {"exit": 0, "stdout": "\n".join(lines), "stderr": "sh: ping: not found"}

    monkeypatch.setattr(dispatch, "exec_", no_ping)
    response = check(api, alice, run, deployment)
    assert response.status_code == 502
    assert response.json()["detail"] == (
        "Node blue1 has no ping command, so its connectivity is unknown."
    )


def test_it_refuses_a_lab_of_more_than_twenty_nodes_before_pinging(
    api: Api, alice: User, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    tree = {
        "labfile": 1,
        "name": "crowd",
        "networks": {"lan": {"driver": "bridge", "subnet": "10.9.0.0/24"}},
        "nodes": {f"n{i:02d}": {"networks": {"lan": {}}} for i in range(21)},
    }
    deployment = running(lab_create(owner=alice, labfile_tree=tree), alice, run, api)
    response = check(api, alice, run, deployment)
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "nodes": [
            "The lab has 21 nodes; the connectivity check pings every pair and is limited "
            "to 20 nodes."
        ]
    }
    assert dispatched.tasks() == ["apply"]


def test_it_runs_only_in_a_running_deployment(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    body = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy").json()
    response = check(api, alice, run, Deployment.objects.get(pk=body["id"]))
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "Connectivity is checked only in a running deployment; this one is pending."
    )
    assert dispatched.tasks() == ["apply"]


@pytest.mark.parametrize(("persona", "code"), [("bob", 403), ("charlie", 404), ("anonymous", 401)])
def test_only_the_owner_and_admins_check_connectivity(
    request: pytest.FixtureRequest,
    api: Api,
    alice: User,
    shared_lab: Lab,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
    persona: str,
    code: int,
) -> None:
    deployment = running(shared_lab, alice, run, api)
    user = None if persona == "anonymous" else request.getfixturevalue(persona)
    assert check(api, user, run, deployment).status_code == code
    assert dispatched.tasks() == ["apply"]


def test_an_admin_checks_another_users_lab(
    api: Api,
    alice: User,
    root: User,
    alice_lab: Lab,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
) -> None:
    deployment = running(alice_lab, alice, run, api)
    response = check(api, root, run, deployment)
    assert response.status_code == 200
    assert {(p["src"], p["dst"]) for p in response.json()["probes"]} == {
        ("client", "web"),
        ("web", "client"),
    }


DRIVERS: dict[str, Any] = {
    "labfile": 1,
    "name": "drivers",
    "networks": {
        "br": {"driver": "bridge", "subnet": "10.1.0.0/24"},
        "ov": {"driver": "overlay", "subnet": "10.2.0.0/24"},
        "parent1": {"driver": "bridge", "subnet": "10.3.0.0/24"},
        "parent2": {"driver": "bridge", "subnet": "10.4.0.0/24"},
        "parent3": {"driver": "bridge", "subnet": "10.5.0.0/24"},
        "mv-bridge": {"driver": "macvlan", "subnet": "10.6.0.0/24", "parent": "parent1"},
        "mv-private": {
            "driver": "macvlan",
            "subnet": "10.7.0.0/24",
            "parent": "parent2",
            "mode": "private",
        },
        "ipv": {"driver": "ipvlan", "subnet": "10.8.0.0/24", "parent": "parent3", "mode": "l3"},
        "hostnet": {"driver": "host"},
        "nonet": {"driver": "none"},
    },
    "nodes": {"a": {"networks": {}}},
}


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        ("br", True),
        ("ov", True),
        ("mv-bridge", True),
        ("mv-private", False),
        ("ipv", True),
        ("hostnet", False),
        ("nonet", False),
    ],
)
def test_members_are_expected_to_reach_each_other_only_where_the_driver_lets_them(
    network: str, expected: bool
) -> None:
    tree = {**DRIVERS, "nodes": {"a": {"networks": {network: {}}}}}
    lab = labfile.validate(tree)
    [node] = lab.nodes
    net = next(n for n in lab.networks if n.name == network)
    elsewhere = next(n for n in lab.networks if n.name == ("ov" if network == "br" else "br"))
    assert expected_reachable(node, net) is expected
    # A member of another network is never expected to reach in, whatever its driver.
    assert expected_reachable(node, elsewhere) is False


DUAL_AND_LINKED: dict[str, Any] = {
    "labfile": 2,
    "name": "dual-linked",
    "networks": {"lan": {"subnet": "10.1.0.0/24", "subnet6": "fd00:1::/64"}},
    "nodes": {"a": {"networks": {"lan": {}}}, "b": {"networks": {"lan": {}}}, "c": {}},
    "links": [
        {
            "endpoints": ["b:eth1", "c:eth1"],
            "ipv4": ["10.9.0.1/30", "10.9.0.2/30"],
            "ipv6": ["fd00:9::1/64", "fd00:9::2/64"],
        }
    ],
}


def test_it_checks_ipv6_addresses_and_links_too(
    api: Api,
    alice: User,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployment = running(lab_create(owner=alice, labfile_tree=DUAL_AND_LINKED), alice, run, api)
    # Each node reaches what shares a subnet with one of its own addresses.
    own = {
        "a": ["10.1.0.0/24", "fd00:1::/64"],
        "b": ["10.1.0.0/24", "fd00:1::/64", "10.9.0.0/30", "fd00:9::/64"],
        "c": ["10.9.0.0/30", "fd00:9::/64"],
    }
    fake(
        monkeypatch,
        lambda src, address: any(
            ipaddress.ip_address(address) in ipaddress.ip_network(n) for n in own[src]
        ),
    )

    body = check(api, alice, run, deployment).json()

    rows = {
        (p["src"], p["dst"], p["address"], p["network"], p["reachable"], p["expected"])
        for p in body["probes"]
    }
    link = "b:eth1-c:eth1"
    assert rows == {
        ("a", "b", "10.1.0.3", "lan", True, True),
        ("a", "b", "fd00:1::3", "lan", True, True),
        ("a", "b", "10.9.0.1", link, False, False),
        ("a", "b", "fd00:9::1", link, False, False),
        ("a", "c", "10.9.0.2", link, False, False),
        ("a", "c", "fd00:9::2", link, False, False),
        ("b", "a", "10.1.0.2", "lan", True, True),
        ("b", "a", "fd00:1::2", "lan", True, True),
        ("b", "c", "10.9.0.2", link, True, True),
        ("b", "c", "fd00:9::2", link, True, True),
        ("c", "a", "10.1.0.2", "lan", False, False),
        ("c", "a", "fd00:1::2", "lan", False, False),
        ("c", "b", "10.1.0.3", "lan", False, False),
        ("c", "b", "fd00:1::3", "lan", False, False),
        ("c", "b", "10.9.0.1", link, True, True),
        ("c", "b", "fd00:9::1", link, True, True),
    }


def test_a_network_links_address_is_probed_as_its_nodes_on_that_bridge(
    api: Api,
    alice: User,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tree = {
        **TWO_BRIDGES,
        "labfile": 2,
        "links": [
            {
                "type": "network",
                "endpoints": ["red1:eth1"],
                "network": "red",
                "ipv4": ["10.1.0.50/24"],
            }
        ],
    }
    deployment = running(lab_create(owner=alice, labfile_tree=tree), alice, run, api)
    fake(monkeypatch, same_subnet(TWO_BRIDGES))

    body = check(api, alice, run, deployment).json()

    to_port = {
        (p["src"], p["network"], p["reachable"], p["expected"])
        for p in body["probes"]
        if p["address"] == "10.1.0.50"
    }
    assert to_port == {("red2", "red", True, True), ("blue1", "red", False, False)}
