"""Lab subnets through the API: inside the admin's pool at save and deploy, and a subnet
the host would route refused when it shadows the host's own routes or addresses (as its
agent reported them) or another lab on that host, without naming another user's lab."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from labmgr.deployments.models import Deployment
from labmgr.deployments.services import deployment_result_record
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_create, lab_update
from tests.unit.labmgr.conftest import Dispatched, small_labfile

Api = Callable[[User | None], APIClient]
ROUTES = [
    {"dst": "0.0.0.0/0", "dev": "eth0", "via": "192.0.2.1"},
    {"dst": "192.0.2.0/24", "dev": "eth0", "via": ""},
    {"dst": "10.10.0.0/16", "dev": "eth1", "via": ""},
]
ADDRESSES = [{"address": "192.0.2.2/24", "dev": "eth0"}, {"address": "10.77.0.5/32", "dev": "eth2"}]


@pytest.fixture
def run(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    def call(client: APIClient, method: str, url: str, data: Any = None) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return getattr(client, method)(url, data, format="json")

    return call


def on(subnet: str, name: str = "demo", **lan: Any) -> dict[str, Any]:
    """The small lab with its bridge on `subnet`, nodes addressed automatically."""
    tree = small_labfile(name)
    tree["networks"]["lan"] = {"driver": "bridge", "subnet": subnet, **lan}
    del tree["nodes"]["web"]["networks"]["lan"]["ipv4"]
    return tree


def deploy(run: Any, api: Api, user: User, lab: Lab) -> Any:
    return run(api(user), "post", f"/api/labs/{lab.pk}/deploy")


def running(run: Any, api: Api, user: User, lab: Lab) -> Deployment:
    response = deploy(run, api, user, lab)
    assert response.status_code == 202, response.json()
    body = response.json()
    deployment_result_record(deployment_id=body["id"], action="apply", ok=True, error="", nodes=[])
    return Deployment.objects.get(pk=body["id"])


@pytest.fixture
def routed_host(online_host: Host) -> Host:
    online_host.facts = {**online_host.facts, "routes": ROUTES, "addresses": ADDRESSES}
    online_host.save()
    return online_host


def test_saving_a_lab_outside_the_pool_is_a_400_naming_the_field(api: Api, alice: User) -> None:
    response = api(alice).post("/api/labs/", {"labfile": on("192.0.2.0/24")}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "networks.lan.subnet": [
            "192.0.2.0/24 is outside the lab subnet pool (10.0.0.0/8, 172.16.0.0/12, "
            "192.168.0.0/16); choose a subnet inside it"
        ]
    }
    assert not Lab.objects.exists()


def test_importing_a_lab_on_loopback_is_refused_whatever_the_pool(
    api: Api, alice: User, settings: Any
) -> None:
    settings.LABMGR_LAB_SUBNET_POOL = "0.0.0.0/0"
    text = yaml.safe_dump(on("127.0.0.0/24"))
    response = api(alice).post("/api/labs/import", text, content_type="application/yaml")

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "networks.lan.subnet": [
            "127.0.0.0/24 overlaps loopback 127.0.0.0/8, which no lab subnet may use"
        ]
    }


def test_the_admin_sets_the_pool(api: Api, alice: User, settings: Any) -> None:
    settings.LABMGR_LAB_SUBNET_POOL = "10.200.0.0/16"
    refused = api(alice).post("/api/labs/", {"labfile": on("10.10.0.0/24")}, format="json")
    taken = api(alice).post("/api/labs/", {"labfile": on("10.200.3.0/24")}, format="json")

    assert refused.status_code == 400
    assert "outside the lab subnet pool (10.200.0.0/16)" in str(refused.json()["errors"])
    assert taken.status_code == 201


def test_a_lab_saved_before_the_pool_narrowed_is_refused_at_deploy(
    api: Api,
    alice: User,
    alice_lab: Lab,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
    settings: Any,
) -> None:
    settings.LABMGR_LAB_SUBNET_POOL = "172.16.0.0/12"
    response = deploy(run, api, alice, alice_lab)

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["networks.lan.subnet"]
    assert not Deployment.objects.exists() and dispatched.sent == []


def test_deploying_over_a_route_of_the_host_is_a_400_naming_the_route(
    api: Api, alice: User, routed_host: Host, dispatched: Dispatched, run: Any
) -> None:
    lab = lab_create(owner=alice, labfile_tree=on("10.10.3.0/24"))
    response = deploy(run, api, alice, lab)

    assert response.status_code == 400
    assert response.json() == {
        "detail": "A subnet of the lab cannot be used on its host.",
        "errors": {
            "networks.lan.subnet": [
                "10.10.3.0/24 overlaps the host's route 10.10.0.0/16 (dev eth1) on host local;"
                " choose another subnet."
            ]
        },
    }
    assert not Deployment.objects.exists() and dispatched.sent == []


def test_deploying_over_an_address_of_the_host_is_refused(
    api: Api, alice: User, routed_host: Host, dispatched: Dispatched, run: Any
) -> None:
    lab = lab_create(owner=alice, labfile_tree=on("10.77.0.0/24"))
    response = deploy(run, api, alice, lab)

    assert response.status_code == 400
    assert response.json()["errors"]["networks.lan.subnet"] == [
        "10.77.0.0/24 overlaps the host's address 10.77.0.5/32 (dev eth2) on host local;"
        " choose another subnet."
    ]


def test_the_default_route_and_an_unrouted_network_are_no_conflict(
    api: Api, alice: User, routed_host: Host, dispatched: Dispatched, run: Any
) -> None:
    quiet = lab_create(owner=alice, labfile_tree=on("10.10.3.0/24", "quiet", gateway="none"))
    lab = lab_create(owner=alice, labfile_tree=on("10.20.0.0/24", "other"))

    assert deploy(run, api, alice, quiet).status_code == 202
    assert deploy(run, api, alice, lab).status_code == 202


def test_another_users_running_lab_on_the_subnet_is_not_named(
    api: Api, alice: User, charlie: User, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    running(run, api, alice, lab_create(owner=alice, labfile_tree=on("10.30.0.0/24", "secret")))
    mine = lab_create(owner=charlie, labfile_tree=on("10.30.0.0/25", "mine"))

    response = deploy(run, api, charlie, mine)

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "networks.lan.subnet": [
            "10.30.0.0/25 overlaps 10.30.0.0/24 of another running lab on host local;"
            " choose another subnet."
        ]
    }
    assert "secret" not in str(response.json())


def test_the_owner_and_an_admin_are_told_which_lab_holds_the_subnet(
    api: Api, alice: User, root: User, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    first = running(run, api, alice, lab_create(owner=alice, labfile_tree=on("10.30.0.0/24", "a")))
    again = lab_create(owner=alice, labfile_tree=on("10.30.0.0/24", "b"))
    admins = lab_create(owner=root, labfile_tree=on("10.30.0.0/24", "c"))

    for user, lab in ((alice, again), (root, admins)):
        response = deploy(run, api, user, lab)
        assert response.status_code == 400
        assert response.json()["errors"]["networks.lan.subnet"] == [
            f"10.30.0.0/24 overlaps 10.30.0.0/24 of lab 'a' (deployment #{first.pk}) on host"
            " local; choose another subnet."
        ]


def test_labs_whose_host_routes_nothing_share_a_subnet(
    api: Api, alice: User, charlie: User, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    running(
        run, api, alice, lab_create(owner=alice, labfile_tree=on("10.30.0.0/24", gateway="none"))
    )
    other = lab_create(owner=charlie, labfile_tree=on("10.30.0.0/24", gateway="none"))

    assert deploy(run, api, charlie, other).status_code == 202


def test_a_redeploy_onto_a_route_of_the_host_is_refused_and_the_lab_keeps_running(
    api: Api, alice: User, alice_lab: Lab, routed_host: Host, dispatched: Dispatched, run: Any
) -> None:
    routed_host.facts = {**routed_host.facts, "routes": ROUTES[:2]}
    routed_host.save()
    deployment = running(run, api, alice, alice_lab)
    routed_host.facts = {**routed_host.facts, "routes": ROUTES}
    routed_host.save()
    lab_update(lab=alice_lab, labfile_tree=on("10.10.5.0/24"))

    response = run(api(alice), "post", f"/api/deployments/{deployment.pk}/redeploy")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["networks.lan.subnet"]
    deployment.refresh_from_db()
    assert deployment.status == "running"
    assert dispatched.tasks() == ["apply"]


def on6(subnet6: str, name: str = "demo6", **lan: Any) -> dict[str, Any]:
    """The small lab, dual-stack, its bridge routing `subnet6` through a gateway6."""
    tree = on("10.20.0.0/24", name, subnet6=subnet6, gateway6=subnet6.split("/")[0] + "1", **lan)
    return {**tree, "labfile": 2}


def test_deploying_a_gateway6_over_an_ipv6_route_of_the_host_is_a_400_naming_subnet6(
    api: Api, alice: User, routed_host: Host, dispatched: Dispatched, run: Any
) -> None:
    routed_host.facts = {
        **routed_host.facts,
        "routes": [*ROUTES, {"dst": "::/0", "dev": "eth0", "via": "fd00::1"}],
        "addresses": [*ADDRESSES, {"address": "fd00::2/64", "dev": "eth0"}],
    }
    routed_host.save()
    lab = lab_create(owner=alice, labfile_tree=on6("fd00::/64"))
    response = deploy(run, api, alice, lab)

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "networks.lan.subnet6": [
            "fd00::/64 overlaps the host's address fd00::2/64 (dev eth0) on host local;"
            " choose another subnet."
        ]
    }
    assert not Deployment.objects.exists() and dispatched.sent == []

    # The IPv6 default route is no conflict, as IPv4's is not.
    other = lab_create(owner=alice, labfile_tree=on6("fd00:20::/64", "other6"))
    assert deploy(run, api, alice, other).status_code == 202


def test_another_labs_routed_subnet6_is_refused_at_deploy(
    api: Api, alice: User, routed_host: Host, dispatched: Dispatched, run: Any
) -> None:
    first = lab_create(owner=alice, labfile_tree=on6("fd00:20::/64", "first6"))
    running(run, api, alice, first)
    tree = on6("fd00:20::/64", "second6")
    tree["networks"]["lan"]["subnet"] = "10.21.0.0/24"
    second = lab_create(owner=alice, labfile_tree=tree)
    response = deploy(run, api, alice, second)

    assert response.status_code == 400
    [message] = response.json()["errors"]["networks.lan.subnet6"]
    assert message.startswith("fd00:20::/64 overlaps fd00:20::/64 of lab 'first6'")
