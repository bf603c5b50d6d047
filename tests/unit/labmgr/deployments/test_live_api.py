"""Live changes through the API (`/api/deployments/{id}/live`), the dispatch seam patched:
what the owner sees, what the agent is sent, what the history keeps, who may do it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from labmgr.deployments.models import Deployment
from labmgr.deployments.services import deployment_result_record
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from tests.unit.labmgr.conftest import Dispatched

Api = Callable[[User | None], APIClient]


@pytest.fixture
def running(
    alice_lab: Lab, alice: User, api: Api, online_host: Host, dispatched: Dispatched, run: Any
) -> Deployment:
    body = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy").json()
    deployment_result_record(deployment_id=body["id"], action="apply", ok=True, error="", nodes=[])
    dispatched.sent.clear()
    return Deployment.objects.get(pk=body["id"])


def live_sent(dispatched: Dispatched) -> list[list[dict[str, Any]]]:
    return [kwargs["changes"] for task, _, kwargs in dispatched.sent if task == "live"]


def test_setting_loss_on_an_interface_reaches_the_agent_and_the_history(
    api: Api, alice: User, running: Deployment, dispatched: Dispatched, run: Any
) -> None:
    url = f"/api/deployments/{running.pk}/live"
    response = run(api(alice), "post", url, {"set": {"interface": "web:eth0", "loss": "30%"}})

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["ok"] and body["action"] == "set loss 30% on interface web:eth0"
    assert body["live"]["impairments"] == {"web:eth0": {"loss": "30%"}}
    [[change]] = live_sent(dispatched)
    assert change["node"] == "web" and change["ifname"] == "eth0"
    assert change["impairments"]["loss"] == 30.0 and change["previous"] is None
    step = running.steps.order_by("-seq").first()
    assert step is not None
    assert (step.name, step.status, step.actor) == ("live", "succeeded", "alice")
    assert step.message == "set loss 30% on interface web:eth0"

    shown = run(api(alice), "get", url).json()
    web = next(i for i in shown["interfaces"] if i["interface"] == "web:eth0")
    assert web == {
        "interface": "web:eth0",
        "network": "lan",
        "impairments": {"loss": "30%"},
        "changed": True,
        "up": True,
        "parked": False,
    }


@pytest.mark.parametrize(
    ("action", "field", "said"),
    [
        ({"set": {"interface": "web:eth0", "loss": "300%"}}, "set.loss", "between 0% and 100%"),
        ({"set": {"interface": "web:eth0", "jitter": "2ms"}}, "set.jitter", "needs a delay"),
        ({"set": {"loss": "3%"}}, "set", "name one of link, interface or network"),
        ({"down": "ghost:eth0"}, "down", "no node 'ghost'"),
        ({"down": "web:eth7"}, "down", "no interface 'eth7'"),
        ({"down": {"link": "web:eth0"}}, "down", "no link of the lab ends at web:eth0"),
        ({"start": "web"}, "start", "already running"),
        ({"reboot": "web"}, "reboot", "unknown action"),
        ({"down": "web:eth0", "up": "web:eth0"}, "up", "one action at a time"),
        ([], "action", "an action is one of"),
    ],
)
def test_a_bad_action_is_refused_by_field_and_nothing_is_sent(
    api: Api,
    alice: User,
    running: Deployment,
    dispatched: Dispatched,
    run: Any,
    action: Any,
    field: str,
    said: str,
) -> None:
    response = run(api(alice), "post", f"/api/deployments/{running.pk}/live", action)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert field in errors and said in " ".join(errors[field]), errors
    assert live_sent(dispatched) == []
    running.refresh_from_db()
    assert running.live == {}


def test_only_the_owner_changes_a_running_lab(
    api: Api,
    bob: User,
    charlie: User,
    shared_lab: Lab,
    alice: User,
    online_host: Host,
    dispatched: Dispatched,
    run: Any,
) -> None:
    body = run(api(alice), "post", f"/api/labs/{shared_lab.pk}/deploy").json()
    deployment_result_record(deployment_id=body["id"], action="apply", ok=True, error="", nodes=[])
    url = f"/api/deployments/{body['id']}/live"
    action = {"down": "web:eth0"}

    assert run(api(bob), "post", url, action).status_code == 403  # shared to read
    assert run(api(charlie), "post", url, action).status_code == 404  # not shared at all
    assert run(api(None), "post", url, action).status_code in (401, 403)
    assert run(api(bob), "get", url).status_code == 200  # a reader sees the state
    assert live_sent(dispatched) == []


def test_a_lab_that_is_not_running_is_not_changed(
    api: Api, alice: User, alice_lab: Lab, online_host: Host, dispatched: Dispatched, run: Any
) -> None:
    body = run(api(alice), "post", f"/api/labs/{alice_lab.pk}/deploy").json()  # pending
    response = run(api(alice), "post", f"/api/deployments/{body['id']}/live", {"stop": "web"})

    assert response.status_code == 409
    assert "status" in response.json()["errors"]
    assert live_sent(dispatched) == []


def test_a_change_the_kernel_refuses_keeps_the_state_and_says_so(
    api: Api, alice: User, running: Deployment, dispatched: Dispatched, run: Any
) -> None:
    url = f"/api/deployments/{running.pk}/live"
    first = run(api(alice), "post", url, {"set": {"interface": "web:eth0", "rate": "2mbit"}})
    assert first.status_code == 200
    dispatched.live_result = {
        "ok": False,
        "error": "web:eth0: the kernel has no netem",
        "done": 0,
        "stopped": [],
        "seconds": 0.001,
    }

    response = run(api(alice), "post", url, {"set": {"interface": "web:eth0", "delay": "5ms"}})

    assert response.status_code == 409
    assert "the kernel has no netem" in response.json()["detail"]
    running.refresh_from_db()
    assert running.live["impairments"] == {"web:eth0": {"rate": "2mbit"}}
    step = running.steps.order_by("-seq").first()
    assert step is not None and step.status == "failed" and "no netem" in step.message
    # The refused change was sent with the impairments to put back.
    assert live_sent(dispatched)[-1][0]["previous"]["rate"] == 2_000_000


def test_a_stopped_node_is_started_by_restore_and_a_redeploy_restores_first(
    api: Api, alice: User, running: Deployment, dispatched: Dispatched, run: Any
) -> None:
    url = f"/api/deployments/{running.pk}/live"
    assert run(api(alice), "post", url, {"stop": "web"}).json()["live"]["stopped"] == ["web"]
    refused = run(api(alice), "post", url, {"up": "web:eth0"})
    assert refused.status_code == 400 and "start it first" in refused.json()["errors"]["up"][0]
    shown = run(api(alice), "get", url).json()
    assert {"node": "web", "state": "stopped"} in shown["nodes"]
    web = next(i for i in shown["interfaces"] if i["interface"] == "web:eth0")
    assert web["parked"] and web["up"]  # down while stopped, up again when it starts

    response = run(api(alice), "post", f"/api/deployments/{running.pk}/redeploy")

    assert response.status_code == 202
    assert live_sent(dispatched)[-1] == [{"node": "web", "action": "start", "down": []}]
    assert dispatched.tasks()[-1] == "apply"
    running.refresh_from_db()
    assert running.live == {"impairments": {}, "down": [], "stopped": []}
