"""A lab placed on several hosts, through the API with the dispatch seam patched: where
its nodes go, what each host's agent is sent, how their results add up, and what is
refused (with the field to fix)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from labmgr.captures import dispatch as capture_dispatch
from labmgr.deployments.choices import DeploymentStatus
from labmgr.deployments.models import Deployment
from labmgr.deployments.reconcile import (
    deployments_fail_stuck,
    deployments_mark_unknown,
    deployments_reconcile_host,
)
from labmgr.deployments.services import (
    deployment_drift_record,
    deployment_result_record,
    deployment_step_record,
)
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_create, lab_update
from labmgr.monitoring.models import MetricSample
from labmgr.monitoring.services import metrics_record
from labmgr.reservations.services import Share, reservation_book
from labplan import codec
from tests.unit.labmgr.conftest import FULL_FACTS, Dispatched

Api = Callable[[User | None], APIClient]
S = DeploymentStatus

# Nodes a and c share node-a (c names no host: it goes to the first named host), b is
# on node-b; the overlay joins them across the two hosts.
SPREAD_LABFILE: dict[str, Any] = {
    "labfile": 1,
    "name": "spread",
    "networks": {"wan": {"driver": "overlay", "subnet": "10.20.0.0/24"}},
    "nodes": {
        "a": {"host": "node-a", "networks": {"wan": {}}, "limits": {"memory": "64M"}},
        "b": {"host": "node-b", "networks": {"wan": {}}, "limits": {"memory": "64M"}},
        "c": {"networks": {"wan": {}}, "limits": {"memory": "64M"}},
    },
}


def _host(slug: str, underlay: str | None) -> Host:
    facts = {**FULL_FACTS, **({"underlay": underlay} if underlay else {})}
    return Host.objects.create(
        name=slug,
        slug=slug,
        status="online",
        facts=facts,
        last_seen=timezone.now(),
        cpus=4,
        memory=8 * 2**30,
        pids=10_000,
    )


@pytest.fixture
def two_hosts(db: None) -> tuple[Host, Host]:
    return _host("node-a", "192.0.2.1"), _host("node-b", "192.0.2.2")


@pytest.fixture
def spread_lab(alice: User) -> Lab:
    return lab_create(owner=alice, labfile_tree=SPREAD_LABFILE)


@pytest.fixture
def run(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Runs a request and the after-commit work it scheduled (events, dispatch)."""

    def call(client: APIClient, method: str, url: str, data: Any = None) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return getattr(client, method)(url, data, format="json")

    return call


@pytest.fixture
def report(django_capture_on_commit_callbacks: Any) -> Callable[..., bool]:
    """An agent's result, as the control task stores it, with its after-commit work."""

    def call(deployment: int, host: str, action: str = "apply", ok: bool = True, **kw: Any) -> bool:
        with django_capture_on_commit_callbacks(execute=True):
            return deployment_result_record(
                deployment_id=deployment,
                action=action,
                ok=ok,
                error=kw.get("error", ""),
                nodes=kw.get("nodes", []),
                host=host,
            )

    return call


def _deploy(api: Api, user: User, lab: Lab, run: Any) -> dict[str, Any]:
    response = run(api(user), "post", f"/api/labs/{lab.pk}/deploy")
    assert response.status_code == 202, response.json()
    body: dict[str, Any] = response.json()
    return body


def _status(deployment: int) -> str:
    return Deployment.objects.get(pk=deployment).status


def _running(api: Api, user: User, lab: Lab, run: Any, report: Any) -> int:
    pk = int(_deploy(api, user, lab, run)["id"])
    report(pk, "node-a", nodes=[{"name": "a", "pid": 10}, {"name": "c", "pid": 11}])
    report(pk, "node-b", nodes=[{"name": "b", "pid": 12}])
    assert _status(pk) == S.RUNNING
    return pk


# --- placement and dispatch ---------------------------------------------------------------


def test_each_host_is_sent_the_same_plan_and_applies_its_own_part(
    api: Api, alice: User, spread_lab: Lab, two_hosts: Any, dispatched: Dispatched, run: Any
) -> None:
    body = _deploy(api, alice, spread_lab, run)

    assert (body["host"], body["hosts"]) == ("node-a", ["node-a", "node-b"])
    assert [(task, host) for task, host, _ in dispatched.sent] == [
        ("apply", "node-a"),
        ("apply", "node-b"),
    ]
    plans = [kwargs["plan"] for _, _, kwargs in dispatched.sent]
    assert plans[0] == plans[1]
    plan = codec.plan_from_dict(plans[0])
    spawned = {
        host: sorted(op.node for op in plan.for_host(host).ops if type(op).__name__ == "SpawnNode")
        for host in ("node-a", "node-b")
    }
    assert spawned == {"node-a": ["a", "c"], "node-b": ["b"]}


