"""The apply the agent is sent always carries a budget (docs/messages.md): the share of
the reservation the deployment was accepted under, or, for a whole-host booking, an admin
or a deployment outside reservations, what labs may use of the host (its capacity less
its reserve: tests/unit/labmgr/reservations/test_host_reserve.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from labmgr.deployments import dispatch, lifecycle
from labmgr.deployments.models import Deployment
from labmgr.deployments.services import deployment_result_record
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_update
from labplan.naming import base36
from tests.unit.labmgr.conftest import Broker, Dispatched, small_labfile
from tests.unit.labmgr.reservations.helpers import GIB, WHOLE, Book, Clock, share


@pytest.fixture
def deploy(django_capture_on_commit_callbacks: Any) -> Any:
    """Deploys the lab as `actor` and runs what was left for after the commit."""

    def call(lab: Lab, actor: User) -> Deployment:
        with django_capture_on_commit_callbacks(execute=True):
            return lifecycle.deployment_deploy(lab=lab, actor=actor)

    return call


def sent_budget(dispatched: Dispatched) -> Any:
    task, _, kwargs = dispatched.sent[-1]
    assert task == "apply"
    return kwargs["budget"]


def test_a_deployment_in_a_share_is_sent_with_the_reservations_budget(
    book: Book, alice: User, alice_lab: Lab, now: Clock, dispatched: Dispatched, deploy: Any
) -> None:
    mine = book(alice, 0, 2, share(cpus=1.5, memory=GIB // 4, pids=64))

    deploy(alice_lab, alice)

    assert sent_budget(dispatched) == {
        "reservation": mine.pk,
        "cgroup": "r" + base36(mine.pk),
        "cpus": 1.5,
        "memory": GIB // 4,
        "pids": 64,
    }


def test_a_redeploy_is_sent_with_the_budget_again(
    book: Book,
    alice: User,
    alice_lab: Lab,
    now: Clock,
    dispatched: Dispatched,
    deploy: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    mine = book(alice, 0, 2, share(memory=GIB // 2))
    deployment = deploy(alice_lab, alice)
    deployment_result_record(
        deployment_id=deployment.pk, action="apply", ok=True, error="", nodes=[]
    )
    tree = small_labfile("demo")
    tree["nodes"]["extra"] = {"networks": {"lan": {}}}
    lab_update(lab=alice_lab, labfile_tree=tree)

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.deployment_redeploy(deployment=deployment, actor=alice)

    _, _, kwargs = dispatched.sent[-1]
    assert kwargs["previous"] is not None
    assert kwargs["budget"]["reservation"] == mine.pk
    assert kwargs["budget"]["memory"] == GIB // 2


def test_a_whole_host_booking_is_sent_the_whole_hosts_budget_in_its_cgroup(
    book: Book, alice: User, alice_lab: Lab, now: Clock, dispatched: Dispatched, deploy: Any
) -> None:
    mine = book(alice, 0, 2, WHOLE)

    deploy(alice_lab, alice)

    # The server's capacity: its agent has not reported the machine, so no reserve is
    # taken from it yet.
    assert sent_budget(dispatched) == {
        "reservation": mine.pk,
        "cgroup": "r" + base36(mine.pk),
        "cpus": 4.0,
        "memory": 8 * GIB,
        "pids": 1000,
    }


def test_an_admin_deploys_inside_the_host_budget_not_a_share_even_inside_one(
    book: Book, root: User, now: Clock, dispatched: Dispatched, deploy: Any
) -> None:
    from labmgr.labs.services import lab_create

    book(root, 0, 2, share())
    lab = lab_create(owner=root, labfile_tree=small_labfile("admins"))

    deploy(lab, root)

    assert sent_budget(dispatched) == {
        "reservation": None,
        "cgroup": None,
        "cpus": 4.0,
        "memory": 8 * GIB,
        "pids": 1000,
    }


def test_without_the_reservation_rule_a_deployment_outside_one_gets_the_host_budget(
    alice: User,
    alice_lab: Lab,
    server: Host,
    now: Clock,
    dispatched: Dispatched,
    deploy: Any,
    settings: Any,
) -> None:
    settings.LABMGR_REQUIRE_RESERVATION = False

    deploy(alice_lab, alice)

    assert sent_budget(dispatched) == {
        "reservation": None,
        "cgroup": None,
        "cpus": 4.0,
        "memory": 8 * GIB,
        "pids": 1000,
    }


def test_the_budget_reaches_the_agents_apply_task(broker: Broker) -> None:
    calls = broker.sent
    budget = {"reservation": 5, "cgroup": "r5", "cpus": None, "memory": 1 << 28, "pids": 64}

    dispatch.apply(host="lab-1", deployment=3, plan={"p": 1}, previous=None, budget=budget)
    dispatch.apply(host="lab-1", deployment=4, plan={"p": 1}, previous=None)

    assert calls[0] == (
        "labmgr.agent.apply",
        {"deployment": 3, "plan": {"p": 1}, "previous": None, "budget": budget},
        "host.lab-1",
    )
    assert "budget" not in calls[1][1]
