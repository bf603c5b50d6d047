"""The control tasks agents send, called directly: steps, results, drift; each delivered
twice changes nothing the second time."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from labmgr.deployments import tasks
from labmgr.deployments.choices import DeploymentStatus, step_status_from_agent
from labmgr.deployments.lifecycle import deployment_deploy, deployment_destroy_lab
from labmgr.deployments.models import Deployment
from labmgr.hosts.models import Host
from labmgr.labs.models import Lab
from labplan.messages import STEP_STATES
from tests.unit.labmgr.conftest import Dispatched

S = DeploymentStatus
STEP = {
    "seq": 1001,
    "total": 3,
    "name": "create_netns",
    "target": "lm1-n0 … lm1-n1 (2)",
    "status": "done",
    "message": "",
    "seconds": 0.002,
}


@pytest.fixture
def deployment(
    alice_lab: Lab, alice: User, online_host: Host, dispatched: Dispatched
) -> Deployment:
    return deployment_deploy(lab=alice_lab, actor=alice)


def _status(deployment: Deployment) -> str:
    deployment.refresh_from_db()
    return deployment.status


def test_the_first_step_moves_a_pending_deployment_to_deploying(deployment: Deployment) -> None:
    tasks.deployment_step(deployment=deployment.pk, **STEP)
    assert _status(deployment) == S.DEPLOYING
    step = deployment.steps.get(agent_seq=1001)
    assert (step.name, step.target, step.status, step.total) == (
        "create_netns",
        "lm1-n0 … lm1-n1 (2)",
        "succeeded",
        3,
    )


def test_a_step_delivered_twice_is_stored_once(deployment: Deployment) -> None:
    tasks.deployment_step(deployment=deployment.pk, **STEP)
    tasks.deployment_step(deployment=deployment.pk, **STEP)
    assert deployment.steps.filter(agent_seq=1001).count() == 1


@pytest.mark.parametrize(
    ("word", "stored"),
    [("done", "succeeded"), ("failed", "failed"), ("rolled back", "rolled_back")],
)
def test_each_step_state_the_agent_sends_is_stored_as_its_state(
    deployment: Deployment, word: str, stored: str
) -> None:
    tasks.deployment_step(deployment=deployment.pk, **{**STEP, "status": word})
    assert deployment.steps.get(agent_seq=1001).status == stored


def test_every_step_state_of_the_message_contract_is_understood() -> None:
    assert all(step_status_from_agent(word) is not None for word in STEP_STATES)


def test_a_step_state_no_agent_sends_is_an_errored_step_that_shows_the_word(
    deployment: Deployment,
) -> None:
    tasks.deployment_step(
        deployment=deployment.pk, **{**STEP, "status": "exploded", "message": "x"}
    )
    step = deployment.steps.get(agent_seq=1001)
    assert (step.status, step.message) == ("errored", "[exploded] x")


def test_steps_publish_an_event_to_the_labs_group(
    deployment: Deployment, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    sent: list[tuple[list[str], dict[str, Any]]] = []
    monkeypatch.setattr("labmgr.events._send", lambda groups, event: sent.append((groups, event)))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.deployment_step(deployment=deployment.pk, **STEP)
    types = [(groups, event["type"]) for groups, event in sent]
    assert types == [
        ([f"lab.{deployment.lab_id}"], "deployment.status"),
        ([f"lab.{deployment.lab_id}"], "deployment.step"),
    ]
    assert sent[1][1]["target"] == "lm1-n0 … lm1-n1 (2)"


def test_a_successful_apply_result_makes_it_running_once(deployment: Deployment) -> None:
    result = {
        "action": "apply",
        "ok": True,
        "error": "",
        "nodes": [{"name": "web", "pid": 7, "netns": "x", "interfaces": []}],
    }
    tasks.deployment_result(deployment=deployment.pk, **result)
    assert _status(deployment) == S.RUNNING
    steps = deployment.steps.count()
    tasks.deployment_result(deployment=deployment.pk, **result)
    assert _status(deployment) == S.RUNNING
    assert deployment.steps.count() == steps
    assert list(deployment.nodes.values_list("name", "pid")) == [("web", 7)]


def test_a_failed_apply_result_records_the_reason(deployment: Deployment) -> None:
    tasks.deployment_result(
        deployment=deployment.pk, action="apply", ok=False, error="host lacks ipvlan", nodes=[]
    )
    assert _status(deployment) == S.FAILED
    assert deployment.steps.last().message == "deploying -> failed: host lacks ipvlan"


def test_a_destroy_result_finishes_the_deployment_and_frees_its_vnis(
    deployment: Deployment, alice: User, alice_lab: Lab
) -> None:
    tasks.deployment_result(deployment=deployment.pk, action="apply", ok=True, error="", nodes=[])
    deployment.vnis.create(network="lan", vni=100_000)
    deployment_destroy_lab(lab=alice_lab, actor=alice)
    tasks.deployment_result(deployment=deployment.pk, action="destroy", ok=True, error="", nodes=[])
    assert _status(deployment) == S.DESTROYED
    assert deployment.finished is not None
    assert not deployment.vnis.exists()


def test_a_destroy_result_for_a_running_deployment_changes_nothing(deployment: Deployment) -> None:
    tasks.deployment_result(deployment=deployment.pk, action="apply", ok=True, error="", nodes=[])
    tasks.deployment_result(deployment=deployment.pk, action="destroy", ok=True, error="", nodes=[])
    assert _status(deployment) == S.RUNNING


def test_reports_about_an_unknown_deployment_are_ignored(db: None) -> None:
    tasks.deployment_step(deployment=999, **STEP)
    tasks.deployment_result(deployment=999, action="apply", ok=True, error="", nodes=[])
    tasks.drift(deployment=999, missing=["x"], extra=[])
    assert not Deployment.objects.exists()


def test_drift_is_stored_sorted(deployment: Deployment) -> None:
    tasks.drift(
        deployment=deployment.pk, missing=["link lm1-v1x0", "link lm1-b0"], extra=["netns lm1-n9"]
    )
    deployment.refresh_from_db()
    assert deployment.drift == {
        "missing": ["link lm1-b0", "link lm1-v1x0"],
        "extra": ["netns lm1-n9"],
    }
    assert deployment.drift_checked is not None


def test_overlay_networks_get_distinct_vnis_across_deployments(
    alice: User, online_host: Host, dispatched: Dispatched, labfile_tree: Any
) -> None:
    from labmgr.labs.services import lab_create

    vnis = []
    for index, name in enumerate(("one", "two")):
        tree = labfile_tree(name)
        tree["networks"] = {"ov": {"driver": "overlay", "subnet": f"10.2{index}.0.0/24"}}
        tree["nodes"] = {"a": {"networks": {"ov": {}}}}
        deployment = deployment_deploy(lab=lab_create(owner=alice, labfile_tree=tree), actor=alice)
        [vxlan] = [op for op in deployment.plan["hosts"][0]["ops"] if op["op"] == "create_vxlan"]
        vnis.append(vxlan["vni"])
    assert vnis == [100_000, 100_001]