def test_the_vxlan_of_each_host_points_at_the_other_hosts_underlay_with_one_vni(
    api: Api, alice: User, spread_lab: Lab, two_hosts: Any, dispatched: Dispatched, run: Any
) -> None:
    _deploy(api, alice, spread_lab, run)
    plan = codec.plan_from_dict(dispatched.sent[0][2]["plan"])

    def vxlan(host: str) -> Any:
        return next(op for op in plan.for_host(host).ops if type(op).__name__ == "CreateVxlan")

    def fdb(host: str) -> list[str]:
        ops = plan.for_host(host).ops
        return [op.dst for op in ops if type(op).__name__ == "AddFdbEntry"]

    assert (vxlan("node-a").local, fdb("node-a")) == ("192.0.2.1", ["192.0.2.2"])
    assert (vxlan("node-b").local, fdb("node-b")) == ("192.0.2.2", ["192.0.2.1"])
    assert vxlan("node-a").vni == vxlan("node-b").vni


def test_a_lab_that_names_no_host_stays_on_the_first_online_host(
    api: Api, alice: User, alice_lab: Lab, two_hosts: Any, dispatched: Dispatched, run: Any
) -> None:
    body = _deploy(api, alice, alice_lab, run)
    assert (body["host"], body["hosts"]) == ("node-a", ["node-a"])
    assert [(task, host) for task, host, _ in dispatched.sent] == [("apply", "node-a")]


def test_a_lab_that_names_no_host_goes_to_the_host_its_owner_booked(
    api: Api,
    alice: User,
    alice_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    settings: Any,
) -> None:
    settings.LABMGR_REQUIRE_RESERVATION = True
    _book(alice, two_hosts[1], Share(whole_host=True))

    body = _deploy(api, alice, alice_lab, run)

    assert (body["host"], body["hosts"]) == ("node-b", ["node-b"])
    assert [(task, host) for task, host, _ in dispatched.sent] == [("apply", "node-b")]


def test_without_a_booking_a_lab_goes_to_the_host_running_fewer_labs(
    api: Api,
    alice: User,
    alice_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
) -> None:
    on_a = lab_create(
        owner=alice,
        labfile_tree={**SPREAD_LABFILE, "name": "on-a", "nodes": {"x": {"host": "node-a"}}},
    )
    assert _deploy(api, alice, on_a, run)["host"] == "node-a"

    body = _deploy(api, alice, alice_lab, run)

    assert body["host"] == "node-b"  # node-a, first by name, already runs a lab


# --- results from several hosts -----------------------------------------------------------


