"""Deploy, destroy, redeploy, cancel, check and exec through the API, with the dispatch
seam patched: what the user sees, what the agent would be sent, who may do it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from labmgr.deployments.choices import DeploymentStatus
from labmgr.deployments.models import Deployment
from labmgr.deployments.services import deployment_result_record
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_update
from labmgr.reservations.services import Share, reservation_book
from tests.unit.labmgr.conftest import Dispatched, small_labfile

Api = Callable[[User | None], APIClient]
S = DeploymentStatus


def _running(lab: Lab, user: User, run: Any, api: Api) -> Deployment:
    body = run(api(user), "post", f"/api/labs/{lab.pk}/deploy").json()
    deployment_result_record(deployment_id=body["id"], action="apply", ok=True, error="", nodes=[])
    return Deployment.objects.get(pk=body["id"])


def test_deploy_answers_202_and_sends_the_plan_to_the_hosts_queue(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    response = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy")
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["host"], body["lab_name"]) == ("pending", "local", "demo")
    [(task, host, kwargs)] = dispatched.sent
    assert (task, host, kwargs["deployment"], kwargs["previous"]) == (
        "apply",
        "local",
        body["id"],
        None,
    )
    assert kwargs["plan"]["deployment"] == body["token"]


def test_a_second_deploy_of_the_same_lab_is_refused(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    first = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy").json()
    second = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy")
    assert second.status_code == 409
    assert second.json()["detail"] == (
        f"Lab 'demo' already has deployment #{first['id']} (pending); redeploy or destroy it first."
    )
    assert dispatched.tasks() == ["apply"]


def test_deploy_is_refused_when_no_host_is_online(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    Host.objects.update(status="offline")
    response = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy")
    assert response.status_code == 409
    assert response.json()["errors"] == {"host": ["No host is online to deploy on."]}
    assert not Deployment.objects.exists()
    assert dispatched.sent == []


def test_deploy_is_refused_on_a_named_host_that_is_offline(
    api: Api, alice: User, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    Host.objects.create(name="Node A", slug="node-a", status="offline")
    tree = small_labfile("placed")
    tree["nodes"]["web"]["host"] = "node-a"
    lab = Lab.objects.get(pk=run(api(alice), "post", "/api/labs/", {"labfile": tree}).json()["id"])
    response = run(api(alice), "post", f"/api/labs/{lab.pk}/deploy")
    assert response.status_code == 409
    assert response.json()["errors"] == {"host": ["Host Node A is offline."]}


def test_deploy_names_the_feature_the_host_lacks(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    online_host.facts["cgroup_controllers"] = ["cpu", "pids"]
    online_host.save()
    response = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "Host local lacks cgroup controller memory, which this lab needs."
    )
    # And the fields that ask for it, by path, for the editor to show where.
    fields = {k: v for k, v in response.json()["errors"].items() if k != "host"}
    assert fields and all(k.startswith("nodes.") and ".limits.memory" in k for k in fields)
    assert set(map(tuple, fields.values())) == {
        ("Host local lacks cgroup controller memory, which this field needs.",)
    }
    assert not Deployment.objects.exists()
    assert dispatched.sent == []


def test_destroy_moves_the_running_deployment_to_destroying_and_sends_the_teardown(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    deployment = _running(alice_lab, alice, run, api)
    response = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/destroy")
    assert response.status_code == 202
    assert response.json()["status"] == "destroying"
    assert dispatched.sent[-1] == (
        "destroy",
        "local",
        {"deployment": deployment.pk, "token": deployment.token},
    )
    again = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/destroy")
    assert again.status_code == 202
    assert dispatched.tasks() == ["apply", "destroy"]


def test_destroy_of_a_lab_with_nothing_deployed_is_a_conflict(
    api: Api, alice: User, alice_lab: Lab, run: Any
) -> None:
    response = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/destroy")
    assert response.status_code == 409
    assert response.json()["detail"] == "Lab 'demo' has no deployment to destroy."


def test_redeploy_sends_the_new_plan_with_the_previous_one(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    deployment = _running(alice_lab, alice, run, api)
    previous = deployment.plan
    tree = small_labfile("demo")
    tree["nodes"]["extra"] = {"networks": {"lan": {}}}
    lab_update(lab=alice_lab, labfile_tree=tree)
    response = run(api(alice), "post", f"/api/deployments/{deployment.pk}/redeploy")
    assert response.status_code == 202
    assert response.json()["status"] == "deploying"
    task, _, kwargs = dispatched.sent[-1]
    assert task == "apply"
    assert kwargs["previous"] == previous
    assert kwargs["plan"]["deployment"] == deployment.token
    spawned = [op["node"] for op in kwargs["plan"]["hosts"][0]["ops"] if op["op"] == "spawn_node"]
    assert spawned == ["client", "extra", "web"]


def test_a_redeploy_keeps_the_kernel_names_of_the_nodes_that_stay(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    deployment = _running(alice_lab, alice, run, api)

    def netns(plan: dict[str, Any]) -> dict[str, str]:
        ops = plan["hosts"][0]["ops"]
        return {op["node"]: op["netns"] for op in ops if op["op"] == "spawn_node"}

    before = netns(deployment.plan)
    tree = small_labfile("demo")
    tree["nodes"]["aaa"] = {"networks": {"lan": {}}}  # sorts before every node there is
    lab_update(lab=alice_lab, labfile_tree=tree)
    run(api(alice), "post", f"/api/deployments/{deployment.pk}/redeploy")

    after = netns(dispatched.sent[-1][2]["plan"])
    assert {n: after[n] for n in before} == before
    assert after["aaa"] not in before.values()


def test_only_a_running_deployment_is_redeployed(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    body = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy").json()
    response = run(api(alice), "post", f"/api/deployments/{body['id']}/redeploy")
    assert response.status_code == 409
    assert response.json()["errors"] == {
        "status": ["Only a running deployment can be redeployed; this one is pending."]
    }


def test_cancel_of_a_pending_deployment_cancels_it_and_removes_what_was_built(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    body = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy").json()
    response = run(api(alice), "post", f"/api/deployments/{body['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert dispatched.tasks() == ["apply", "destroy"]
    # The agent's late result of the apply changes nothing.
    assert not deployment_result_record(
        deployment_id=body["id"], action="apply", ok=True, error="", nodes=[]
    )
    assert Deployment.objects.get(pk=body["id"]).status == S.CANCELLED


def test_cancel_of_a_running_deployment_is_a_conflict(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    deployment = _running(alice_lab, alice, run, api)
    response = run(api(alice), "post", f"/api/deployments/{deployment.pk}/cancel")
    assert response.status_code == 409


def test_check_asks_the_agent_to_compare_kernel_and_plan(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    deployment = _running(alice_lab, alice, run, api)
    response = run(api(alice), "post", f"/api/deployments/{deployment.pk}/check")
    assert response.status_code == 202
    assert dispatched.sent[-1] == (
        "check",
        "local",
        {"deployment": deployment.pk, "plan": deployment.plan},
    )


def test_exec_runs_a_command_in_a_node_and_returns_its_output(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    deployment = _running(alice_lab, alice, run, api)
    dispatched.exec_result = {"exit": 0, "stdout": "1 packets received\n", "stderr": ""}
    response = run(
        api(alice),
        "post",
        f"/api/deployments/{deployment.pk}/exec",
        {"node": "client", "argv": ["ping", "-c", "1", "web"]},
    )
    assert response.status_code == 200
    assert response.json() == {"exit": 0, "stdout": "1 packets received\n", "stderr": ""}
    _, _, kwargs = dispatched.sent[-1]
    assert (kwargs["node"], kwargs["argv"], kwargs["token"]) == (
        "client",
        ["ping", "-c", "1", "web"],
        deployment.token,
    )


def test_exec_in_a_node_the_lab_lacks_is_refused(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    deployment = _running(alice_lab, alice, run, api)
    response = run(
        api(alice),
        "post",
        f"/api/deployments/{deployment.pk}/exec",
        {"node": "nope", "argv": ["id"]},
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"node": ["The deployment has no node 'nope'."]}


@pytest.mark.parametrize(
    ("persona", "code"), [("bob", 403), ("charlie", 404), ("root", 202), ("anonymous", 401)]
)
def test_only_the_owner_and_admins_deploy_and_destroy(
    request: pytest.FixtureRequest,
    api: Api,
    shared_lab: Lab,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
    persona: str,
    code: int,
) -> None:
    user = None if persona == "anonymous" else request.getfixturevalue(persona)
    assert run(api(user), "post", f"/api/labs/{shared_lab.pk}/deploy").status_code == code
    if code != 202:
        assert dispatched.sent == []
        return
    assert run(api(user), "post", f"/api/labs/{shared_lab.pk}/destroy").status_code == 202


@pytest.mark.parametrize(("persona", "code"), [("bob", 403), ("charlie", 404), ("anonymous", 401)])
@pytest.mark.parametrize("action", ["redeploy", "cancel", "check", "exec"])
def test_deployment_actions_are_refused_to_others(
    request: pytest.FixtureRequest,
    api: Api,
    alice: User,
    shared_lab: Lab,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
    persona: str,
    code: int,
    action: str,
) -> None:
    deployment = _running(shared_lab, alice, run, api)
    user = None if persona == "anonymous" else request.getfixturevalue(persona)
    body = {"node": "web", "argv": ["id"]} if action == "exec" else None
    response = run(api(user), "post", f"/api/deployments/{deployment.pk}/{action}", body)
    assert response.status_code == code
    assert dispatched.tasks() == ["apply"]


def test_the_detail_shows_steps_and_the_nodes_as_the_agent_saw_them(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    body = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy").json()
    nodes = [
        {
            "name": "web",
            "pid": 4242,
            "netns": "lm1-n1",
            "interfaces": [
                {"ifname": "eth0", "mac": "02:42:0a:0a:00:0a", "addresses": ["10.10.0.10/24"]}
            ],
            "note": "idmapped mount of the host's root filesystem (mount_setattr): EINVAL",
        }
    ]
    deployment_result_record(
        deployment_id=body["id"], action="apply", ok=True, error="", nodes=nodes
    )
    detail = api(alice).get(f"/api/deployments/{body['id']}").json()
    assert detail["status"] == "running"
    assert detail["nodes"] == [{**node, "host": "local"} for node in nodes]
    assert [s["message"] for s in detail["steps"] if s["name"] == "status"] == [
        "pending -> deploying: the agent started",
        "deploying -> running",
    ]


def test_a_user_without_a_reservation_of_the_host_may_not_deploy(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, run: Any, settings: Any
) -> None:
    settings.LABMGR_REQUIRE_RESERVATION = True

    response = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy")

    assert response.status_code == 403
    assert "reservation" in response.json()["errors"]["host"][0]
    assert not Deployment.objects.exists()


def test_a_user_deploys_inside_their_reservation_of_the_host(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, run: Any, settings: Any
) -> None:
    settings.LABMGR_REQUIRE_RESERVATION = True
    start = timezone.now()
    reservation_book(
        actor=alice,
        host=online_host,
        start=start,
        end=start + timedelta(hours=1),
        share=Share(whole_host=True),
    )

    response = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy")

    assert response.status_code == 202