def test_the_deployment_runs_only_once_every_host_reported_success(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = int(_deploy(api, alice, spread_lab, run)["id"])

    assert report(pk, "node-a", nodes=[{"name": "a", "pid": 10}, {"name": "c", "pid": 11}])
    assert _status(pk) == S.DEPLOYING
    assert report(pk, "node-b", nodes=[{"name": "b", "pid": 12}])
    assert _status(pk) == S.RUNNING

    body = api(alice).get(f"/api/deployments/{pk}").json()
    assert [(n["name"], n["host"], n["pid"]) for n in body["nodes"]] == [
        ("a", "node-a", 10),
        ("b", "node-b", 12),
        ("c", "node-a", 11),
    ]


def test_a_result_delivered_twice_changes_nothing(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = int(_deploy(api, alice, spread_lab, run)["id"])
    report(pk, "node-a")
    assert not report(pk, "node-a")
    assert not report(pk, "node-a", ok=False, error="late")
    assert _status(pk) == S.DEPLOYING


def test_a_failure_on_one_host_fails_the_deployment_and_destroys_on_every_host(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = int(_deploy(api, alice, spread_lab, run)["id"])
    report(pk, "node-a")
    dispatched.sent.clear()

    assert report(pk, "node-b", ok=False, error="vxlan: File exists")

    deployment = Deployment.objects.get(pk=pk)
    assert deployment.status == S.FAILED
    assert deployment.steps.filter(name="status").last().message == (
        "deploying -> failed: host node-b: vxlan: File exists; every host removes its part"
    )
    assert sorted((task, host) for task, host, _ in dispatched.sent) == [
        ("destroy", "node-a"),
        ("destroy", "node-b"),
    ]
    assert all(kwargs["token"] == deployment.token for _, _, kwargs in dispatched.sent)


def test_a_success_arriving_after_another_host_failed_does_not_run_the_lab(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = int(_deploy(api, alice, spread_lab, run)["id"])
    report(pk, "node-b", ok=False, error="boom")
    assert not report(pk, "node-a")
    assert _status(pk) == S.FAILED


def test_destroy_reaches_every_host_and_ends_when_each_one_is_done(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = _running(api, alice, spread_lab, run, report)
    dispatched.sent.clear()

    assert run(api(alice), "post", f"/api/labs/{spread_lab.pk}/destroy").status_code == 202
    assert [(task, host) for task, host, _ in dispatched.sent] == [
        ("destroy", "node-a"),
        ("destroy", "node-b"),
    ]
    report(pk, "node-b", action="destroy")
    assert _status(pk) == S.DESTROYING
    report(pk, "node-a", action="destroy")
    assert _status(pk) == S.DESTROYED


def test_a_failed_destroy_on_one_host_fails_the_deployment(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = _running(api, alice, spread_lab, run, report)
    run(api(alice), "post", f"/api/labs/{spread_lab.pk}/destroy")
    report(pk, "node-a", action="destroy", ok=False, error="EBUSY")
    assert _status(pk) == S.FAILED


def test_cancel_sends_every_host_the_teardown(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = int(_deploy(api, alice, spread_lab, run)["id"])
    report(pk, "node-a")  # DEPLOYING: node-a is done, node-b still at work
    dispatched.sent.clear()
    response = run(api(alice), "post", f"/api/deployments/{pk}/cancel")
    assert response.status_code == 202, response.json()
    assert sorted(host for task, host, _ in dispatched.sent if task == "destroy") == [
        "node-a",
        "node-b",
    ]


def test_redeploy_sends_each_host_the_new_plan_with_the_previous_one(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = _running(api, alice, spread_lab, run, report)
    tree = {**SPREAD_LABFILE, "nodes": {**SPREAD_LABFILE["nodes"], "d": {"host": "node-b"}}}
    lab_update(lab=spread_lab, actor=alice, labfile_tree=tree)
    dispatched.sent.clear()

    response = run(api(alice), "post", f"/api/deployments/{pk}/redeploy")

    assert response.status_code == 202, response.json()
    assert [(task, host) for task, host, _ in dispatched.sent] == [
        ("apply", "node-a"),
        ("apply", "node-b"),
    ]
    assert all(kwargs["previous"] is not None for _, _, kwargs in dispatched.sent)
    report(pk, "node-b")
    assert _status(pk) == S.DEPLOYING
    report(pk, "node-a")
    assert _status(pk) == S.RUNNING


def test_redeploy_is_refused_when_the_lab_moved_to_other_hosts(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = _running(api, alice, spread_lab, run, report)
    tree = {**SPREAD_LABFILE, "nodes": {**SPREAD_LABFILE["nodes"], "b": {"networks": {"wan": {}}}}}
    lab_update(lab=spread_lab, actor=alice, labfile_tree=tree)

    response = run(api(alice), "post", f"/api/deployments/{pk}/redeploy")

    assert response.status_code == 409
    assert response.json()["errors"] == {
        "host": ["The lab now runs on node-a, not node-a, node-b: destroy and deploy it."]
    }


def test_a_lab_on_three_hosts_redeploys_whatever_order_its_nodes_name_them(
    api: Api, alice: User, two_hosts: Any, dispatched: Dispatched, run: Any, report: Any
) -> None:
    _host("node-c", "192.0.2.3")
    nodes = {
        "a": {"host": "node-a", "networks": {"wan": {}}},
        "b": {"host": "node-c", "networks": {"wan": {}}},
        "c": {"host": "node-b", "networks": {"wan": {}}},
    }
    lab = lab_create(owner=alice, labfile_tree={**SPREAD_LABFILE, "nodes": nodes})
    body = _deploy(api, alice, lab, run)
    assert body["hosts"] == ["node-a", "node-b", "node-c"]
    for host in body["hosts"]:
        report(body["id"], host)
    assert _status(body["id"]) == S.RUNNING

    response = run(api(alice), "post", f"/api/deployments/{body['id']}/redeploy")

    assert response.status_code == 202, response.json()


# --- exec, drift, steps, heartbeats --------------------------------------------------------


def test_exec_runs_on_the_nodes_own_host(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = _running(api, alice, spread_lab, run, report)
    for node, host in (("b", "node-b"), ("c", "node-a")):
        body = {"node": node, "argv": ["true"]}
        assert run(api(alice), "post", f"/api/deployments/{pk}/exec", body).status_code == 200
        assert dispatched.sent[-1][:2] == ("exec", host)


def test_exec_is_refused_while_the_nodes_host_is_offline(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = _running(api, alice, spread_lab, run, report)
    Host.objects.filter(slug="node-b").update(status="offline")
    response = run(
        api(alice), "post", f"/api/deployments/{pk}/exec", {"node": "b", "argv": ["true"]}
    )
    assert response.status_code == 409
    assert response.json()["errors"] == {"host": ["Host node-b is offline."]}


def test_a_drift_check_asks_every_host_and_keeps_each_ones_findings(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = _running(api, alice, spread_lab, run, report)
    dispatched.sent.clear()
    assert run(api(alice), "post", f"/api/deployments/{pk}/check").status_code == 202
    assert [(task, host) for task, host, _ in dispatched.sent] == [
        ("check", "node-a"),
        ("check", "node-b"),
    ]
    deployment_drift_record(deployment_id=pk, missing=["netns n1"], extra=[], host="node-b")
    deployment_drift_record(deployment_id=pk, missing=[], extra=["link x"], host="node-a")
    drift = Deployment.objects.get(pk=pk).drift
    assert (drift["missing"], drift["extra"]) == (["netns n1"], ["link x"])
    assert drift["hosts"]["node-b"] == {"missing": ["netns n1"], "extra": []}


def test_steps_of_two_hosts_with_the_same_number_are_both_kept(
    api: Api, alice: User, spread_lab: Lab, two_hosts: Any, dispatched: Dispatched, run: Any
) -> None:
    pk = int(_deploy(api, alice, spread_lab, run)["id"])
    for host in ("node-a", "node-b", "node-b"):  # the last one, delivered twice
        deployment_step_record(
            {
                "deployment": pk,
                "seq": 1001,
                "total": 4,
                "name": "namespaces",
                "target": "2 ops",
                "status": "done",
                "message": "",
                "seconds": 0.1,
            },
            host=host,
        )
    steps = Deployment.objects.get(pk=pk).steps.filter(name="namespaces")
    assert sorted(steps.values_list("host", flat=True)) == ["node-a", "node-b"]


def test_a_host_that_lost_its_part_of_a_running_lab_fails_it(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = _running(api, alice, spread_lab, run, report)
    Deployment.objects.filter(pk=pk).update(updated=timezone.now() - timedelta(minutes=1))
    deployments_reconcile_host(host=two_hosts[1], tokens=[], sent=time.time())
    assert _status(pk) == S.FAILED


def test_a_silent_host_makes_the_lab_unknown_until_every_host_reports_again(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = _running(api, alice, spread_lab, run, report)
    node_a, node_b = two_hosts
    token = Deployment.objects.get(pk=pk).token
    Host.objects.filter(pk=node_b.pk).update(status="offline")
    assert deployments_mark_unknown(host=node_b) == 1
    assert _status(pk) == S.UNKNOWN
    Deployment.objects.filter(pk=pk).update(updated=timezone.now() - timedelta(minutes=1))

    deployments_reconcile_host(host=node_a, tokens=[token], sent=time.time())
    assert _status(pk) == S.UNKNOWN  # node-b is still silent

    Host.objects.filter(pk=node_b.pk).update(status="online")
    deployments_reconcile_host(host=node_b, tokens=[token], sent=time.time())
    assert _status(pk) == S.RUNNING


def test_a_deployment_stuck_without_news_fails_and_every_host_removes_its_part(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    pk = int(_deploy(api, alice, spread_lab, run)["id"])
    long_ago = timezone.now() - timedelta(seconds=settings.LABMGR_DEPLOY_TIMEOUT + 60)
    Deployment.objects.filter(pk=pk).update(dispatched=long_ago)
    dispatched.sent.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert deployments_fail_stuck() == 1

    assert _status(pk) == S.FAILED
    assert [(task, host) for task, host, _ in dispatched.sent] == [
        ("destroy", "node-a"),
        ("destroy", "node-b"),
    ]


# --- refusals -------------------------------------------------------------------------------


def test_an_overlay_across_hosts_is_refused_while_a_host_has_no_underlay_address(
    api: Api, alice: User, spread_lab: Lab, dispatched: Dispatched, run: Any
) -> None:
    _host("node-a", "192.0.2.1")
    _host("node-b", None)

    response = run(api(alice), "post", f"/api/labs/{spread_lab.pk}/deploy")

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "networks.wan": [
            "Overlay network wan spans hosts node-a, node-b, but host node-b has no underlay "
            "address: an admin sets it on the host, or its agent reports it "
            "(LABMGR_AGENT_UNDERLAY)."
        ]
    }
    assert not Deployment.objects.exists()
    assert dispatched.sent == []


def test_an_admin_sets_the_underlay_address_that_the_agent_did_not_report(
    api: Api, alice: User, root: User, spread_lab: Lab, dispatched: Dispatched, run: Any
) -> None:
    _host("node-a", "192.0.2.1")
    node_b = _host("node-b", None)

    refused = run(api(alice), "patch", f"/api/hosts/{node_b.pk}/", {"underlay": "192.0.2.9"})
    assert refused.status_code == 403
    bad = run(api(root), "patch", f"/api/hosts/{node_b.pk}/", {"underlay": "node-b"})
    assert bad.status_code == 400
    assert list(bad.json()["errors"]) == ["underlay"]
    done = run(api(root), "patch", f"/api/hosts/{node_b.pk}/", {"underlay": "192.0.2.9"})
    assert (done.status_code, done.json()["underlay_address"]) == (200, "192.0.2.9")

    _deploy(api, alice, spread_lab, run)
    plan = codec.plan_from_dict(dispatched.sent[0][2]["plan"])
    fdb = [op.dst for op in plan.for_host("node-a").ops if type(op).__name__ == "AddFdbEntry"]
    assert fdb == ["192.0.2.9"]


def test_the_admins_underlay_address_overrides_the_agents(db: None) -> None:
    host = _host("node-a", "192.0.2.1")
    assert host.underlay_address == "192.0.2.1"
    host.underlay = "198.51.100.1"
    assert host.underlay_address == "198.51.100.1"


def test_a_node_on_a_host_that_does_not_exist_is_refused_with_its_field(
    api: Api, alice: User, two_hosts: Any, dispatched: Dispatched, run: Any
) -> None:
    tree = {**SPREAD_LABFILE, "nodes": {**SPREAD_LABFILE["nodes"], "b": {"host": "node-z"}}}
    lab = lab_create(owner=alice, labfile_tree=tree)
    response = run(api(alice), "post", f"/api/labs/{lab.pk}/deploy")
    assert response.status_code == 400
    assert response.json()["errors"] == {"nodes.b.host": ["There is no host 'node-z'."]}


def test_an_offline_host_of_the_lab_refuses_the_deployment(
    api: Api, alice: User, spread_lab: Lab, two_hosts: Any, dispatched: Dispatched, run: Any
) -> None:
    Host.objects.filter(slug="node-b").update(status="offline")
    response = run(api(alice), "post", f"/api/labs/{spread_lab.pk}/deploy")
    assert response.status_code == 409
    assert response.json()["errors"] == {"host": ["Host node-b is offline."]}
    assert dispatched.sent == []


# --- reservations and budgets ----------------------------------------------------------------


def _book(user: User, host: Host, share: Share) -> int:
    start = timezone.now()
    reservation = reservation_book(
        actor=user, host=host, start=start, end=start + timedelta(hours=1), share=share
    )
    return int(reservation.pk)


def test_the_owner_needs_a_reservation_of_every_host_the_lab_uses(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    settings: Any,
) -> None:
    settings.LABMGR_REQUIRE_RESERVATION = True
    _book(alice, two_hosts[0], Share(whole_host=True))

    response = run(api(alice), "post", f"/api/labs/{spread_lab.pk}/deploy")

    assert response.status_code == 403
    [message] = response.json()["errors"]["host"]
    assert "node-b" in message and "reservation" in message
    assert dispatched.sent == []


def test_each_host_is_sent_the_budget_of_its_own_reservation(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    settings: Any,
) -> None:
    settings.LABMGR_REQUIRE_RESERVATION = True
    share = Share(cpus=Decimal(1), memory=256 * 2**20, pids=100)
    first, second = _book(alice, two_hosts[0], share), _book(alice, two_hosts[1], share)

    _deploy(api, alice, spread_lab, run)

    budgets = {host: kwargs["budget"]["reservation"] for _, host, kwargs in dispatched.sent}
    assert budgets == {"node-a": first, "node-b": second}


def test_a_hosts_share_is_checked_against_the_nodes_placed_there_only(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    settings: Any,
) -> None:
    settings.LABMGR_REQUIRE_RESERVATION = True
    # node-b holds one 64M node: 100M fits it; node-a holds two, 100M does not.
    _book(alice, two_hosts[0], Share(cpus=Decimal(1), memory=100 * 2**20, pids=100))
    _book(alice, two_hosts[1], Share(cpus=Decimal(1), memory=100 * 2**20, pids=100))

    response = run(api(alice), "post", f"/api/labs/{spread_lab.pk}/deploy")

    assert response.status_code == 400
    assert response.json()["detail"] == "The lab does not fit your reservation's share."
    assert dispatched.sent == []


def test_an_admin_deploys_across_hosts_without_reservations_inside_each_hosts_budget(
    api: Api, root: User, two_hosts: Any, dispatched: Dispatched, run: Any, settings: Any
) -> None:
    settings.LABMGR_REQUIRE_RESERVATION = True
    lab = lab_create(owner=root, labfile_tree=SPREAD_LABFILE)
    _deploy(api, root, lab, run)
    host_wide = {
        "reservation": None,
        "cgroup": None,
        "cpus": 4.0,
        "memory": 8 * 2**30,
        "pids": 10_000,
    }
    assert [(host, kwargs.get("budget")) for _, host, kwargs in dispatched.sent] == [
        ("node-a", host_wide),
        ("node-b", host_wide),
    ]


# --- pages -----------------------------------------------------------------------------------


def test_the_lab_page_names_every_host_and_the_topology_each_nodes(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
    client: Any,
) -> None:
    pk = _running(api, alice, spread_lab, run, report)
    client.force_login(alice)

    page = client.get(f"/labs/{spread_lab.pk}/").content.decode()
    assert f"Deployment #{pk} on node-a, node-b, started" in page

    page = client.get(f"/labs/{spread_lab.pk}/topology/").content.decode()
    start = page.index('<script id="graph-data" type="application/json">') + 48
    graph = json.loads(page[start : page.index("</script>", start)])
    assert {n["name"]: n["host"] for n in graph["nodes"]} == {
        "a": "node-a",
        "b": "node-b",
        "c": "node-a",
    }


# --- metrics and captures of nodes on other hosts -------------------------------------------


def test_metrics_of_nodes_on_the_second_host_are_kept(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
) -> None:
    pk = _running(api, alice, spread_lab, run, report)
    token = Deployment.objects.get(pk=pk).token
    now = time.time()

    stored = metrics_record(
        host="node-b", samples=[{"token": token, "node": "b", "t": now, "pids": 3}]
    )
    elsewhere = metrics_record(
        host="node-c", samples=[{"token": token, "node": "b", "t": now + 1, "pids": 3}]
    )

    assert (stored, elsewhere) == (1, 0)  # a host the lab is not on is not believed
    assert list(MetricSample.objects.values_list("node", "pids")) == [("b", 3)]


def test_a_capture_starts_and_stops_on_the_host_of_its_node(
    api: Api,
    alice: User,
    spread_lab: Lab,
    two_hosts: Any,
    dispatched: Dispatched,
    run: Any,
    report: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pk = _running(api, alice, spread_lab, run, report)
    sent: list[tuple[str, str]] = []

    def start(*, host: str, **kwargs: Any) -> dict[str, Any]:
        sent.append(("start", host))
        return {"ok": True, "field": "", "error": ""}

    def stop(*, host: str, capture: str) -> None:
        sent.append(("stop", host))

    monkeypatch.setattr(capture_dispatch, "start", start)
    monkeypatch.setattr(capture_dispatch, "stop", stop)
    body = {"node": "b", "interface": "eth0"}
    started = run(api(alice), "post", f"/api/deployments/{pk}/captures", body)
    assert started.status_code == 201, started.json()
    capture = started.json()["id"]
    stopped = run(api(alice), "post", f"/api/deployments/{pk}/captures/{capture}/stop")
    assert stopped.status_code in (200, 202), stopped.json()

    assert sent == [("start", "node-b"), ("stop", "node-b")]
